"""A task's Delta rows as they were at an earlier table version (Delta time travel)."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from result_assets.store.delta_tables import SCHEMAS, DeltaStore


def rows_at_version(delta: DeltaStore, table: str, task_ids: list[str], version: int | None) -> pa.Table:
    """The rows of task_ids in `table` at `version` (None: before the table existed, so none)."""
    if version is None:
        return SCHEMAS[table].empty_table()
    dt = DeltaTable(delta.uri(table), version=version, storage_options=delta.storage_options)
    rows = dt.to_pyarrow_dataset().to_table(filter=pc.field("task_id").isin(task_ids))
    return rows.select(SCHEMAS[table].names).cast(SCHEMAS[table])


def version_at(delta: DeltaStore, table: str, when) -> int | None:
    """The table's last version committed at or before `when` (an aware datetime).

    A catalog row is committed after its Delta commits, so the version current at its
    migrated_at holds its rows. Used when a row has no recorded version.
    """
    dt = delta.open(table)
    if dt is None:
        return None
    limit_ms = when.timestamp() * 1000
    versions = [c["version"] for c in dt.history() if c.get("timestamp", 0) <= limit_ms]
    return max(versions) if versions else None
