"""Resources: where the stores are, and the migration's tunables, as fields the launchpad shows.

This is where the code location reads the environment (README "Configuration"): the
definitions bind each field whose variable is set to an `EnvVar` (read when a run starts,
shown by name, never by value); a field left empty takes the documented default. Below
the resources everything takes plain values: `Settings`, then `Stores(settings)`.
"""
from __future__ import annotations

import os

from dagster import ConfigurableResource, EnvVar
from pydantic import Field, PrivateAttr

from result_assets.migration.verify import DEFAULT_COMPRESSION_GOAL
from result_assets.settings import Settings
from result_assets.store.stores import Stores


# The resource key of the conversions a launcher started ahead (migration/convert.Prefetch):
# the CLI's launcher hands its own to each run; any other run gets Prefetch.none().
PREFETCH = "prefetch"


class MigrationSettings(ConfigurableResource):
    compression_goal: float = Field(
        default=DEFAULT_COMPRESSION_GOAL,
        description="How much smaller than its JSON the store should be (WARN check signal_table/compression_goal).")
    max_file_bytes: int | None = Field(
        default=None, description="A larger source file is quarantined, never read whole (RESULT_MAX_FILE_BYTES).")


# A sensor's skip on a catalog that has no tables yet (it creates none while it evaluates).
NO_CATALOG = "the catalog has no tables yet: `result-assets migrate` or `result-assets db upgrade` creates them"


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
    _reader: Stores | None = PrivateAttr(default=None)
    _sensor_reader: Stores | None = PrivateAttr(default=None)

    def settings(self) -> Settings:
        return Settings.from_env(**self._locations())

    def sensor_settings(self) -> Settings:
        """settings() without the numbers only runs use: a bad RESULT_READ_CACHE_MB fails the
        runs that read it, not every tick of the sensors, which never do."""
        return Settings.for_definitions(**self._locations())

    def _locations(self) -> dict:
        return dict(home=self.home, database_url=self.database_url, store_root=self.store_root,
                    backup_dir=self.backup_dir, source_dir=self.source_dir, workers=self.workers)

    def get(self) -> Stores:
        if self._stores is None:
            self._stores = Stores(self.settings())
        return self._stores

    def reader(self) -> Stores:
        """The stores for a sensor, which writes nothing while it evaluates: an empty catalog is
        not created (`result-assets migrate` or `db upgrade` does), the serving cache not filled."""
        if self._reader is None:
            self._reader = Stores(self.settings(), readonly=True)
        return self._reader

    def sensor_reader(self) -> Stores:
        """reader() for a sensor's tick: of sensor_settings()."""
        if self._sensor_reader is None:
            self._sensor_reader = Stores(self.sensor_settings(), readonly=True)
        return self._sensor_reader


# {field: variable} of the resources' fields that name their environment variable.
STORES_VARIABLES = {"home": "RESULT_ASSETS_HOME", "database_url": "DATABASE_URL", "store_root": "RESULT_STORE_ROOT",
                    "backup_dir": "RESULT_BACKUP_DIR", "source_dir": "RESULT_SOURCE_DIR", "workers": "RESULT_WORKERS"}
MIGRATION_VARIABLES = {"max_file_bytes": "RESULT_MAX_FILE_BYTES"}
_WHOLE_NUMBERS = {"workers", "max_file_bytes"}


def from_environment(variables: dict[str, str]) -> dict:
    """EnvVar fields for the variables set where the code location loads (an EnvVar of an
    unset variable would fail every run); the others keep their documented defaults."""
    return {name: EnvVar.int(var) if name in _WHOLE_NUMBERS else EnvVar(var)
            for name, var in variables.items() if os.environ.get(var)}


def stores_resource() -> StoresResource:
    return StoresResource(**from_environment(STORES_VARIABLES))


def migration_resource() -> MigrationSettings:
    return MigrationSettings(**from_environment(MIGRATION_VARIABLES))
