"""The signal and curve rows in Delta Lake tables, one commit per batch of tasks.

No partition column: one directory per task would mean 100k directories of tiny
files. Rows are sorted by task_id so that file statistics prune reads of one task,
and forced tasks are replaced with a predicate overwrite of just their ids.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import ColumnProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import TableNotFoundError

SIGNALS = "signals"
CURVES = "curves"

# Noisy float64 compresses best as byte_stream_split + zstd; low-cardinality strings as
# dictionaries; timestamps and ints as deltas (measured, see design notes).
_FLOAT_COLUMNS = ("price", "quantity", "exit_price", "return_pct", "pnl", "commission", "equity", "drawdown")
_DELTA_COLUMNS = ("ts", "exit_ts", "seq", "holding_bars")


def writer_properties(schema: pa.Schema) -> WriterProperties:
    columns = {}
    for name in schema.names:
        if name in _FLOAT_COLUMNS:
            columns[name] = ColumnProperties(dictionary_enabled=False, encoding="BYTE_STREAM_SPLIT")
        elif name in _DELTA_COLUMNS:
            columns[name] = ColumnProperties(dictionary_enabled=False, encoding="DELTA_BINARY_PACKED")
    return WriterProperties(
        compression="ZSTD",
        compression_level=9,
        max_row_group_size=256 * 1024,
        column_properties=columns,
    )


def sql_string(value: str) -> str:
    """A SQL string literal for a Delta predicate (the only place values meet SQL text here)."""
    return "'" + value.replace("'", "''") + "'"


def task_predicate(task_ids: list[str]) -> str:
    return "task_id IN (" + ", ".join(sql_string(t) for t in task_ids) + ")"


@dataclass(frozen=True)
class CommitInfo:
    table: str
    version: int
    rows: int
    bytes_added: int
    files_added: int


class DeltaStore:
    """The project's Delta tables under one root (a local path or an object-store URI)."""

    def __init__(self, root: str, storage_options: dict[str, str] | None = None):
        self.root = root.rstrip("/")
        self.storage_options = storage_options

    def uri(self, table: str) -> str:
        return f"{self.root}/{table}"

    def open(self, table: str) -> DeltaTable | None:
        try:
            return DeltaTable(self.uri(table), storage_options=self.storage_options)
        except TableNotFoundError:
            return None

    def replace_tasks(self, table: str, rows: pa.Table, task_ids: list[str]) -> CommitInfo | None:
        """Make `rows` the whole content of `task_ids` in `table`, in one commit.

        Idempotent: re-running a batch after a crash replaces, never duplicates.
        """
        if not task_ids:
            return None
        rows = rows.sort_by([("task_id", "ascending"), ("symbol_idx", "ascending"), ("seq", "ascending")])
        existing = self.open(table)
        props = writer_properties(rows.schema)
        before = _file_sizes(existing) if existing is not None else {}
        if existing is None:
            write_deltalake(self.uri(table), rows, mode="append", writer_properties=props,
                            storage_options=self.storage_options)
        else:
            write_deltalake(existing, rows, mode="overwrite", predicate=task_predicate(task_ids),
                            writer_properties=props, storage_options=self.storage_options)
        after_table = DeltaTable(self.uri(table), storage_options=self.storage_options)
        added = {p: s for p, s in _file_sizes(after_table).items() if p not in before}
        return CommitInfo(table, after_table.version(), rows.num_rows, sum(added.values()), len(added))

    def read_tasks(self, table: str, task_ids: list[str], columns: list[str] | None = None) -> pa.Table | None:
        dt = self.open(table)
        if dt is None:
            return None
        dataset = dt.to_pyarrow_dataset()
        return dataset.to_table(columns=columns, filter=pc.field("task_id").isin(task_ids))

    def total_bytes(self, table: str) -> tuple[int, int]:
        """(bytes, files) of the table's current version."""
        dt = self.open(table)
        if dt is None:
            return 0, 0
        sizes = _file_sizes(dt)
        return sum(sizes.values()), len(sizes)


def _file_sizes(dt: DeltaTable) -> dict[str, int]:
    actions = pa.table(dt.get_add_actions(flatten=True))
    return dict(zip(actions.column("path").to_pylist(), actions.column("size_bytes").to_pylist()))
