"""Registers new task directories of RESULT_SOURCE_DIR as partitions."""

from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor

from result_assets.assets.partitions import TASKS_PARTITION
from result_assets.migration.sources import SourceDirError, scan_source_dir
from result_assets.settings import Settings
from result_assets.store.stores import Stores

CHUNK = 1000  # keys per tick: the sensor checks each requested key, so keep ticks short


@sensor(minimum_interval_seconds=30, default_status=DefaultSensorStatus.STOPPED,
        description="Adds a partition for each new <RESULT_SOURCE_DIR>/<task_id>/result.json.")
def new_task_sensor(context: SensorEvaluationContext):
    settings = Settings.from_env()
    if not settings.source_dir:
        return SkipReason("RESULT_SOURCE_DIR is not set")
    try:
        scan = scan_source_dir(settings.source_dir)
    except SourceDirError as exc:
        return SkipReason(str(exc))
    known = set(context.instance.get_dynamic_partitions(TASKS_PARTITION))
    new = [t for t in scan.tasks if t.partition_key not in known][:CHUNK]
    if not new:
        return SkipReason(f"no new task among {len(scan.tasks)}")
    Stores(settings).catalog.register_sources({t.task_id: (t.partition_key, t.path) for t in new})
    return SensorResult(dynamic_partitions_requests=[
        task_partitions_request([t.partition_key for t in new])])


def task_partitions_request(keys: list[str]):
    from result_assets.assets.partitions import task_partitions

    return task_partitions.build_add_request(keys)
