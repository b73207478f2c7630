"""The code location: `dagster dev` in the repo root loads these definitions."""
from __future__ import annotations

from dagster import Definitions, define_asset_job, in_process_executor

from result_assets.assets.io_managers import (
    BackupIOManager,
    CatalogIOManager,
    DeltaTableIOManager,
    LegacyResultIOManager,
    ValidatedResultIOManager,
)
from result_assets.assets.migration import legacy_result, migrate_task_list_job, migrate_tasks
from result_assets.assets.report import migration_report, store_maintenance
from result_assets.assets.resources import MigrationSettings, StoresResource
from result_assets.assets.sensors import new_task_sensor
from result_assets.store.delta_tables import CURVES, SIGNALS
from result_assets.store.stores import Stores

MIGRATE_JOB = "migrate_job"


def build_definitions(stores: Stores | None = None) -> Definitions:
    stores = stores or Stores.from_env()
    migrate_job = define_asset_job(
        MIGRATE_JOB, selection=[migrate_tasks],
        description="Migrate a range of task partitions (one batch).")
    return Definitions(
        assets=[legacy_result, migrate_tasks, migration_report, store_maintenance],
        jobs=[migrate_job, migrate_task_list_job],
        sensors=[new_task_sensor],
        resources={
            "stores": StoresResource(),
            "migration": MigrationSettings(),
            "legacy_io_manager": LegacyResultIOManager(stores),
            "backup_io_manager": BackupIOManager(stores),
            "validated_io_manager": ValidatedResultIOManager(stores),
            "signal_io_manager": DeltaTableIOManager(stores, SIGNALS),
            "curve_io_manager": DeltaTableIOManager(stores, CURVES),
            "catalog_io_manager": CatalogIOManager(stores),
        },
        # A batch's steps are thin: a process per step would cost more than the work.
        executor=in_process_executor,
    )


defs = build_definitions()
