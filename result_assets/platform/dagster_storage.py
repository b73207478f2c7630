"""Where dagster.yaml finds the opt-in instance storage (`module: result_assets.platform.dagster_storage`,
`class: ResultAssetsStorage`), and that storage. The private Dagster names it uses come from
the one module fenced for them (assets/dagster_internals.py, tuned_storage_internals), each
with its contract test (test_dagster_contract.py). Imported only by an instance that names
it: a code location on stock storage never loads dagster-postgres' internals.

ResultAssetsStorage, opt-in (assets/instance.py TUNED_STORAGE_YAML; the default instance and
deploy/ are stock dagster-postgres, and no target depends on this): the instance storage
on the project's Postgres (URL from the same settings as the catalog, never from YAML)
whose event log keeps a connection pool, skips the NOTIFY per event and writes with
synchronous_commit=off. Its store_event is a copy of
dagster-postgres' minus the NOTIFY, so it uses the private pieces that one uses
(prepare_insert_event, SqlEventLogStorageTable, ASSET_EVENTS, ASSET_CHECK_EVENTS,
index_transaction, _store_asset_event_tags, _store_asset_event, store_asset_check_event)
and replaces the private _engine / _event_log_storage. Public alternative: stock
`storage: postgres:` config. Measured (`python -m benchmarks.event_log --tasks N`,
`migrate` of N one-signal tasks on fresh embedded homes, 2 shared cores, load 1.5-3):
    N = 100 (2 rounds)   stock 176 / 206 ms per task   pooled 66 / 80   (sync commit 77 / 132)
    N = 200 (2 runs)     stock 180 / 197 ms per task   pooled 78 / 63   (sync commit 77 / 59)
i.e. stock took 2.3-3.1x as long (with six check evaluations per partition then; two now:
docs/scaling.md "Into a Dagster deployment you already have"); synchronous_commit=off helps only
under load. An instance that opts in runs the project image in every process.
It also writes in fewer round trips what Dagster hands it one by one or row by row:
a run's planned materializations (one per asset and partition: one INSERT per batch
instead of one per event) and a run's check evaluations (held, then one INSERT and one
UPDATE for all of them before the next event of another kind). Measured on the bench
corpus (312 tasks in 7 runs, 16 events a task): time inside the event log storage
9.4 s -> 3.7 s (docs/benchmarks.md "Performance: the benchmark").
"""
from __future__ import annotations

import os
import threading
from itertools import groupby

from dagster import DagsterEventType, EventLogEntry
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.utils import create_pg_engine
from psycopg2.extras import execute_values

from result_assets.assets.dagster_internals import tuned_storage_internals
from result_assets.store.postgres import dagster_url
from result_assets.settings import Settings

(ASSET_EVENTS, ASSET_CHECK_EVENTS, SqlEventLogStorageTable, AssetCheckExecutionsTable, ConfigurableClassData,
 serialize_value) = tuned_storage_internals()


EVENT_POOL_SIZE = 2


class PooledPostgresEventLogStorage(PostgresEventLogStorage):
    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True, inst_data=None):
        super().__init__(postgres_url, should_autocreate_tables, inst_data=inst_data)
        # No pre-ping: it would cost a round trip per event; recycling bounds stale connections.
        # Event writes are autocommitted one by one; not waiting for each WAL flush makes them
        # cheaper under load. A server crash can lose the last fraction of a second of event
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
        self._pending_evaluations: list[EventLogEntry] = []
        self._pending_lock = threading.Lock()

    def store_event(self, event: EventLogEntry) -> None:
        """As dagster-postgres stores an event, minus the NOTIFY that nothing listens to any more
        (dagster-postgres keeps it only for version skew; this project pins one release train).
        A contract test pins the source of the copied method.

        A run's check evaluations are held and written together (_flush_check_evaluations)
        just before the next event of any other kind, so the log keeps its order."""
        if _is_run_check_evaluation(event):
            with self._pending_lock:
                self._pending_evaluations.append(event)
                if len(self._pending_evaluations) < CHECK_EVALUATIONS_PER_WRITE:
                    return
        self._flush_check_evaluations()
        statement = self.prepare_insert_event(event).returning(SqlEventLogStorageTable.c.id)
        with self._connect() as conn:
            event_id = int(conn.execute(statement).scalar_one())
        if event.is_dagster_event and event.dagster_event_type in ASSET_EVENTS and event.dagster_event.asset_key:
            with self.index_transaction() as conn:
                self._store_asset_event_tags(conn, [event], [event_id])
                self._store_asset_event(conn, event, event_id)
        if event.is_dagster_event and event.dagster_event_type in ASSET_CHECK_EVENTS:
            self.store_asset_check_event(event, event_id)

    def store_event_batch(self, events) -> None:
        """Dagster's batches (DAGSTER_EVENT_BATCH_SIZE): a run's planned events at its start
        (one per asset and partition) and a step's materializations. dagster-postgres writes
        the planned ones one by one; here each run of them is one INSERT."""
        self._flush_check_evaluations()
        for event_type, group in groupby(events, key=lambda e: e.dagster_event_type):
            group = list(group)
            if event_type == DagsterEventType.ASSET_MATERIALIZATION_PLANNED:
                self._store_planned_materializations(group)
            else:
                super().store_event_batch(group)

    def _store_planned_materializations(self, events: list[EventLogEntry]) -> None:
        event_ids = self._insert_events([self._event_to_row(event) for event in events])
        # Per asset, what store_event leaves in the asset index is the last event's run and time.
        last = {event.dagster_event.asset_key: (event, event_id) for event, event_id in zip(events, event_ids)}
        with self.index_transaction() as conn:
            for event, event_id in last.values():
                self._store_asset_event(conn, event, event_id)

    def _flush_check_evaluations(self) -> None:
        """The held check evaluations: one INSERT into the event log, one UPDATE of their
        planned executions (as store_asset_check_event does row by row), an INSERT of any
        that had none planned."""
        with self._pending_lock:
            events, self._pending_evaluations = self._pending_evaluations, []
        if not events:
            return
        rows = [self._event_to_row(event) for event in events]
        event_ids = self._insert_events(rows)
        values = []
        for i, (event, row, event_id) in enumerate(zip(events, rows, event_ids)):
            evaluation = event.dagster_event.event_specific_data
            target = evaluation.target_materialization_data
            values.append((i, evaluation.asset_key.to_string(), evaluation.check_name, event.run_id,
                           evaluation.partition, "SUCCEEDED" if evaluation.passed else "FAILED", row["event"],
                           self._event_insert_timestamp(event), event_id, target.storage_id if target else None))
        with self.index_connection() as conn:
            cursor = conn.connection.cursor()
            updated = execute_values(cursor, _UPDATE_PLANNED_CHECKS, values, fetch=True, page_size=len(values))
            done = {row[0] for row in updated}
            missing = [v[1:] for v in values if v[0] not in done]
            if missing:
                execute_values(cursor, _INSERT_CHECKS, missing, page_size=len(missing))

    def _insert_events(self, rows: list[dict]) -> list[int]:
        """Event log rows in one statement (SQLAlchemy's insertmanyvalues: a cached statement,
        not one compiled anew per row count); their ids, in order."""
        statement = SqlEventLogStorageTable.insert().returning(SqlEventLogStorageTable.c.id,
                                                               sort_by_parameter_order=True)
        with self._connect() as conn:
            return [int(row[0]) for row in conn.execute(statement, rows).fetchall()]

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        """As the stock method, a row per planned partition, but the event serialized once
        (the stock one serializes it, with all its partition keys, once per partition)."""
        planned = event.dagster_event.event_specific_data
        partition_keys = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        row = dict(asset_key=planned.asset_key.to_string(), check_name=planned.check_name, run_id=event.run_id,
                   execution_status="PLANNED", evaluation_event=serialize_value(event),
                   evaluation_event_timestamp=self._event_insert_timestamp(event),
                   evaluation_event_storage_id=event_id)
        with self.index_connection() as conn:
            conn.execute(AssetCheckExecutionsTable.insert(), [{**row, "partition": key} for key in partition_keys])

    def dispose(self) -> None:
        self._flush_check_evaluations()
        super().dispose()


# At most this many check evaluations wait for one write.
CHECK_EVALUATIONS_PER_WRITE = 1000
_T = AssetCheckExecutionsTable.name
_UPDATE_PLANNED_CHECKS = f"""
    UPDATE {_T} AS t SET execution_status = v.status, evaluation_event = v.event,
        evaluation_event_timestamp = v.ts::timestamp, evaluation_event_storage_id = v.event_id::bigint,
        materialization_event_storage_id = v.target::bigint
    FROM (VALUES %s) AS v(i, asset_key, check_name, run_id, partition, status, event, ts, event_id, target)
    WHERE t.asset_key = v.asset_key AND t.check_name = v.check_name AND t.run_id = v.run_id
      AND t.partition IS NOT DISTINCT FROM v.partition
    RETURNING v.i"""
_INSERT_CHECKS = f"""
    INSERT INTO {_T} (asset_key, check_name, run_id, partition, execution_status, evaluation_event,
        evaluation_event_timestamp, evaluation_event_storage_id, materialization_event_storage_id)
    VALUES %s"""


def _is_run_check_evaluation(event: EventLogEntry) -> bool:
    return bool(event.run_id) and event.is_dagster_event and \
        event.dagster_event_type == DagsterEventType.ASSET_CHECK_EVALUATION


class ResultAssetsStorage(DagsterPostgresStorage):
    """`storage: custom: {module: result_assets.platform.dagster_storage, class: ResultAssetsStorage,
    config: {}}`: the URL comes from DATABASE_URL or the embedded server, never from a file."""

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
