"""The deployed instance (deploy/dagster.yaml: stock dagster-postgres) on an external,
password-protected PostgreSQL reads back everything its storage writes
(test_dagster_contract.assert_round_trip)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from result_assets_tests.scale.conftest import deploy_pg_env
from result_assets_tests.test_dagster_contract import assert_round_trip

DEPLOY_YAML = Path(__file__).parents[2] / "deploy" / "dagster.yaml"


@pytest.fixture(scope="module", autouse=True)
def database_url(external_postgres):
    saved = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = external_postgres  # before project_home: it makes a fresh database there
    yield
    if saved is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = saved


def test_the_deployed_instance_reads_everything_it_writes(project_home, monkeypatch):
    from result_assets.assets.instance import get_instance

    for key, value in deploy_pg_env(os.environ["DATABASE_URL"]).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")  # as deployed

    config = yaml.safe_load(DEPLOY_YAML.read_text())
    del config["run_launcher"]  # dagster-k8s is for the cluster
    (project_home / "dagster").mkdir()
    (project_home / "dagster" / "dagster.yaml").write_text(yaml.safe_dump(config))
    with get_instance() as instance:
        assert "@127.0.0.1:" in instance.event_log_storage.postgres_url  # the external server, by password
        assert_round_trip(instance, tuned=False)
    assert not (project_home / "pg").exists()  # nothing embedded started
