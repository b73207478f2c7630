"""Running a migration through Dagster from the CLI: the runs land in the instance and show in the UI.

Tasks whose partitions are contiguous (in Dagster's insertion order) run as range
runs of the asset job, batch-size partitions each; scattered ones (a forced or
retried subset) run as the explicit-list job, batch-size ids each.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from dagster import DagsterInstance

from result_assets.assets.in_process_runs import process_tags
from result_assets.assets.jobs import MIGRATE_JOB, TASK_LIST_JOB
from result_assets.assets.partitions import TASKS_PARTITION, register_partitions
from result_assets.assets.resources import PREFETCH
from result_assets.migration.sources import LegacyFile

if TYPE_CHECKING:
    from result_assets.migration.convert import Prefetch

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
# The CLI prints its own progress; Dagster's DEBUG event lines stay in the instance (and UI).
# The console shows nothing of a run: the CLI prints a failed run's error on one line, and
# the instance keeps every event (a failed step's stack trace included) for the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass
class RunOutcome:
    run_id: str
    success: bool
    tasks: int
    error: str | None = None


def plan_runs(instance: DagsterInstance, keys: list[str], batch_size: int) -> tuple[list[list[str]], list[list[str]]]:
    """(range batches, explicit-list batches) covering keys."""
    position = {k: i for i, k in enumerate(instance.get_dynamic_partitions(TASKS_PARTITION))}
    ordered = sorted(keys, key=position.__getitem__)
    groups: list[list[str]] = []
    for key in ordered:
        if groups and position[groups[-1][-1]] + 1 == position[key] and len(groups[-1]) < batch_size:
            groups[-1].append(key)
        else:
            groups.append([key])
    ranges = [g for g in groups if len(g) > 1]
    singles = [g[0] for g in groups if len(g) == 1]
    lists = [singles[i:i + batch_size] for i in range(0, len(singles), batch_size)]
    return ranges, lists


def run_migration(instance: DagsterInstance, defs, stores, tasks: list[LegacyFile], batch_size: int,
                  ahead: Prefetch, progress: Callable[[int, int, int, float], None] | None = None
                  ) -> list[RunOutcome]:
    """The runs one after the other, in this process. While one runs, the workers already
    convert the next one's tasks (`ahead`, handed to every run as its `prefetch` resource): the
    conversion of batch N+1 overlaps the writes, read-backs and events of batch N. The caller
    owns `ahead` (it may have started the first batches already) and discards it."""
    from result_assets.legacy import task_id_for

    stores.catalog.register_sources({t.task_id: (t.partition_key, t.path) for t in tasks})
    register_partitions(instance, [t.partition_key for t in tasks])
    config = {**QUIET, "resources": stores_config(stores.settings)}
    ranges, lists = plan_runs(instance, [t.partition_key for t in tasks], batch_size)
    range_job = defs.resolve_job_def(MIGRATE_JOB)
    list_job = defs.resolve_job_def(TASK_LIST_JOB)
    tags = process_tags()
    runs = [(range_job, keys, {"tags": {**tags, RANGE_START: keys[0], RANGE_END: keys[-1]}, "run_config": config})
            for keys in ranges]
    runs += [(list_job, keys, {"tags": tags, "run_config": {**config, "ops": {"migrate_task_list": {"config": {
        "task_ids": [task_id_for(k) for k in keys]}}}}}) for keys in lists]
    by_key = {t.partition_key: t for t in tasks}
    started, done, outcomes = time.perf_counter(), 0, []
    for i, (job, keys, arguments) in enumerate(runs):
        for next_run in runs[i:i + 2]:  # this run's tasks first, then the next run's
            ahead.start([by_key[k] for k in next_run[1]])
        result = job.execute_in_process(instance=instance, raise_on_error=False,
                                        resources={PREFETCH: ahead}, **arguments)
        if _interrupted(result):  # Dagster ends the run on Ctrl-C and returns: the batches after it do not run
            raise KeyboardInterrupt
        outcomes.append(_outcome(result, len(keys)))
        done += len(keys)
        if progress:
            progress(len(outcomes), len(runs), done, time.perf_counter() - started)
    return outcomes


def materialize_report(instance: DagsterInstance, defs, stores) -> bool:
    from dagster import materialize

    from result_assets.assets.report import migration_report
    from result_assets.assets.resources import StoresResource

    resource = StoresResource(**stores_config(stores.settings)["stores"]["config"])
    result = materialize([migration_report], instance=instance, raise_on_error=False, run_config=QUIET,
                         resources={"stores": resource}, tags=process_tags())
    return result.success


def stores_config(settings) -> dict:
    """The stores resource's run config for what these settings change against the environment
    (the CLI's flags): values travel to the run, nothing is written to the environment. Only
    locations: a database URL (it may hold a password) is never written into a run's config."""
    from result_assets.settings import Settings

    base = Settings.from_env()
    fields = {"home": str(settings.home), "store_root": settings.store_root, "backup_dir": settings.backup_dir,
              "source_dir": settings.source_dir}
    defaults = {"home": str(base.home), "store_root": base.store_root, "backup_dir": base.backup_dir,
                "source_dir": base.source_dir}
    return {"stores": {"config": {k: v for k, v in fields.items() if v != defaults[k]}}}


def _outcome(result, tasks: int) -> RunOutcome:
    error = None
    if not result.success:
        failures = [e for e in result.all_events if e.is_failure]
        error = failure_message(failures[0]) if failures else "run failed"
    return RunOutcome(result.run_id, result.success, tasks, error)


def _interrupted(result) -> bool:
    """The run ended because the process was interrupted (Ctrl-C, SIGTERM)."""
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None)
        while error is not None:
            if error.cls_name in ("DagsterExecutionInterruptedError", "KeyboardInterrupt"):
                return True
            error = error.cause
    return False


def failure_message(event) -> str:
    """A failed step's error on one line: its root cause ("OSError: [Errno 28] No space left
    on device"; a failed blocking check: which checks failed)."""
    error = getattr(event.event_specific_data, "error", None)
    message = event.message
    if error is not None:
        while error.cause is not None:
            error = error.cause
        head, _, text = error.message.partition(": ")  # "dagster._core.errors.X: text"
        message += " " + (text if head.startswith("dagster") else error.message)
    return " ".join(message.split())
