"""The only place product code touches Dagster's private API; each use has a contract test
(result_assets_tests/test_dagster_contract.py) that fails on a release that changes it.

1. Per-partition metadata in a multi-partition step. The public
   `context.add_asset_metadata(partition_key=...)` re-lists every dynamic partition on
   each call (O(partitions) per task); the step's accumulator takes it directly.
2. The materialization a check evaluation judged. Without it the UI's per-partition
   check status shows every partition as missing; the public constructor takes it,
   but its value class is only importable from the private module.
"""
from __future__ import annotations

from dagster import AssetExecutionContext, AssetKey


def attach_partition_metadata(context: AssetExecutionContext, asset: str, per_partition: dict[str, dict]) -> None:
    """Per-partition materialization metadata, before the asset's result is yielded."""
    step = context.op_execution_context._step_execution_context  # noqa: SLF001
    key = AssetKey(asset)
    for partition, metadata in per_partition.items():
        step._metadata_accumulator = step._metadata_accumulator.with_additional_asset_metadata(  # noqa: SLF001
            asset_key=key, partition_key=partition, metadata=metadata)


def target_materialization(storage_id: int, run_id: str, timestamp: float):
    """The value AssetCheckEvaluation(target_materialization_data=...) takes."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData,
    )

    return AssetCheckEvaluationTargetMaterializationData(storage_id=storage_id, run_id=run_id, timestamp=timestamp)
