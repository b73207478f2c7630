"""The code location's jobs and schedule over the assets, by the names the CLI launches."""
from __future__ import annotations

from dagster import DefaultScheduleStatus, ScheduleDefinition, define_asset_job

from result_assets.assets.report import store_maintenance

MIGRATE_JOB = "migrate_job"
TASK_LIST_JOB = "migrate_task_list_job"
MAINTENANCE_JOB = "store_maintenance_job"
# Hourly: the hot tier stays small (an active platform saves a few thousand results a week)
# and the Delta log never grows long between checkpoints.
MAINTENANCE_CRON = "17 * * * *"


def migrate_job(migrate_tasks):
    return define_asset_job(MIGRATE_JOB, selection=[migrate_tasks],
                            description="Migrate a range of task partitions (one batch).")


maintenance_job = define_asset_job(
    MAINTENANCE_JOB, selection=[store_maintenance],
    description="Flush the hot tier, compact, re-point, checkpoint and vacuum the store.")

maintenance_schedule = ScheduleDefinition(
    name="store_maintenance_schedule", job=maintenance_job, cron_schedule=MAINTENANCE_CRON,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Keeps application saves and reads as fast after years as on the first day.")
