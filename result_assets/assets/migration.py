"""The task-level assets: one step migrates a batch of task partitions.

legacy_result -> result_backup -> validated_result -> signal_table, curve_table -> catalog_entry

They are one multi-asset so that a batch is one step in one process (a step per
asset would pass data through storage and pay Dagster's per-step cost five times).
The step hands the batch to the engine (migration/engine.py), which backs up,
converts, proves and publishes it; the step then reports what the engine did: a
materialization per asset and partition, and one evaluation per check and partition.
"""

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetRecordsFilter,
    AssetSpec,
    BackfillPolicy,
    Config,
    MaterializeResult,
    MetadataValue,
    OpExecutionContext,
    TableColumn,
    TableSchema,
    job,
    multi_asset,
    op,
)

from result_assets.assets.dagster_internals import attach_partition_metadata, target_materialization
from result_assets.assets.partitions import task_partitions
from result_assets.assets.resources import MigrationSettings, StoresResource
from result_assets.legacy import task_id_for
from result_assets.legacy.schema import CURVE_SCHEMA, SIGNAL_SCHEMA
from result_assets.migration.engine import BatchResult, registered_sources, run_batch
from result_assets.assets.metadata import TASK_ASSETS, batch_summary, partition_metadata
from result_assets.migration.verify import CHECKS, CheckOutcome

legacy_result = AssetSpec(
    "legacy_result",
    description="A legacy backtest result file, <source-dir>/<task_id>/result.json, written by the platform.",
    partitions_def=task_partitions,
    kinds={"json"},
    group_name="migration",
)


def _column_schema(schema):
    return TableSchema(columns=[TableColumn(f.name, str(f.type), constraints=None) for f in schema])


def _specs() -> list[AssetSpec]:
    catalog_schema = TableSchema(columns=[
        TableColumn("task_id", "text"), TableColumn("status", "text"), TableColumn("reason", "text"),
        TableColumn("source_sha256", "text"), TableColumn("strategy", "text"),
        TableColumn("n_signals", "integer"), TableColumn("total_return", "double precision"),
        TableColumn("skeleton", "text", description="exact JSON of the document minus its rows"),
    ])
    def spec(key, deps, kinds, description, **metadata):
        return AssetSpec(key, deps=deps, kinds=kinds, group_name="migration", description=description,
                         partitions_def=task_partitions, metadata=metadata or None)

    return [
        spec("result_backup", ["legacy_result"], {"json"},
             "Byte-exact copy of the legacy file under <backup-dir>/<task_id>/result.json."),
        spec("validated_result", ["result_backup"], {"python"},
             "The parsed, normalized result, or a quarantine record with its reason."),
        spec("signal_table", ["validated_result"], {"delta", "parquet"},
             "Signal rows in the Delta table `signals`, keyed by task_id.",
             **{"dagster/column_schema": _column_schema(SIGNAL_SCHEMA)}),
        spec("curve_table", ["validated_result"], {"delta", "parquet"},
             "Portfolio and per-symbol curve points in the Delta table `curves`.",
             **{"dagster/column_schema": _column_schema(CURVE_SCHEMA)}),
        spec("catalog_entry", ["validated_result", "signal_table", "curve_table"], {"postgres"},
             "The task's row in the Postgres catalog (migrated, quarantined or failed), published last, "
             "only once the task is proven.",
             **{"dagster/column_schema": catalog_schema}),
    ]


CHECK_SPECS = [
    AssetCheckSpec(name, asset=asset, description=description, partitions_def=task_partitions)
    for asset, name, _warn, description in CHECKS
]


def build_migrate_tasks(batch_size: int):
    """The multi-asset; a backfill run takes `batch_size` partitions (RESULT_BATCH_SIZE)."""
    return multi_asset(
        name="migrate_tasks",
        specs=_specs(),
        partitions_def=task_partitions,
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=batch_size),
        check_specs=CHECK_SPECS,
    )(migrate_tasks)


def migrate_tasks(context: AssetExecutionContext, stores: StoresResource, migration: MigrationSettings):
    """Hand the run's partitions to the batch engine, then report what it did."""
    stores_ = stores.get()
    files = registered_sources(stores_, [task_id_for(k) for k in context.partition_keys])
    batch = run_batch(stores_, files, max_file_bytes=migration.max_file_bytes,
                      compression_goal=migration.compression_goal)
    metadata = partition_metadata(stores_, batch)
    summary = batch_summary(batch)
    for asset in TASK_ASSETS:
        attach_partition_metadata(context, asset, metadata[asset])
        yield MaterializeResult(asset_key=asset, metadata=_asset_summary(asset, batch, summary))
    yield from check_events(batch.checks, declared=True, targets=run_materializations(context, batch.checks))


def _asset_summary(asset: str, batch: BatchResult, summary: dict) -> dict:
    """The step-level metadata of one asset (the per-partition metadata is attached above)."""
    if asset == "validated_result":
        return summary
    if asset in ("signal_table", "curve_table"):
        rows = batch.signals if asset == "signal_table" else batch.curves
        out = {"dagster/row_count": rows.table.num_rows}
        if rows.commit is not None:
            out.update(delta_version=rows.commit.version, batch_bytes_written=rows.commit.bytes_added,
                       batch_files_written=rows.commit.files_added)
        return out
    return {}


def run_materializations(context, outcomes: list[CheckOutcome]) -> dict:
    """{(asset, partition key): this run's materialization of it}: what each check evaluated.

    An evaluation that names its target materialization is "current"; without one the UI's
    per-partition check status (GraphQL partitionStatuses) shows every partition as missing.
    """
    keys = sorted({o.partition_key for o in outcomes})
    targets = {}
    for asset in sorted({o.asset for o in outcomes}):
        records = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=keys), limit=len(keys)).records
        for r in records:
            if r.run_id == context.run.run_id:
                targets[(asset, r.partition_key)] = target_materialization(r.storage_id, r.run_id, r.timestamp)
    return targets


def check_events(outcomes: list[CheckOutcome], declared: bool, targets: dict | None = None):
    """One evaluation per partition and check; with `declared`, also the step's declared
    result per check. A single-partition step's declared result is that partition's
    evaluation (Dagster attributes it to the partition), so nothing overwrites it."""
    targets = targets or {}
    partitions = {o.partition_key for o in outcomes}
    single = declared and len(partitions) == 1
    by_check: dict[tuple[str, str], list[CheckOutcome]] = {}
    for o in outcomes:
        by_check.setdefault((o.asset, o.check), []).append(o)
        severity = AssetCheckSeverity.WARN if o.warn else AssetCheckSeverity.ERROR
        metadata = {"task_id": o.task_id, **o.metadata}
        if single:
            yield AssetCheckResult(asset_key=o.asset, check_name=o.check, passed=o.passed, severity=severity,
                                   description=o.description, metadata=metadata)
            continue
        yield AssetCheckEvaluation(
            asset_key=AssetKey(o.asset), check_name=o.check, passed=o.passed, partition=o.partition_key,
            severity=severity, description=o.description, metadata=metadata,
            target_materialization_data=targets.get((o.asset, o.partition_key)))
    if not declared or single:
        return
    for asset, name, warn, _description in CHECKS:
        results = by_check.get((asset, name), [])
        failed = [o for o in results if not o.passed]
        yield AssetCheckResult(
            asset_key=asset, check_name=name, passed=not failed,
            severity=AssetCheckSeverity.WARN if warn else AssetCheckSeverity.ERROR,
            description=f"{len(results) - len(failed)} of {len(results)} partitions passed",
            metadata={"partitions": len(results), "failed": len(failed),
                      "failed_tasks": MetadataValue.md("\n".join(f"- `{o.task_id}`: {o.description}"
                                                                  for o in failed[:50]) or "none")})


# --- the same migration over an explicit list of task ids (forced or retried subsets) ---

class TaskListConfig(Config):
    task_ids: list[str]


@op(out={}, description="Migrate an explicit list of tasks (scattered partitions a range backfill cannot batch).")
def migrate_task_list(context: OpExecutionContext, config: TaskListConfig, stores: StoresResource,
                      migration: MigrationSettings):
    stores_ = stores.get()
    batch = run_batch(stores_, registered_sources(stores_, config.task_ids), max_file_bytes=migration.max_file_bytes,
                      compression_goal=migration.compression_goal)
    metadata = partition_metadata(stores_, batch)
    for v in batch.validated:
        for asset in TASK_ASSETS:
            key = v.source.partition_key
            yield AssetMaterialization(asset_key=asset, partition=key, metadata=metadata[asset][key])
    yield from check_events(batch.checks, declared=False, targets=run_materializations(context, batch.checks))


@job(description="Migrate the tasks named in config (used by `result-assets migrate` for scattered subsets).")
def migrate_task_list_job():
    migrate_task_list()
