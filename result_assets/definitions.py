"""The code location: `dagster dev` in the repo root loads these definitions."""
from __future__ import annotations

from dagster import DefaultScheduleStatus, Definitions, ScheduleDefinition, define_asset_job, in_process_executor

from result_assets.assets.migration import legacy_result, migrate_task_list_job, migrate_tasks
from result_assets.assets.report import migration_report, store_maintenance
from result_assets.assets.resources import MigrationSettings, StoresResource
from result_assets.assets.sensors import new_task_sensor

MIGRATE_JOB = "migrate_job"
MAINTENANCE_JOB = "store_maintenance_job"
# Hourly: the hot tier stays small (an active platform saves a few thousand results a week)
# and the Delta log never grows long between checkpoints.
MAINTENANCE_CRON = "17 * * * *"


def build_definitions() -> Definitions:
    migrate_job = define_asset_job(
        MIGRATE_JOB, selection=[migrate_tasks],
        description="Migrate a range of task partitions (one batch).")
    maintenance_job = define_asset_job(
        MAINTENANCE_JOB, selection=[store_maintenance],
        description="Flush the hot tier, compact, re-point, checkpoint and vacuum the store.")
    maintenance_schedule = ScheduleDefinition(
        name="store_maintenance_schedule", job=maintenance_job, cron_schedule=MAINTENANCE_CRON,
        default_status=DefaultScheduleStatus.RUNNING,
        description="Keeps application saves and reads as fast after years as on the first day.")
    return Definitions(
        assets=[legacy_result, migrate_tasks, migration_report, store_maintenance],
        jobs=[migrate_job, migrate_task_list_job, maintenance_job],
        schedules=[maintenance_schedule],
        sensors=[new_task_sensor],
        resources={
            "stores": StoresResource(),
            "migration": MigrationSettings(),
        },
        # A batch's steps are thin: a process per step would cost more than the work.
        executor=in_process_executor,
    )


defs = build_definitions()
