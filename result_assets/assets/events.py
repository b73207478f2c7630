"""Telling the Dagster instance that a task's partition was written outside a run (a rollback)."""
from __future__ import annotations

from dagster import AssetMaterialization

from result_assets.assets.migration import TASK_ASSETS
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
