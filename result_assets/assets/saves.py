"""The application's saves, shown in Dagster by the code location.

A save commits to the store only (its rows, catalog row and a queued record, in one
transaction): the application never starts or waits on Dagster. `saved_results_sensor`
reads the queue's newest record id (it writes nothing) and requests a `report_saves_job`
run, whose op yields each queued save's materializations and check evaluations, the same
per-partition events a backfill records. `ResultManager.flush_records()` runs that job now.
"""

import psycopg2.errors
from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    OpExecutionContext,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    job,
    op,
    sensor,
)

from result_assets.assets.events import queued_save_events
from result_assets.assets.in_process_runs import PID_TAG, process_tags
from result_assets.assets.instance import get_instance, hold_connections
from result_assets.assets.resources import NO_CATALOG, StoresResource

REPORT_SAVES_JOB = "report_saves_job"
SAVES_SENSOR = "saved_results_sensor"
# A report run that failed leaves its saves queued: asked for again this many times.
REPORT_RETRIES = 3
_ENDED_UNREPORTED = (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)


@op(out={}, description="Yield the materializations and check evaluations of the application's queued saves.")
def report_saves(context: OpExecutionContext, stores: StoresResource):
    reported = 0
    if PID_TAG not in context.run.tags:
        # A run worker of its own (the sensor's run): its instance lives as long as its
        # process, so its several events per save go on held connections, not a new one each
        # (measured per save reported: 67-92 -> 19-24 ms). Not in an application process
        # (flush_records, whose runs carry its pid): Dagster keeps its last instance
        # referenced, and with it two idle connections per process, for good.
        hold_connections(context.instance)
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
    try:
        newest = stores.sensor_reader().catalog.newest_record_id()
    except psycopg2.errors.UndefinedTable:
        return SkipReason(NO_CATALOG)
    if newest is None:
        return SkipReason("no save queued")
    # "<newest record id>[:<retry>][@<generation>]": a generation per time the record ids went
    # back (a catalog made anew, or restored from a backup), whose run keys would otherwise
    # repeat old ones, which Dagster skips: those saves went unreported until the ids passed
    # the old ones.
    cursor, _, generation = (context.cursor or "").partition("@")
    asked, _, attempt = cursor.partition(":")
    generation = int(generation or 0)
    if asked != str(newest):
        if asked.isdigit() and newest < int(asked):
            generation += 1
        return SensorResult(run_requests=[RunRequest(run_key=_run_key(newest, 0, generation))],
                            cursor=_cursor(newest, 0, generation))
    # The run asked for already: if it ended without reporting the queue (failed, canceled),
    # ask again, a few times; else it is on its way, or new saves will ask.
    attempt = int(attempt or 0)
    last = context.instance.get_runs(RunsFilter(job_name=REPORT_SAVES_JOB, tags={
        "dagster/run_key": _run_key(newest, attempt, generation)}), limit=1)
    if not last or last[0].status not in _ENDED_UNREPORTED:
        return SkipReason("no save queued since the last report")
    if attempt >= REPORT_RETRIES:
        return SkipReason(f"the report of the saves up to record {newest} failed {attempt + 1} times (see those "
                          "runs); a new save, or `ResultManager.flush_records()`, asks again")
    return SensorResult(run_requests=[RunRequest(run_key=_run_key(newest, attempt + 1, generation))],
                        cursor=_cursor(newest, attempt + 1, generation))


def _run_key(newest: int, attempt: int, generation: int) -> str:
    return f"saves-{newest}" + (f"-{attempt}" if attempt else "") + (f"@{generation}" if generation else "")


def _cursor(newest: int, attempt: int, generation: int) -> str:
    return str(newest) + (f":{attempt}" if attempt else "") + (f"@{generation}" if generation else "")


def report_queued_saves(settings) -> None:
    """Run `report_saves_job` in this process now, against the instance of `settings`.

    The application API knows no Dagster: `ResultManager.flush_records()` finds this function
    as the package's `result_assets.save_reporters` entry point (pyproject.toml)."""
    stores = StoresResource(home=str(settings.home), database_url=settings.database_url,
                            store_root=settings.store_root, backup_dir=settings.backup_dir)
    report_saves_job.execute_in_process(
        instance=get_instance(settings), resources={"stores": stores}, raise_on_error=False, tags=process_tags(),
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
