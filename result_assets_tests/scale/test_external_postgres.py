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
from result_assets_tests.scale.conftest import deploy_pg_env

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
    # The deployment's instance config, minus the Kubernetes run launcher (dagster-k8s is for the
    # cluster), its database given as a deployment gives it: DAGSTER_PG_* from the same server.
    config = yaml.safe_load(DEPLOY_YAML.read_text())
    del config["run_launcher"]
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))
    pg_env = deploy_pg_env(os.environ["DATABASE_URL"])
    saved = {k: os.environ.get(k) for k in pg_env}
    os.environ.update(pg_env)
    assert main(["migrate", "--source-dir", str(sample_source), "--json"]) == 0
    yield home
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


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

    from dagster_postgres.event_log import PostgresEventLogStorage

    from result_assets.assets.instance import get_instance

    instance = get_instance()
    # stock dagster-postgres storage, as a local home's
    assert type(instance.event_log_storage) is PostgresEventLogStorage
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
