"""Dagster instance storage on the project's Postgres, with pooled event-log connections.

`dagster.yaml` names this class with an empty config: the URL comes from the same
settings as the catalog (DATABASE_URL or the embedded server), so `dagster dev`,
the CLI and tests all find the instance without a password in any file.

Stock dagster-postgres opens a new connection for every event (NullPool); a
migration writes several events per task, so the event log keeps a small pool.
"""
from __future__ import annotations

import os

from dagster._core.events.log import EventLogEntry
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
from dagster._core.storage.event_log import SqlEventLogStorageTable
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
        # No pre-ping: it would cost a round trip per event; recycling bounds stale connections.
        # Event writes are autocommitted one by one; not waiting for each WAL flush makes them
        # several times cheaper. A server crash can lose the last fraction of a second of event
        # log, never corrupt it; the catalog and data writes keep synchronous commits.
        options = {} if os.environ.get("RESULT_ASSETS_EVENT_SYNC_COMMIT") == "on" else {
            "connect_args": {"options": "-c synchronous_commit=off"}}
        self._engine = create_pg_engine(
            self.postgres_url,
            isolation_level="AUTOCOMMIT",
            pool_size=EVENT_POOL_SIZE,
            max_overflow=4,
            pool_recycle=600,
            **options,
        )

    def store_event(self, event: EventLogEntry) -> None:
        """As dagster-postgres stores an event, minus the NOTIFY that nothing listens to any more
        (dagster-postgres keeps it only for version skew; this project pins one release train)."""
        statement = self.prepare_insert_event(event).returning(SqlEventLogStorageTable.c.id)
        with self._connect() as conn:
            event_id = int(conn.execute(statement).scalar_one())
        if event.is_dagster_event and event.dagster_event_type in ASSET_EVENTS and event.dagster_event.asset_key:
            with self.index_transaction() as conn:
                self._store_asset_event_tags(conn, [event], [event_id])
                self._store_asset_event(conn, event, event_id)
        if event.is_dagster_event and event.dagster_event_type in ASSET_CHECK_EVENTS:
            self.store_asset_check_event(event, event_id)


class ResultAssetsStorage(DagsterPostgresStorage):
    def __init__(self, inst_data: ConfigurableClassData | None = None):
        url = dagster_url(Settings.from_env())
        super().__init__(url, inst_data=inst_data)
        # RESULT_ASSETS_STOCK_EVENT_LOG=1 keeps dagster-postgres' own event log (for comparisons).
        if os.environ.get("RESULT_ASSETS_STOCK_EVENT_LOG") != "1":
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
