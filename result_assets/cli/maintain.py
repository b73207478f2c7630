"""`result-assets maintain`: the store_maintenance schedule's work, now, as a run in the Dagster instance.

`maintain(stores)` (re-exported here) is the same work without Dagster.
"""
from __future__ import annotations

import json
import sys

from result_assets.migration.maintenance import DEFAULT_RETENTION_HOURS, maintain

__all__ = ["maintain", "add_arguments", "run"]

MAX_RETENTION_HOURS = 1_000_000


def add_arguments(parser) -> None:
    from result_assets.cli import whole_number

    # At most about 114 years: Delta's vacuum takes the retention as a duration it panics past.
    parser.add_argument("--retention-hours", type=whole_number(0, MAX_RETENTION_HOURS), default=DEFAULT_RETENTION_HOURS,
                        help=f"vacuum files out of the tables for longer than this (default {DEFAULT_RETENTION_HOURS}: "
                             "rollback reaches this far back)")
    parser.add_argument("--no-compact", action="store_true", help="skip compaction")
    parser.add_argument("--z-order", action="store_true", help="also cluster the tables by task_id (rewrites them whole)")
    parser.add_argument("--no-vacuum", action="store_true", help="skip vacuum")
    parser.add_argument("--json", action="store_true", help="print the run's figures as one JSON object")


def run(args) -> int:
    from result_assets.cli import existing_home
    from result_assets.definitions import MAINTENANCE_JOB, build_definitions
    from result_assets.assets.in_process_runs import fail_orphaned_runs, process_tags
    from result_assets.assets.instance import get_instance
    from result_assets.assets.launch import failure_message

    settings = existing_home()  # a mistyped home is an error, not a new empty store
    config = {"retention_hours": args.retention_hours, "compact": not args.no_compact, "z_order": args.z_order,
              "vacuum": not args.no_vacuum}
    instance = get_instance(settings)
    for note in fail_orphaned_runs(instance):  # a maintenance killed earlier showed as running for good
        print(f"result-assets: {note}", file=sys.stderr)
    result = build_definitions().resolve_job_def(MAINTENANCE_JOB).execute_in_process(
        instance=instance, raise_on_error=False, tags=process_tags(),
        run_config={"ops": {"store_maintenance": {"config": config}},
                    # the failure is said once, below, on one line (its events stay in the instance)
                    "loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
    if not result.success:
        failures = [failure_message(e) for e in result.all_events if e.is_failure]
        print(f"result-assets: maintenance run {result.run_id} failed: {failures[0] if failures else ''}",
              file=sys.stderr)
        return 1
    metadata = result.asset_materializations_for_node("store_maintenance")[0].metadata
    figures = {k: v.value for k, v in metadata.items() if k != "report"}
    if args.json:
        print(json.dumps({"run_id": result.run_id, **figures}))
    else:
        print(metadata["report"].value)
        print(f"\nrun {result.run_id} in {settings.dagster_home}")
    return 0
