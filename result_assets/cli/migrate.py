"""`result-assets migrate`: scan, plan, run the batches through the code location, report.

cmd_migrate passes values (no environment writes) and prints what comes back; the runs
are the code location's (assets/launch.py). Errors a user must fix are UsageError (one
line, exit 2).
"""
from __future__ import annotations

import gc
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from result_assets.errors import UsageError
from result_assets.migration.sources import SourceDirError, SourceScan, scan_source_dir
from result_assets.settings import Settings

Say = Callable[[str], None]


@dataclass
class MigrateOutcome:
    report: dict  # the keys `migrate --json` prints
    quarantined: list[tuple[str, str]] = field(default_factory=list)  # (task id, reason), for the text report
    failed_runs: list = field(default_factory=list)  # RunOutcome of the runs that failed
    failed_tasks: list[tuple[str, str]] = field(default_factory=list)  # (task id, first difference)


def scan(source_dir: str, only: list[str] | None) -> SourceScan:
    try:
        # Absolute: the paths registered are read by runs in other working directories.
        found = scan_source_dir(os.path.abspath(source_dir), set(only) if only else None)
    except SourceDirError as exc:
        raise UsageError(str(exc)) from None
    if only:
        missing = sorted(set(only) - {t.task_id for t in found.tasks})
        if missing:
            raise UsageError(f"no such task in {source_dir}: {', '.join(missing)}")
    return found


def writable_backup_dir(backup_dir: str) -> None:
    """A local backup folder this process can write, else a one-line error before any run:
    every run failed on it, each after converting its batch, and progress said all was done."""
    if "://" in backup_dir:  # a bucket: its runs say what it refuses
        return
    path = Path(backup_dir)
    if path.exists() and not path.is_dir():
        raise UsageError(f"the backup folder is a file: {path}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot make the backup folder {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write backups into {path}: "
                         f"{'read-only file system' if _read_only(path) else 'permission denied'}")


def _read_only(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def migrate(settings: Settings, source_dir: str, *, force: bool = False, only: list[str] | None = None,
            say: Say = lambda line: None) -> MigrateOutcome:
    from result_assets.migration.plan import plan_migration
    from result_assets.migration.summary import store_report
    from result_assets.store.stores import Stores

    started = time.perf_counter()
    found = scan(source_dir, only)
    writable_backup_dir(settings.backup_dir)
    stores = Stores(settings, upgrade=True)  # a migration brings the catalog's schema up to date
    plan = plan_migration(stores.catalog, found.tasks, force)
    stores.catalog.touch_mtime(plan.touched_mtimes)
    todo = plan.to_migrate
    say(f"{len(found.tasks)} tasks found: {len(plan.new)} new, {len(plan.changed)} changed, "
        f"{len(plan.forced)} forced, {len(plan.unchanged)} unchanged (skipped)")
    if plan.superseded:
        ids = [t.task_id for t in plan.superseded]
        say(f"{len(ids)} superseded (skipped): the application saved a newer version of each to the store, their "
            f"JSON is the older one: {', '.join(ids[:10])}" + (f", ... ({len(ids) - 10} more)" if len(ids) > 10 else ""))

    def progress(batch, batches, tasks, seconds):
        say(f"  batch {batch}/{batches}: {tasks}/{len(todo)} tasks, {seconds:.1f}s")

    outcomes = []
    if todo:  # Dagster is loaded only when there is work: an unchanged re-run stays quick
        from result_assets.migration.convert import Prefetch

        # The workers convert the first two batches while Dagster is imported and the instance
        # and definitions are built (about 1.5 s of the main process).
        ahead = Prefetch(settings.max_file_bytes, settings.conversion_workers)
        for first in range(0, 2 * settings.batch_size, settings.batch_size):  # the first batch done first
            ahead.start(todo[first:first + settings.batch_size])

        from result_assets.assets.launch import materialize_report, run_migration
        from result_assets.definitions import build_definitions
        from result_assets.assets.in_process_runs import fail_orphaned_runs
        from result_assets.assets.instance import get_instance, hold_connections

        try:
            instance = get_instance(settings)
            hold_connections(instance)
            for note in fail_orphaned_runs(instance):  # a migrate killed earlier showed as running for good
                print(f"result-assets: {note}", file=sys.stderr)
            defs = build_definitions(settings)
            # Dagster, the instance and the definitions live until the end: the cyclic GC need not
            # walk them again at every collection (the main process's CPU 2-6% less on the bench corpus).
            gc.freeze()
            try:
                outcomes = run_migration(instance, defs, stores, todo, settings.batch_size, ahead, progress)
                materialize_report(instance, defs, stores)
            finally:
                gc.unfreeze()
        finally:
            ahead.discard()
    failed_runs = [o for o in outcomes if not o.success]
    # The state each task of this command is in now: a failed run may have published most of
    # its tasks (a blocking check fails the run for one), and leaves the rest as they were.
    states = stores.catalog.states([t.task_id for t in todo]) if todo else {}
    try:
        totals = store_report(stores)
    except OSError as exc:  # the tables' storage unreachable (an S3 outage): the runs' outcomes still said
        from result_assets.cli import storage_error_line

        print(f"result-assets: the store's size could not be read: {storage_error_line(exc)}", file=sys.stderr)
        totals = {"migrated_json_bytes": stores.catalog.totals()["migrated_json_bytes"], "stored_bytes": None,
                  "compression_ratio": None}  # the catalog answers: its JSON bytes are known
    report = {
        "tasks": len(found.tasks),
        "migrated": sum(1 for s in states.values() if s.last_attempt == "migrated"),
        "skipped": len(plan.unchanged),
        "quarantined": sum(1 for s in states.values() if s.status == "quarantined"),
        "failed_checks": sum(1 for s in states.values() if s.last_attempt == "failed"),
        "json_bytes": totals["migrated_json_bytes"],
        "stored_bytes": totals["stored_bytes"],
        "compression_ratio": totals["compression_ratio"],
        "seconds": round(time.perf_counter() - started, 3),
        "runs": len(outcomes),
        "failed_runs": len(failed_runs),
        "not_tasks": found.not_tasks,
        **({"superseded": len(plan.superseded)} if plan.superseded else {}),  # listed only when there are some
    }
    return MigrateOutcome(report, sorted((t, s.reason) for t, s in states.items() if s.status == "quarantined"),
                          failed_runs,
                          sorted((t, s.failed_attempt or s.reason) for t, s in states.items()
                                 if s.last_attempt == "failed"))


def dry_run(settings: Settings, source_dir: str, *, force: bool = False, only: list[str] | None = None) -> MigrateOutcome:
    """Read and validate what a migrate would do; write nothing (not even start a server)."""
    from result_assets.migration.batch import read_source, validate
    from result_assets.migration.plan import make_plan, plan_migration

    started = time.perf_counter()
    found = scan(source_dir, only)
    catalog = _existing_catalog(settings)
    states = catalog.states([t.task_id for t in found.tasks]) if catalog else {}
    plan = plan_migration(catalog, found.tasks, force, states) if catalog else make_plan(found.tasks, {}, force)
    reasons = {}
    # The basis of migrate's json_bytes: the JSON of every valid task the store will hold.
    json_bytes = sum(states[t.task_id].source_bytes for t in plan.unchanged
                     if states[t.task_id].status == "migrated")
    for task in plan.to_migrate:
        v = validate(read_source(task, settings.max_file_bytes))
        if v.reason:
            reasons[task.task_id] = v.reason
        else:
            json_bytes += v.json_bytes
    report = {
        "tasks": len(found.tasks),
        "migrated": len(plan.to_migrate) - len(reasons),
        "skipped": len(plan.unchanged),
        "quarantined": len(reasons),
        "json_bytes": json_bytes,
        "stored_bytes": 0,
        "compression_ratio": None,
        "seconds": round(time.perf_counter() - started, 3),
        "dry_run": True,
        "plan": {"new": len(plan.new), "changed": len(plan.changed), "forced": len(plan.forced),
                 "unchanged": len(plan.unchanged), **({"superseded": len(plan.superseded)} if plan.superseded else {})},
        "not_tasks": found.not_tasks,
    }
    return MigrateOutcome(report, sorted(reasons.items()))


def _existing_catalog(settings: Settings):
    """The catalog when it exists, without creating anything (a dry run must write nothing)."""
    if not settings.database_url and not (settings.pg_dir / "PG_VERSION").exists():
        return None
    import psycopg2

    from result_assets.store.postgres import catalog_url
    from result_assets.store.catalog import Catalog

    catalog = Catalog(catalog_url(settings))
    try:
        catalog.states([])
    except psycopg2.errors.UndefinedTable:
        return None
    return catalog
