"""Local and deployed instances use the same storage configuration (no database needed)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

DEPLOY = Path(__file__).parents[1] / "deploy"

# What Dagster's Helm chart renders for the instance (templates/configmap-instance.yaml), trimmed.
CHART_INSTANCE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: dagster-instance
data:
  dagster.yaml: |
    scheduler:
      module: dagster.core.scheduler
      class: DagsterDaemonScheduler
    schedule_storage:
      module: dagster_postgres.schedule_storage
      class: PostgresScheduleStorage
      config:
        postgres_db: {username: u, password: {env: DAGSTER_PG_PASSWORD}, hostname: pg, db_name: d}
    run_launcher:
      module: dagster_k8s
      class: K8sRunLauncher
      config: {instance_config_map: dagster-instance}
    run_storage:
      module: dagster_postgres.run_storage
      class: PostgresRunStorage
      config:
        postgres_db: {username: u, password: {env: DAGSTER_PG_PASSWORD}, hostname: pg, db_name: d}
    event_log_storage:
      module: dagster_postgres.event_log
      class: PostgresEventLogStorage
      config:
        postgres_db: {username: u, password: {env: DAGSTER_PG_PASSWORD}, hostname: pg, db_name: d}
    run_coordinator:
      module: dagster.core.run_coordinator
      class: QueuedRunCoordinator
      config: {max_concurrent_runs: 8}
    telemetry:
      enabled: false
---
# Source: dagster/templates/configmap-workspace.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: dagster-workspace-yaml
data:
  workspace.yaml: "load_from: []"
"""


def storage_of(text: str) -> dict:
    return yaml.safe_load(text)["storage"]


def test_deploy_yaml_names_the_storage_a_local_home_names():
    from result_assets.assets.instance import DAGSTER_YAML

    deployed = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert deployed["storage"] == storage_of(DAGSTER_YAML) == {"custom": {
        "module": "result_assets.platform.dagster_storage", "class": "ResultAssetsStorage", "config": {}}}
    assert not {"run_storage", "event_log_storage", "schedule_storage"} & set(deployed)


def test_helm_post_renderer_puts_the_same_storage_in_the_chart_instance():
    out = subprocess.run([sys.executable, str(DEPLOY / "k8s" / "post_render.py")], input=CHART_INSTANCE,
                         capture_output=True, text=True, check=True).stdout
    instance, workspace = yaml.safe_load_all(out)
    config = yaml.safe_load(instance["data"]["dagster.yaml"])
    assert config["storage"] == storage_of((DEPLOY / "dagster.yaml").read_text())
    assert not {"run_storage", "event_log_storage", "schedule_storage"} & set(config)
    chart_instance, chart_workspace = yaml.safe_load_all(CHART_INSTANCE)
    chart = yaml.safe_load(chart_instance["data"]["dagster.yaml"])
    for key in ("scheduler", "run_launcher", "run_coordinator", "telemetry"):  # the rest passes through
        assert config[key] == chart[key]
    assert workspace == chart_workspace


def test_helm_values_run_the_project_image_wherever_the_instance_loads():
    values = yaml.safe_load((DEPLOY / "k8s" / "values.yaml").read_text())
    (code,) = values["dagster-user-deployments"]["deployments"]
    for component in (values["dagsterWebserver"], values["dagsterDaemon"]):
        assert component["image"]["repository"] == code["image"]["repository"]
        assert component["image"]["tag"] == code["image"]["tag"]
        assert {"name": "result-assets-env"} in component["envSecrets"]  # DATABASE_URL
