"""The Postgres catalog: one row per task (migrated, quarantined or failed) and one per
symbol, plus the hot tier (application saves not flushed into Delta yet).

A batch is published in one transaction (COPY into temp tables, then upsert), after its
rows were proven: the catalog row is what makes a task visible to readers, and it names
where its rows live (row_locations, or the hot tier).
"""
from __future__ import annotations

import io
import json
import math
from contextlib import contextmanager
from dataclasses import dataclass, field, fields

import psycopg2
import psycopg2.extras

from result_assets.store.pg_text import jsonb_text, pg_text

METRICS = ("total_return", "win_rate", "max_drawdown", "sharpe_ratio", "profit_factor", "num_trades")

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id          text PRIMARY KEY,
    partition_key    text NOT NULL UNIQUE,
    status           text NOT NULL CHECK (status IN ('migrated', 'quarantined', 'failed')),
    reason           text,
    source_path      text,
    source_sha256    text NOT NULL,
    source_bytes     bigint NOT NULL,
    source_mtime_ns  bigint,
    layout           smallint,
    strategy         text,
    timeframe        text,
    start_date       text,
    end_date         text,
    params           jsonb,
    n_symbols        integer,
    n_signals        integer,
    n_curve_points   integer,
    total_return     double precision,
    win_rate         double precision,
    max_drawdown     double precision,
    sharpe_ratio     double precision,
    profit_factor    double precision,
    num_trades       double precision,
    skeleton         text,
    warnings         jsonb,
    signals_version  bigint,
    curves_version   bigint,
    convert_seconds  double precision,
    version          integer NOT NULL DEFAULT 1,
    migrated_at      timestamptz NOT NULL DEFAULT now()
);
-- Columns added after the first release: catalogs created before them gain them here.
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS signals_version bigint;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS curves_version bigint;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS convert_seconds double precision;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS row_locations jsonb;
-- 'failed': valid, but a proof failed, so never published (catalogs before it allowed two states).
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'tasks_status_check'
             AND pg_get_constraintdef(oid) NOT LIKE '%failed%') THEN
    ALTER TABLE tasks DROP CONSTRAINT tasks_status_check;
    ALTER TABLE tasks ADD CONSTRAINT tasks_status_check CHECK (status IN ('migrated', 'quarantined', 'failed'));
  END IF;
END $$;
-- Every row a re-migration replaces, so a force can be rolled back (with Delta time travel).
CREATE TABLE IF NOT EXISTS tasks_history (LIKE tasks);
ALTER TABLE tasks_history ADD COLUMN IF NOT EXISTS replaced_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE tasks_history ADD COLUMN IF NOT EXISTS signals_version bigint;
ALTER TABLE tasks_history ADD COLUMN IF NOT EXISTS curves_version bigint;
ALTER TABLE tasks_history ADD COLUMN IF NOT EXISTS convert_seconds double precision;
ALTER TABLE tasks_history ADD COLUMN IF NOT EXISTS row_locations jsonb;
CREATE INDEX IF NOT EXISTS tasks_history_task_idx ON tasks_history (task_id, version);
CREATE INDEX IF NOT EXISTS tasks_strategy_idx ON tasks (strategy);
CREATE INDEX IF NOT EXISTS tasks_status_idx ON tasks (status);
CREATE INDEX IF NOT EXISTS tasks_total_return_idx ON tasks (total_return);
CREATE TABLE IF NOT EXISTS task_symbols (
    task_id       text NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    symbol_idx    integer NOT NULL,
    symbol        text,
    n_signals     integer NOT NULL,
    total_return  double precision,
    win_rate      double precision,
    max_drawdown  double precision,
    sharpe_ratio  double precision,
    profit_factor double precision,
    num_trades    double precision,
    PRIMARY KEY (task_id, symbol_idx)
);
CREATE INDEX IF NOT EXISTS task_symbols_symbol_idx ON task_symbols (symbol);
-- What ResultStore.find_tasks filters and orders by (a start/end date written 2024-01-03,
-- 2024/01/03 or 2024.01.03 compares as its first ten characters with '-' separators).
CREATE INDEX IF NOT EXISTS tasks_q_win_rate_idx ON tasks (win_rate);
CREATE INDEX IF NOT EXISTS tasks_q_max_drawdown_idx ON tasks (max_drawdown);
CREATE INDEX IF NOT EXISTS tasks_q_sharpe_ratio_idx ON tasks (sharpe_ratio);
CREATE INDEX IF NOT EXISTS tasks_q_profit_factor_idx ON tasks (profit_factor);
CREATE INDEX IF NOT EXISTS tasks_q_num_trades_idx ON tasks (num_trades);
CREATE INDEX IF NOT EXISTS tasks_q_strategy_return_idx ON tasks (strategy, total_return);
CREATE INDEX IF NOT EXISTS tasks_q_end_key_idx ON tasks ((left(translate(end_date, '/.', '--'), 10)));
CREATE INDEX IF NOT EXISTS tasks_q_start_key_idx ON tasks ((left(translate(start_date, '/.', '--'), 10)));
-- The hot tier: a task saved by the application, its rows as Arrow IPC, committed with its
-- catalog row; the flush moves them into the Delta tables and deletes them here.
CREATE TABLE IF NOT EXISTS hot_rows (
    task_id   text PRIMARY KEY REFERENCES tasks (task_id) ON DELETE CASCADE,
    signals   bytea NOT NULL,
    curves    bytea NOT NULL,
    saved_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS task_sources (
    task_id       text PRIMARY KEY,
    partition_key text NOT NULL UNIQUE,
    source_path   text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now()
);
"""


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


TASK_COLUMNS = [f.name for f in fields(TaskRow)]
SYMBOL_COLUMNS = [f.name for f in fields(SymbolRow)]
_JSONB = {"params", "warnings", "row_locations"}


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


class Catalog:
    def __init__(self, url: str):
        self.url = url
        self._conn = None

    def connect(self):
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(self.url)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def ensure_schema(self) -> None:
        conn = self.connect()
        with conn, conn.cursor() as cur:
            # Serialize concurrent first runs: CREATE TABLE IF NOT EXISTS can still race.
            cur.execute("SELECT pg_advisory_xact_lock(7201)")
            cur.execute(SCHEMA)

    def upsert(self, tasks: list[TaskRow], symbols: list[SymbolRow],
               hot: dict[str, tuple[bytes, bytes]] | None = None) -> dict[str, str]:
        """Write a batch in one transaction; a task's old symbol rows are replaced.

        `hot`: {task_id: (signals, curves)} rows kept in the hot tier; every other task of
        the batch leaves it (its rows are in Delta now). Before the commit, every published
        skeleton and hot row is read back and compared with what was written: a task that
        does not come back exactly is published as 'failed' instead. Returns {task_id: reason}.
        """
        if not tasks:
            return {}
        conn = self.connect()
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS tasks_in (LIKE tasks INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS task_symbols_in (LIKE task_symbols) ON COMMIT DELETE ROWS")
            _copy(cur, "tasks_in", TASK_COLUMNS, ([_cell(c, getattr(t, c)) for c in TASK_COLUMNS] for t in tasks))
            _copy(cur, "task_symbols_in", SYMBOL_COLUMNS,
                  ([_cell(c, getattr(s, c)) for c in SYMBOL_COLUMNS] for s in symbols))
            cols = ", ".join(TASK_COLUMNS)
            cur.execute(f"INSERT INTO tasks_history ({cols}, version, migrated_at) "
                        f"SELECT {cols}, version, migrated_at FROM tasks WHERE task_id IN (SELECT task_id FROM tasks_in)")
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in TASK_COLUMNS if c != "task_id")
            cur.execute(
                f"INSERT INTO tasks ({cols}) SELECT {cols} FROM tasks_in "
                f"ON CONFLICT (task_id) DO UPDATE SET {updates}, "
                "version = tasks.version + 1, migrated_at = now()"
            )
            cur.execute("DELETE FROM task_symbols WHERE task_id IN (SELECT task_id FROM tasks_in)")
            cur.execute("INSERT INTO task_symbols SELECT * FROM task_symbols_in")
            hot = hot or {}
            cur.execute("DELETE FROM hot_rows WHERE task_id IN (SELECT task_id FROM tasks_in)")
            if hot:
                psycopg2.extras.execute_values(
                    cur, "INSERT INTO hot_rows (task_id, signals, curves) VALUES %s",
                    [(t, *map(psycopg2.Binary, data)) for t, data in hot.items()])
            return _demote_unfaithful(cur, tasks, hot)

    def hot_tasks(self, limit: int) -> list[dict]:
        """The oldest saves still in the hot tier, with the catalog version they were saved at."""
        conn = self.connect()
        with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("SELECT h.task_id, t.version, h.signals, h.curves FROM hot_rows h JOIN tasks t USING (task_id) "
                        "WHERE t.status = 'migrated' ORDER BY h.saved_at LIMIT %s", (limit,))
            return cur.fetchall()

    @contextmanager
    def advisory_lock(self, key: int):
        """Hold a session-level advisory lock on a connection of its own; yields whether it was got."""
        conn = psycopg2.connect(self.url)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                yield cur.fetchone()[0]
        finally:
            conn.close()  # releases the lock

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

    def hot_rows(self, task_ids: list[str] | None, table: str) -> dict[str, bytes]:
        """{task_id: encoded rows of `table`} of hot-tier tasks (among task_ids, if given)."""
        column = {"signals": "signals", "curves": "curves"}[table]
        conn = self.connect()
        with conn, conn.cursor() as cur:
            if task_ids is None:
                cur.execute(f"SELECT task_id, {column} FROM hot_rows")
            else:
                cur.execute(f"SELECT task_id, {column} FROM hot_rows WHERE task_id = ANY(%s)", (list(task_ids),))
            return {t: bytes(data) for t, data in cur.fetchall()}

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
        conn = self.connect()
        with conn, conn.cursor() as cur:
            values = [(t, json.dumps(m["row_locations"]), m.get("signals_version"), m.get("curves_version"),
                       (expected_versions or {}).get(t)) for t, m in moves.items()]
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
        conn = self.connect()
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS task_sources_in (LIKE task_sources INCLUDING DEFAULTS) "
                        "ON COMMIT DELETE ROWS")
            _copy(cur, "task_sources_in", ["task_id", "partition_key", "source_path"],
                  ([_cell("", t), _cell("", k), _cell("", p)] for t, (k, p) in sources.items()))
            cur.execute("INSERT INTO task_sources (task_id, partition_key, source_path) "
                        "SELECT task_id, partition_key, source_path FROM task_sources_in "
                        "ON CONFLICT (task_id) DO UPDATE SET source_path = EXCLUDED.source_path, "
                        "partition_key = EXCLUDED.partition_key")

    def sources(self, task_ids: list[str] | None = None) -> dict[str, str]:
        """{task_id: source_path} of registered tasks."""
        conn = self.connect()
        with conn, conn.cursor() as cur:
            if task_ids is None:
                cur.execute("SELECT task_id, source_path FROM task_sources")
            else:
                cur.execute("SELECT task_id, source_path FROM task_sources WHERE task_id = ANY(%s)", (list(task_ids),))
            return dict(cur.fetchall())

    def states(self, task_ids: list[str] | None = None) -> dict[str, CatalogState]:
        conn = self.connect()
        with conn, conn.cursor() as cur:
            query = ("SELECT task_id, status, reason, source_sha256, source_bytes, source_mtime_ns, source_path "
                     "FROM tasks")
            if task_ids is None:
                cur.execute(query)
            else:
                cur.execute(query + " WHERE task_id = ANY(%s)", (list(task_ids),))
            return {row[0]: CatalogState(*row) for row in cur.fetchall()}

    def touch_mtime(self, mtimes: dict[str, int]) -> None:
        """Record a new mtime for sources whose bytes were found unchanged."""
        if not mtimes:
            return
        conn = self.connect()
        with conn, conn.cursor() as cur:
            psycopg2.extras.execute_values(
                cur, "UPDATE tasks SET source_mtime_ns = v.m FROM (VALUES %s) AS v(t, m) WHERE tasks.task_id = v.t",
                list(mtimes.items()))

    def task(self, task_id: str) -> dict | None:
        conn = self.connect()
        with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("SELECT * FROM tasks WHERE task_id = %s", (task_id,))
            return cur.fetchone()

    def tasks(self, task_ids: list[str]) -> dict[str, dict]:
        """Catalog rows, with the hot tier's rows (hot_signals, hot_curves) where a task is there."""
        conn = self.connect()
        with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("SELECT t.*, h.signals AS hot_signals, h.curves AS hot_curves FROM tasks t "
                        "LEFT JOIN hot_rows h USING (task_id) WHERE t.task_id = ANY(%s)", (list(task_ids),))
            return {row["task_id"]: row for row in cur.fetchall()}

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
            cur.execute(
                "SELECT count(*) FILTER (WHERE status = 'migrated') AS migrated, "
                "count(*) FILTER (WHERE status = 'quarantined') AS quarantined, "
                "count(*) FILTER (WHERE status = 'failed') AS failed, "
                "coalesce(sum(source_bytes) FILTER (WHERE status = 'migrated'), 0)::bigint AS migrated_json_bytes, "
                "coalesce(sum(source_bytes), 0)::bigint AS json_bytes, "
                "coalesce(sum(octet_length(skeleton)) FILTER (WHERE status = 'migrated'), 0)::bigint "
                "AS skeleton_bytes, "
                "(SELECT coalesce(sum(octet_length(signals) + octet_length(curves)), 0) FROM hot_rows)::bigint "
                "AS hot_bytes, "
                "coalesce(sum(n_signals), 0)::bigint AS signals, coalesce(sum(n_curve_points), 0)::bigint AS curve_points, "
                "coalesce(sum(convert_seconds), 0) AS convert_seconds, "
                "coalesce(max(convert_seconds), 0) AS slowest_convert_seconds, "
                "min(migrated_at) AS first_migrated_at, max(migrated_at) AS last_migrated_at "
                "FROM tasks")
            return dict(cur.fetchone())

    def failed(self) -> list[tuple[str, str]]:
        """(task_id, reason) of valid tasks not published because a proof failed."""
        conn = self.connect()
        with conn, conn.cursor() as cur:
            cur.execute("SELECT task_id, reason FROM tasks WHERE status = 'failed' ORDER BY task_id")
            return cur.fetchall()

    def quarantined(self) -> list[tuple[str, str]]:
        conn = self.connect()
        with conn, conn.cursor() as cur:
            cur.execute("SELECT task_id, reason FROM tasks WHERE status = 'quarantined' ORDER BY task_id")
            return cur.fetchall()


def _demote_unfaithful(cur, tasks: list[TaskRow], hot: dict[str, tuple[bytes, bytes]]) -> dict[str, str]:
    """Inside the publishing transaction: tasks whose skeleton or hot rows do not read back
    as written become 'failed' (never visible as migrated), their rows named nowhere."""
    written = {t.task_id: t.skeleton for t in tasks if t.status == "migrated"}
    if not written:
        return {}
    cur.execute("SELECT t.task_id, t.skeleton, h.signals, h.curves FROM tasks t "
                "LEFT JOIN hot_rows h USING (task_id) WHERE t.task_id = ANY(%s)", (list(written),))
    failed = {}
    for task_id, skeleton, *stored in cur.fetchall():
        if skeleton != written[task_id]:
            failed[task_id] = "the catalog gives back a different skeleton than was written"
        elif task_id in hot and tuple(bytes(b or b"") for b in stored) != hot[task_id]:
            failed[task_id] = "the hot tier gives back different rows than were written"
    if failed:
        psycopg2.extras.execute_values(
            cur, "UPDATE tasks SET status = 'failed', reason = v.r, row_locations = NULL "
                 "FROM (VALUES %s) AS v(t, r) WHERE tasks.task_id = v.t", list(failed.items()))
        cur.execute("DELETE FROM hot_rows WHERE task_id = ANY(%s)", (list(failed),))
    return failed


def _cell(column: str, value) -> str | None:
    if value is None:
        return None
    if column in _JSONB:
        return jsonb_text(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, str):
        return pg_text(value)  # Postgres text holds neither NUL nor lone surrogates
    return str(value)


def _csv_field(value: str | None) -> str:
    # Unquoted empty is NULL in COPY's CSV format; every value is quoted, so "" stays "".
    return "" if value is None else '"' + value.replace('"', '""') + '"'


def _copy(cur, table: str, columns: list[str], rows) -> None:
    buf = io.StringIO()
    for row in rows:
        buf.write(",".join(_csv_field(v) for v in row))
        buf.write("\n")
    buf.seek(0)
    cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)", buf)
