"""Rollback: undo the last re-migration (a force) of a task (`result-assets rollback`).

The catalog keeps every replaced row in tasks_history, with the Delta versions that held
its rows (signals_version, curves_version) and where it read them (row_locations).
Rollback takes the earlier file's exact bytes (from the backups, else written again from
the rows read there by Delta time travel and the earlier row's spelling), and publishes
them through the batch engine like any other write: converted and proven (the bytes
written again from what is stored hash to the earlier SHA-256), committed, read back and
published in one catalog transaction, or not at all, the current version staying
readable. The replaced row goes to history as always: a rollback can be rolled back.

A rollback holds the task's save lock throughout (no application save of the task runs
inside it), and publishes only over the version it read (a migration that published the
task meanwhile stays: the rollback is refused and can be run again).
"""
from __future__ import annotations

from dataclasses import dataclass

import psycopg2.extras

from result_assets.legacy import exact
from result_assets.migration.batch import RawResult, ValidatedResult
from result_assets.migration.convert import convert
from result_assets.migration.engine import publish_batch
from result_assets.migration.sources import LegacyFile
from result_assets.store.backups import sha256_hex
from result_assets.store.delta_tables import CURVES, SIGNALS
from result_assets.store.history import rows_at_version, version_at
from result_assets.store.reader import read_rows

class RollbackError(Exception):
    pass


@dataclass
class RolledBack:
    task_id: str
    status: str
    source_sha256: str
    replaced_sha256: str
    signals: int
    curve_points: int
    from_versions: tuple  # Delta (signals, curves) versions the rows were read at
    to_versions: tuple  # the commits that wrote them back
    source_restored: str | None = None  # the source file rewritten with the old bytes
    note: str | None = None


def previous_row(stores, task_id: str, current: dict) -> dict | None:
    """The task's catalog row as it was before its last replacement by another version (the
    same bytes published again, by a re-run or a retried save, are not a version to go back to)."""
    conn = stores.catalog.connect()
    with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        # A 'failed' row was never published: not a version to go back to.
        cur.execute("SELECT * FROM tasks_history WHERE task_id = %s AND status <> 'failed' "
                    "AND (source_sha256, status) IS DISTINCT FROM (%s, %s) "
                    "ORDER BY replaced_at DESC, version DESC LIMIT 1",
                    (task_id, current["source_sha256"], current["status"]))
        return cur.fetchone()


def rollback_task(stores, task_id: str, restore_source: bool = False) -> RolledBack:
    with stores.catalog.task_save_lock(task_id):
        return _rollback(stores, task_id, restore_source)


def _rollback(stores, task_id: str, restore_source: bool) -> RolledBack:
    current = stores.catalog.task(task_id)
    if current is None:
        raise RollbackError(f"{task_id}: not in the catalog")
    prev = previous_row(stores, task_id, current)
    if prev is None:
        raise RollbackError(f"{task_id}: no earlier version to roll back to (migrated once)")
    versions = (prev["signals_version"], prev["curves_version"])
    migrated = prev["status"] == "migrated"
    old_bytes = stores.backups.read_version(task_id, prev["source_sha256"])
    # Where its rows are gone (a save that lived in the hot tier only, files vacuumed), the
    # earlier file's bytes in the backups are enough: they are converted and proven anew.
    signals = curves = None
    try:
        signals, curves, versions = _earlier_rows(stores, task_id, prev, versions)
    except RollbackError:
        if not (migrated and old_bytes is not None):
            raise
        versions = (None, None)
    if signals is not None:
        want = ((prev["n_signals"] or 0), (prev["n_curve_points"] or 0)) if migrated else (0, 0)
        if (signals.num_rows, curves.num_rows) != want:
            raise RollbackError(f"{task_id}: Delta versions {versions} hold {signals.num_rows} signals and "
                                f"{curves.num_rows} curve points, the earlier row says {want}: not rolling back")
    source = LegacyFile(task_id, prev["source_path"] or "", prev["source_bytes"], prev["source_mtime_ns"] or 0)
    if migrated:
        # The earlier file's exact bytes (the backups', else written again from the rows read
        # back and the earlier row's spelling), converted and proven as a migration would.
        raw = old_bytes if old_bytes is not None else exact.file_bytes(
            prev["skeleton"], signals, curves, prev.get("spelling"), prev.get("exact_text"), prev["source_sha256"])
        if sha256_hex(raw) != prev["source_sha256"]:
            raise RollbackError(f"{task_id}: the earlier version's exact bytes are neither in the backups nor "
                                "written again from its rows (stored before spellings were kept): not rolling back")
        earlier = convert(RawResult(source, raw, prev["source_sha256"]))
    else:
        earlier = ValidatedResult(source, prev["source_sha256"], prev["source_bytes"], None, None,
                                  prev["reason"], 0.0)
    # A version saved by the application has no source file: its row keeps naming none.
    batch = publish_batch(stores, [earlier], [], keep_source_path=bool(prev["source_path"]),
                          expected_versions={task_id: current["version"]})
    if earlier.failure is not None:  # a quarantine record the publish turned away, too
        raise RollbackError(f"{task_id}: the earlier version was not published, the current one stays: "
                            f"{earlier.failure}")
    to_versions = tuple(rows.commit.version if rows.commit else None for rows in (batch.signals, batch.curves))
    note = None
    if migrated:  # its exact bytes, proven above (read from the backups or written again from its rows)
        old_bytes = raw
    if old_bytes is not None:
        stores.backups.save(task_id, old_bytes, prev["source_sha256"])  # the newer bytes move to previous/
    else:
        note = "the earlier bytes are not in the backups; the backup keeps the newer file"
    restored = None
    if restore_source:
        restored, kept = _restore_source(stores, task_id, prev, old_bytes)
        if kept:
            note = f"the source file held bytes no backup had: they are kept at {kept}"
    elif _source_differs(stores, task_id, prev):
        if _superseded_now(stores, task_id, prev):  # the restored version is an application save
            note = ("the source file holds another version, older than this rollback: it stays superseded "
                    "(migrate leaves it alone); --restore-source puts the restored bytes there")
        else:
            note = ("the source file differs from the restored version: `status` shows the task stale and a "
                    "migrate (or the dual-write sensor) would re-apply it; --restore-source puts the restored bytes there")
    counts = ((signals.num_rows, curves.num_rows) if signals is not None else
              (earlier.result.n_signals, earlier.result.n_curve_points) if earlier.result else (0, 0))
    return RolledBack(task_id, prev["status"], prev["source_sha256"], current["source_sha256"],
                      *counts, versions, to_versions, restored, note)


def _earlier_rows(stores, task_id: str, prev: dict, versions: tuple):
    """(signal rows, curve rows, Delta versions) of the earlier version, as it was published;
    RollbackError when they cannot be read."""
    if prev["status"] == "migrated" and not prev.get("row_locations") and versions == (None, None):
        # A save that lived in the hot tier only: its rows left with it, its bytes did not.
        raise RollbackError(f"{task_id}: the earlier version was an application save replaced before it "
                            "reached the Delta tables, and its exact bytes are not in the backups")
    if None in versions:  # not recorded: the versions current when that row was committed
        versions = tuple(v if v is not None else version_at(stores.delta, t, prev["migrated_at"])
                         for v, t in zip(versions, (SIGNALS, CURVES)))
    if None in versions:
        raise RollbackError(f"{task_id}: no Delta version holds the earlier rows")
    try:
        if prev.get("row_locations"):  # exactly the files and row groups that version was published at
            signals, curves = (read_rows(stores, t, {task_id: prev})[task_id] for t in (SIGNALS, CURVES))
        else:
            signals = rows_at_version(stores.delta, SIGNALS, [task_id], versions[0])
            curves = rows_at_version(stores.delta, CURVES, [task_id], versions[1])
    except Exception as exc:
        raise RollbackError(f"{task_id}: Delta versions {versions} cannot be read (vacuumed?), and its exact "
                            f"bytes are not in the backups: {str(exc).splitlines()[0]}") from exc
    return signals, curves, versions


def _source_differs(stores, task_id: str, prev: dict) -> bool:
    path = _source_file(stores, task_id, prev)
    try:
        with open(path, "rb") as f:
            return sha256_hex(f.read()) != prev["source_sha256"]
    except (OSError, TypeError):
        return False  # no source file (archived, or written in postgres-only)


def _superseded_now(stores, task_id: str, prev: dict) -> bool:
    """Whether the source file is older than the version just restored, which did not come
    from it (last_write.older_than_store): migrate and status then leave it alone."""
    from result_assets.store.last_write import file_older_than_store

    state = stores.catalog.states([task_id]).get(task_id)
    return state is not None and file_older_than_store(stores.catalog, task_id, _source_file(stores, task_id, prev),
                                                       state.source_path, state.published_at_ns)


def _restore_source(stores, task_id: str, prev: dict, old_bytes: bytes | None) -> tuple[str, str | None]:
    from pathlib import Path

    from result_assets.store.backups import write_atomic

    path = _source_file(stores, task_id, prev)
    if not path:
        raise RollbackError(f"{task_id}: rolled back, but no source path is known to restore")
    if old_bytes is None:
        raise RollbackError(f"{task_id}: rolled back, but the earlier bytes are not in the backups")
    # The file may hold a version nothing else does (written and never migrated, a dual-write
    # save the store missed): it goes to the backups' previous/ before it is written over.
    try:
        kept = stores.backups.keep_version(task_id, Path(path).read_bytes())
    except FileNotFoundError:
        kept = None
    except OSError as exc:
        raise RollbackError(f"{task_id}: rolled back, but the source file {path} cannot be read to keep its "
                            f"bytes before restoring it: {exc.strerror or exc}") from exc
    written = write_atomic(Path(path), old_bytes)  # its own stat, not a later writer's file
    stores.catalog.touch_mtime({task_id: written.st_mtime_ns})  # unchanged bytes: not stale
    return path, kept


def _source_file(stores, task_id: str, prev: dict) -> str | None:
    """The task's JSON in its source directory (sources.task_source_file), never its backup."""
    from result_assets.migration.sources import task_source_file

    return task_source_file(stores, task_id, stores.catalog.sources([task_id]).get(task_id) or prev["source_path"])
