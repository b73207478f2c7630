#!/usr/bin/env python3
"""Helm post-renderer: give the Dagster chart's instance ConfigMap the storage of deploy/dagster.yaml.

    helm upgrade --install dagster dagster/dagster -n result-assets -f deploy/k8s/values.yaml \
        --post-renderer deploy/k8s/post_render.py

The chart always renders stock dagster-postgres storages (run_storage, event_log_storage,
schedule_storage) and has no value to name another class; this replaces them with the
`storage:` block of deploy/dagster.yaml, so deployed and local instances use the same storage.
Everything else the chart renders passes through unchanged. Needs python3 with PyYAML.
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

DEPLOY_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"
STOCK_STORAGES = ("run_storage", "event_log_storage", "schedule_storage", "storage")


def is_instance_config_map(doc) -> bool:
    return (isinstance(doc, dict) and doc.get("kind") == "ConfigMap"
            and doc.get("metadata", {}).get("name", "").endswith("-instance")
            and "dagster.yaml" in (doc.get("data") or {}))


def render(manifests: str) -> str:
    storage = yaml.safe_load(DEPLOY_YAML.read_text())["storage"]
    docs = list(yaml.safe_load_all(manifests))
    instances = [d for d in docs if is_instance_config_map(d)]
    if len(instances) != 1:
        raise SystemExit(f"post_render: expected one Dagster instance ConfigMap, found {len(instances)}")
    config = yaml.safe_load(instances[0]["data"]["dagster.yaml"])
    for key in STOCK_STORAGES:
        config.pop(key, None)
    instances[0]["data"]["dagster.yaml"] = yaml.safe_dump({"storage": storage, **config}, sort_keys=False)
    return yaml.safe_dump_all([d for d in docs if d is not None], sort_keys=False)


if __name__ == "__main__":
    sys.stdout.write(render(sys.stdin.read()))
