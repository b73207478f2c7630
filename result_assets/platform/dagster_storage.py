"""Dagster instance storage on the project's Postgres, with pooled event-log connections.

`dagster.yaml` names this class with an empty config: the URL comes from the same
settings as the catalog (DATABASE_URL or the embedded server), so `dagster dev`,
the CLI and tests all find the instance without a password in any file.

Stock dagster-postgres opens a new connection for every event (NullPool); a
migration writes several events per task, so the event log keeps a small pool.
"""
from __future__ import annotations

from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.utils import create_pg_engine

from result_assets.platform.postgres import dagster_url
from result_assets.settings import Settings

EVENT_POOL_SIZE = 2


class PooledPostgresEventLogStorage(PostgresEventLogStorage):
    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True, inst_data=None):
        super().__init__(postgres_url, should_autocreate_tables, inst_data=inst_data)
        self._engine = create_pg_engine(
            self.postgres_url,
            isolation_level="AUTOCOMMIT",
            pool_size=EVENT_POOL_SIZE,
            max_overflow=4,
            pool_pre_ping=True,
            pool_recycle=3600,
        )


class ResultAssetsStorage(DagsterPostgresStorage):
    def __init__(self, inst_data: ConfigurableClassData | None = None):
        url = dagster_url(Settings.from_env())
        super().__init__(url, inst_data=inst_data)
        self._event_log_storage = PooledPostgresEventLogStorage(url)

    @classmethod
    def config_type(cls):
        return {}

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data)

    # Storage-specific handles are rebuilt from this class, never from a URL in YAML.
    @property
    def event_storage_data(self):
        return None

    @property
    def run_storage_data(self):
        return None

    @property
    def schedule_storage_data(self):
        return None
