"""The Dagster instance at DAGSTER_HOME, created on first use."""
from __future__ import annotations

import os

from result_assets.settings import Settings

# pg advisory lock: one process at a time opens the instance (a fresh one creates its tables).
_INSTANCE_LOCK = 7205

DAGSTER_YAML = """\
# Written by result-assets. Storage resolves its Postgres from DATABASE_URL or the
# embedded server under RESULT_ASSETS_HOME; no URL or password is kept here.
storage:
  custom:
    module: result_assets.platform.dagster_storage
    class: ResultAssetsStorage
    config: {}
telemetry:
  enabled: false
nux:
  enabled: false
"""


def ensure_dagster_home(settings: Settings) -> None:
    """Point DAGSTER_HOME at the project's instance, writing its dagster.yaml if absent."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    config = settings.dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    # Batch event writes: a migration records several events per task.
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "100")


def get_instance(settings: Settings | None = None):
    from dagster import DagsterInstance

    settings = settings or Settings.from_env()
    ensure_dagster_home(settings)
    # The first use of a fresh instance creates its storage's tables: two processes doing it
    # at once fail in Dagster's own migration ("type alembic_version already exists"), as a
    # `migrate` and a `maintain` started together on a new home did. The lock is the catalog's
    # (every process of the project opens that database).
    from result_assets.store.catalog import Catalog
    from result_assets.store.postgres import catalog_url

    with Catalog(catalog_url(settings)).advisory_lock(_INSTANCE_LOCK, wait=True):
        return DagsterInstance.get()
