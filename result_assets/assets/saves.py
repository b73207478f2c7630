"""The application's saves, shown in Dagster by the code location.

A save commits to the store only (its rows, catalog row and a queued record, in one
transaction): the application never starts or waits on Dagster. `saved_results_sensor`
reads the queue's newest record id (it writes nothing) and requests a `report_saves_job`
run, whose op yields each queued save's materializations and check evaluations, the same
per-partition events a backfill records. `ResultManager.flush_records()` runs that job now.
"""

from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetRecordsFilter,
    DefaultSensorStatus,
    OpExecutionContext,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    job,
    op,
    sensor,
)

from result_assets.assets.migration import TASK_ASSETS, check_events
from result_assets.assets.partitions import TASKS_PARTITION
from result_assets.assets.resources import StoresResource
from result_assets.migration.verify import CheckOutcome
from result_assets.assets.dagster_internals import target_materialization

REPORT_SAVES_JOB = "report_saves_job"
SAVES_SENSOR = "saved_results_sensor"


@op(out={}, description="Yield the materializations and check evaluations of the application's queued saves.")
def report_saves(context: OpExecutionContext, stores: StoresResource):
    reported = 0
    for event in queued_save_events(context.instance, stores.get().catalog):
        reported += 1
        yield event
    context.log.info(f"{reported} events of the application's saves reported")


@job(name=REPORT_SAVES_JOB, description="Report the application's saves (queued in the catalog) to Dagster.")
def report_saves_job():
    report_saves()


@sensor(name=SAVES_SENSOR, job=report_saves_job, minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description="Requests a report_saves_job run when the application has saved results since the last one.")
def saved_results_sensor(context: SensorEvaluationContext, stores: StoresResource):
    newest = stores.get().catalog.newest_record_id()
    if newest is None or str(newest) == context.cursor:
        return SkipReason("no save queued since the last report")
    return SensorResult(run_requests=[RunRequest(run_key=f"saves-{newest}")], cursor=str(newest))


def queued_save_events(instance, catalog, batch: int = 500):
    """The events of the application's saves queued in the catalog (save_records, written in
    each save's own publishing transaction), for a run's op to yield: per save the five
    materializations, and per task the check evaluations of its newest save, each naming the
    materialization it judged (stored by the time this generator resumes), as a backfill
    records them. A batch leaves the queue once all its events were taken: at least once.

    From a run, not runless: Dagster writes a runless partitioned check evaluation with a
    plain INSERT, so a partition's second one (a task saved again) fails on the unique index
    of asset_check_executions. One reporter at a time (an advisory lock)."""
    with catalog.advisory_lock(_REPORT_LOCK, wait=True):
        while True:
            records = catalog.queued_records(batch)
            if not records:
                return
            keys = {r["partition_key"] for r in records}
            new_keys = sorted(keys - set(instance.get_dynamic_partitions(TASKS_PARTITION)))
            if new_keys:
                instance.add_dynamic_partitions(TASKS_PARTITION, new_keys)
            newest = {r["task_id"]: r["record_id"] for r in records}  # ordered by record id: the last wins
            for r in records:
                for asset in TASK_ASSETS:
                    yield AssetMaterialization(
                        asset_key=asset, partition=r["partition_key"], description=r["description"],
                        metadata=r["metadata"] if asset in ("validated_result", "catalog_entry")
                        else {"task_id": r["task_id"]})
                if newest[r["task_id"]] == r["record_id"] and r["checks"]:
                    checks = [CheckOutcome(**c) for c in r["checks"]]
                    yield from check_events(checks, declared=False,
                                            targets=_latest(instance, checks, r["partition_key"]))
            catalog.forget_records([r["record_id"] for r in records])


def _latest(instance, checks, key: str) -> dict:
    """{(asset, partition): the partition's latest materialization} of the checked assets."""
    targets = {}
    for asset in {c.asset for c in checks}:
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[key]), limit=1).records
        if records:
            r = records[0]
            targets[(asset, key)] = target_materialization(r.storage_id, r.run_id, r.timestamp)
    return targets


_REPORT_LOCK = 7204  # pg advisory lock: one reporter of queued saves at a time
