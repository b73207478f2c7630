"""The asset checks: the engine's check ids (migration/verify.py) as Dagster knows them.

The engine judges each task by check id; here each id gets its asset, check name,
severity, description and scope. The UI, the GraphQL API and existing runs know these names.

Scope. The two blocking checks are each partition's proof, so every partition shows them
(one evaluation per partition and run). The other four are the run's verdict, one evaluation
per run over all its tasks, with the tasks that failed listed: a partition's own row counts,
status and quarantine reason are on its materializations already, and the compression goal
is judged on the whole store. On stock dagster-postgres storage each evaluation is a write of
its own (about 16 ms, docs/scaling.md), so six per partition would be most of a migration.
"""
from __future__ import annotations

from dataclasses import dataclass

from dagster import AssetCheckSeverity, AssetCheckSpec

from result_assets.assets.partitions import task_partitions
from result_assets.migration import verify
from result_assets.migration.verify import CheckOutcome

ERROR, WARN = AssetCheckSeverity.ERROR, AssetCheckSeverity.WARN


@dataclass(frozen=True)
class Check:
    asset: str
    name: str
    severity: AssetCheckSeverity
    description: str
    # A failed blocking check fails its step, so no downstream asset of the run materializes
    # over the partition (Dagster's own enforcement; the engine has not published it).
    blocking: bool = False
    # Evaluated per partition (else once per run, over the run's tasks).
    per_partition: bool = False


CHECKS: dict[str, Check] = {
    verify.BACKUP_CHECKSUM: Check("result_backup", "backup_checksum", ERROR,
                                  "The backup file's SHA-256 equals the source file's.",
                                  blocking=True, per_partition=True),
    verify.SIGNAL_ROWS: Check("signal_table", "row_counts", ERROR,
                              "Signal rows in Delta equal the signals in the source, for every task of the run."),
    verify.CURVE_ROWS: Check("curve_table", "row_counts", ERROR,
                             "Curve rows in Delta equal the curve points in the source, for every task of the run."),
    verify.LOSSLESS_ROUND_TRIP: Check(
        "catalog_entry", "lossless_round_trip", ERROR,
        "The bytes written again from exactly the rows, skeleton text and Spelling stored hash to the source "
        "file's SHA-256, and the Delta tables and the catalog give back exactly those rows (blocking: a failed "
        "partition is not published and fails its step).", blocking=True, per_partition=True),
    verify.COMPRESSION_GOAL: Check(
        "signal_table", "compression_goal", WARN,
        "Everything the store keeps of its tasks (Delta data files and logs, the catalog's rows, hot tier) is "
        "the goal smaller than the JSON of the tasks it holds (WARN; compacting helps)."),
    verify.QUARANTINE: Check("validated_result", "quarantine", WARN,
                             "Every source file of the run is valid (WARN, naming each quarantined task and "
                             "its reason)."),
}

CHECK_SPECS = [AssetCheckSpec(c.name, asset=c.asset, description=c.description, blocking=c.blocking,
                              partitions_def=task_partitions if c.per_partition else None)
               for c in CHECKS.values()]

_BY_NAME = {(c.asset, c.name): check_id for check_id, c in CHECKS.items()}


def outcome_from_record(record: dict) -> CheckOutcome:
    """A check outcome queued with an application save (a dict in save_records). A record an
    earlier release queued names the asset and check instead of the id, and carries `warn`."""
    if "asset" in record:
        record = dict(record)
        record["check"] = _BY_NAME[(record.pop("asset"), record["check"])]
        record.pop("warn", None)
    return CheckOutcome(**record)
