"""`result-assets rollback TASK_ID ...`: undo the last re-migration (a force) of a task.

The work is the library's (migration/rollback.py: proven and published through the batch
engine); this prints it and records the partitions' new materializations in Dagster.
"""
from __future__ import annotations

import sys

from result_assets.migration.rollback import RollbackError, RolledBack, rollback_task
from result_assets.settings import Settings
from result_assets.store.postgres import error_line


def _record(settings: Settings, result: RolledBack) -> str | None:
    from result_assets.assets.events import record_materializations
    from result_assets.assets.instance import get_instance

    try:
        record_materializations(
            get_instance(settings), result.task_id,
            {"status": result.status, "source_sha256": result.source_sha256,
             "rolled_back_from_sha256": result.replaced_sha256, "written_by": "result-assets rollback"},
            "rolled back to the version before the last re-migration")
    except Exception as exc:
        return f"not recorded in Dagster: {str(exc).splitlines()[0]}"
    return None


# --- CLI: result-assets rollback ---

def add_arguments(parser) -> None:
    parser.add_argument("task_ids", nargs="+", metavar="TASK_ID")
    parser.add_argument("--restore-source", action="store_true",
                        help="also put the earlier bytes back in the task's source file")


def run(args) -> int:
    import psycopg2

    from result_assets.cli import existing_home
    from result_assets.errors import DatabaseUnavailable
    from result_assets.store.catalog import StoreLockLost
    from result_assets.store.stores import Stores

    settings = existing_home()  # a mistyped home is an error, not a new empty store
    stores = Stores(settings)
    failed = 0
    for task_id in args.task_ids:
        try:
            r = rollback_task(stores, task_id, args.restore_source)
        except RollbackError as exc:
            print(f"result-assets: {exc}", file=sys.stderr)
            failed += 1
            continue
        except StoreLockLost as exc:  # nothing published: the current version stays
            print(f"result-assets: {task_id}: not rolled back: {exc}", file=sys.stderr)
            failed += 1
            continue
        except psycopg2.Error as exc:
            raise DatabaseUnavailable(f"database unavailable: {error_line(exc)}") from None
        read_at = (f"Delta versions {r.from_versions[0]}/{r.from_versions[1]}" if r.from_versions != (None, None)
                   else "its backup (its rows are gone from the tables)")
        print(f"rolled back {task_id}: {r.status}, source sha256 {r.source_sha256[:12]} "
              f"(was {r.replaced_sha256[:12]}); {r.signals} signals and {r.curve_points} curve points read at "
              f"{read_at}, written back as {r.to_versions[0]}/{r.to_versions[1]}")
        if r.source_restored:
            print(f"  source file restored: {r.source_restored}")
        if r.note:
            print(f"  note: {r.note}")
        warning = _record(settings, r)
        if warning:
            print(f"  warning: {warning}")
    return 1 if failed else 0
