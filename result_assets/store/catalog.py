"""The Postgres catalog: one row per task (migrated, quarantined or failed) and one per
symbol, plus the hot tier (application saves not flushed into Delta yet).

A batch is published in one transaction (its rows sent as JSON with the upserts, one
round trip), after its rows were proven: the catalog row is what makes a task visible to
readers, and it names where its rows live (row_locations, or the hot tier).
"""
from __future__ import annotations

import hashlib
import io
import logging
import json
import os
import struct
import time
from collections.abc import Collection
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import NamedTuple

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras

from result_assets.store import schema
from result_assets.store.last_write import older_than_store, same_file
from result_assets.store.pg_text import jsonb_safe, jsonb_text, pg_text
from result_assets.store.postgres import error_line

STORE_WRITE_LOCK = 7203  # pg advisory lock: Delta writers (shared) against compaction and vacuum (exclusive)
# The first key of the two-key advisory locks of one task's saves (the second: hashtext of its
# id). Two-key locks never conflict with the one-key locks above.
TASK_SAVE_LOCK = 7207
# The same, around one publishing transaction (Catalog.upsert): held until its commit.
TASK_PUBLISH_LOCK = 7208
log = logging.getLogger(__name__)

METRICS = ("total_return", "win_rate", "max_drawdown", "sharpe_ratio", "profit_factor", "num_trades")



@dataclass
class TaskRow:
    """One `tasks` row. `skeleton` is exact JSON text (bare NaN kept); `params` a query copy."""

    task_id: str
    partition_key: str
    status: str
    source_sha256: str
    source_bytes: int
    source_path: str | None = None
    source_mtime_ns: int | None = None
    reason: str | None = None
    layout: int | None = None
    strategy: str | None = None
    timeframe: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    params: object = None
    n_symbols: int | None = None
    n_signals: int | None = None
    n_curve_points: int | None = None
    total_return: float | None = None
    win_rate: float | None = None
    max_drawdown: float | None = None
    sharpe_ratio: float | None = None
    profit_factor: float | None = None
    num_trades: float | None = None
    skeleton: str | None = None
    warnings: list = field(default_factory=list)
    signals_version: int | None = None  # Delta version of the commit that wrote this task's rows
    curves_version: int | None = None
    convert_seconds: float | None = None  # parse + normalize + conversion check of this task
    # {"signals": [[file, [row group, ...]], ...], "curves": [...]}: where a reader finds the rows
    row_locations: dict | None = None
    # The file itself: the Spelling (JSON) that writes its exact bytes from the rows and the
    # skeleton (legacy/exact.py), or the file's text when no Spelling reproduces it.
    spelling: str | None = None
    exact_text: str | None = None
    # Not a column: the file could not be read (gone, an I/O error). Such an attempt says
    # nothing of the task's data: never published over a version the store has (_overtaken).
    unread: bool = field(default=False, metadata={"column": False})


@dataclass
class SymbolRow:
    task_id: str
    symbol_idx: int
    symbol: str | None
    n_signals: int
    total_return: float | None = None
    win_rate: float | None = None
    max_drawdown: float | None = None
    sharpe_ratio: float | None = None
    profit_factor: float | None = None
    num_trades: float | None = None


TASK_COLUMNS = [f.name for f in fields(TaskRow) if f.metadata.get("column", True)]
# The failed attempt beside a task a run published (or quarantined) and was stopped before reporting
UNREPORTED = ("published, but the run was stopped before Dagster recorded it (interrupted, or its events "
              "could not be stored): the next `result-assets migrate` publishes it again and reports it")
SYMBOL_COLUMNS = [f.name for f in fields(SymbolRow)]
# A hot standby's refusal of the serving cache holds this long; then a query asks again (one
# failed query per period on a standby; a promoted one serves the cache again).
SERVING_REFUSAL_SECONDS = 300.0


class StoreLockLost(RuntimeError):
    """The store write lock's connection went away: maintenance may have compacted or vacuumed."""


@dataclass(frozen=True)
class StoreWriteLock:
    conn: object

    def confirm(self) -> None:
        """Raise StoreLockLost unless this session still holds the lock. The lock lives as long
        as its connection, which sits idle while the batch writes and reads back: an idle-session
        timeout, a proxy or a dropped TCP connection ends it silently, and then maintenance may
        have compacted or vacuumed the batch's files before its catalog rows name them."""
        try:
            with self.conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                            "AND pid = pg_backend_pid() AND classid = 0 AND objid = %s AND objsubid = 1",
                            (STORE_WRITE_LOCK,))
                held = cur.fetchone()[0] > 0
        except psycopg2.Error as exc:
            raise StoreLockLost(f"the store write lock's connection is gone: {error_line(exc)}") from exc
        if not held:
            raise StoreLockLost("the store write lock is no longer held")


@dataclass(frozen=True)
class CatalogState:
    """What the catalog knows of a task, enough to decide whether to re-migrate it."""

    task_id: str
    status: str
    reason: str | None
    source_sha256: str
    source_bytes: int
    source_mtime_ns: int | None
    source_path: str | None
    failed_attempt: str | None = None  # a later attempt failed; the published version stays readable
    published_at_ns: int | None = None  # when this version was published (tasks.migrated_at)

    @property
    def last_attempt(self) -> str:
        """How the last attempt ended: 'failed' when one failed beside a published version."""
        return "failed" if self.failed_attempt else self.status


@dataclass
class Published:
    demoted: dict[str, str]  # {task_id: reason}: not published (read back differently, or older than a version published meanwhile)
    record_ids: dict[str, int]  # {task_id: save record id} queued for Dagster


_ROW_HEADER_BYTES = 32  # a tasks row's header: 23 bytes and the null bitmap of its 35 columns, aligned to 8
_INHERITED_CONNECTIONS: list = []  # a forked child's copies of its parent's connections: never used, never closed


class Catalog:
    def __init__(self, url: str):
        self.url = url
        self._conn, self._conn_pid = None, None  # the connection, and the process that opened it
        self._prepared_on, self._prepared = None, set()  # the connection, and what it has prepared
        self._refused_until = 0.0  # time.monotonic() until which the serving cache is not asked for

    @property
    def serving_refused(self) -> bool:
        """The server refused the serving cache's table lately (a hot standby): read without it.
        For a while only: a standby promoted to primary serves it again."""
        return time.monotonic() < self._refused_until

    def connect(self):
        if self._conn is not None and self._conn_pid != os.getpid():
            self._leave_inherited()
        if self._conn is None or self._conn.closed:
            self._conn, self._conn_pid = psycopg2.connect(self.url), os.getpid()
        return self._conn

    def close(self) -> None:
        if self._conn is not None and self._conn_pid != os.getpid():
            self._leave_inherited()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _leave_inherited(self) -> None:
        """A forked child (gunicorn --preload, a prefork worker) opens its own connection: on
        the parent's socket the two read each other's replies (errors, hangs, a save reported
        failed that another's COMMIT committed). The child's copy of the socket is swapped for
        /dev/null first, so closing it says goodbye to nobody (on the socket, it would end the
        parent's session); where that cannot be done it is kept, never used nor freed."""
        inherited, self._conn = self._conn, None
        try:
            devnull = os.open(os.devnull, os.O_RDWR)
            try:
                os.dup2(devnull, inherited.fileno())
            finally:
                os.close(devnull)
        except (OSError, psycopg2.Error):
            _INHERITED_CONNECTIONS.append(inherited)
            return
        try:
            inherited.close()
        except psycopg2.Error:
            pass

    def require_schema(self, create_if_empty: bool = True) -> None:
        """The catalog's schema is this code's (an empty catalog is created): never DDL on
        a catalog in use; an older one raises SchemaOutdated naming `result-assets db upgrade`."""
        schema.require_current(self.connect(), create_if_empty=create_if_empty)

    def upgrade_schema(self) -> tuple[int | None, int]:
        """(version before, version after): the explicit upgrade step."""
        return schema.upgrade(self.connect())

    def upsert(self, tasks: list[TaskRow], symbols: list[SymbolRow],
               hot: dict[str, tuple[bytes, bytes]] | None = None,
               records: dict[str, tuple[dict, str, list[dict] | None]] | None = None,
               sources: dict[str, tuple[str, str]] | None = None, newer_only: bool = False,
               expected_versions: dict[str, int] | None = None,
               read_versions: dict[str, int] | None = None) -> "Published":
        """Write a batch in one transaction; a task's old symbol rows are replaced.

        `hot`: {task_id: (signals, curves)} rows kept in the hot tier; every other task of
        the batch leaves it (its rows are in Delta now). Before the commit, every published
        skeleton and hot row is read back and compared with what was written: a task that
        does not come back exactly is 'failed' instead. A failed task that has a published
        version keeps it: the attempt is recorded beside it (task_failures), never over it.
        `records`: {task_id: (metadata, description, check outcomes)} of application saves,
        queued in the same transaction for the code location to report to Dagster
        (save_records; a task demoted here is queued without its checks: the caller judges
        them again and attaches them); `sources`: where the tasks' files now are, registered
        in it too (as register_sources does).
        `newer_only`: a task's file is not published over a version that did not come from it
        and was published after the file was last written (last_write.older_than_store: an
        application save that landed while a migration converted the file); the task is
        demoted like a failed proof, and that version stays.
        `expected_versions`: {task_id: tasks.version} the caller's change was decided against
        (a rollback); a task published again since is demoted and nothing is written for it.
        `read_versions`: {task_id: tasks.version} before the batch read its files (a task not
        in the catalog then is absent); with newer_only, a file read before another run
        published or quarantined a later state of that same file (a newer mtime) is demoted and
        nothing is written for it.
        Returns the tasks demoted and the queued records' ids."""
        if not tasks:
            return Published({}, {})
        return _retrying(lambda: self._upsert(tasks, symbols, dict(hot or {}), records or {}, sources or {},
                                              newer_only, expected_versions or {}, read_versions))

    def _upsert(self, tasks, symbols, hot, records, sources, newer_only, expected_versions,
                read_versions) -> "Published":
        conn = self.connect()
        demoted: dict[str, str] = {}
        with conn, conn.cursor() as cur:
            # Each task's publish lock, then its row lock, each kind taken in one order: batches
            # that share tasks wait for each other, never deadlock. The publish locks first: a row
            # lock locks only a row that exists, and a first save of a task committing between it
            # and this batch's write would be written over unseen (newer_only could not compare).
            # One round trip for both.
            ids = sorted(t.task_id for t in tasks)
            cur.execute("SELECT pg_advisory_xact_lock(%s, h) FROM (SELECT DISTINCT hashtext(t) AS h "
                        "FROM unnest(%s::text[]) AS t) AS k ORDER BY h; "
                        "SELECT task_id, status, source_path, source_sha256, "
                        "(extract(epoch FROM migrated_at) * 1000000)::bigint * 1000, source_mtime_ns, version "
                        "FROM tasks WHERE task_id = ANY(%s) ORDER BY task_id FOR UPDATE",
                        (TASK_PUBLISH_LOCK, ids, ids))
            locked = cur.fetchall()
            current = {row[0]: row[1:] for row in locked}
            published = {t for t, (status, *_) in current.items() if status == "migrated"}
            # Decided against a version since replaced: nothing written for it, not even a failed
            # attempt (the version there is whatever it is, a quarantine too, and stays as it is).
            stale = {t: f"the task was published again meanwhile (version {version}): that version stays"
                     for t, *_, version in locked if expected_versions.get(t, version) != version}
            # Read before another run published (or quarantined) a later state of the same
            # file: nothing written for it either, that state stays as it is.
            later = _read_before_a_later_state([t for t in tasks if t.task_id not in stale], current,
                                               read_versions) if newer_only and read_versions else {}
            if later:
                # Where the two reads' mtimes are equal, the version there is recorded one tick
                # older: the next plan hashes the file instead of calling it unchanged by its mtime.
                cur.execute("UPDATE tasks SET source_mtime_ns = source_mtime_ns - 1 WHERE task_id = ANY(%s)",
                            ([t.task_id for t in tasks if t.task_id in later
                              and t.source_mtime_ns == current[t.task_id][4]],))
            left_out = {**stale, **later}
            if left_out:
                demoted.update(left_out)
                tasks = [t for t in tasks if t.task_id not in left_out]
                hot = {t: rows for t, rows in hot.items() if t not in left_out}
                records = {t: r for t, r in records.items() if t not in left_out}
                sources = {t: r for t, r in sources.items() if t not in left_out}
            if newer_only:
                demoted.update(_overtaken(cur, tasks, current))
            if demoted:
                tasks = [replace(t, status="failed", reason=demoted[t.task_id], row_locations=None)
                         if t.task_id in demoted else t for t in tasks]
                hot = {t: rows for t, rows in hot.items() if t not in demoted}
            while True:
                # What is written after the savepoint is undone together when a task does not read back.
                cur.execute("SAVEPOINT publish")
                beside = [t for t in tasks if t.status == "failed" and t.task_id in published]
                written = [t for t in tasks if not (t.status == "failed" and t.task_id in published)]
                _write_tasks(cur, written, symbols, hot)
                _record_failures(cur, beside, {t.task_id for t in written})
                # a demoted task's record waits for the checks judged after it (attach_checks);
                # a task not published says so, whatever its save judged of itself before
                failed = {t.task_id: t.reason for t in tasks if t.status == "failed"}
                queued = {t: ({**r[0], "status": "failed", "reason": failed[t]} if t in failed else r[0], r[1],
                              None if t in demoted else r[2]) for t, r in records.items()}
                record_ids = _queue_records(cur, queued, {t.task_id: t.partition_key for t in tasks})
                _register_sources(cur, sources)
                unfaithful = _unfaithful(cur, written, hot)
                if not unfaithful:
                    return Published(demoted, record_ids)
                # Write again with those tasks failed: a last good version stays as it was.
                cur.execute("ROLLBACK TO SAVEPOINT publish")
                demoted.update(unfaithful)
                tasks = [replace(t, status="failed", reason=unfaithful[t.task_id], row_locations=None)
                         if t.task_id in unfaithful else t for t in tasks]
                hot = {t: rows for t, rows in hot.items() if t not in unfaithful}

    def record_unreported(self, published: dict[str, str]) -> None:
        """A failed attempt (UNREPORTED) beside each task of `published` ({task_id: the SHA-256
        the run published, or quarantined}): the run was stopped before Dagster had its events.
        What was published stays readable; the next `migrate` does the task again (a failed
        attempt is never skipped as unchanged), and that run reports it. A task published or
        quarantined again since, by another writer who reported it, is left alone."""
        if not published:
            return
        conn = self.connect()
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO task_failures (task_id, partition_key, reason, source_path, source_sha256, "
                        "source_bytes, source_mtime_ns) SELECT t.task_id, t.partition_key, %s, t.source_path, "
                        "t.source_sha256, t.source_bytes, t.source_mtime_ns "
                        "FROM tasks t JOIN unnest(%s::text[], %s::text[]) AS p(task_id, sha) "
                        "ON p.task_id = t.task_id AND p.sha = t.source_sha256 "
                        "WHERE t.status IN ('migrated', 'quarantined') ORDER BY t.task_id "
                        "ON CONFLICT (task_id) DO NOTHING",
                        (UNREPORTED, list(published), list(published.values())))

    def failed_attempts(self, task_ids: list[str] | None = None) -> dict[str, str]:
        """{task_id: reason} of failed attempts kept beside a published version."""
        return self._by_task("SELECT task_id, reason FROM task_failures", task_ids)

    def attach_checks(self, record_ids: dict[str, int], checks: dict[str, list[dict]]) -> None:
        """The check outcomes of queued save records ({task_id: record_id}), judged after publishing."""
        values = [(record_ids[t], json.dumps(c)) for t, c in checks.items() if t in record_ids]
        if not values:
            return
        conn = self.connect()
        with conn, conn.cursor() as cur:
            psycopg2.extras.execute_values(
                cur, "UPDATE save_records SET checks = v.c::jsonb FROM (VALUES %s) AS v(r, c) "
                     "WHERE save_records.record_id = v.r", values)

    def queued_records(self, limit: int) -> list[dict]:
        """The oldest save records not reported to Dagster yet."""
        conn = self.connect()
        with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("SELECT record_id, task_id, partition_key, metadata, description, checks, saved_at "
                        "FROM save_records ORDER BY record_id LIMIT %s", (limit,))
            return cur.fetchall()

    def newest_record_id(self) -> int | None:
        conn = self.connect()
        with conn, conn.cursor() as cur:
            cur.execute("SELECT max(record_id) FROM save_records")
            return cur.fetchone()[0]

    def record_ids(self, task_ids: list[str]) -> dict[str, int]:
        """{task_id: newest queued record id} among task_ids."""
        conn = self.connect()
        with conn, conn.cursor() as cur:
            cur.execute("SELECT task_id, max(record_id) FROM save_records WHERE task_id = ANY(%s) GROUP BY task_id",
                        (list(task_ids),))
            return dict(cur.fetchall())

    def forget_records(self, record_ids: list[int]) -> None:
        """Reported: take them off the queue."""
        if not record_ids:
            return
        conn = self.connect()
        with conn, conn.cursor() as cur:
            cur.execute("DELETE FROM save_records WHERE record_id = ANY(%s)", (list(record_ids),))

    def hot_tasks(self, limit: int, skip: Collection[str] = ()) -> list[dict]:
        """The oldest saves still in the hot tier, with the catalog version they were saved at,
        leaving out the tasks in `skip`."""
        conn = self.connect()
        with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("SELECT h.task_id, t.version, h.signals, h.curves FROM hot_rows h JOIN tasks t USING (task_id) "
                        "WHERE t.status = 'migrated' AND NOT h.task_id = ANY(%s) ORDER BY h.saved_at LIMIT %s",
                        (list(skip), limit))
            return cur.fetchall()

    @contextmanager
    def store_write_lock(self, exclusive: bool):
        """Between a batch's Delta commit and its publication (shared: batches run side by side)
        and around compaction and vacuum (exclusive): maintenance never rewrites or deletes a
        file that a batch committed and has not published yet. A connection of its own; yields
        a StoreWriteLock, which a batch asks before it publishes whether it still holds."""
        conn = psycopg2.connect(self.url)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(%s)" if exclusive else "SELECT pg_advisory_lock_shared(%s)",
                            (STORE_WRITE_LOCK,))
            yield StoreWriteLock(conn)
        finally:
            conn.close()  # releases the lock

    def task_save_lock(self, task_id: str):
        """One save of this task at a time, across processes, on this catalog's connection (a
        session lock: two round trips, no connection of its own). A save backs its bytes up
        before it publishes; two saves of one task could otherwise back up in one order and
        publish in the other, leaving as the task's backup (its registered source) bytes the
        catalog does not publish."""
        return self.task_save_locks([task_id])

    def saves_in_flight(self, task_ids: list[str]) -> set[str]:
        """The tasks among task_ids whose save lock someone holds now (a save between writing
        its JSON and committing to the store, a migration's backup): read from pg_locks,
        taking no lock."""
        if not task_ids:
            return set()
        conn = self.connect()
        with conn, conn.cursor() as cur:
            cur.execute("SELECT t FROM unnest(%s::text[]) AS t WHERE EXISTS (SELECT 1 FROM pg_locks l "
                        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
                        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                        "AND l.classid = %s::oid AND l.objid = hashtext(t)::oid)", (list(task_ids), TASK_SAVE_LOCK))
            return {row[0] for row in cur.fetchall()}

    @contextmanager
    def task_save_locks(self, task_ids: list[str]):
        """task_save_lock of many tasks (a migration's backups): taken in one statement, in hash
        order (two callers sharing tasks wait, never deadlock), let go in one."""
        keys = "FROM (SELECT DISTINCT hashtext(t) AS h FROM unnest(%s::text[]) AS t) AS k ORDER BY h"
        args = (TASK_SAVE_LOCK, list(task_ids))
        try:
            with self.one_statement() as cur:
                cur.execute(f"SELECT pg_advisory_lock(%s, h) {keys}", args)
            yield
        finally:
            # Also after a lock statement that failed midway (a statement timeout, a cancel): a
            # session lock outlives the error, and the locks it took first would stay held.
            try:
                with self.one_statement() as cur:
                    cur.execute(f"SELECT pg_advisory_unlock(%s, h) {keys}", args)
            except psycopg2.Error:  # the connection went away, and its locks with it
                log.debug("task save locks of %r not released: connection gone", task_ids[:5])

    @contextmanager
    def advisory_lock(self, key: int, wait: bool = False):
        """Hold a session-level advisory lock on a connection of its own; yields whether it was
        got (with `wait`, always: it waits for the holder)."""
        conn = psycopg2.connect(self.url)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(%s), true" if wait else "SELECT pg_try_advisory_lock(%s)", (key,))
                held = cur.fetchone()[-1]
                try:
                    yield held
                finally:
                    if held and not conn.closed:
                        # Released now: closing alone frees it only when the server process has
                        # exited, after the next caller may already have asked (a clean-clone CI
                        # saw maintain() refused right after a maintenance had ended).
                        cur.execute("SELECT pg_advisory_unlock(%s)", (key,))
        finally:
            conn.close()

    def unlocated_tasks(self) -> dict[str, tuple[int, int | None, int | None]]:
        """{task_id: (version, signals_version, curves_version)} of published rows read from
        Delta without recorded locations (published before locations were recorded)."""
        conn = self.connect()
        with conn, conn.cursor() as cur:
            cur.execute("SELECT t.task_id, t.version, t.signals_version, t.curves_version FROM tasks t "
                        "WHERE t.status = 'migrated' AND t.row_locations IS NULL "
                        "AND NOT EXISTS (SELECT 1 FROM hot_rows h WHERE h.task_id = t.task_id)")
            return {t: (v, s, c) for t, v, s, c in cur.fetchall()}

    def located_tasks(self) -> dict[str, tuple[int, dict]]:
        """{task_id: (version, row_locations)} of every published task read from Delta files."""
        conn = self.connect()
        with conn, conn.cursor() as cur:
            cur.execute("SELECT task_id, version, row_locations FROM tasks "
                        "WHERE status = 'migrated' AND row_locations IS NOT NULL")
            return {t: (v, locs) for t, v, locs in cur.fetchall()}

    def published_rows(self, table: str, task_ids: list[str] | None = None
                       ) -> tuple[dict[str, list], dict[str, bytes], dict[str, int | None]]:
        """What a scan of `table` may show, as of one snapshot (one statement): ({task_id:
        locations} read from Delta files, {task_id: encoded rows} in the hot tier, {task_id:
        the table version that published it} of those published before locations were
        recorded) of the published tasks (among task_ids)."""
        column = {"signals": "signals", "curves": "curves"}[table]
        conn = self.connect()
        with conn, conn.cursor() as cur:
            query = (f"SELECT t.task_id, t.row_locations -> %s, h.{column}, t.{column}_version FROM tasks t "
                     "LEFT JOIN hot_rows h USING (task_id) WHERE t.status = 'migrated'")
            if task_ids is None:
                cur.execute(query, (table,))
            else:
                cur.execute(query + " AND t.task_id = ANY(%s)", (table, list(task_ids)))
            located, hot, unlocated = {}, {}, {}
            for task_id, locations, rows, version in cur.fetchall():
                if rows is not None:
                    hot[task_id] = bytes(rows)
                elif locations is not None:
                    located[task_id] = locations
                else:
                    unlocated[task_id] = version
            return located, hot, unlocated

    def still_hot(self, hot: list[dict]) -> list[dict]:
        """The entries of hot (from hot_tasks) whose task is still hot, at the same version."""
        conn = self.connect()
        with conn, conn.cursor() as cur:
            cur.execute("SELECT h.task_id, t.version FROM hot_rows h JOIN tasks t USING (task_id) "
                        "WHERE h.task_id = ANY(%s)", ([h["task_id"] for h in hot],))
            now = dict(cur.fetchall())
        return [h for h in hot if now.get(h["task_id"]) == h["version"]]

    def hot_count(self) -> int:
        conn = self.connect()
        with conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM hot_rows")
            return cur.fetchone()[0]

    def repoint(self, moves: dict[str, dict], expected_versions: dict[str, int] | None = None) -> list[str]:
        """Point tasks at where their rows live now ({task_id: {"row_locations", "signals_version",
        "curves_version"}}) and take them out of the hot tier, in one transaction. With
        expected_versions, a task saved again since (another version) is left as it is.
        Returns the task ids moved."""
        if not moves:
            return []
        return _retrying(lambda: self._repoint(moves, expected_versions or {}))

    def _repoint(self, moves: dict[str, dict], expected_versions: dict[str, int]) -> list[str]:
        conn = self.connect()
        with conn, conn.cursor() as cur:
            # The same lock order as upsert: a flush and a publish sharing tasks never deadlock.
            cur.execute("SELECT 1 FROM tasks WHERE task_id = ANY(%s) ORDER BY task_id FOR UPDATE", (sorted(moves),))
            values = [(t, json.dumps(m["row_locations"]), m.get("signals_version"), m.get("curves_version"),
                       expected_versions.get(t)) for t, m in moves.items()]
            moved = psycopg2.extras.execute_values(
                cur, "UPDATE tasks SET row_locations = v.l::jsonb, "
                     "signals_version = coalesce(v.sv::bigint, tasks.signals_version), "
                     "curves_version = coalesce(v.cv::bigint, tasks.curves_version) "
                     "FROM (VALUES %s) AS v(t, l, sv, cv, ev) "
                     "WHERE tasks.task_id = v.t AND (v.ev IS NULL OR tasks.version = v.ev::int) RETURNING tasks.task_id",
                values, fetch=True)
            ids = [r[0] for r in moved]
            cur.execute("DELETE FROM hot_rows WHERE task_id = ANY(%s)", (ids,))
            return ids

    def register_sources(self, sources: dict[str, tuple[str, str]]) -> None:
        """Remember where each task's file is: {task_id: (partition_key, source_path)}."""
        if not sources:
            return
        if len(sources) <= _ONE_STATEMENT_SOURCES:  # a dual-write save's one task: one round trip
            with self.one_statement() as cur:
                _register_sources(cur, sources)
            return
        conn = self.connect()
        with conn, conn.cursor() as cur:
            _register_sources_copied(cur, sources)

    def versions(self, task_ids: list[str]) -> dict[str, int]:
        """{task_id: tasks.version} of those in the catalog (each publish moves it on)."""
        return self._by_task("SELECT task_id, version FROM tasks", task_ids) if task_ids else {}

    def sources(self, task_ids: list[str] | None = None) -> dict[str, str]:
        """{task_id: source_path} of registered tasks."""
        return self._by_task("SELECT task_id, source_path FROM task_sources", task_ids)

    def _by_task(self, select: str, task_ids: list[str] | None) -> dict:
        """{task_id: value} of a two-column SELECT, all rows or those of task_ids."""
        conn = self.connect()
        with conn, conn.cursor() as cur:
            if task_ids is None:
                cur.execute(select)
            else:
                cur.execute(f"{select} WHERE task_id = ANY(%s)", (list(task_ids),))
            return dict(cur.fetchall())

    def states(self, task_ids: list[str] | None = None) -> dict[str, CatalogState]:
        conn = self.connect()
        with conn, conn.cursor() as cur:
            query = ("SELECT t.task_id, t.status, t.reason, t.source_sha256, t.source_bytes, t.source_mtime_ns, "
                     "t.source_path, f.reason, (extract(epoch FROM t.migrated_at) * 1000000)::bigint * 1000 "
                     "FROM tasks t LEFT JOIN task_failures f USING (task_id)")
            if task_ids is None:
                cur.execute(query)
            else:
                cur.execute(query + " WHERE t.task_id = ANY(%s)", (list(task_ids),))
            return {row[0]: CatalogState(*row) for row in cur.fetchall()}

    def earlier_sources(self, task_ids: list[str]) -> dict[str, set[str]]:
        """{task_id: the SHA-256s of the sources its replaced versions were published from}."""
        if not task_ids:
            return {}
        conn = self.connect()
        with conn, conn.cursor() as cur:
            return _earlier_sources(cur, task_ids)

    def touch_mtime(self, mtimes: dict[str, int]) -> None:
        """Record a new mtime for sources whose bytes were found unchanged. The rows are locked
        in task_id order first, as every writer of task rows locks them (an UPDATE locks them in
        the order it finds them, and could deadlock with a batch's publish)."""
        if not mtimes:
            return

        def write():
            conn = self.connect()
            with conn, conn.cursor() as cur:
                cur.execute("SELECT 1 FROM tasks WHERE task_id = ANY(%s) ORDER BY task_id FOR UPDATE", (sorted(mtimes),))
                psycopg2.extras.execute_values(
                    cur, "UPDATE tasks SET source_mtime_ns = v.m FROM (VALUES %s) AS v(t, m) WHERE tasks.task_id = v.t",
                    sorted(mtimes.items()), page_size=len(mtimes))

        _retrying(write)

    def task(self, task_id: str) -> dict | None:
        conn = self.connect()
        with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("SELECT * FROM tasks WHERE task_id = %s", (task_id,))
            return cur.fetchone()

    def tasks(self, task_ids: list[str], served: bool = False,
              held: dict[str, tuple[int, str]] | None = None) -> dict[str, dict]:
        """Catalog rows, with the hot tier's rows (hot_signals, hot_curves) where a task is there;
        `served`: also the serving cache's entry of the published file (served_body, served_size),
        and then the hot rows only of a task without one (hot_left_out says they were left out).
        `held`: {task_id: (catalog version, source SHA-256)} of documents the caller holds (its
        read cache): a row still at that version comes without either, and says held_version.
        Measured: a 1.5 MB save's hot rows and file were 11 of a cached read's 18 ms (bytea
        travels as hex text)."""
        asked = set(task_ids)
        held = {t: v for t, v in (held or {}).items() if t in asked}
        served = served and not self.serving_refused
        try:
            with self.one_statement() as cur:
                if len(asked) == 1 and cur.connection.autocommit:  # a point read: planned once per session
                    (task_id,) = asked
                    self._execute_prepared(cur, _ONE_TASK[served, bool(held)], (task_id, *held.get(task_id, ())))
                else:
                    cur.execute(_TASKS[served, bool(held)], {
                        "ids": list(task_ids), "held_ids": list(held), "held_versions": [v for v, _ in held.values()],
                        "held_sha256": [sha256 for _, sha256 in held.values()]})
                return {row["task_id"]: row for row in cur.fetchall()}
        except psycopg2.errors.FeatureNotSupported:
            # A hot standby (a read replica) refuses any query that touches served_files, an
            # UNLOGGED table: this catalog is read without the serving cache for a while.
            if not served or not self._in_recovery():
                raise
            self._refused_until = time.monotonic() + SERVING_REFUSAL_SECONDS
            return self.tasks(task_ids, False, held)

    def _in_recovery(self) -> bool:
        with self.one_statement() as cur:
            cur.execute("SELECT pg_is_in_recovery() AS recovering")
            return cur.fetchone()["recovering"]

    def _execute_prepared(self, cur, statement: "Prepared", args: tuple) -> None:
        """EXECUTE `statement`, prepared on this connection the first time (outside a transaction:
        `cur` autocommits). Measured: Postgres spent about half of a point read's catalog query
        planning its three-table join again each time (docs/performance.md)."""
        if self._prepared_on is not cur.connection:
            self._prepared_on, self._prepared = cur.connection, set()
        execute = f"EXECUTE {statement.name}({', '.join(['%s'] * len(args))})"
        if statement.name not in self._prepared:
            self._prepare(cur, statement)
        try:
            cur.execute(execute, args)
        except psycopg2.errors.InvalidSqlStatementName:  # the session lost it (a pooler's reset): again
            self._prepared.discard(statement.name)
            self._prepare(cur, statement)
            cur.execute(execute, args)

    def _prepare(self, cur, statement: "Prepared") -> None:
        try:
            cur.execute(f"PREPARE {statement.name} AS {statement.text}")
        except psycopg2.errors.DuplicatePreparedStatement:
            pass  # this session has it already
        self._prepared.add(statement.name)

    @contextmanager
    def one_statement(self):
        """A dict cursor for one statement, outside a transaction (autocommit): one round trip
        instead of three (BEGIN, the statement, COMMIT), on a point read's path. One statement
        reads one snapshot, and writes all or nothing, either way."""
        conn = self.connect()
        if conn.status != psycopg2.extensions.STATUS_READY:  # inside a transaction: stay in it
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                yield cur
            return
        conn.autocommit = True
        try:
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                yield cur
        finally:
            conn.autocommit = False

    def symbols(self, task_ids: list[str]) -> list[dict]:
        conn = self.connect()
        with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("SELECT * FROM task_symbols WHERE task_id = ANY(%s) ORDER BY task_id, symbol_idx",
                        (list(task_ids),))
            return cur.fetchall()

    def migrated_task_ids(self) -> list[str]:
        conn = self.connect()
        with conn, conn.cursor() as cur:
            cur.execute("SELECT task_id FROM tasks WHERE status = 'migrated' ORDER BY task_id")
            return [r[0] for r in cur.fetchall()]

    def totals(self) -> dict:
        conn = self.connect()
        with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            # A row's stored size: each column's as stored (compressed, or out of line), read
            # from the values' headers, plus the row's header. pg_column_size(tasks.*) would
            # build each row whole, fetching every out-of-line skeleton and text (a totals
            # call on 4,000 rows of 200 KB texts: 3 -> 500 ms).
            cur.execute("SELECT string_agg(format('coalesce(pg_column_size(%I), 0)', column_name), ' + ') AS row "
                        "FROM information_schema.columns WHERE table_schema = current_schema() "
                        "AND table_name = 'tasks'")
            row_bytes = f"{_ROW_HEADER_BYTES} + {cur.fetchone()['row']}"
            cur.execute(
                "SELECT count(*) FILTER (WHERE status = 'migrated') AS migrated, "
                "count(*) FILTER (WHERE status = 'quarantined') AS quarantined, "
                # as failed() lists them: never published, or an attempt kept beside a published version
                "count(*) FILTER (WHERE status = 'failed') + (SELECT count(*) FROM task_failures) AS failed, "
                "coalesce(sum(source_bytes) FILTER (WHERE status = 'migrated'), 0)::bigint AS migrated_json_bytes, "
                "coalesce(sum(source_bytes), 0)::bigint AS json_bytes, "
                "coalesce(sum(pg_column_size(skeleton) + coalesce(pg_column_size(spelling), 0) "
                "+ coalesce(pg_column_size(exact_text), 0)) FILTER (WHERE status = 'migrated'), 0)::bigint "
                "AS skeleton_bytes, "
                # each migrated task's whole catalog row (skeleton, spellings and the query
                # columns alike) and its symbols' rows: the catalog's part of stored_bytes
                f"coalesce(sum({row_bytes}) FILTER (WHERE status = 'migrated'), 0)::bigint "
                "+ (SELECT coalesce(sum(pg_column_size(s.*)), 0) FROM task_symbols s JOIN tasks m "
                "USING (task_id) WHERE m.status = 'migrated')::bigint AS catalog_bytes, "
                "(SELECT coalesce(sum(octet_length(signals) + octet_length(curves)), 0) FROM hot_rows)::bigint "
                "AS hot_bytes, "
                "coalesce(sum(n_signals), 0)::bigint AS signals, coalesce(sum(n_curve_points), 0)::bigint AS curve_points, "
                "coalesce(sum(convert_seconds), 0) AS convert_seconds, "
                "coalesce(max(convert_seconds), 0) AS slowest_convert_seconds, "
                "min(migrated_at) AS first_migrated_at, max(migrated_at) AS last_migrated_at "
                "FROM tasks")
            return dict(cur.fetchone())

    def failed(self) -> list[tuple[str, str]]:
        """(task_id, reason) of valid tasks whose last attempt was not published because a proof
        failed: never published, or failed beside a published version that stays readable."""
        conn = self.connect()
        with conn, conn.cursor() as cur:
            cur.execute("SELECT task_id, reason FROM tasks WHERE status = 'failed' "
                        "UNION ALL SELECT task_id, reason FROM task_failures ORDER BY 1")
            return cur.fetchall()

    def quarantined(self) -> list[tuple[str, str]]:
        conn = self.connect()
        with conn, conn.cursor() as cur:
            cur.execute("SELECT task_id, reason FROM tasks WHERE status = 'quarantined' ORDER BY task_id")
            return cur.fetchall()


def _tasks_query(served: bool, held: bool, one: bool = False) -> str:
    """Catalog rows with the hot tier's rows; `served`: with the serving cache's file too;
    `held`: those bytes left out of each row whose version the caller already holds (matched
    on task, catalog version and SHA-256; the row says held_version). A row whose file the
    serving cache holds comes without its hot rows (the file is read instead). A row that
    left out hot rows says hot_left_out. `one`: one task's, to be prepared ($1 its id; $2 and
    $3 the version and SHA-256 held), its columns named so that a later column cannot change
    what a prepared plan returns."""
    needs_file = "c.task_id IS NULL" if held else "TRUE"
    needs_rows = f"{needs_file} AND s.body IS NULL" if served else needs_file
    select = [f"CASE WHEN {needs_rows} THEN h.signals END AS hot_signals",
              f"CASE WHEN {needs_rows} THEN h.curves END AS hot_curves",
              f"h.task_id IS NOT NULL AND NOT ({needs_rows}) AS hot_left_out"]
    joins = ["LEFT JOIN hot_rows h ON h.task_id = t.task_id"]
    if served:
        select += [f"CASE WHEN {needs_file} THEN s.body END AS served_body", "s.file_bytes AS served_size",
                   "s.plain_numbers AS served_plain"]
        joins.append("LEFT JOIN served_files s ON s.task_id = t.task_id AND s.source_sha256 = t.source_sha256")
    if held:
        select.append("c.task_id IS NOT NULL AS held_version")
        given = ("(VALUES ($1::text, $2::integer, $3::text))" if one else
                 "unnest(%(held_ids)s::text[], %(held_versions)s::integer[], %(held_sha256)s::text[])")
        joins.append(f"LEFT JOIN {given} AS c(task_id, version, sha256) "
                     "ON c.task_id = t.task_id AND c.version = t.version AND c.sha256 = t.source_sha256")
    columns = ", ".join(f"t.{c}" for c in (*TASK_COLUMNS, "version", "migrated_at")) if one else "t.*"
    where = "t.task_id = $1::text" if one else "t.task_id = ANY(%(ids)s)"
    return f"SELECT {columns}, {', '.join(select)} FROM tasks t {' '.join(joins)} WHERE {where}"


class Prepared(NamedTuple):
    name: str
    text: str


def _prepared(text: str) -> Prepared:
    """The statement named after its text: a session another version of this code prepared (a
    pooler hands sessions on) never runs other text under the name."""
    return Prepared("result_assets_" + hashlib.sha256(text.encode()).hexdigest()[:16], text)


_TASKS = {(served, held): _tasks_query(served, held) for served in (False, True) for held in (False, True)}
# A point read's: a parameter compared by `=` (not ANY of an array) lets Postgres keep the
# generic plan it made once, where an array's length made it plan each call again.
_ONE_TASK = {(served, held): _prepared(_tasks_query(served, held, one=True))
             for served in (False, True) for held in (False, True)}


def _publish_statement() -> str:
    """The batch's catalog rows and symbols (JSON parameters) into the catalog, the old rows into
    tasks_history: one statement text, one round trip. No staging tables: a transaction that
    touches a temporary table truncates every ON COMMIT DELETE ROWS table of its session at
    commit (measured: a save's commit 0.3 -> 1.2 ms), and creating them costs a statement."""
    cols = ", ".join(TASK_COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in TASK_COLUMNS if c != "task_id")
    return ";\n".join([
        f"INSERT INTO tasks_history ({cols}, version, migrated_at) "
        f"SELECT {cols}, version, migrated_at FROM tasks WHERE task_id = ANY(%(ids)s)",
        # New rows in task_id order too: two batches inserting the same new tasks never deadlock.
        f"INSERT INTO tasks ({cols}) SELECT {cols} FROM json_populate_recordset(NULL::tasks, %(tasks)s) "
        f"ORDER BY task_id "
        # migrated_at: when these bytes were first published. Publishing the same bytes again (a
        # re-run, --force) keeps it, so a JSON written in between is not made to look older
        # than the store's version (store/last_write.py).
        f"ON CONFLICT (task_id) DO UPDATE SET {updates}, version = tasks.version + 1, migrated_at = "
        f"CASE WHEN tasks.source_sha256 = EXCLUDED.source_sha256 AND tasks.status = EXCLUDED.status "
        f"THEN tasks.migrated_at ELSE now() END",
        "DELETE FROM task_symbols WHERE task_id = ANY(%(ids)s)",
        f"INSERT INTO task_symbols ({', '.join(SYMBOL_COLUMNS)}) "
        f"SELECT {', '.join(SYMBOL_COLUMNS)} FROM json_populate_recordset(NULL::task_symbols, %(symbols)s)",
        "DELETE FROM hot_rows WHERE task_id = ANY(%(ids)s)",
        "DELETE FROM task_failures WHERE task_id = ANY(%(ids)s)",
    ])


def _write_tasks(cur, tasks: list[TaskRow], symbols: list[SymbolRow], hot: dict) -> None:
    """The catalog rows, symbols and hot rows of tasks (the old rows go to tasks_history)."""
    if not tasks:
        return
    ids = {t.task_id for t in tasks}
    cur.execute(_PUBLISH, {"ids": sorted(ids), "tasks": _json_rows(tasks, TASK_COLUMNS),
                           "symbols": _json_rows([s for s in symbols if s.task_id in ids], SYMBOL_COLUMNS)})
    if hot:
        codec = psycopg2.extensions.encodings[cur.connection.encoding]  # as psycopg2 encodes text
        _copy_binary(cur, "hot_rows", ["task_id", "signals", "curves"],
                     [(t.encode(codec), *data) for t, data in hot.items() if t in ids])


_PUBLISH = _publish_statement()


def _json_rows(rows: list, columns: list[str]) -> str:
    """rows as a JSON array of objects, for json_populate_recordset: each value as jsonb_safe
    makes it, which is what each column can hold (jsonb columns as JSON, text through pg_text
    since Postgres text holds neither NUL nor lone surrogates, non-finite floats as their
    names, which float8 reads)."""
    return json.dumps([{c: jsonb_safe(getattr(row, c)) for c in columns} for row in rows],
                      ensure_ascii=False, allow_nan=False)


def _record_failures(cur, failed: list[TaskRow], written: set[str]) -> None:
    """Failed attempts of tasks that keep their published version: recorded beside it."""
    if not failed:
        return
    psycopg2.extras.execute_values(
        cur, "INSERT INTO task_failures (task_id, partition_key, reason, source_path, source_sha256, "
             "source_bytes, source_mtime_ns) VALUES %s ON CONFLICT (task_id) DO UPDATE SET "
             "reason = EXCLUDED.reason, source_path = EXCLUDED.source_path, source_sha256 = EXCLUDED.source_sha256, "
             "source_bytes = EXCLUDED.source_bytes, source_mtime_ns = EXCLUDED.source_mtime_ns, failed_at = now()",
        [(t.task_id, t.partition_key, pg_text(t.reason or "proof failed"), t.source_path, t.source_sha256,
          t.source_bytes, t.source_mtime_ns) for t in failed if t.task_id not in written])


def _register_sources(cur, sources: dict[str, tuple[str, str]]) -> None:
    """{task_id: (partition_key, source_path)} into task_sources, rows locked in task order (the
    database's, as through COPY), in one statement (a batch's sources, inside its publish)."""
    if not sources:
        return
    rows = [(pg_text(t), pg_text(k), pg_text(p)) for t, (k, p) in sources.items()]
    psycopg2.extras.execute_values(
        cur, "INSERT INTO task_sources (task_id, partition_key, source_path) SELECT * FROM (VALUES %s) "
             "AS v(task_id, partition_key, source_path) ORDER BY task_id " + _SOURCE_UPSERT,
        rows, page_size=len(rows))


def _register_sources_copied(cur, sources: dict[str, tuple[str, str]]) -> None:
    """_register_sources for many (a whole source directory's), through COPY and a staging table."""
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS task_sources_in (LIKE task_sources INCLUDING DEFAULTS) "
                "ON COMMIT DELETE ROWS")
    _copy(cur, "task_sources_in", ["task_id", "partition_key", "source_path"],
          ([pg_text(t), pg_text(k), pg_text(p)] for t, (k, p) in sources.items()))
    cur.execute("INSERT INTO task_sources (task_id, partition_key, source_path) "
                "SELECT task_id, partition_key, source_path FROM task_sources_in ORDER BY task_id " + _SOURCE_UPSERT)


# Up to this many sources are registered by one INSERT ... VALUES (one round trip; a dual-write
# save registers its one task before it publishes); more, through COPY and a staging table.
_ONE_STATEMENT_SOURCES = 16
_SOURCE_UPSERT = ("ON CONFLICT (task_id) DO UPDATE SET source_path = EXCLUDED.source_path, "
                  "partition_key = EXCLUDED.partition_key")


def _queue_records(cur, records: dict[str, tuple[dict, str, list[dict] | None]],
                   partition_keys: dict[str, str]) -> dict[str, int]:
    """{task_id: record_id} of the save records queued."""
    if not records:
        return {}
    rows = psycopg2.extras.execute_values(
        cur, "INSERT INTO save_records (task_id, partition_key, metadata, description, checks) VALUES %s "
             "RETURNING task_id, record_id",
        [(t, partition_keys[t], jsonb_text(metadata), description, None if checks is None else json.dumps(checks))
         for t, (metadata, description, checks) in records.items() if t in partition_keys],
        template="(%s, %s, %s, %s, %s::jsonb)", fetch=True)
    return dict(rows)


def _earlier_sources(cur, task_ids: list[str]) -> dict[str, set[str]]:
    """Catalog.earlier_sources, on a cursor (the publish asks under its rows' locks)."""
    cur.execute("SELECT task_id, array_agg(DISTINCT source_sha256) FROM tasks_history "
                "WHERE task_id = ANY(%s) GROUP BY task_id", (list(task_ids),))
    return {task_id: set(hashes) for task_id, hashes in cur.fetchall()}


def _read_before_a_later_state(tasks: list[TaskRow], current: dict[str, tuple],
                               read_versions: dict[str, int]) -> dict[str, str]:
    """{task_id: reason} of the files this batch read before another run published, or
    quarantined, a later state of the same file: the task's version moved on since the batch
    read its files (`read_versions`: the versions then) and names this file with a newer
    mtime. `current`: as _overtaken's."""
    out = {}
    for t in tasks:
        status, source_path, sha256, _, mtime_ns, version = current.get(t.task_id, (None,) * 6)
        # Equal mtimes (a rewrite inside the file system's clock tick) cannot say which read is
        # later: this one stays out, and the caller makes the version there hash-checked next time.
        if status in ("migrated", "quarantined") and read_versions.get(t.task_id) != version and t.source_path \
                and t.source_mtime_ns is not None and mtime_ns is not None and t.source_mtime_ns <= mtime_ns \
                and t.source_sha256 != sha256 and same_file(source_path, t.source_path):
            out[t.task_id] = (f"another run {'published' if status == 'migrated' else 'quarantined'} a later "
                              "state of this file after this run had read it: the earlier read is not "
                              "published over it")
    return out


def _overtaken(cur, tasks: list[TaskRow], current: dict[str, tuple]) -> dict[str, str]:
    """{task_id: reason} of the files to publish that are older than the task's current
    version, which did not come from them (last_write.older_than_store: by time, or a copy of
    a version it replaced), and of those that could not be read at all (TaskRow.unread).
    `current`: {task_id: (status, source_path, source_sha256, published at ns, source_mtime_ns,
    version)}, read under the rows' locks."""
    candidates, out = {}, {}
    for t in tasks:
        status, source_path, sha256, published_at_ns, _, _ = current.get(t.task_id, (None,) * 6)
        if t.unread and status == "migrated":  # a file gone or unreadable now, whatever its age
            out[t.task_id] = f"{t.reason}: the published version stays"
            continue
        # a quarantine too: an older file, valid or not, is never published over a newer version
        if t.status in ("migrated", "quarantined") and status == "migrated" and t.source_path \
                and t.source_mtime_ns is not None and t.source_sha256 != sha256:
            candidates[t.task_id] = (t, source_path, published_at_ns)
    replaced = _earlier_sources(cur, list(candidates)) if candidates else {}
    for task_id, (t, source_path, published_at_ns) in candidates.items():
        if older_than_store(t.source_path, t.source_mtime_ns, source_path, published_at_ns):
            out[task_id] = ("a newer version (an application save) was published while this file was converted: "
                            "the file is older, not published over it")
        elif not same_file(source_path, t.source_path) and t.source_sha256 in replaced.get(task_id, ()):
            out[task_id] = ("the file holds a version the store already replaced (an old copy, its mtime renewed): "
                            "not published over the newer one")
    return out


def _unfaithful(cur, tasks: list[TaskRow], hot: dict[str, tuple[bytes, bytes]]) -> dict[str, str]:
    """Inside the publishing transaction: {task_id: reason} of the tasks published as
    'migrated' whose skeleton or hot rows do not read back as written."""
    written = {t.task_id: (t.skeleton, t.spelling, t.exact_text) for t in tasks if t.status == "migrated"}
    if not written:
        return {}
    cur.execute("SELECT t.task_id, t.skeleton, t.spelling, t.exact_text, h.signals, h.curves FROM tasks t "
                "LEFT JOIN hot_rows h USING (task_id) WHERE t.task_id = ANY(%s)", (list(written),))
    failed = {}
    for task_id, skeleton, spelling, exact_text, *stored in cur.fetchall():
        if (skeleton, spelling, exact_text) != written[task_id]:
            failed[task_id] = "the catalog gives back a different skeleton or spelling than was written"
        elif task_id in hot and tuple(bytes(b or b"") for b in stored) != hot[task_id]:
            failed[task_id] = "the hot tier gives back different rows than were written"
    return failed


_RETRYABLE = ("40P01", "40001")  # deadlock_detected, serialization_failure


def _retrying(write, attempts: int = 3):
    """Run a catalog transaction, again when Postgres chose it as a deadlock or serialization
    victim (rolled back whole, so safe to repeat); anything else, or a third time, raises."""
    for attempt in range(attempts):
        try:
            return write()
        except psycopg2.Error as exc:
            if exc.pgcode not in _RETRYABLE or attempt == attempts - 1:
                raise


def _csv_field(value: str | None) -> str:
    # Unquoted empty is NULL in COPY's CSV format; every value is quoted, so "" stays "".
    return "" if value is None else '"' + value.replace('"', '""') + '"'


def _copy_binary(cur, table: str, columns: list[str], rows: list[tuple[bytes, ...]]) -> None:
    """COPY in Postgres's binary format, fields given as their bytes (text in the connection's
    encoding, bytea as it is): a save's hot rows (about 100 KB) go in as they are,
    not as hex text for the server to parse (0.8 against 2.0 ms, commit included)."""
    buf = io.BytesIO()
    buf.write(_PGCOPY_HEADER)
    for row in rows:
        buf.write(_FIELD_COUNT.pack(len(row)))
        for value in row:
            buf.write(_FIELD_LENGTH.pack(len(value)))
            buf.write(value)
    buf.write(_FIELD_COUNT.pack(-1))  # the trailer
    buf.seek(0)
    cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT binary)", buf)


_PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)  # signature, flags, no extension
_FIELD_COUNT, _FIELD_LENGTH = struct.Struct("!h"), struct.Struct("!i")


def _copy(cur, table: str, columns: list[str], rows) -> None:
    buf = io.StringIO()
    for row in rows:
        buf.write(",".join(_csv_field(v) for v in row))
        buf.write("\n")
    buf.seek(0)
    cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)", buf)
