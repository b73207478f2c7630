"""`result-assets archive --to DIR`: pack the JSON of migrated, verified tasks, then remove it.

A task is archived only when the store holds exactly its file: the catalog recorded its
SHA-256, the backup has the same bytes, and the bytes the store writes again from its
rows and spelling hash to the same SHA-256 (verified, before anything moves). Each
archive is a tar.xz with a MANIFEST.json (the SHA-256 of every file, also written beside it as
<archive>.manifest.json); it is read back and every file checked before any original
is removed. `result-assets restore` puts the bytes back.
"""
from __future__ import annotations

import io
import json
import lzma
import os
import secrets
import tarfile
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from result_assets.processes import gone
from result_assets.settings import Settings, source_folder
from result_assets.store.postgres import error_line

MANIFEST = "MANIFEST.json"
MAX_TASKS = 1000  # per archive: a restore reads one archive, keep each one manageable
MAX_BYTES = 256 << 20  # uncompressed JSON per archive
VERIFY_CHUNK = 200  # tasks rebuilt from the store per query


class ArchiveError(Exception):
    pass


@dataclass
class ArchiveReport:
    archives: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # task id -> why it stays
    verified: int = 0  # files the store gives back byte for byte (same SHA-256), before archiving
    # files an interrupted archive run had taken aside, put back first; or left beside a newer file
    put_back: list[str] = field(default_factory=list)
    json_bytes: int = 0
    archive_bytes: int = 0
    seconds: float = 0.0


def archive_index(settings: Settings) -> Path:
    """Where `archive` records its destination folders, so `restore` finds them."""
    return settings.home / "archives.json"


def known_archive_dirs(settings: Settings) -> list[Path]:
    try:
        return [Path(p) for p in json.loads(archive_index(settings).read_text())]
    except (OSError, ValueError):
        return []


def archive_tasks(settings: Settings, to_dir: Path, only: set[str] | None = None,
                  max_tasks: int = MAX_TASKS, max_bytes: int = MAX_BYTES) -> ArchiveReport:
    from result_assets.migration.sources import scan_source_dir
    from result_assets.store.last_write import file_older_than_store
    from result_assets.store.backups import sha256_hex
    from result_assets.store.reader import file_bytes
    from result_assets.store.stores import Stores

    started = time.perf_counter()
    # The store proves each file from its rows, never from a serving-cache copy (which a read
    # may have filled from the JSON backup): `serving_cache_mb=0` reads the tables.
    stores = Stores(replace(settings, serving_cache_mb=0))
    report = ArchiveReport()
    if only:  # a typo is an error before anything moves; a task archived already is no typo
        missing = set(only) - {t.task_id for t in scan_source_dir(settings.source_dir, only).tasks}
        unknown = sorted(missing - set(stores.catalog.states(sorted(missing))))
        if unknown:
            raise ArchiveError(f"no such task in {settings.source_dir} or the store: {', '.join(unknown)}")
    report.put_back = put_back_taken_aside(settings.source_dir)
    tasks = scan_source_dir(settings.source_dir, only).tasks
    for task_id in sorted(set(only or ()) - {t.task_id for t in tasks}):
        report.skipped[task_id] = "no JSON in the source folder (archived already?)"
    states = stores.catalog.states([t.task_id for t in tasks])
    candidates = []
    for task in tasks:
        state = states.get(task.task_id)
        if state is None:
            report.skipped[task.task_id] = "not migrated"
        elif state.status != "migrated":
            report.skipped[task.task_id] = f"{state.status}: its JSON is the readable copy"
        else:
            candidates.append((task, state))
    try:
        to_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArchiveError(f"cannot use {to_dir} as the archive folder: {exc.strerror or exc}") from None
    if not os.access(to_dir, os.W_OK | os.X_OK):
        raise ArchiveError(f"cannot write archives into {to_dir}: permission denied")
    _remember(settings, to_dir)
    writer = _ArchiveWriter(to_dir, max_tasks, max_bytes, report)
    for start in range(0, len(candidates), VERIFY_CHUNK):
        chunk = candidates[start:start + VERIFY_CHUNK]
        stored = file_bytes(stores, [t.task_id for t, _ in chunk])
        for task, state in chunk:
            try:
                raw = Path(task.path).read_bytes()
            except OSError as exc:  # gone since the scan (another archive run), unreadable: that file alone
                report.skipped[task.task_id] = f"cannot read its file: {exc.strerror or exc}"
                continue
            sha = sha256_hex(raw)
            why = None
            if sha != state.source_sha256:
                why = ("superseded: the application saved a newer version to the store since (this JSON is the "
                       "older one)" if file_older_than_store(stores.catalog, task.task_id, task.path, state.source_path,
                                                              state.published_at_ns, task.mtime_ns)
                       else "the file differs from the migrated version (stale)")
            elif not stores.backups.verify(task.task_id, sha):
                why = "its backup is missing or differs"
            elif task.task_id not in stored or sha256_hex(stored[task.task_id]) != sha:
                why = "the store does not give back this file byte for byte (migrated before spellings were kept? " \
                      "`migrate --force` it)"
            if why:
                report.skipped[task.task_id] = why
                continue
            report.verified += 1
            writer.add(task.task_id, task.path, raw, sha)
    writer.close()
    report.seconds = round(time.perf_counter() - started, 3)
    return report


class _ArchiveWriter:
    """Fills tar.xz archives; each closed archive is verified, then its originals removed."""

    def __init__(self, to_dir: Path, max_tasks: int, max_bytes: int, report: ArchiveReport):
        self.to_dir, self.max_tasks, self.max_bytes, self.report = to_dir, max_tasks, max_bytes, report
        # A run's own names: two archive runs into one folder in the same second replaced each
        # other's archive (and deleted the originals of the one lost).
        self.stamp = f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"
        self.tar = None
        self.entries: list[dict] = []
        self.paths: list[str] = []  # each entry's source file
        self.bytes = 0

    def add(self, task_id: str, path: str, raw: bytes, sha: str) -> None:
        from result_assets.migration.sources import display_path

        if self.tar is not None and (len(self.entries) >= self.max_tasks or self.bytes + len(raw) > self.max_bytes):
            self.close()
        if self.tar is None:
            self.name = f"results-{self.stamp}-{len(self.report.archives) + 1:04d}.tar.xz"
            self.partial = self.to_dir / f".{self.name}.partial"
            self.file = open(self.partial, "xb")  # never another run's file
            self.tar = tarfile.open(fileobj=self.file, mode="w:xz", preset=6, format=tarfile.PAX_FORMAT)
            self.entries, self.paths, self.bytes = [], [], 0
        member = f"{task_id}/result.json"
        _add_bytes(self.tar, member, raw)
        # The manifest is text: a folder name that is not UTF-8 is spelled \xNN there, and its
        # file is removed by the path as the scan found it.
        self.entries.append({"task_id": task_id, "member": member, "sha256": sha, "bytes": len(raw),
                             "source_path": display_path(path)})
        self.paths.append(path)
        self.bytes += len(raw)

    def close(self) -> None:
        from result_assets.store.backups import write_atomic

        if self.tar is None:
            return
        manifest = {"archive": self.name, "created_at": datetime.now(timezone.utc).isoformat(),
                    "files": self.entries}
        text = json.dumps(manifest, ensure_ascii=False, indent=1).encode()
        _add_bytes(self.tar, MANIFEST, text)
        self.tar.close()
        self.file.flush()
        os.fsync(self.file.fileno())  # on disk before any original is removed
        self.file.close()
        self.tar = None
        final = self.to_dir / self.name
        os.replace(self.partial, final)  # the name is this run's own (a hard link would fail on some NAS mounts)
        _verify_archive(final, self.entries)  # raises before anything is removed
        write_atomic(self.to_dir / f"{self.name}.manifest.json", text)
        _fsync_dir(self.to_dir)
        self.report.archives.append(str(final))
        self.report.archive_bytes += final.stat().st_size
        for entry, path in zip(self.entries, self.paths):
            if _remove_original(entry, path):
                self.report.archived.append(entry["task_id"])
                self.report.json_bytes += entry["bytes"]
            else:
                self.report.skipped[entry["task_id"]] = "changed while archiving: kept (its archived copy stays too)"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _verify_archive(path: Path, entries: list[dict]) -> None:
    """Read the archive back: every file present with the manifest's SHA-256."""
    from result_assets.store.backups import sha256_hex

    want = {e["member"]: e["sha256"] for e in entries}
    seen = set()
    try:
        with tarfile.open(path, "r:xz") as tar:
            for info in tar:
                if info.name == MANIFEST:
                    continue
                data = tar.extractfile(info).read()
                if want.get(info.name) != sha256_hex(data):
                    raise ArchiveError(f"{path}: {info.name} does not match its manifest entry")
                seen.add(info.name)
    except (tarfile.TarError, lzma.LZMAError, OSError, EOFError) as exc:
        raise ArchiveError(f"{path} cannot be read back: {exc or type(exc).__name__}") from exc
    missing = set(want) - seen
    if missing:
        raise ArchiveError(f"{path} lacks {len(missing)} files, e.g. {sorted(missing)[0]}")


def _remove_original(entry: dict, source_path: str | None = None) -> bool:
    """Remove the source file if it still has the archived bytes; its folder too if left empty.
    The file is first renamed to a name of this run's, then hashed: a writer replacing it from
    then on (an instance still writing JSON) writes a new file, never removed, and a file
    replaced before the rename is put back unless a newer one is there."""
    from result_assets.store.backups import sha256_hex, sweep_stale_staged

    path = Path(source_path or entry["source_path"])  # the scan's path: the manifest's is for reading
    taken = path.with_name(f"{TAKEN_ASIDE}{os.getpid()}-{_RUN_TOKEN}")
    try:
        os.rename(path, taken)
    except FileNotFoundError:
        return True
    try:
        archived = sha256_hex(taken.read_bytes()) == entry["sha256"]
    except OSError:
        archived = False  # cannot tell: it goes back
    if not archived:
        _put_back(taken, path)
        return False
    taken.unlink()
    sweep_stale_staged(path)  # a killed save's staged file would keep the folder
    try:
        path.parent.rmdir()  # only when nothing else (manifests, logs) sits beside it
    except OSError:
        pass
    return True


TAKEN_ASIDE = ".result.json.archiving-"  # + "<pid>-<token>" of the run that took the file aside
_RUN_TOKEN = secrets.token_hex(4)  # a file left by a run whose pid this one reuses is never renamed over


def taken_aside(source_dir: str | Path) -> list[Path]:
    """Files a killed archive run left under their taken names (between its rename and its
    unlink or put-back): the bytes a writer put there just before the rename are only there."""
    found = []
    for path in Path(source_dir).glob(f"*/{TAKEN_ASIDE}*"):
        try:
            pid = int(path.name[len(TAKEN_ASIDE):].partition("-")[0])
        except ValueError:
            found.append(path)
            continue
        if gone(pid):  # else its run is still going (or its pid was reused): it is that run's to finish
            found.append(path)
    return sorted(found)


def put_back_taken_aside(source_dir: str | Path) -> list[str]:
    """Each file taken_aside back to its name (never over a newer file, which it then stays
    beside); the messages saying which."""
    notes = []
    for taken in taken_aside(source_dir):
        path = taken.with_name("result.json")
        _put_back(taken, path)
        notes.append(f"{path}: put back (an interrupted archive run had taken it aside)" if not taken.exists() else
                     f"{taken}: left beside a newer {path.name} by an interrupted archive run; check it, then remove it")
    return notes


def _put_back(taken: Path, path: Path) -> None:
    """A file taken aside returns to its name, never over a newer file there (which it then
    stays beside, under its taken name). On a filesystem without hard links, by a rename
    after a look: a file written in that moment would be replaced."""
    try:
        os.link(taken, path)
    except FileExistsError:
        return
    except OSError:  # a filesystem without hard links
        if not path.exists():
            os.rename(taken, path)
        return
    taken.unlink()


def _remember(settings: Settings, to_dir: Path) -> None:
    from result_assets.store.backups import write_atomic

    dirs = [str(p) for p in known_archive_dirs(settings)]
    if str(to_dir.absolute()) not in dirs:
        index = archive_index(settings)
        index.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(index, json.dumps(dirs + [str(to_dir.absolute())], ensure_ascii=False, indent=1).encode())


# --- CLI: result-assets archive ---

def add_arguments(parser) -> None:
    parser.add_argument("--to", required=True, metavar="DIR", help="folder for the archives and manifests")
    parser.add_argument("--source-dir", help="the legacy task tree (default RESULT_SOURCE_DIR)")
    parser.add_argument("--task", action="append", metavar="ID", help="only this task (repeatable)")
    parser.add_argument("--max-tasks", type=int, default=MAX_TASKS, help=f"tasks per archive (default {MAX_TASKS})")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")


def run(args) -> int:
    from dataclasses import asdict, replace

    import psycopg2

    from result_assets.cli import existing_home
    from result_assets.app.manager import POSTGRES_ONLY
    from result_assets.errors import DatabaseUnavailable, UsageError
    from result_assets.migration.sources import SourceDirError

    settings = existing_home()  # a mistyped home is an error, not a new empty store
    if args.source_dir:
        settings = replace(settings, source_dir=source_folder(args.source_dir))
    if not settings.source_dir:
        raise UsageError("give --source-dir or set RESULT_SOURCE_DIR")
    if settings.storage_mode != POSTGRES_ONLY:
        raise UsageError(f"archive removes the JSON files, which {settings.storage_mode} still reads: "
                       "switch to postgres-only first (see `result-assets phase`)")
    if args.max_tasks < 1:
        raise UsageError("--max-tasks must be at least 1")
    try:
        report = archive_tasks(settings, Path(args.to).absolute(), set(args.task) if args.task else None,
                               max_tasks=args.max_tasks)
    except (SourceDirError, ArchiveError) as exc:
        raise UsageError(str(exc))
    except psycopg2.Error as exc:
        raise DatabaseUnavailable(f"database unavailable: {error_line(exc)}") from None
    if args.json:
        print(json.dumps(asdict(report), ensure_ascii=False))
        return 0
    print(f"verified {report.verified} files against the store by SHA-256")
    print(f"archived {len(report.archived)} tasks ({report.json_bytes:,} JSON bytes) into "
          f"{len(report.archives)} archives ({report.archive_bytes:,} bytes) in {report.seconds:.1f}s")
    for path in report.archives:
        print(f"  {path}")
    for task_id, why in sorted(report.skipped.items()):
        print(f"  kept {task_id}: {why}")
    for note in report.put_back:
        print(f"  {note}")
    return 0
