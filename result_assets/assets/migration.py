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
from result_assets.legacy import partition_key_for
from result_assets.legacy.schema import CURVE_SCHEMA, SIGNAL_SCHEMA
from result_assets.migration.batch import (
    ValidatedResult,
    catalog_batch,
    curve_rows,
    read_source,
    save_backups,
    signal_rows,
    stamp_versions,
    write_catalog,
    write_rows,
)
from result_assets.migration.convert import convert_batch
from result_assets.migration.sources import LegacyFile
from result_assets.migration.verify import CHECKS, CheckOutcome, evaluate
from result_assets.store.delta_tables import CURVES, SIGNALS
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
    files = list(legacy_result.values())
    validated: list[ValidatedResult] = []
    raws = [read_source(f, migration.max_file_bytes) for f in files]
    yield Output(raws, output_name="result_backup")
    validated = convert_batch(raws)
    del raws
    yield Output(validated, output_name="validated_result", metadata=_batch_summary(validated))
    signals, curves = signal_rows(validated), curve_rows(validated)
    yield Output(signals, output_name="signal_table", metadata={"dagster/row_count": signals.table.num_rows})
    yield Output(curves, output_name="curve_table", metadata={"dagster/row_count": curves.table.num_rows})
    catalog = catalog_batch(validated)
    stamp_versions(catalog, signals, curves)
    yield Output(catalog, output_name="catalog_entry")
    for key, metadata in _partition_metadata(validated).items():
        context.add_asset_metadata(metadata, asset_key="validated_result", partition_key=key)
    outcomes = evaluate(stores_, validated, signals, curves, catalog, migration.compression_goal)
    yield from check_events(outcomes, declared=True)


def _batch_summary(validated: list[ValidatedResult]) -> dict:
    counts = Counter(v.status for v in validated)
    json_bytes = sum(v.json_bytes for v in validated)
    return {
        "tasks": len(validated),
        "migrated": counts["migrated"],
        "quarantined": counts["quarantined"],
        "json_bytes": json_bytes,
        "signals": sum(v.result.n_signals for v in validated if v.result),
    }


def _partition_metadata(validated: list[ValidatedResult]) -> dict[str, dict]:
    out = {}
    for v in validated:
        metadata = {"status": v.status, "json_bytes": v.json_bytes, "source_sha256": v.sha256,
                    "dagster/uri": v.source.path}
        if v.result is not None:
            metadata.update(signals=v.result.n_signals, curve_points=v.result.n_curve_points,
                            symbols=len(v.result.symbols))
            if v.result.warnings:
                metadata["warnings"] = "; ".join(v.result.warnings)
        else:
            metadata["reason"] = v.reason
        out[v.source.partition_key] = metadata
    return out


def check_events(outcomes: list[CheckOutcome], declared: bool):
    """One evaluation per partition; with `declared`, also the step's declared result per check."""
    by_check: dict[tuple[str, str], list[CheckOutcome]] = {}
    for o in outcomes:
        by_check.setdefault((o.asset, o.check), []).append(o)
        yield AssetCheckEvaluation(
            asset_key=AssetKey(o.asset), check_name=o.check, passed=o.passed, partition=o.partition_key,
            severity=AssetCheckSeverity.WARN if o.warn else AssetCheckSeverity.ERROR,
            description=o.description, metadata={"task_id": o.task_id, **o.metadata})
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
    raws = [read_source(f, migration.max_file_bytes) for f in files.values()]
    save_backups(stores_, raws)
    validated = convert_batch(raws)
    del raws
    signals, curves = signal_rows(validated), curve_rows(validated)
    write_rows(stores_, SIGNALS, signals)
    write_rows(stores_, CURVES, curves)
    catalog = catalog_batch(validated)
    write_catalog(stores_, catalog, signals, curves)
    per_partition = _partition_metadata(validated)
    for v in validated:
        key = v.source.partition_key
        for asset in TASK_ASSETS:
            metadata = per_partition[key] if asset == "validated_result" else {}
            yield AssetMaterialization(asset_key=asset, partition=key, metadata=metadata)
    outcomes = evaluate(stores_, validated, signals, curves, catalog, migration.compression_goal)
    yield from check_events(outcomes, declared=False)


@job(description="Migrate the tasks named in config (used by `result-assets migrate` for scattered subsets).")
def migrate_task_list_job():
    migrate_task_list()
