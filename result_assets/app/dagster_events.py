"""Telling the Dagster instance that a task's partition was written outside a run."""
from __future__ import annotations

from dagster import AssetKey, AssetMaterialization, AssetRecordsFilter

from result_assets.platform.dagster_internals import target_materialization
from result_assets.assets.migration import TASK_ASSETS, check_events
from result_assets.assets.partitions import TASKS_PARTITION
from result_assets.legacy import partition_key_for


def record_materializations(instance, task_id: str, metadata: dict, description: str) -> str:
    """Register the task's partition if new, then report the five task-level assets materialized.

    Returns the partition key. The UI then shows the partition as materialized, exactly
    as after a migration run.
    """
    key = partition_key_for(task_id)
    if not instance.has_dynamic_partition(TASKS_PARTITION, key):
        instance.add_dynamic_partitions(TASKS_PARTITION, [key])
    for asset in TASK_ASSETS:
        instance.report_runless_asset_event(AssetMaterialization(
            asset_key=asset, partition=key, description=description,
            metadata=metadata if asset in ("validated_result", "catalog_entry") else {"task_id": task_id}))
    return key


def record_save(instance, task_id: str, metadata: dict, description: str, checks=()) -> str:
    """The materializations of a save, then the same per-partition check evaluations a backfill
    records (engine outcomes), each naming the materialization it judged."""
    key = record_materializations(instance, task_id, metadata, description)
    if not checks:
        return key
    targets = {}
    for asset in {c.asset for c in checks}:
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[key]), limit=1).records
        if records:
            r = records[0]
            targets[(asset, key)] = target_materialization(r.storage_id, r.run_id, r.timestamp)
    for evaluation in check_events(list(checks), declared=False, targets=targets):
        instance.report_runless_asset_event(evaluation)
    return key
