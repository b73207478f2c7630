"""DATABASE_URL pointing at an external PostgreSQL (password auth): the catalog and the Dagster
instance both live there, with the instance configured by deploy/dagster.yaml; nothing embedded starts."""
from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg2
import pytest
import yaml

from result_assets.cli import main

DEPLOY_YAML = Path(__file__).parents[2] / "deploy" / "dagster.yaml"


@pytest.fixture(scope="module")
def home(external_postgres, project_home):
    """project_home on the external server (it creates a fresh database there from DATABASE_URL)."""
    return project_home


@pytest.fixture(scope="module", autouse=True)
def database_url(external_postgres):
    saved = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = external_postgres
    yield
    if saved is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = saved


@pytest.fixture(scope="module")
def migrated(home, sample_source):
    # The deployment's instance config, minus the Kubernetes run launcher (dagster-k8s is for the cluster).
    config = yaml.safe_load(DEPLOY_YAML.read_text())
    del config["run_launcher"]
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))
    assert main(["migrate", "--source-dir", str(sample_source), "--json"]) == 0
    return home


def query(sql: str):
    conn = psycopg2.connect(os.environ["DATABASE_URL"].replace("postgresql+psycopg2://", "postgresql://"))
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def test_catalog_and_dagster_tables_live_in_the_external_database(migrated, sample_expectations):
    assert not (migrated / "pg").exists()  # no embedded server was started
    tables = {name for (name,) in query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"tasks", "task_symbols", "tasks_history"} <= tables
    assert {"runs", "event_logs", "asset_keys", "dynamic_partitions"} <= tables
    statuses = dict(query("SELECT task_id, status FROM tasks"))
    assert statuses == {t: "migrated" if e["valid"] else "quarantined" for t, e in sample_expectations.items()}
    run_statuses = {status for (status,) in query("SELECT status FROM runs")}
    assert run_statuses == {"SUCCESS"}


def test_instance_uses_the_deploy_configuration(migrated):
    from dagster import QueuedRunCoordinator
    from dagster_postgres import PostgresRunStorage

    from result_assets.assets.dagster_internals import PooledPostgresEventLogStorage
    from result_assets.assets.instance import get_instance

    instance = get_instance()
    # the project's storage, the same as a local home's: its pooled event log
    assert type(instance.event_log_storage) is PooledPostgresEventLogStorage
    assert type(instance.run_storage) is PostgresRunStorage
    coordinator = instance.run_coordinator
    assert isinstance(coordinator, QueuedRunCoordinator)
    queue = yaml.safe_load(DEPLOY_YAML.read_text())["run_coordinator"]["config"]
    assert coordinator.get_run_queue_config().max_concurrent_runs == queue["max_concurrent_runs"] > 1
    assert coordinator.get_run_queue_config().tag_concurrency_limits == queue["tag_concurrency_limits"]


def test_a_second_run_and_status_use_the_same_server(migrated, sample_source, sample_expectations, capsys):
    capsys.readouterr()
    assert main(["migrate", "--source-dir", str(sample_source), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == len(sample_expectations)
    assert main(["status", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["tasks"]
    assert {r["task_id"] for r in rows} == set(sample_expectations)
    assert not (migrated / "pg").exists()
