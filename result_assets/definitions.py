"""The code location: `dagster dev` in the repo root loads these definitions.

`defs` is built when the code location loads, not at import: the settings it needs
(RESULT_BATCH_SIZE, RESULT_SOURCE_DIR) are read and validated then, with one clear
error for a bad value; the numbers only runs use are read when a run starts.
"""
from __future__ import annotations

from dagster import Definitions, definitions, in_process_executor

from result_assets.assets.io_managers import STORE_IO_MANAGER, StoreIOManager
from result_assets.assets.jobs import (
    MAINTENANCE_CRON,
    MAINTENANCE_JOB,
    MIGRATE_JOB,
    maintenance_job,
    maintenance_schedule,
    migrate_job,
)
from result_assets.assets.migration import build_migrate_tasks, legacy_result, migrate_task_list_job
from result_assets.assets.report import migration_report, store_maintenance
from result_assets.assets.resources import PREFETCH, migration_resource, stores_resource
from result_assets.assets.saves import report_saves_job, saved_results_sensor
from result_assets.assets.sensors import build_new_task_sensor, default_status
from result_assets.migration.convert import Prefetch
from result_assets.settings import Settings

__all__ = ["MAINTENANCE_CRON", "MAINTENANCE_JOB", "MIGRATE_JOB", "build_definitions", "defs"]


def build_definitions(settings: Settings | None = None) -> Definitions:
    settings = settings or Settings.for_definitions()
    migrate_tasks = build_migrate_tasks(settings.batch_size)
    stores = stores_resource()
    return Definitions(
        assets=[legacy_result, migrate_tasks, migration_report, store_maintenance],
        jobs=[migrate_job(migrate_tasks), migrate_task_list_job, maintenance_job, report_saves_job],
        schedules=[maintenance_schedule],
        sensors=[build_new_task_sensor(default_status(settings)), saved_results_sensor],
        resources={
            "stores": stores,
            "migration": migration_resource(),
            PREFETCH: Prefetch.none(),
            STORE_IO_MANAGER: StoreIOManager(stores=stores),
        },
        # A batch's steps are thin: a process per step would cost more than the work.
        executor=in_process_executor,
    )


@definitions
def defs() -> Definitions:
    return build_definitions()
