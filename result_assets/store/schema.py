"""The catalog's schema: created and upgraded by one explicit, versioned, idempotent step.

Nothing else runs DDL on the catalog. A save, a read, a sensor tick or a maintenance run
only checks the version (one SELECT) and, when the catalog is older than the code, stops
with one line that names the command. DDL at run time used to deadlock saves: a save's
`INSERT INTO tasks_history ... FROM tasks` against another process's first-use
`ALTER TABLE tasks` (issue: the store as the platform's system of record).

`upgrade` runs under an advisory lock, so concurrent first runs serialize, and applies
each step above the recorded version in its own transaction. `result-assets db upgrade`
runs it; so do `migrate` and the first use of a new (empty) catalog.
"""
from __future__ import annotations

import logging
import time

import psycopg2.errors

log = logging.getLogger(__name__)

SCHEMA_LOCK = 7201  # pg advisory lock: one upgrade at a time

# Version 1: the catalog as the first releases left it (every statement idempotent, so an
# unversioned catalog of any earlier release is brought here safely).
_V1 = """
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

# Version 2: a failed attempt is kept beside the last good version instead of replacing it;
# the application's saves queue their Dagster records in the store (the code location
# reports them), so an application process never starts Dagster.
_V2 = """
CREATE TABLE IF NOT EXISTS task_failures (
    task_id          text PRIMARY KEY,
    partition_key    text NOT NULL,
    reason           text NOT NULL,
    source_path      text,
    source_sha256    text NOT NULL,
    source_bytes     bigint NOT NULL,
    source_mtime_ns  bigint,
    failed_at        timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS save_records (
    record_id    bigserial PRIMARY KEY,
    task_id      text NOT NULL,
    partition_key text NOT NULL,
    metadata     jsonb NOT NULL,
    description  text NOT NULL,
    checks       jsonb,
    saved_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
"""

# Version 3: the file itself. Per task the Spelling that writes its exact bytes again from
# its rows (legacy/exact.py), or, for a file no Spelling reproduces, its text.
_V3 = """
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS spelling text;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS exact_text text;
ALTER TABLE tasks_history ADD COLUMN IF NOT EXISTS spelling text;
ALTER TABLE tasks_history ADD COLUMN IF NOT EXISTS exact_text text;
"""

# Version 4: a Spelling may carry per-row timestamp spellings (`row_timestamps`), which code
# of version 3 cannot read. No table changes; the step exists so that such code stops with
# the one line ("newer than this code") instead of failing on those tasks' reads.
_V4 = """
COMMENT ON COLUMN tasks.spelling IS 'legacy/exact.py Spelling as JSON (schema 4: may hold row_timestamps)';
"""

# Version 5: a Spelling may name row fields whose nulls the file writes as explicit nulls
# (`null_keys`), which code of version 4 cannot read. No table changes, as for version 4.
_V5 = """
COMMENT ON COLUMN tasks.spelling IS 'legacy/exact.py Spelling as JSON (schema 5: may hold row_timestamps, null_keys)';
"""

# Version 6: the serving cache (store/serving_cache.py): recently saved or read files, zstd
# bytes, so a process's first read of a task costs about what reading its file did. UNLOGGED:
# no WAL for a copy the tables can always give again (a crash empties it). The bytes are
# compressed already, so Postgres stores them as they are (STORAGE EXTERNAL). Whoever may read
# the catalog's tasks may read their files here too.
_V6 = """
CREATE UNLOGGED TABLE IF NOT EXISTS served_files (
    task_id        text PRIMARY KEY,
    source_sha256  text NOT NULL,
    file_bytes     bigint NOT NULL,
    stored_bytes   integer NOT NULL,
    plain_numbers  boolean NOT NULL,
    body           bytea NOT NULL,
    filled_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
ALTER TABLE served_files ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE INDEX IF NOT EXISTS served_files_filled_at_idx ON served_files (filled_at);
DO $$ DECLARE reader text; BEGIN
  FOR reader IN SELECT DISTINCT grantee FROM information_schema.role_table_grants
                WHERE table_name = 'tasks' AND privilege_type = 'SELECT' AND grantee <> current_user LOOP
    EXECUTE 'GRANT SELECT ON served_files TO '
            || CASE WHEN reader = 'PUBLIC' THEN 'PUBLIC' ELSE quote_ident(reader) END;
  END LOOP;
END $$;
"""

# Version 7: the hot tier's rows are Arrow IPC, LZ4-compressed already, so Postgres stores
# them as they are (STORAGE EXTERNAL). Its own compression tried every value and kept none
# (stored bytes equal to the values'), and cost a save's COPY of them 2.0 ms against 0.34 ms
# (docs/performance.md "Reads and saves").
_V7 = """
ALTER TABLE hot_rows ALTER COLUMN signals SET STORAGE EXTERNAL, ALTER COLUMN curves SET STORAGE EXTERNAL;
"""

# Version 8: a Spelling may say its file is orjson's own text (`by_orjson`: an application's
# save, written again by orjson from the rebuilt document), which code of version 7 cannot
# read. No table changes, as for version 4.
_V8 = """
COMMENT ON COLUMN tasks.spelling IS 'legacy/exact.py Spelling as JSON (schema 8: may hold row_timestamps, null_keys, by_orjson)';
"""

# Version 9: a `by_orjson` file may hold bare NaN and infinities in its skeleton (an
# application's metrics), which orjson writes as null unless the rebuild hands it their
# literals; code of version 8 would export such a file with null in their place. No table
# changes, as for version 4.
_V9 = """
COMMENT ON COLUMN tasks.spelling IS 'legacy/exact.py Spelling as JSON (schema 9: may hold row_timestamps, null_keys, by_orjson, whose skeleton may hold NaN)';
"""

STEPS: list[tuple[int, str]] = [(1, _V1), (2, _V2), (3, _V3), (4, _V4), (5, _V5), (6, _V6), (7, _V7), (8, _V8),
                                (9, _V9)]
SCHEMA_VERSION = STEPS[-1][0]
UPGRADE_COMMAND = "result-assets db upgrade"
# How long a first use waits for an upgrade under way before it calls the catalog old.
UPGRADE_WAIT_SECONDS = 120.0
STEP_LOCK_TIMEOUT = "2s"  # an upgrade step's wait for a table; saves queue behind it that long at most


class SchemaOutdated(RuntimeError):
    """The catalog's schema is not the one this code needs (one line, naming the command)."""


def installed_version(conn) -> int | None:
    """The catalog's schema version: None for an empty database, 0 for a catalog of a
    release before versions were recorded."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('result_assets_schema') IS NOT NULL, to_regclass('tasks') IS NOT NULL")
        versioned, has_tasks = cur.fetchone()
        if not versioned:
            return 0 if has_tasks else None
        cur.execute("SELECT max(version) FROM result_assets_schema")
        return cur.fetchone()[0] or 0


def upgrade(conn) -> tuple[int | None, int]:
    """Bring the catalog to SCHEMA_VERSION; returns (version before, version after)."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
    try:
        before = installed_version(conn)
        if before is not None and before > SCHEMA_VERSION:  # a rolled-back deploy: never "upgraded" down
            raise SchemaOutdated(f"the catalog's schema is version {before}, newer than this code's "
                                 f"({SCHEMA_VERSION}): upgrade result-assets")
        deadline = time.monotonic() + UPGRADE_WAIT_SECONDS  # for the steps in all
        for version, statements in STEPS:
            if before is not None and version <= before:
                continue
            _apply_step(conn, version, statements, deadline)
        return before, SCHEMA_VERSION
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))


def _apply_step(conn, version: int, statements: str, deadline: float) -> None:
    """One step in one transaction. Its ALTERs wait STEP_LOCK_TIMEOUT at most for a table an
    open transaction holds (a long read): waiting longer, every save queued behind the ALTER,
    also after the upgrade's client was killed. Then the step is tried again (after a deadlock
    with a save's locks too) until `deadline`, and the saves go on in between."""
    pause = 0.5
    while True:
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SET LOCAL lock_timeout = %s", (STEP_LOCK_TIMEOUT,))
                cur.execute(statements)
                cur.execute("CREATE TABLE IF NOT EXISTS result_assets_schema ("
                            "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
                cur.execute("INSERT INTO result_assets_schema (version) VALUES (%s) ON CONFLICT DO NOTHING",
                            (version,))
            return
        except (psycopg2.errors.LockNotAvailable, psycopg2.errors.DeadlockDetected):
            if time.monotonic() + pause > deadline:
                raise SchemaOutdated(
                    f"the upgrade waited {UPGRADE_WAIT_SECONDS:.0f} s (at step {version}) for tables that open "
                    "transactions kept (see pg_stat_activity: state 'idle in transaction' or a long "
                    f"query); end them, then run `{UPGRADE_COMMAND}` again") from None
            log.warning("upgrade step %s: a table it alters is held by an open transaction; trying again", version)
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


def require_current(conn, *, create_if_empty: bool) -> None:
    """Pass when the catalog is at SCHEMA_VERSION, or empty (created when `create_if_empty`:
    a new home); raise SchemaOutdated when it is older or newer than this code."""
    version = installed_version(conn)
    if version == SCHEMA_VERSION:
        return
    if version is not None and version < SCHEMA_VERSION:
        # An upgrade commits step by step: another process creating a new home's catalog may
        # be half way. Read again once no upgrade holds the lock (one that is older stays so),
        # waiting UPGRADE_WAIT_SECONDS at most: an upgrade session that hangs is an error too.
        try:
            with conn, conn.cursor() as cur:
                # the wait's own bound: not a role's shorter statement_timeout, a raw error
                cur.execute("SET LOCAL lock_timeout = %s; SET LOCAL statement_timeout = 0",
                            (f"{int(UPGRADE_WAIT_SECONDS * 1000)}ms",))
                cur.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        except psycopg2.errors.LockNotAvailable:
            raise SchemaOutdated(f"the catalog's schema is version {version}, this code needs {SCHEMA_VERSION}, and "
                                 f"an upgrade has held the schema lock for over {UPGRADE_WAIT_SECONDS:.0f} s: "
                                 f"wait for it, or run `{UPGRADE_COMMAND}`") from None
        try:
            version = installed_version(conn)
        finally:
            with conn, conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
        if version == SCHEMA_VERSION:
            return
    if version is None:
        if create_if_empty:
            upgrade(conn)
        return
    if version > SCHEMA_VERSION:
        raise SchemaOutdated(f"the catalog's schema is version {version}, newer than this code's "
                             f"({SCHEMA_VERSION}): upgrade result-assets")
    raise SchemaOutdated(f"the catalog's schema is version {version}, this code needs {SCHEMA_VERSION}: "
                         f"run `{UPGRADE_COMMAND}`")
