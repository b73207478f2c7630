"""The task-level assets: one step migrates a batch of task partitions.

legacy_result -> result_backup -> validated_result -> signal_table, curve_table -> catalog_entry

They are one multi-asset so that a batch is one step in one process (a step per
asset would pass data through storage and pay Dagster's per-step cost five times);
each output still goes through its own IO manager, in dependency order, and the
catalog row, written last, is what makes a task visible.
"""

from collections import Counter

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetMaterialization,
    AssetOut,
    AssetSpec,
    BackfillPolicy,
    Config,
    MetadataValue,
    OpExecutionContext,
    Output,
    job,
    multi_asset,
    op,
)

from result_assets.assets.partitions import batch_size, task_partitions
from result_assets.assets.resources import MigrationSettings, StoresResource
from result_assets.legacy.schema import CURVE_SCHEMA, SIGNAL_SCHEMA
from result_assets.migration.batch import (
    RawResult,
    TaskRows,
    ValidatedResult,
    catalog_batch,
    curve_rows,
    read_source,
    signal_rows,
    stamp_versions,
)
from result_assets.migration.convert import convert_batch
from result_assets.migration.pipeline import migrate_batch
from result_assets.migration.sources import LegacyFile
from result_assets.migration.verify import CHECKS, CheckOutcome, evaluate
from result_assets.store.delta_tables import CURVES, SIGNALS, sql_string
from result_assets.store.stores import Stores

TASK_ASSETS = ("result_backup", "validated_result", "signal_table", "curve_table", "catalog_entry")

legacy_result = AssetSpec(
    "legacy_result",
    description="A legacy backtest result file, <source-dir>/<task_id>/result.json, written by the platform.",
    partitions_def=task_partitions,
    kinds={"json"},
    group_name="migration",
).with_io_manager_key("legacy_io_manager")


def _column_schema(schema):
    from dagster import TableColumn, TableSchema

    return TableSchema(columns=[TableColumn(f.name, str(f.type), constraints=None) for f in schema])


def _outs():
    from dagster import TableColumn, TableSchema

    catalog_schema = TableSchema(columns=[
        TableColumn("task_id", "text"), TableColumn("status", "text"), TableColumn("reason", "text"),
        TableColumn("source_sha256", "text"), TableColumn("strategy", "text"),
        TableColumn("n_signals", "integer"), TableColumn("total_return", "double precision"),
        TableColumn("skeleton", "text", description="exact JSON of the document minus its rows"),
    ])
    return {
        "result_backup": AssetOut(
            io_manager_key="backup_io_manager", kinds={"json"}, group_name="migration",
            description="Byte-exact copy of the legacy file under <backup-dir>/<task_id>/result.json."),
        "validated_result": AssetOut(
            io_manager_key="validated_io_manager", kinds={"python"}, group_name="migration",
            description="The parsed, normalized result, or a quarantine record with its reason."),
        "signal_table": AssetOut(
            io_manager_key="signal_io_manager", kinds={"delta", "parquet"}, group_name="migration",
            description="Signal rows in the Delta table `signals`, keyed by task_id.",
            metadata={"dagster/column_schema": _column_schema(SIGNAL_SCHEMA)}),
        "curve_table": AssetOut(
            io_manager_key="curve_io_manager", kinds={"delta", "parquet"}, group_name="migration",
            description="Portfolio and per-symbol curve points in the Delta table `curves`.",
            metadata={"dagster/column_schema": _column_schema(CURVE_SCHEMA)}),
        "catalog_entry": AssetOut(
            io_manager_key="catalog_io_manager", kinds={"postgres"}, group_name="migration",
            description="The task's row in the Postgres catalog (migrated or quarantined), written last.",
            metadata={"dagster/column_schema": catalog_schema}),
    }


CHECK_SPECS = [
    AssetCheckSpec(name, asset=asset, description=description, partitions_def=task_partitions)
    for asset, name, _warn, description in CHECKS
]


@multi_asset(
    name="migrate_tasks",
    outs=_outs(),
    ins={"legacy_result": AssetIn(key="legacy_result")},
    internal_asset_deps={
        "result_backup": {AssetKey("legacy_result")},
        "validated_result": {AssetKey("result_backup")},
        "signal_table": {AssetKey("validated_result")},
        "curve_table": {AssetKey("validated_result")},
        "catalog_entry": {AssetKey("validated_result"), AssetKey("signal_table"), AssetKey("curve_table")},
    },
    partitions_def=task_partitions,
    backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=batch_size()),
    check_specs=CHECK_SPECS,
)
def migrate_tasks(context: AssetExecutionContext, legacy_result: dict[str, LegacyFile],
                  stores: StoresResource, migration: MigrationSettings):
    stores_ = stores.get()
    raws = [read_source(f, migration.max_file_bytes) for f in legacy_result.values()]
    _attach(context, "result_backup", backup_metadata(stores_, raws))
    yield Output(raws, output_name="result_backup")  # the safety copy comes first
    validated = convert_batch(raws)
    del raws
    _attach(context, "validated_result", validation_metadata(validated))
    yield Output(validated, output_name="validated_result", metadata=_batch_summary(validated))
    signals, curves = signal_rows(validated), curve_rows(validated)
    _attach(context, "signal_table", rows_metadata(validated, signals, stores_.delta.uri(SIGNALS)))
    yield Output(signals, output_name="signal_table", metadata={"dagster/row_count": signals.table.num_rows})
    _attach(context, "curve_table", rows_metadata(validated, curves, stores_.delta.uri(CURVES)))
    yield Output(curves, output_name="curve_table", metadata={"dagster/row_count": curves.table.num_rows})
    catalog = catalog_batch(validated)
    stamp_versions(catalog, signals, curves)
    _attach(context, "catalog_entry", catalog_metadata(validated, signals, curves))
    yield Output(catalog, output_name="catalog_entry")
    outcomes = evaluate(stores_, validated, signals, curves, catalog, migration.compression_goal)
    yield from check_events(outcomes, declared=True, targets=run_materializations(context, outcomes))


def _attach(context: AssetExecutionContext, asset: str, per_partition: dict[str, dict]) -> None:
    """Per-partition materialization metadata, before the asset's output is yielded.

    The public `add_asset_metadata(partition_key=...)` re-lists every dynamic partition
    on each call (O(partitions) per task); the step's own accumulator takes it directly.
    """
    step = context.op_execution_context._step_execution_context  # noqa: SLF001 (pinned Dagster)
    key = AssetKey(asset)
    for partition, metadata in per_partition.items():
        step._metadata_accumulator = step._metadata_accumulator.with_additional_asset_metadata(  # noqa: SLF001
            asset_key=key, partition_key=partition, metadata=metadata)


def _batch_summary(validated: list[ValidatedResult]) -> dict:
    counts = Counter(v.status for v in validated)
    return {
        "tasks": len(validated),
        "migrated": counts["migrated"],
        "quarantined": counts["quarantined"],
        "json_bytes": sum(v.json_bytes for v in validated),
        "signals": sum(v.result.n_signals for v in validated if v.result),
    }


def backup_metadata(stores: Stores, raws: list[RawResult]) -> dict[str, dict]:
    out = {}
    for r in raws:
        if r.unreadable:
            out[r.source.partition_key] = {"copied": False, "reason": r.unreadable}
        else:
            out[r.source.partition_key] = {"dagster/uri": str(stores.backups.path(r.source.task_id)),
                                           "sha256": r.sha256, "bytes": len(r.raw)}
    return out


def validation_metadata(validated: list[ValidatedResult]) -> dict[str, dict]:
    out = {}
    for v in validated:
        metadata = {"status": v.status, "json_bytes": v.json_bytes, "source_sha256": v.sha256,
                    "dagster/uri": v.source.path}
        if v.result is not None:
            metadata.update(signals=v.result.n_signals, curve_points=v.result.n_curve_points,
                            symbols=len(v.result.symbols), layout=f"v{v.result.layout}")
            if v.result.warnings:
                metadata["warnings"] = "; ".join(v.result.warnings)
        else:
            metadata["reason"] = v.reason
        out[v.source.partition_key] = metadata
    return out


def rows_metadata(validated: list[ValidatedResult], rows: TaskRows, uri: str) -> dict[str, dict]:
    counts = Counter(rows.table.column("task_id").to_pylist())
    return {v.source.partition_key: {"dagster/row_count": counts[v.task_id], "dagster/uri": uri,
                                     "predicate": f"task_id = {sql_string(v.task_id)}"}
            for v in validated}


def catalog_metadata(validated: list[ValidatedResult], signals: TaskRows, curves: TaskRows) -> dict[str, dict]:
    """Status and reason, plus the task's share of the bytes its batch wrote (by row count)."""
    rows = Counter(signals.table.column("task_id").to_pylist()) + Counter(curves.table.column("task_id").to_pylist())
    total_rows = signals.table.num_rows + curves.table.num_rows
    written = sum(c.bytes_added for c in (signals.commit, curves.commit) if c is not None)
    out = {}
    for v in validated:
        metadata = {"status": v.status, "json_bytes": v.json_bytes}
        if v.reason:
            metadata["reason"] = v.reason
        elif total_rows:
            share = round(written * rows[v.task_id] / total_rows)
            metadata["stored_bytes_estimate"] = share
            if v.json_bytes:
                metadata["compression_estimate"] = round(1 - share / v.json_bytes, 4)
        out[v.source.partition_key] = metadata
    return out


def run_materializations(context, outcomes: list[CheckOutcome]) -> dict:
    """{(asset, partition key): this run's materialization of it}: what each check evaluated.

    An evaluation that names its target materialization is "current"; without one the UI's
    per-partition check status (GraphQL partitionStatuses) shows every partition as missing.
    """
    from dagster import AssetRecordsFilter
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData,
    )

    keys = sorted({o.partition_key for o in outcomes})
    targets = {}
    for asset in sorted({o.asset for o in outcomes}):
        records = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=keys), limit=len(keys)).records
        for r in records:
            if r.run_id == context.run.run_id:
                targets[(asset, r.partition_key)] = AssetCheckEvaluationTargetMaterializationData(
                    storage_id=r.storage_id, run_id=r.run_id, timestamp=r.timestamp)
    return targets


def check_events(outcomes: list[CheckOutcome], declared: bool, targets: dict | None = None):
    """One evaluation per partition; with `declared`, also the step's declared result per check."""
    by_check: dict[tuple[str, str], list[CheckOutcome]] = {}
    targets = targets or {}
    for o in outcomes:
        by_check.setdefault((o.asset, o.check), []).append(o)
        yield AssetCheckEvaluation(
            asset_key=AssetKey(o.asset), check_name=o.check, passed=o.passed, partition=o.partition_key,
            severity=AssetCheckSeverity.WARN if o.warn else AssetCheckSeverity.ERROR,
            description=o.description, metadata={"task_id": o.task_id, **o.metadata},
            target_materialization_data=targets.get((o.asset, o.partition_key)))
    if not declared:
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
    from result_assets.assets.io_managers import LegacyResultIOManager

    stores_ = stores.get()
    files = LegacyResultIOManager(stores_).files(config.task_ids)
    backups: dict[str, dict] = {}
    written = migrate_batch(stores_, files.values(), migration.max_file_bytes,
                            on_backed_up=lambda raws: backups.update(backup_metadata(stores_, raws)))
    validated, signals, curves, catalog = written.validated, written.signals, written.curves, written.catalog
    metadata = {
        "result_backup": backups,
        "validated_result": validation_metadata(validated),
        "signal_table": rows_metadata(validated, signals, stores_.delta.uri(SIGNALS)),
        "curve_table": rows_metadata(validated, curves, stores_.delta.uri(CURVES)),
        "catalog_entry": catalog_metadata(validated, signals, curves),
    }
    for v in validated:
        for asset in TASK_ASSETS:
            key = v.source.partition_key
            yield AssetMaterialization(asset_key=asset, partition=key, metadata=metadata[asset][key])
    outcomes = evaluate(stores_, validated, signals, curves, catalog, migration.compression_goal)
    yield from check_events(outcomes, declared=False, targets=run_materializations(context, outcomes))


@job(description="Migrate the tasks named in config (used by `result-assets migrate` for scattered subsets).")
def migrate_task_list_job():
    migrate_task_list()
