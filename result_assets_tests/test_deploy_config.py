"""Local and deployed instances use stock dagster-postgres storage (no database needed here)."""
from __future__ import annotations

from pathlib import Path

import yaml

DEPLOY = Path(__file__).parents[1] / "deploy"
PLANNED_SUBSET = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


def test_local_and_deployed_instances_name_stock_storage(tmp_path):
    from result_assets.assets.instance import dagster_yaml
    from result_assets.settings import Settings

    deployed = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert set(deployed["storage"]) == {"postgres"}
    assert {"username", "password", "hostname", "db_name"} <= set(deployed["storage"]["postgres"]["postgres_db"])
    assert "custom" not in deployed["storage"]
    with_url = Settings.from_env(home=tmp_path, database_url="postgresql+psycopg2://u:secret@db:5432/d")
    local = yaml.safe_load(dagster_yaml(with_url))
    assert local["storage"] == {"postgres": {"postgres_url": {"env": "RESULT_ASSETS_DAGSTER_URL"}}}
    assert "secret" not in dagster_yaml(with_url)  # a password never lands in the file


def test_helm_values_run_dagsters_own_images_and_plan_one_event_per_asset():
    values = yaml.safe_load((DEPLOY / "k8s" / "values.yaml").read_text())
    (code,) = values["dagster-user-deployments"]["deployments"]
    assert code["image"]["repository"].endswith("/result-assets")
    for component in (values["dagsterWebserver"], values["dagsterDaemon"]):
        assert "image" not in component  # the chart's own: nothing of the project's in the instance
        assert {"name": PLANNED_SUBSET, "value": "1"} in component["env"]
    assert f"{PLANNED_SUBSET}=1" in values["runLauncher"]["config"]["k8sRunLauncher"]["envVars"]
    assert not (DEPLOY / "k8s" / "post_render.py").exists()
