"""`result-assets`: migrate, status and export from the command line."""
# The top layer: each command parses its flags, calls the layer below and prints what comes
# back. The other commands live beside this module (EXTRA_COMMANDS). The docstring is --help.
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from urllib.parse import quote

from result_assets.errors import DatabaseUnavailable, UsageError
from result_assets.settings import DEFAULT_BATCH_SIZE, Settings, SettingsError, source_folder
from result_assets.store.schema import SchemaOutdated

CliError = UsageError  # the name other tools import


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not a usage dump
        raise CliError(message)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `command`, the other extra subcommands get no arguments (their
    modules, some import-heavy, are loaded only when they run: a `migrate` starts sooner)."""
    parser = _Parser(prog="result-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    m = sub.add_parser("migrate", help="migrate a legacy task tree through Dagster")
    m.add_argument("--source-dir", required=True, help="folder of <task_id>/result.json")
    m.add_argument("--backup-dir", help="where to keep byte-exact backups (default RESULT_BACKUP_DIR)")
    m.add_argument("--batch-size", type=_positive_int, default=None,
                   help=f"tasks per run (default {DEFAULT_BATCH_SIZE}, RESULT_BATCH_SIZE)")
    m.add_argument("--force", action="store_true", help="re-migrate unchanged tasks too")
    m.add_argument("--dry-run", action="store_true", help="validate and print the plan; write nothing")
    m.add_argument("--task", action="extend", nargs="+", metavar="ID", help="only these tasks (repeatable)")
    m.add_argument("--json", action="store_true", help="print the report as one JSON object")

    s = sub.add_parser("status", help="every known task with its status")
    s.add_argument("--json", action="store_true")

    e = sub.add_parser("export", help="write migrated tasks back as JSON documents")
    e.add_argument("task_ids", nargs="*", metavar="TASK_ID")
    e.add_argument("--out", help="folder for <quoted task id>.json files")

    d = sub.add_parser("db", help="the catalog's schema")
    d.add_argument("action", choices=["upgrade", "version"],
                   help="upgrade: create or upgrade the schema (the only step that runs DDL); version: print it")

    for name, (module, help_text) in EXTRA_COMMANDS.items():
        extra = sub.add_parser(name, help=help_text)
        if command is None or command == name:
            _load(module).add_arguments(extra)
    return parser


# Subcommands in modules of their own: module.add_arguments(parser), module.run(args) -> int.
EXTRA_COMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("benchmarks.command", "benchmark migrate against a naive script, dlt and the bare converter"),
    "phase": ("result_assets.cli.phases", "the storage mode, and what stands between it and the next phase"),
    "archive": ("result_assets.cli.archive", "pack the JSON of migrated, verified tasks into archives, then remove it"),
    "restore": ("result_assets.cli.restore", "put a task's exact original JSON back, from the backups or an archive"),
    "rollback": ("result_assets.cli.rollback", "restore a task's rows as they were before its last re-migration"),
    "maintain": ("result_assets.cli.maintain", "flush the hot tier, compact, checkpoint and vacuum the store now"),
}


def _load(module: str):
    import importlib

    if module.partition(".")[0] == "benchmarks":
        _checkout_on_path()
    return importlib.import_module(module)


def _checkout_on_path() -> None:
    """`bench` runs benchmarks/ of the source checkout this package is installed editable from:
    it sits beside result_assets/ there and is not in the wheel (nor on the console script's path)."""
    import result_assets

    checkout = Path(result_assets.__file__).resolve().parents[1]
    if not (checkout / "benchmarks" / "command.py").is_file():
        raise UsageError("result-assets bench runs from a source checkout: "
                         "benchmarks/ is not part of the installed package")
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))


def whole_number(minimum: int, maximum: int | None = None):
    """An argparse type: a whole number of at least `minimum` (and at most `maximum`), else a
    one-line error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}: {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum:,}: {value}")
        return value
    return parse


_positive_int = whole_number(1)


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the console script: a whole process of its own
        _exit_now(_main(sys.argv[1:]))
    return _main(argv)


def _exit_now(code: int) -> None:
    """Exit without tearing down every imported module one object at a time (0.7 s of a
    3.1 s one-task `migrate`, measured). The exit handlers still run: the worker pool is
    joined, logs are flushed, the embedded server's handle is released."""
    import atexit
    import os

    convert = sys.modules.get("result_assets.migration.convert")  # loaded only where there were workers
    if convert is not None:
        convert.shutdown_workers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # a reader gone (`| head`), a stream closed (`>&-`)
            pass
    atexit._run_exitfuncs()  # noqa: SLF001 - what interpreter exit would run first
    os._exit(code)


def _main(argv: list[str]) -> int:
    try:
        command = next((a for a in argv if not a.startswith("-")), None)
        args = build_parser(command or "").parse_args(argv)
        Settings.from_env().check_storage_mode()  # a typo would otherwise run as json-only
        builtin = {"migrate": cmd_migrate, "status": cmd_status, "export": cmd_export, "db": cmd_db}
        if args.command in builtin:
            return builtin[args.command](args)
        return _load(EXTRA_COMMANDS[args.command][0]).run(args)
    except (UsageError, SettingsError) as exc:
        print(f"result-assets: error: {exc}", file=sys.stderr)
        return 2
    except (SchemaOutdated, DatabaseUnavailable) as exc:
        print(f"result-assets: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("result-assets: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of the output went away: nothing left to tell it
        _silence(sys.stdout)
        return 141  # as a shell reports a process SIGPIPE ended
    except Exception as exc:  # a database outage or a folder is the user's to fix, not a traceback
        from result_assets.store.postgres import EmbeddedServerError, error_line

        cause = _database_error(exc)
        if cause is not None:
            print(f"result-assets: error: database unavailable: {error_line(cause)}", file=sys.stderr)
            return 1
        if isinstance(exc, EmbeddedServerError):
            print(f"result-assets: error: {exc}", file=sys.stderr)
            return 1
        if isinstance(exc, OSError):  # a folder unreadable, a file where a folder should be, ...
            where = "".join(f": {name}" for name in (exc.filename, exc.filename2) if name)
            print(f"result-assets: error: {type(exc).__name__}: {exc.strerror or storage_error_line(exc)}{where}",
                  file=sys.stderr)
            return 1
        raise


def storage_error_line(exc: BaseException) -> str:
    """error_line, and the innermost cause when the error names it on a later line: delta-rs's
    "Generic S3 error" says why (connection refused, no such bucket) only at its end."""
    from result_assets.store.postgres import error_line, redact

    first = error_line(exc)
    lines = [line.strip().lstrip("↳").strip() for line in str(exc).strip().splitlines()]
    last = redact(lines[-1]) if len(lines) > 1 else ""
    return f"{first} ({last})" if last and last not in first else first


def _database_error(exc: BaseException) -> BaseException | None:
    """The connection failure somewhere in exc's chain (psycopg2 or SQLAlchemy), if any; a
    malformed DATABASE_URL is one too (psycopg2's ProgrammingError "invalid dsn")."""
    import psycopg2

    try:
        from sqlalchemy.exc import InterfaceError, OperationalError
        kinds: tuple = (psycopg2.OperationalError, psycopg2.InterfaceError, OperationalError, InterfaceError)
    except ImportError:  # pragma: no cover
        kinds = (psycopg2.OperationalError, psycopg2.InterfaceError)
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, kinds) or (isinstance(exc, psycopg2.ProgrammingError) and "invalid dsn" in str(exc)):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def existing_home():
    """The settings of a home that exists. A command that only reads (status, export, db
    version) given a home that is not there (a typo in RESULT_ASSETS_HOME, another working
    folder than usual) made a new store and said it held nothing."""
    from result_assets.app.errors import ResultStoreError
    from result_assets.app.query import existing_store

    try:
        return existing_store()
    except ResultStoreError as exc:
        raise CliError(str(exc)) from None


# --- migrate ---

def _ui_command(settings, source_dir: str | None = None) -> str:
    """The shell command that opens this home's instance in the Dagster UI, with what the code
    location needs to find this very store, from any folder: the home (without it the code
    location took ./.result_assets of the folder it ran in: a second, empty store whose runs
    quarantined every task as "source file not found"), the source folder and backups of this
    run, and the module of its definitions. With DATABASE_URL, the instance's URL travels in
    DAGSTER_URL_ENV (assets/instance.py)."""
    from result_assets.settings import DAGSTER_URL_ENV

    # The dagster beside this interpreter: a virtualenv's bin/ is rarely on PATH.
    dagster = Path(sys.executable).parent / "dagster"
    program = shlex.quote(str(dagster)) if dagster.exists() else "dagster"
    env = {"RESULT_ASSETS_HOME": str(settings.home), "DAGSTER_HOME": str(settings.dagster_home)}
    if source_dir:
        env["RESULT_SOURCE_DIR"] = source_dir if "://" in source_dir else str(Path(source_dir).absolute())
    if settings.backup_dir != str(settings.home / "backups"):
        env["RESULT_BACKUP_DIR"] = settings.backup_dir
    if settings.store_root != str(settings.home / "store"):
        env["RESULT_STORE_ROOT"] = settings.store_root
    assignments = " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())  # a home may hold a space
    command = f"{assignments} {program} dev -m result_assets.definitions"
    return f"{DAGSTER_URL_ENV}=<the instance's URL> {command}" if settings.database_url else command


def cmd_migrate(args) -> int:
    from result_assets.cli import migrate as service

    settings = Settings.from_env(backup_dir=args.backup_dir, batch_size=args.batch_size)  # made absolute there
    source_dir = source_folder(args.source_dir)
    if args.dry_run:
        outcome = service.dry_run(settings, source_dir, force=args.force, only=args.task)
        _print_report(args, outcome.report, outcome.quarantined)
        return 0
    outcome = service.migrate(settings, source_dir, force=args.force, only=args.task,
                              say=lambda line: _say(args, line))
    _print_report(args, outcome.report, outcome.quarantined if not args.json else [])
    _say(args, f"\nOpen the UI: {_ui_command(settings, source_dir)}  (then http://127.0.0.1:3000)")
    for o in outcome.failed_runs:
        print(f"result-assets: run {o.run_id} failed: {o.error}", file=sys.stderr)
    from result_assets.store.catalog import UNREPORTED

    for task_id, reason in outcome.failed_tasks:
        what = "not reported to Dagster" if reason == UNREPORTED else "not published, a proof failed"
        print(f"result-assets: task {task_id} {what}: {reason}", file=sys.stderr)
    return 1 if outcome.failed_runs or outcome.failed_tasks else 0


def _say(args, line: str) -> None:
    """Progress: best effort. A reader that went away (`migrate | head -1`, a pager quit) must
    not stop the migration half way: the rest of the output goes nowhere."""
    stream = sys.stderr if args.json else sys.stdout
    try:
        print(line, file=stream, flush=True)
    except BrokenPipeError:
        _silence(stream)


def _silence(stream) -> None:
    """Point a stream whose reader went away at /dev/null (Python's own advice for SIGPIPE)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # a stream already closed or gone: it says nothing either
        pass


def _print_report(args, report: dict, quarantined: list[tuple[str, str]]) -> None:
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return
    ratio = report["compression_ratio"]
    title = "Dry run (nothing written)" if report.get("dry_run") else "Migration report"
    print(f"\n{title}")
    for key, label in [("tasks", "tasks found"), ("migrated", "migrated" if not report.get("dry_run") else "valid"),
                       ("skipped", "skipped unchanged"), ("quarantined", "quarantined"),
                       *([("failed_checks", "failed checks")] if "failed_checks" in report else []),
                       *([("failed_runs", "failed runs")] if report.get("failed_runs") else []),
                       ("json_bytes", "JSON bytes"), ("stored_bytes", "stored bytes")]:
        print(f"  {label:<18} {'n/a' if report[key] is None else f'{report[key]:,}'}")
    print(f"  {'compression':<18} {'n/a' if ratio is None else f'{ratio:.1%} smaller'}")
    print(f"  {'seconds':<18} {report['seconds']:.2f}")
    for task_id, reason in quarantined:
        print(f"  quarantined {task_id}: {reason}")
    if report.get("not_tasks"):
        print(f"  not tasks (no result.json): {', '.join(report['not_tasks'][:20])}")


# --- status ---

def cmd_status(args) -> int:
    from result_assets.migration.status import task_statuses
    from result_assets.store.stores import Stores

    rows = task_statuses(Stores(existing_home()))
    if args.json:
        print(json.dumps({"tasks": rows}, ensure_ascii=False))
        return 0
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
        reason = f"  {row['reason']}" if row.get("reason") else ""
        if row.get("failed_attempt"):
            reason += f"  (last attempt failed, this version stays readable: {row['failed_attempt']})"
        print(f"{row['status']:<12} {row['task_id']}{reason}")
    print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no tasks known")
    return 0


# --- db ---

def cmd_db(args) -> int:
    from result_assets.store.postgres import catalog_url, redact
    from result_assets.store.catalog import Catalog
    from result_assets.store.schema import SCHEMA_VERSION, installed_version

    settings = existing_home() if args.action == "version" else Settings.from_env()
    catalog = Catalog(catalog_url(settings))
    try:
        if args.action == "version":
            version = installed_version(catalog.connect())
            print(f"catalog schema version {'none (empty)' if version is None else version}; "
                  f"this code's: {SCHEMA_VERSION}")
            return 0 if version == SCHEMA_VERSION else 1
        before, after = catalog.upgrade_schema()
    finally:
        catalog.close()
    where = redact(settings.database_url) if settings.database_url else f"the embedded server in {settings.pg_dir}"
    if before == after:
        print(f"catalog schema already at version {after} ({where})")
    else:
        print(f"catalog schema upgraded from {'nothing' if before is None else before} to {after} ({where})")
    return 0


# --- export ---

def _exported_id(name: str) -> str:
    from result_assets.legacy.task_keys import task_id_for_dir_name

    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return task_id_for_dir_name(name)
    return name


def cmd_export(args) -> int:
    from result_assets.store.reader import file_bytes
    from result_assets.store.stores import Stores

    stores = Stores(existing_home())
    # a name given twice is one task; one that is not UTF-8 (a task folder's own name, as the
    # shell passes it) is the id its folder was migrated under
    ids = list(dict.fromkeys(map(_exported_id, args.task_ids))) or stores.catalog.migrated_task_ids()
    if not args.out and len(ids) != 1:
        raise CliError("name exactly one task to print, or give --out DIR")
    out = Path(args.out) if args.out else None
    if out:
        if out.exists() and not out.is_dir():
            raise CliError(f"--out is not a directory: {out}")
        out.mkdir(parents=True, exist_ok=True)
    missing, unwritten = [], []
    for start in range(0, len(ids), 200):
        chunk = ids[start:start + 200]
        files = file_bytes(stores, chunk)  # each the source file's exact bytes
        missing += [t for t in chunk if t not in files]
        for task_id, data in files.items():
            if out:
                name = export_file_name(task_id)
                try:
                    (out / name).write_bytes(data)
                except OSError as exc:  # this file alone: the other tasks are still exported
                    print(f"result-assets: {task_id}: cannot write {out / name}: {exc.strerror or exc}",
                          file=sys.stderr)
                    unwritten.append(task_id)
                    continue
                if name != f"{quote(task_id, safe='')}.json":
                    print(f"result-assets: {task_id}: its name is too long for a file: exported as {name}",
                          file=sys.stderr)
            else:
                if sys.stdout is None:
                    raise CliError("standard output is closed: give --out DIR")
                sys.stdout.flush()
                sys.stdout.buffer.write(data)  # the file itself: nothing added, not even a newline
                sys.stdout.buffer.flush()
    for task_id in missing:
        state = stores.catalog.task(task_id)
        why = "not migrated" if state is None else f"{state['status']}: {state['reason']}"
        print(f"result-assets: {task_id}: {why}", file=sys.stderr)
    if out:
        print(f"exported {len(ids) - len(missing) - len(unwritten)} tasks to {out}", file=sys.stderr)
    return 1 if (missing and args.task_ids) or unwritten else 0


_NAME_MAX = 255  # bytes of one file name on Linux and macOS filesystems


def export_file_name(task_id: str) -> str:
    """<task id, percent-encoded>.json; a name longer than a filesystem takes (a long Korean
    task name triples once encoded) is cut, with a digest of the whole id to keep it apart."""
    import hashlib

    name = f"{quote(task_id, safe='')}.json"
    if len(name) <= _NAME_MAX:
        return name
    digest = hashlib.sha256(task_id.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    head = ""
    for char in task_id:  # whole characters: never half a %XX, nor half of one encoded in UTF-8
        encoded = quote(char, safe="")
        if len(head) + len(encoded) > _NAME_MAX - 40:
            break
        head += encoded
    return f"{head}~{digest}.json"

