"""The stores with the Delta tables kept open between queries: what ResultStore reads through."""
from __future__ import annotations

import threading
from functools import cached_property

import pyarrow as pa
import pyarrow.compute as pc

from result_assets.store.delta_tables import DeltaStore, s3_storage_options, task_predicate
from result_assets.store.stores import Stores


class CachedDeltaStore(DeltaStore):
    """Keeps each Delta table open; refreshed only when a commit landed."""

    def __init__(self, root: str, storage_options: dict[str, str] | None = None):
        super().__init__(root, storage_options)
        self._tables = {}
        # A handle is refreshed in place: what is read from it is taken under this lock, so that
        # the version looked at is the snapshot read (a query may run on several threads).
        self._lock = threading.RLock()

    def open(self, table: str):
        with self._lock:
            dt = self._tables.get(table)
            if dt is None:
                dt = super().open(table)
                if dt is not None:
                    self._tables[table] = dt
            else:
                dt.update_incremental()
            return dt

    def read_tasks(self, table: str, task_ids: list[str], columns: list[str] | None = None,
                   version: int | None = None) -> pa.Table | None:
        with self._lock:
            current = self.open(table)
            if current is None:
                return None
            if version is not None and version != current.version():
                dataset = None  # time travel: not cached
            else:
                # Built from the handle whose version was just compared: opening the table again
                # here would refresh it, and read a commit that landed since (never published).
                dataset = current.to_pyarrow_dataset(file_pruning_predicate=task_predicate(task_ids))
        if dataset is None:
            return super().read_tasks(table, task_ids, columns, version)
        return dataset.to_table(columns=columns, filter=pc.field("task_id").isin(pa.array(task_ids, pa.string())))


class QueryStores(Stores):
    """The stores, with Delta tables kept open between queries."""

    @cached_property
    def delta(self) -> DeltaStore:
        root = self.settings.store_root
        return CachedDeltaStore(root, s3_storage_options(root))
