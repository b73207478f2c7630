"""Keeping the store fast for years: flush the hot tier, compact, re-point, checkpoint, vacuum.

`maintain` is what the `store_maintenance` schedule runs and what `result-assets maintain`
does. Each step keeps the readers' guarantee (a task is read as its publishing commit
wrote it):

- flush: hot-tier saves move into Delta in batches through the batch engine;
- compact: z-order by task_id, so one task's rows sit in one row group of few files;
- re-point: every catalog row naming a file that is no longer in the table's current
  snapshot is pointed at where the same rows live now (proven equal by digest); if the
  current rows differ (a write that was never published), the published rows are
  written back first;
- checkpoint: a Delta checkpoint, so opening the table never replays a long log;
- vacuum: files out of the snapshot for longer than the retention are deleted; by then
  no catalog row names them (re-point ran first), and rollback can still read every
  version inside the retention.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import pyarrow as pa

from result_assets.legacy.schema import CURVE_SCHEMA, SIGNAL_SCHEMA
from result_assets.store.delta_tables import CURVES, SIGNALS, writer_properties
from result_assets.store.row_digest import rows_digest

SCHEMAS = {SIGNALS: SIGNAL_SCHEMA, CURVES: CURVE_SCHEMA}
DEFAULT_RETENTION_HOURS = 168  # a week: Delta's own default, and how far back rollback reaches


@dataclass
class MaintenanceReport:
    flushed: int = 0
    still_hot: int = 0
    tables: dict[str, dict] = field(default_factory=dict)  # per table: files, bytes, commits before/after
    repointed: int = 0
    healed: int = 0
    vacuumed_files: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    flushed_task_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "flushed_task_ids"}


def maintain(stores, *, compact: bool = True, vacuum: bool = True, retention_hours: int = DEFAULT_RETENTION_HOURS,
             flush_batch: int = 1000, max_flush: int | None = None) -> MaintenanceReport:
    from result_assets.migration.engine import flush_hot_tier

    report = MaintenanceReport()

    def timed(name, fn, *args, **kwargs):
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            report.seconds[name] = round(report.seconds.get(name, 0.0) + time.perf_counter() - started, 4)

    for table in (SIGNALS, CURVES):
        report.tables[table] = {"before": table_facts(stores, table)}
    while max_flush is None or report.flushed < max_flush:
        flushed = timed("flush", flush_hot_tier, stores, flush_batch)
        report.flushed += len(flushed.moved)
        report.flushed_task_ids += flushed.moved
        if len(flushed.moved) + len(flushed.kept) < flush_batch or not flushed.moved:
            break
    report.still_hot = stores.catalog.hot_count()
    for table in (SIGNALS, CURVES):
        dt = stores.delta.open(table)
        if dt is None:
            continue
        if compact:
            # The table's own writer settings, or compaction would undo the encodings and row groups.
            timed("compact", dt.optimize.z_order, ["task_id"], writer_properties=writer_properties(dt.schema().to_arrow()))
        repointed, healed = timed("repoint", repoint_moved_rows, stores, table)
        report.repointed += repointed
        report.healed += healed
        dt = stores.delta.open(table)
        timed("checkpoint", dt.create_checkpoint)
        timed("checkpoint", dt.cleanup_metadata)
        if vacuum:
            deleted = timed("vacuum", dt.vacuum, retention_hours=retention_hours, dry_run=False,
                            enforce_retention_duration=False)
            report.vacuumed_files += len(deleted)
        report.tables[table]["after"] = table_facts(stores, table)
    return report


def table_facts(stores, table: str) -> dict:
    dt = stores.delta.open(table)
    if dt is None:
        return {"files": 0, "bytes": 0, "version": None}
    size, files = stores.delta.total_bytes(table)
    return {"files": files, "bytes": size, "version": dt.version()}


def repoint_moved_rows(stores, table: str) -> tuple[int, int]:
    """(re-pointed, healed): catalog rows naming files no longer in the snapshot, moved to
    where the same rows live now. Returns counts."""
    dt = stores.delta.open(table)
    if dt is None:
        return 0, 0
    current = set(pa.table(dt.get_add_actions(flatten=True)).column("path").to_pylist())
    named = stores.catalog.located_tasks()  # {task_id: (version, row_locations)}
    stale = {t: locs[table] for t, (_, locs) in named.items()
             if table in locs and any(path not in current for path, _ in locs[table])}
    if not stale:
        return 0, 0
    files = stores.delta.files
    published = files.read(table, stale, SCHEMAS[table])
    now_at = files.locate(table, sorted(current), list(stale))
    now = files.read(table, now_at, SCHEMAS[table])
    new_locations = {t: now_at[t] for t in stale if rows_digest(now[t]) == rows_digest(published[t])}
    differing = sorted(set(stale) - set(new_locations))
    if differing:  # the table's current rows are not the published ones: write those back
        commit = stores.delta.replace_tasks(table, pa.concat_tables([published[t] for t in differing]), differing)
        new_locations.update(stores.delta.locate(commit, differing))
    moves = {}
    for task_id, locations in new_locations.items():
        version, row_locations = named[task_id]
        moves[task_id] = {"row_locations": {**row_locations, table: locations}}
    moved = stores.catalog.repoint(moves, expected_versions={t: named[t][0] for t in moves})
    return len(moved), len(set(differing) & set(moved))
