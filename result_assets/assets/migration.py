"""The task-level assets: one step migrates a batch of task partitions.

legacy_result -> result_backup -> validated_result -> signal_table, curve_table -> catalog_entry

They are one multi-asset so that a batch is one step in one process (a step per
asset would pass data through storage and pay Dagster's per-step cost five times).
The step hands the batch to the engine (migration/engine.py), which backs up,
converts, proves and publishes it; the step then reports what the engine did: a
materialization per asset and partition it published or quarantined, and one evaluation per
check and partition.
"""

import logging
from contextlib import contextmanager

from dagster import (
    AssetExecutionContext,
    AssetSpec,
    BackfillPolicy,
    Config,
    Failure,
    OpExecutionContext,
    ResourceParam,
    TableColumn,
    TableSchema,
    job,
    multi_asset,
    op,
)

from result_assets.assets.checks import CHECK_SPECS
from result_assets.assets.events import backfill_events, task_list_events
from result_assets.assets.instance import hold_connections
from result_assets.assets.io_managers import READ_ASSETS, STORE_IO_MANAGER
from result_assets.assets.partitions import TASKS_PARTITION, task_partitions
from result_assets.assets.resources import MigrationSettings, StoresResource
from result_assets.legacy import task_id_for
from result_assets.legacy.schema import CURVE_SCHEMA, SIGNAL_SCHEMA
from result_assets.migration.convert import Prefetch
from result_assets.migration.engine import registered_sources, run_batch

log = logging.getLogger(__name__)

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
        # skippable: a step whose batch left a task unpublished materializes only the others
        # (assets/events.py), not the declared result that would cover every partition
        spec = AssetSpec(key, deps=deps, kinds=kinds, group_name="migration", description=description,
                         partitions_def=task_partitions, metadata=metadata or None, skippable=True)
        # Downstream assets load these through the store's IO manager (the engine writes them).
        return spec.with_io_manager_key(STORE_IO_MANAGER) if key in READ_ASSETS else spec

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


def build_migrate_tasks(batch_size: int):
    """The multi-asset; a backfill run takes `batch_size` partitions (RESULT_BATCH_SIZE)."""
    return multi_asset(
        name="migrate_tasks",
        specs=_specs(),
        partitions_def=task_partitions,
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=batch_size),
        check_specs=CHECK_SPECS,
    )(migrate_tasks)


def migrate_tasks(context: AssetExecutionContext, stores: StoresResource, migration: MigrationSettings,
                  prefetch: ResourceParam[Prefetch]):
    """Hand the run's partitions to the batch engine, then report what it did."""
    hold_connections(context.instance)  # the run writes several events per task
    stores_ = stores.get()
    files = registered_sources(stores_, [task_id_for(k) for k in context.partition_keys])
    published: dict[str, str] = {}
    with _reported_or_marked(stores_, published):
        batch = run_batch(stores_, files, max_file_bytes=migration.max_file_bytes,
                          compression_goal=migration.compression_goal, ahead=prefetch, on_published=published.update)
        yield from backfill_events(context, stores_, batch)


@contextmanager
def _reported_or_marked(stores_, published: dict[str, str]):
    """The step's publish and its events are one: stopped between the two (a Ctrl-C, the UI's
    Terminate, an event Dagster could not store), the tasks already published are marked with
    a failed attempt, so the next migrate does them again instead of skipping them as
    unchanged (Dagster would never learn of them). Not after a SIGKILL: see docs/reliability.md."""
    try:
        yield
    except BaseException:
        try:
            stores_.catalog.record_unreported(published)
        except Exception:  # noqa: BLE001 - the run's own error is the one to raise
            log.warning("could not mark %d published tasks as not reported", len(published), exc_info=True)
        raise


# --- the same migration over an explicit list of task ids (forced or retried subsets) ---

class TaskListConfig(Config):
    task_ids: list[str]
    # {task_id: mtime_ns} of sources whose bytes were found unchanged under a new mtime (the
    # sensor's finding, recorded here: a sensor writes nothing while it evaluates)
    touched_mtimes: dict[str, int] = {}


@op(out={}, description="Migrate an explicit list of tasks (scattered partitions a range backfill cannot batch).")
def migrate_task_list(context: OpExecutionContext, config: TaskListConfig, stores: StoresResource,
                      migration: MigrationSettings, prefetch: ResourceParam[Prefetch]):
    hold_connections(context.instance)
    task_ids = list(dict.fromkeys(config.task_ids))  # an id given twice (from the launchpad) is one task
    unknown = sorted(set(task_ids) - {task_id_for(k) for k in context.instance.get_dynamic_partitions(TASKS_PARTITION)})
    if unknown:
        raise Failure(f"not task partitions (register them first: the sensor or `result-assets migrate` "
                      f"does): {', '.join(unknown[:20])}")
    stores_ = stores.get()
    stores_.catalog.touch_mtime(config.touched_mtimes)
    if not task_ids:
        return
    published: dict[str, str] = {}
    with _reported_or_marked(stores_, published):
        batch = run_batch(stores_, registered_sources(stores_, task_ids), max_file_bytes=migration.max_file_bytes,
                          compression_goal=migration.compression_goal, ahead=prefetch, on_published=published.update)
        yield from task_list_events(context, stores_, batch)


@job(description="Migrate the tasks named in config (used by `result-assets migrate` for scattered subsets).")
def migrate_task_list_job():
    migrate_task_list()
