"""The store's side of maintenance: compact, re-point, checkpoint, vacuum, locate.

migration/maintenance.py runs these after flushing the hot tier through the batch engine
(`maintain`, what the `store_maintenance` schedule and `result-assets maintain` run). Each
step keeps the readers' guarantee (a task is read as its publishing commit wrote it):

- locate: a row published before locations were recorded gets them, from the files of
  the Delta version it names, so it no longer needs the log's history;
- compact: small files are merged (`optimize.compact`), so a read opens few files and the
  log stays short; `z_order=True` also clusters by task_id (rewrites the whole table);
- re-point: a catalog row naming a file that left the snapshot is pointed at the same
  rows' new place, but only when the rows there are proven the same (digests); otherwise
  (a write that was never published, or not yet) it keeps naming its old file;
- checkpoint: a Delta checkpoint, so opening the table never replays a long log;
- vacuum: files out of the snapshot for longer than the retention are deleted, except
  every file a catalog row still names: no reader ever loses its rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from deltalake.exceptions import DeltaError

from result_assets.store.delta_tables import CURVES, SCHEMAS, SIGNALS, writer_properties
from result_assets.store.row_digest import rows_digest
from result_assets.store.row_locations import RowsGone


@dataclass
class MaintenanceReport:
    flushed: int = 0
    still_hot: int = 0
    located: int = 0  # rows published before locations were recorded, now located
    tables: dict[str, dict] = field(default_factory=dict)  # per table: files, bytes, version before/after
    repointed: int = 0
    unreadable: list[str] = field(default_factory=list)  # tasks whose named files are gone
    vacuumed_files: int = 0
    vacuum_held: str | None = None  # why vacuum did not run though asked to
    seconds: dict[str, float] = field(default_factory=dict)
    flushed_task_ids: list[str] = field(default_factory=list)
    # The serving cache after its trim: entries, stored and file bytes, bound, evicted (serving_cache.py)
    serving_cache: dict = field(default_factory=dict)


def compact_repoint_vacuum(stores, report: MaintenanceReport, timed, *, compact: bool, z_order: bool,
                           vacuum: bool, retention_hours: int) -> None:
    unlocated_left = stores.catalog.unlocated_tasks() if vacuum else {}
    for table in (SIGNALS, CURVES):
        dt = stores.delta.open(table)
        if dt is None:
            continue
        # The table's own writer settings, or compaction would undo the encodings and row groups.
        properties = writer_properties(table, dt.schema().to_arrow())
        if z_order:
            timed("compact", dt.optimize.z_order, ["task_id"], writer_properties=properties)
        elif compact:
            timed("compact", dt.optimize.compact, writer_properties=properties)
        repointed, unreadable = timed("repoint", repoint_moved_rows, stores, table)
        report.repointed += repointed
        report.unreadable += unreadable
        dt = stores.delta.open(table)
        timed("checkpoint", dt.create_checkpoint)
        timed("checkpoint", dt.cleanup_metadata)
        if vacuum and unlocated_left:
            # Rows without locations name no file, only a version: vacuum would take the files
            # those of them that are still readable are read from. Held until they are located.
            report.vacuum_held = (f"{len(unlocated_left)} row(s) published before locations were recorded could "
                                  "not be located (their Delta version or a file of it is gone): vacuum waits "
                                  "until they are saved again, rolled back or migrated with --force")
        elif vacuum:
            report.vacuumed_files += timed("vacuum", vacuum_unnamed, stores, table, retention_hours)
        report.tables[table]["after"] = table_facts(stores, table)


def table_facts(stores, table: str) -> dict:
    dt = stores.delta.open(table)
    if dt is None:
        return {"files": 0, "bytes": 0, "version": None}
    size, files = stores.delta.total_bytes(table)
    return {"files": files, "bytes": size, "version": dt.version()}


def current_files(stores, table: str, version: int | None = None) -> set[str]:
    dt = stores.delta.open(table) if version is None else stores.delta.open_version(table, version)
    return set() if dt is None else set(pa.table(dt.get_add_actions(flatten=True)).column("path").to_pylist())


def locate_unlocated_rows(stores) -> tuple[int, list[str]]:
    """(located, unreadable): every published row without locations (written before they were
    recorded) given the file and row groups of the Delta version it names (the current one
    when it names none). A version whose log or files are gone is left, its tasks named as
    unreadable (as repoint_moved_rows names them): one old task must not stop maintenance,
    whose flush keeps the hot tier small."""
    unlocated = stores.catalog.unlocated_tasks()  # {task_id: (catalog version, signals_version, curves_version)}
    if not unlocated:
        return 0, []
    found: dict[str, dict] = {t: {} for t in unlocated}
    unreadable: set[str] = set()
    for table, column in ((SIGNALS, 1), (CURVES, 2)):
        by_version: dict[int | None, list[str]] = {}
        for task_id, row in unlocated.items():
            by_version.setdefault(row[column], []).append(task_id)
        for version, ids in by_version.items():
            try:
                files = sorted(current_files(stores, table, version)) if stores.delta.open(table) else []
                located = stores.delta.files.locate(table, files, ids)
            except (RowsGone, DeltaError, OSError):
                unreadable.update(ids)
                continue
            for task_id, locations in located.items():
                found[task_id][table] = locations
    moves = {t: {"row_locations": locs} for t, locs in found.items() if t not in unreadable}
    located = stores.catalog.repoint(moves, expected_versions={t: r[0] for t, r in unlocated.items()})
    return len(located), sorted(unreadable)


def repoint_moved_rows(stores, table: str) -> tuple[int, list[str]]:
    """(re-pointed, unreadable): catalog rows naming files no longer in the snapshot, pointed at
    where the same rows live now. Rows that differ there keep naming their old files."""
    current = current_files(stores, table)
    named = stores.catalog.located_tasks()  # {task_id: (version, row_locations)}
    stale = {t: locs[table] for t, (_, locs) in named.items()
             if table in locs and any(path not in current for path, _ in locs[table])}
    if not stale:
        return 0, []
    files = stores.delta.files
    unreadable = sorted(t for t, locs in stale.items() if not all(files.exists(table, p) for p, _ in locs))
    for task_id in unreadable:
        del stale[task_id]
    published = files.read(table, stale, SCHEMAS[table])
    now_at = files.locate(table, sorted(current), list(stale))
    now = files.read(table, now_at, SCHEMAS[table])
    moves = {t: {"row_locations": {**named[t][1], table: now_at[t]}} for t in stale
             if rows_digest(now[t]) == rows_digest(published[t])}
    moved = stores.catalog.repoint(moves, expected_versions={t: named[t][0] for t in moves})
    return len(moved), unreadable


def vacuum_unnamed(stores, table: str, retention_hours: int) -> int:
    """Delete the files Delta's vacuum would (out of the snapshot longer than the retention),
    except those a catalog row still names. Returns how many were deleted.

    A full vacuum: it lists the table's files. The lite one learns what to delete only from the
    log's remove records, and a checkpoint (this maintenance's own, or the one delta-rs writes
    every 100 commits) leaves out those older than the table's deleted-file retention (a week):
    at the default 168-hour retention it deleted nothing, ever. Nor does the log name a file
    whose commit never happened (a writer killed mid-commit, a full disk). Safe here: the
    exclusive store write lock keeps every other Delta writer out."""
    dt = stores.delta.open(table)
    candidates = dt.vacuum(retention_hours=retention_hours, dry_run=True, enforce_retention_duration=False,
                           full=True)
    named = {path for _, locs in stores.catalog.located_tasks().values() for path, _ in locs.get(table, [])}
    files = stores.delta.files
    deleted = 0
    for uri in candidates:
        relative = uri.rsplit(f"/{table}/", 1)[-1]
        if relative in named:
            continue
        try:
            files.filesystem.delete_file(files.path(table, relative))
            deleted += 1
        except FileNotFoundError:
            pass
    return deleted

