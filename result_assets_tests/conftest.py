"""Fixtures: a fresh project home per test module, on a real PostgreSQL.

By default the embedded server (started under the home, stopped at the end); with
DATABASE_URL set, a fresh database on that server, dropped at the end.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import psycopg2
import pytest

SAMPLES = Path(__file__).parent / "samples"

HOME_VARS = ("RESULT_ASSETS_HOME", "DATABASE_URL", "RESULT_STORE_ROOT", "RESULT_BACKUP_DIR",
             "RESULT_SOURCE_DIR", "DAGSTER_HOME", "RESULT_BATCH_SIZE", "RESULT_READ_CACHE_MB",
             "RESULT_ASSETS_DAGSTER_URL")


@pytest.fixture(scope="module")
def project_home(tmp_path_factory):
    """Environment of a new user: only RESULT_ASSETS_HOME (and DATABASE_URL if given) set."""
    home = tmp_path_factory.mktemp("home")
    server_url = os.environ.get("DATABASE_URL")
    test_db = None
    with pytest.MonkeyPatch.context() as env:  # every variable put back as it was, after
        for key in HOME_VARS:
            env.delenv(key, raising=False)
        env.setenv("RESULT_ASSETS_HOME", str(home))
        # The read cache off: every read in the suite goes through the store's own read path
        # (hot tier, row groups, rebuild). test_read_cache.py turns it on and tests it.
        env.setenv("RESULT_READ_CACHE_MB", "0")
        # So is the serving cache shared by processes: test_serving_cache.py turns it on.
        env.setenv("RESULT_SERVING_CACHE_MB", "0")
        if server_url:
            test_db = f"ra_test_{uuid.uuid4().hex[:12]}"
            _admin(server_url, f'CREATE DATABASE "{test_db}"')
            env.setenv("DATABASE_URL", _with_db(server_url, test_db))
        _reset_caches()
        yield home
        from result_assets.store.postgres import stop_embedded
        from result_assets.settings import Settings

        stop_embedded(Settings.from_env())
        if test_db:
            _admin(server_url, f'DROP DATABASE IF EXISTS "{test_db}" WITH (FORCE)')
    _reset_caches()


@pytest.fixture(scope="module")
def sample_source(tmp_path_factory) -> Path:
    """A private copy of the sample task tree (tests may edit it)."""
    dest = tmp_path_factory.mktemp("source") / "tasks"
    shutil.copytree(SAMPLES / "tasks", dest)
    return dest


@pytest.fixture(scope="session")
def sample_expectations() -> dict:
    import json

    return json.loads((SAMPLES / "expect.json").read_text())


def _reset_caches():
    from result_assets.store import postgres

    postgres._embedded_server_url.cache_clear()
    postgres._ensure_database.cache_clear()


def _with_db(url: str, db: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path="/" + db))


def _admin(url: str, statement: str) -> None:
    conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()
