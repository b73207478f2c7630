"""Resources: where the stores are, and the migration's tunables, as fields the launchpad shows.

A field left empty takes its value from the environment (README "Configuration"), read
when a run starts, never when the code location loads.
"""
from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from result_assets.migration.verify import DEFAULT_COMPRESSION_GOAL
from result_assets.settings import Settings
from result_assets.store.stores import Stores


class MigrationSettings(ConfigurableResource):
    compression_goal: float = Field(
        default=DEFAULT_COMPRESSION_GOAL,
        description="How much smaller than its JSON the store should be (WARN check signal_table/compression_goal).")
    max_file_bytes: int | None = Field(
        default=None, description="A larger source file is quarantined, never read whole (RESULT_MAX_FILE_BYTES).")


class StoresResource(ConfigurableResource):
    """Delta tables, backups and catalog. Each field overrides its variable for this run."""

    home: str | None = Field(default=None, description="Root of the defaults below (RESULT_ASSETS_HOME).")
    database_url: str | None = Field(
        default=None, description="Catalog database (DATABASE_URL); empty: the embedded server under home/pg.")
    store_root: str | None = Field(default=None, description="Delta tables, a path or s3:// URI (RESULT_STORE_ROOT).")
    backup_dir: str | None = Field(default=None, description="Byte-exact backups, a path or s3:// URI (RESULT_BACKUP_DIR).")
    source_dir: str | None = Field(default=None, description="The legacy task tree (RESULT_SOURCE_DIR).")
    workers: int | None = Field(default=None, description="Processes converting a batch (RESULT_WORKERS).")

    _stores: Stores | None = PrivateAttr(default=None)

    def settings(self) -> Settings:
        return Settings.from_env(home=self.home, database_url=self.database_url, store_root=self.store_root,
                                 backup_dir=self.backup_dir, source_dir=self.source_dir, workers=self.workers)

    def get(self) -> Stores:
        if self._stores is None:
            self._stores = Stores(self.settings())
        return self._stores
