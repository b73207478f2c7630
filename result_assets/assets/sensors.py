"""Registers new task directories of RESULT_SOURCE_DIR as partitions; in dual-write, migrates them.

In the dual-write phase (RESULT_STORAGE_MODE=dual-write) the application writes the JSON
and then the store; when the store write fails (store down, a crash in between) the
JSON is the only copy. Each tick this sensor also requests migration runs for every
task of the source directory the store is behind on: new, pending (registered, not
migrated) or stale (the file changed since it was migrated), so nothing stays behind.

The sensor runs by default wherever RESULT_SOURCE_DIR is set (see `default_status`).
It writes nothing while it evaluates: new partitions go out as a dynamic-partitions
request, and what the catalog should learn (sources whose bytes are unchanged under a new
mtime) travels in the run's config, for the run to record. Each request has a run_key
(its tasks, their sizes and mtimes, and the attempt), and the cursor remembers the last
request, so a re-evaluation never launches the same work twice while a failed run's work
is requested again.
"""

import hashlib
import json

import psycopg2.errors
from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from result_assets.assets.migration import migrate_task_list_job
from result_assets.assets.partitions import TASKS_PARTITION
from result_assets.assets.resources import NO_CATALOG, StoresResource
from result_assets.migration.plan import plan_migration
from result_assets.migration.sources import SourceDirError, scan_source_dir
from result_assets.settings import Settings, SettingsError
from result_assets.store.stores import Stores

CHUNK = 1000  # keys per tick: the sensor checks each requested key, so keep ticks short
DUAL_WRITE = "dual-write"
SENSOR_NAME = "new_task_sensor"
_IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
              DagsterRunStatus.STARTED]


def default_status(settings: Settings | None = None) -> DefaultSensorStatus:
    """Running where there is a source directory to watch (RESULT_SOURCE_DIR set), stopped
    elsewhere; the UI can still turn it on or off. Dagster needs the status when the sensor
    is defined: definitions.py builds it when the code location loads."""
    settings = settings or Settings.from_env()
    return DefaultSensorStatus.RUNNING if settings.source_dir else DefaultSensorStatus.STOPPED


NOT_SET = ("RESULT_SOURCE_DIR is not set: there is no legacy task tree to watch. Set it to the folder "
           "of <task_id>/result.json directories in the environment of the code server and the "
           "daemon, then restart them.")


def build_new_task_sensor(status: DefaultSensorStatus = DefaultSensorStatus.STOPPED):
    return sensor(
        name=SENSOR_NAME, minimum_interval_seconds=30, default_status=status, jobs=[migrate_task_list_job],
        description="Adds a partition for each new <RESULT_SOURCE_DIR>/<task_id>/result.json; "
                    "with RESULT_STORAGE_MODE=dual-write also migrates tasks the store is behind on. "
                    "Running by default when RESULT_SOURCE_DIR is set.")(new_tasks)


def new_tasks(context: SensorEvaluationContext, stores: StoresResource):
    """One tick: register new task directories; in dual-write, request the runs the store is behind on."""
    settings = stores.sensor_settings()
    if not settings.source_dir:
        return SkipReason(NOT_SET)
    try:
        scan = scan_source_dir(settings.source_dir)
    except SourceDirError as exc:
        return SkipReason(str(exc))
    try:
        settings.check_storage_mode()
        mode_error = ""
    except SettingsError as exc:  # new folders are still registered; no mode's catch-up is guessed
        mode_error = f"{exc}: no catch-up runs until it is one; "
        context.log.warning(str(exc))
    stores = stores.sensor_reader()
    known = set(context.instance.get_dynamic_partitions(TASKS_PARTITION))
    new = [t for t in scan.tasks if t.partition_key not in known][:CHUNK]
    runs, cursor = [], context.cursor
    if settings.storage_mode == DUAL_WRITE:
        if _migration_in_flight(context.instance):
            context.log.info("a migration run requested by this sensor is still in flight; not requesting more")
        else:
            try:
                runs, cursor = migration_requests(stores, scan.tasks, context.cursor)
            except psycopg2.errors.UndefinedTable:
                return SkipReason(NO_CATALOG)
    if not new and not runs:
        gave_up = json.loads(cursor).get("gave_up") if cursor and settings.storage_mode == DUAL_WRITE else None
        if not gave_up:
            return SkipReason(f"{mode_error}no new task among {len(scan.tasks)}"
                              + (", and the store is up to date" if settings.storage_mode == DUAL_WRITE else ""))
        reason = (f"no new task among {len(scan.tasks)}; {gave_up} task(s) the store is behind on failed "
                  f"{CATCH_UP_RETRIES + 1} catch-up runs in a row (see those runs): not retried until the "
                  "tasks behind or their files change, or `result-assets migrate` runs")
        # the attempt count must be kept: it is what stops the retries
        return SkipReason(reason) if cursor == context.cursor else SensorResult(cursor=cursor, skip_reason=reason)
    return SensorResult(
        run_requests=runs, cursor=cursor,
        dynamic_partitions_requests=[task_partitions_request([t.partition_key for t in new])] if new else [])


# Catch-up runs of the same work after the first: a task that fails every time (a proof that
# cannot pass) is not retried every 30 seconds for ever.
CATCH_UP_RETRIES = 3


def migration_requests(stores: Stores, tasks, cursor: str | None = None) -> tuple[list[RunRequest], str | None]:
    """Runs of migrate_task_list_job (batch-size ids each) for the tasks the store is behind
    on, each with its run_key, and the new cursor. Reads the catalog, writes nothing: the
    mtimes of sources found unchanged go to the first run's config. The same work asked
    for again after its run finished (no run is in flight when this is called) is a retry:
    its attempt, hence its run_key, is the next one."""
    plan = plan_migration(stores.catalog, tasks, force=False)
    behind = (plan.new + plan.changed)[:CHUNK]
    saving = stores.catalog.saves_in_flight([t.task_id for t in behind])
    if saving:
        # A save holds its task's lock from its JSON's rename to its commit: such a task is not
        # behind, its save is under way (a run for it migrated the same bytes again). Of the
        # others, a save that renamed its JSON before the scan has committed by now: asked again.
        again = plan_migration(stores.catalog, [t for t in behind if t.task_id not in saving], force=False)
        behind = again.new + again.changed
    if not behind and not plan.touched_mtimes:
        return [], cursor
    work = hashlib.sha256(json.dumps([[t.task_id, t.size, t.mtime_ns] for t in behind]
                                     + sorted(plan.touched_mtimes.items())).encode()).hexdigest()[:16]
    last = json.loads(cursor) if cursor else {}
    attempt = last.get("attempt", 0) + 1 if last.get("work") == work else 0
    if attempt > CATCH_UP_RETRIES:  # the same work failed each time: wait for it to change
        return [], json.dumps({"work": work, "attempt": CATCH_UP_RETRIES + 1, "gave_up": len(behind)})
    size = stores.settings.batch_size
    ids = [t.task_id for t in behind]
    batches = [ids[i:i + size] for i in range(0, len(ids), size)] or [[]]
    runs = [
        RunRequest(job_name=migrate_task_list_job.name, run_key=f"catch-up-{work}-{attempt}-{n}",
                   run_config={"ops": {"migrate_task_list": {"config": {
                       "task_ids": batch, **({"touched_mtimes": plan.touched_mtimes} if n == 0 else {})}}}},
                   tags={"result_assets/reason": "dual-write catch-up"})
        for n, batch in enumerate(batches)
    ]
    return runs, json.dumps({"work": work, "attempt": attempt})


def _migration_in_flight(instance) -> bool:
    runs = instance.get_runs(
        filters=RunsFilter(job_name=migrate_task_list_job.name, statuses=_IN_FLIGHT,
                           tags={"dagster/sensor_name": SENSOR_NAME}),
        limit=1)
    return bool(runs)


def task_partitions_request(keys: list[str]):
    from result_assets.assets.partitions import task_partitions

    return task_partitions.build_add_request(keys)


# The sensor as a plain object, for direct calls (tests): its default status is the
# definitions' business (build_new_task_sensor).
new_task_sensor = build_new_task_sensor()
