"""The project's side of the bench: (d) the converter alone, and what (c) needs measured in-process.

Each function runs inside a worker process whose environment names its own fresh
RESULT_ASSETS_HOME, so Stores.from_env() and the Dagster instance are that home's.
"""
from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

from benchmarks.measure import corpus_files, tree_bytes

TASK_ASSETS = 5  # result_backup, validated_result, signal_table, curve_table, catalog_entry


def converter(corpus: Path, store_root: Path, batch: int = 50) -> dict:
    """(d) bytes -> validate_result -> Delta, a commit per table per batch; no Dagster, no catalog."""
    import pyarrow as pa

    from result_assets.legacy import InvalidResult, validate_result
    from result_assets.store.delta_tables import CURVES, SIGNALS, DeltaStore

    files = corpus_files(corpus)
    store = DeltaStore(str(store_root))
    started, cpu_started = time.perf_counter(), time.process_time()
    json_bytes = quarantined = 0
    for start in range(0, len(files), batch):
        chunk = files[start:start + batch]
        signals, curves = [], []
        for task_id, path in chunk:
            raw = path.read_bytes()
            json_bytes += len(raw)
            try:
                result = validate_result(task_id, raw)
            except (InvalidResult, RecursionError):
                quarantined += 1
                continue
            signals.append(result.signals)
            curves.append(result.curves)
        ids = [t for t, _ in chunk]
        if signals:
            store.replace_tasks(SIGNALS, pa.concat_tables(signals), ids)
            store.replace_tasks(CURVES, pa.concat_tables(curves), ids)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    stored, delta_files = tree_bytes(store_root)
    return {"work_seconds": seconds, "cpu_seconds": cpu, "json_bytes": json_bytes, "quarantined": quarantined,
            "stored_bytes": stored, "delta_files": delta_files}


def largest_task_speed(files: list[tuple[str, Path]], repeats: int = 3) -> dict:
    """Parse, normalize and prove (migration.convert.convert, what a worker does per task) of the
    largest task, best of `repeats`: MB/s of wall and of one core's CPU time."""
    from result_assets.migration.batch import RawResult
    from result_assets.migration.convert import convert
    from result_assets.migration.sources import LegacyFile
    from result_assets.store.backups import sha256_hex

    task_id, path = max(files, key=lambda f: f[1].stat().st_size)
    raw = path.read_bytes()
    source = LegacyFile(task_id, str(path), len(raw), path.stat().st_mtime_ns)
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        v = convert(RawResult(source, raw, sha256_hex(raw)))
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return {"largest_task": task_id, "largest_task_bytes": len(raw),
            "largest_task_signals": v.result.n_signals if v.result else 0, "largest_task_proven": v.proven,
            "largest_task_seconds": best_wall, "largest_task_cpu_seconds": best_cpu,
            "largest_task_mb_s": len(raw) / best_wall / 1e6, "largest_task_mb_s_per_core": len(raw) / best_cpu / 1e6}


def plain_steps(corpus: Path, batch: int) -> dict:
    """The migration's own steps, batch by batch, exactly as the task-list op calls them, with no Dagster.

    Timed against `migrate`'s runs this isolates what Dagster adds (events, checks
    as events, run records): the bookkeeping figure.
    """
    from result_assets.migration.sources import scan_source_dir
    from result_assets.store.stores import Stores

    stores = Stores.from_env()
    stores.catalog  # noqa: B018 - schema creation is setup, not per-task work
    tasks = scan_source_dir(corpus).tasks
    started = time.perf_counter()
    for _ in pipelined_batches(stores, tasks, batch):
        pass
    return {"work_seconds": time.perf_counter() - started, "tasks": len(tasks)}


def pipelined_batches(stores, tasks: list, batch: int):
    """Each batch's engine.BatchResult, the next batch converted ahead as `migrate` does, no Dagster."""
    from result_assets.migration.convert import Prefetch
    from result_assets.migration.engine import run_batch

    stores.catalog.register_sources({t.task_id: (t.partition_key, t.path) for t in tasks})
    batches = [tasks[start:start + batch] for start in range(0, len(tasks), batch)]
    settings = stores.settings
    ahead = Prefetch(settings.max_file_bytes, settings.conversion_workers)
    try:
        for i, files in enumerate(batches):
            for next_batch in batches[i:i + 2]:
                ahead.start(next_batch)
            yield run_batch(stores, files, ahead=ahead)
    finally:
        ahead.discard()


def inspect_migration(corpus: Path, export_dir: Path, valid_ids: list[str]) -> dict:
    """After (c): Dagster run time, store_maintenance before/after, and the export compared with the sources."""
    from dagster import DagsterRunStatus, RunsFilter, materialize

    from result_assets.assets.report import store_maintenance, store_report
    from result_assets.assets.resources import StoresResource
    from result_assets.assets.instance import get_instance
    from result_assets.store.stores import Stores

    stores = Stores.from_env()
    instance = get_instance(stores.settings)
    records = instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE]))
    migrate_runs = [r for r in records if r.dagster_run.job_name in ("migrate_job", "migrate_task_list_job")]
    run_seconds = sum((r.end_time or 0) - (r.start_time or 0) for r in migrate_runs)
    starts, ends = [r.start_time for r in migrate_runs if r.start_time], [r.end_time for r in migrate_runs if r.end_time]
    events: dict[str, int] = {}
    for r in migrate_runs:
        for entry in instance.all_logs(r.dagster_run.run_id):
            kind = entry.dagster_event_type.value if entry.is_dagster_event else "LOG_MESSAGE"
            events[kind] = events.get(kind, 0) + 1

    before = store_report(stores)
    started = time.perf_counter()
    result = materialize([store_maintenance], instance=instance, resources={"stores": StoresResource()},
                         raise_on_error=False)
    maintenance_seconds = time.perf_counter() - started
    after = store_report(stores)
    return {
        "migrate_runs": len(migrate_runs), "run_seconds": run_seconds, "run_events": events,
        "first_run_started_at": min(starts, default=None), "last_run_ended_at": max(ends, default=None),
        "maintenance_ok": result.success, "maintenance_seconds": maintenance_seconds,
        "before": _store_figures(before), "after": _store_figures(after),
        "catalog_bytes": _catalog_bytes(stores),
        **compare_export(corpus, export_dir, valid_ids),
    }


def _store_figures(report: dict) -> dict:
    return {k: report.get(k) for k in ("stored_bytes", "delta_files", "compression_ratio", "migrated_json_bytes",
                                       "migrated", "quarantined")}


def _catalog_bytes(stores) -> int:
    from benchmarks.measure import relation_bytes
    from result_assets.store.postgres import catalog_url

    return relation_bytes(catalog_url(stores.settings), tables=["tasks", "task_symbols", "task_sources",
                                                                "tasks_history"])


def compare_export(corpus: Path, export_dir: Path, valid_ids: list[str]) -> dict:
    """Every valid source against its exported file, byte for byte (issue 19: the file
    itself); a file whose bytes differ is named with its first difference under
    legacy-format.md's rules, when the documents differ too."""
    from result_assets.legacy import compare_documents, parse_document

    mismatched, missing, first = 0, 0, None
    for task_id in valid_ids:
        exported = export_dir / f"{quote(task_id, safe='')}.json"
        if not exported.exists():
            missing += 1
            continue
        source, written = (corpus / task_id / "result.json").read_bytes(), exported.read_bytes()
        if written != source:
            mismatched += 1
            differences = compare_documents(parse_document(source), parse_document(written))
            first = first or f"{task_id}: {differences[0] if differences else 'the bytes differ, the documents do not'}"
    return {"lossless_checked": len(valid_ids), "lossless_mismatches": mismatched, "lossless_missing": missing,
            "first_mismatch": first}
