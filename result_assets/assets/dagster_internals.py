"""The only product module that touches Dagster's private API (`dagster._*` names and private
attributes). Each use below has a contract test (the test suite's test_dagster_contract.py)
that fails on a Dagster release that changes what it relies on; fix them here, nowhere else.

1. attach_partition_metadata: per-partition materialization metadata in a multi-partition
   step, through the step's private metadata accumulator. Public alternative:
   `context.add_asset_metadata(metadata, asset_key=..., partition_key=...)`, which re-lists
   every registered dynamic partition on each call to check that the key is in the step's range.
   Measured (the test suite's bench_dagster_internals.py, `--registered 1000 10000 100000
   --postgres`: one step, 5 assets x 50 partitions = 250 calls, project instance, 2 shared cores):
       registered partitions    1,000      10,000      100,000
       public, per call         3.5 ms     17 ms       229 ms    (57 s per 50-task step)
       private, per call        0.06 ms    0.04 ms     0.03 ms   (< 0.02 s per step)
   (SQLite instance_for_test: public 7.8 ms / 22 ms per call at 1,000 / 10,000.) A 50-task run
   has about 0.5 s of Dagster overhead (docs/scaling.md); the public call would add more than
   that from ~1,000 registered tasks on.
2. target_materialization: the materialization a check evaluation judged. Without it the UI's
   per-partition check status shows every partition as missing. The public constructor
   `AssetCheckEvaluation(target_materialization_data=...)` takes it, but its value class
   (AssetCheckEvaluationTargetMaterializationData) is exported from no public module in
   1.13.27, and the public AssetCheckResult fills it only for a single-partition step: a
   step over a partition range, and a runless report, get none. No public alternative.

3. tuned_storage_internals: the private names the opt-in tuned instance storage
   (result_assets/platform/dagster_storage.py) uses, imported only when that storage is: a code
   location on stock storage loads none of them, so a rename in a Dagster upgrade cannot stop
   it from loading. Public alternative: stock `storage: postgres:` (the default).
"""
from __future__ import annotations

from dagster import AssetExecutionContext, AssetKey
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

# --- 1. per-partition metadata -------------------------------------------------------------


def attach_partition_metadata(context: AssetExecutionContext, asset: str, per_partition: dict[str, dict]) -> None:
    """Per-partition materialization metadata, before the asset's result is yielded."""
    step = context.op_execution_context._step_execution_context  # noqa: SLF001
    key = AssetKey(asset)
    for partition, metadata in per_partition.items():
        step._metadata_accumulator = step._metadata_accumulator.with_additional_asset_metadata(  # noqa: SLF001
            asset_key=key, partition_key=partition, metadata=metadata)


# --- 2. a check evaluation's target materialization ----------------------------------------


def target_materialization(storage_id: int, run_id: str, timestamp: float):
    """The value AssetCheckEvaluation(target_materialization_data=...) takes."""
    return AssetCheckEvaluationTargetMaterializationData(storage_id=storage_id, run_id=run_id, timestamp=timestamp)


# --- 3. the opt-in tuned storage's private names ------------------------------------------


def tuned_storage_internals() -> tuple:
    """(ASSET_EVENTS, ASSET_CHECK_EVENTS, SqlEventLogStorageTable, AssetCheckExecutionsTable,
    ConfigurableClassData, serialize_value): what the tuned event log's store_event, a copy of
    dagster-postgres' minus its NOTIFY, and its batched writes use."""
    from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
    from dagster._core.storage.event_log import SqlEventLogStorageTable
    from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
    from dagster._serdes import ConfigurableClassData, serialize_value

    return (ASSET_EVENTS, ASSET_CHECK_EVENTS, SqlEventLogStorageTable, AssetCheckExecutionsTable,
            ConfigurableClassData, serialize_value)
