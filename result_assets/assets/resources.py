"""Resources: the stores, and the migration's tunables (editable in the launchpad)."""
from __future__ import annotations


from dagster import ConfigurableResource
from pydantic import PrivateAttr

from result_assets.migration.sources import DEFAULT_MAX_FILE_BYTES
from result_assets.migration.verify import DEFAULT_COMPRESSION_GOAL
from result_assets.store.stores import Stores


class MigrationSettings(ConfigurableResource):
    compression_goal: float = DEFAULT_COMPRESSION_GOAL
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES


class StoresResource(ConfigurableResource):
    """Delta tables, backups and catalog, located by the environment (README: Configuration)."""

    _stores: Stores | None = PrivateAttr(default=None)

    def get(self) -> Stores:
        if self._stores is None:
            self._stores = Stores.from_env()
        return self._stores
