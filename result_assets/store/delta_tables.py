"""The signal and curve rows in Delta Lake tables, one commit per batch of tasks.

No partition column: one directory per task would mean 100k directories of tiny
files. Rows are sorted by task_id so that file statistics prune reads of one task,
and forced tasks are replaced with a predicate overwrite of just their ids.
"""
from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import ColumnProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from result_assets.legacy.schema import CURVE_SCHEMA, SIGNAL_SCHEMA
from result_assets.store.row_locations import RowFiles

SIGNALS = "signals"
CURVES = "curves"
SCHEMAS = {SIGNALS: SIGNAL_SCHEMA, CURVES: CURVE_SCHEMA}  # each table's Arrow schema

# Each column's encoding, measured on the bench corpus (312 tasks, 202 MB of JSON, 317k signals,
# 523k curve points) and on the 22 real samples; docs/performance.md "Storage: what each column
# costs" has the figures and the commands.
# - float64: byte_stream_split + zstd: 5-18% smaller than plain and than dictionary
#   (23-34%: the values are unique). Lossless: the columns stay float64, bit for bit.
# - ts, exit_ts, seq: DELTA_BINARY_PACKED (ts 0.83 MB; plain 1.41, BSS 1.38, dictionary 1.97).
# - holding_bars, the strings and symbol_idx: dictionary (holding_bars 280 kB, delta 291 kB; reason
#   121 kB, plain 296 kB). BSS on holding_bars is 9% smaller still, but BSS on ints needs Parquet
#   2.11 readers (Spark 3.x cannot read it) for 0.1% of the store: not taken.
# - every other column, i.e. the leaves of the `indicators` map (the deltalake binding names top-level
#   columns only): no dictionary. Its float values are unique and a 32k row group's dictionary never
#   overflows: 6.11 MB with it, 4.84 MB plain. BSS cannot be the default: the map's key leaf is a string.
# zstd level 9: 15 is 1.6% smaller for 5x the write CPU, 19 is 1.9% smaller for 10x (0.56 s -> 2.8 s
# -> 5.4 s for the corpus's 840k rows). Row groups of a few thousand rows: a point read (one task,
# by its row locations) decodes its whole groups. `python -m benchmarks.row_groups` (300
# application saves after maintain; docs/performance.md "Row groups for point reads"): one
# task's curves 2.10 -> 0.77 ms at 4k rows instead of 32k, for a file 3.7% larger; its signals
# 2.18 -> 1.29 ms at 2k rows instead of 4k (a task has about 20 times fewer signals than curve
# points). Signals at 2k rows: the bench corpus stored 1.7% larger; at 1k, 5.0% larger for
# about 0.3 ms more off a first read.
_FLOAT_COLUMNS = ("price", "quantity", "exit_price", "return_pct", "pnl", "commission", "equity", "drawdown")
_DELTA_COLUMNS = ("ts", "exit_ts", "seq")
_DICTIONARY_COLUMNS = ("task_id", "symbol_idx", "symbol", "type", "reason", "extras", "holding_bars")
ZSTD_LEVEL = 9
ROW_GROUP_ROWS = {SIGNALS: 2 * 1024, CURVES: 4 * 1024}  # any other table: the curves'


def writer_properties(table: str, schema: pa.Schema) -> WriterProperties:
    """How `table`'s files are written (its rows in `schema`): every write and compaction."""
    columns = {}
    for name in schema.names:
        if name in _FLOAT_COLUMNS:
            columns[name] = ColumnProperties(dictionary_enabled=False, encoding="BYTE_STREAM_SPLIT")
        elif name in _DELTA_COLUMNS:
            columns[name] = ColumnProperties(dictionary_enabled=False, encoding="DELTA_BINARY_PACKED")
        elif name in _DICTIONARY_COLUMNS:
            columns[name] = ColumnProperties(dictionary_enabled=True)
    return WriterProperties(
        compression="ZSTD",
        compression_level=ZSTD_LEVEL,
        max_row_group_size=ROW_GROUP_ROWS.get(table, ROW_GROUP_ROWS[CURVES]),
        column_properties=columns,
        default_column_properties=ColumnProperties(dictionary_enabled=False),
    )


def sql_string(value: str) -> str:
    """A SQL string literal for a Delta predicate (the only place values meet SQL text here)."""
    return "'" + value.replace("'", "''") + "'"


def task_predicate(task_ids: list[str]) -> str:
    """A Delta predicate: task_id is one of task_ids (none: nothing matches)."""
    if not task_ids:
        return "false"
    return "task_id IN (" + ", ".join(sql_string(t) for t in task_ids) + ")"


# The standard AWS variables an s3:// root takes its endpoint and credentials from.
AWS_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ALLOW_HTTP")


def is_s3_uri(root: str) -> bool:
    return root.startswith("s3://")


def s3_storage_options(root: str, environ: Mapping[str, str] = os.environ) -> dict[str, str] | None:
    """delta-rs storage options for an s3:// root, from the standard AWS variables; None for a local root.

    Concurrent batches commit to the same _delta_log: with `conditional_put=etag` a commit is
    a put-if-absent (S3 `If-None-Match: *`), so the loser of a race gets a conflict instead of
    silently overwriting the winner's commit. No DynamoDB lock is needed (delta-rs 1.x dropped it).
    """
    if not is_s3_uri(root):
        return None
    options = {name: environ[name] for name in AWS_VARIABLES if environ.get(name)}
    if "AWS_REGION" not in options and environ.get("AWS_DEFAULT_REGION"):
        options["AWS_REGION"] = environ["AWS_DEFAULT_REGION"]
    options["conditional_put"] = "etag"
    return options


# A predicate overwrite fails with CommitFailedError when a concurrent batch committed files it
# had to read (delta-rs retries only blind appends). It replaces exactly its own task ids, so
# writing the whole batch again on the new snapshot is safe.
COMMIT_ATTEMPTS = 12
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommitInfo:
    table: str
    version: int
    rows: int
    bytes_added: int
    files_added: int
    files: tuple[str, ...] = ()  # the data files this commit added (relative to the table)


class DeltaStore:
    """The project's Delta tables under one root (a local path or an object-store URI)."""

    def __init__(self, root: str, storage_options: dict[str, str] | None = None):
        self.root = root.rstrip("/")
        self.storage_options = storage_options
        self.conflicts_retried = 0  # commits redone after a concurrent writer won the race

    def uri(self, table: str) -> str:
        return f"{self.root}/{table}"

    def open(self, table: str) -> DeltaTable | None:
        try:
            return DeltaTable(self.uri(table), storage_options=self.storage_options)
        except TableNotFoundError:
            return None

    def open_version(self, table: str, version: int) -> DeltaTable:
        """The table as of `version` (a fresh handle: an open one may be shared and current)."""
        return DeltaTable(self.uri(table), version=version, storage_options=self.storage_options)

    def replace_tasks(self, table: str, rows: pa.Table, task_ids: list[str]) -> CommitInfo | None:
        """Make `rows` the whole content of `task_ids` in `table`, in one commit.

        Idempotent: re-running a batch after a crash replaces, never duplicates.
        """
        if not task_ids:
            return None
        rows = rows.sort_by([("task_id", "ascending"), ("symbol_idx", "ascending"), ("seq", "ascending")])
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                version = self._overwrite(table, rows, task_ids)
                break
            except CommitFailedError as exc:
                if attempt == COMMIT_ATTEMPTS:
                    raise
                self.conflicts_retried += 1
                log.info("commit to %s conflicted (attempt %d/%d), retrying: %s",
                         self.uri(table), attempt, COMMIT_ATTEMPTS, str(exc).splitlines()[0])
                # Jittered backoff, so that writers that collided do not collide again in step.
                time.sleep(random.uniform(0.05, 0.1 * 2 ** min(attempt, 5)))
        added = self._files_added_by(table, version)
        return CommitInfo(table, version, rows.num_rows, sum(added.values()), len(added), tuple(sorted(added)))

    @cached_property
    def files(self) -> RowFiles:
        return RowFiles(self.root, self.storage_options)

    def locate(self, commit: CommitInfo | None, task_ids: list[str]) -> dict[str, list]:
        """{task_id: [[file, [row group, ...]], ...]} of the rows `commit` wrote for task_ids."""
        if commit is None:
            return {t: [] for t in task_ids}
        return self.files.locate(commit.table, list(commit.files), task_ids)

    def _overwrite(self, table: str, rows: pa.Table, task_ids: list[str]) -> int:
        """One predicate overwrite of task_ids on the latest snapshot; the version it committed."""
        existing = self.open(table)
        if existing is None:
            # Create the table with an empty append: creators racing each other just add empty
            # commits (delta-rs retries appends), and the overwrite below then has a handle.
            write_deltalake(self.uri(table), rows.schema.empty_table(), mode="append",
                            storage_options=self.storage_options)
            existing = self.open(table)
        write_deltalake(existing, rows, mode="overwrite", predicate=task_predicate(task_ids),
                        writer_properties=writer_properties(table, rows.schema), storage_options=self.storage_options)
        # The handle now stands at the version it committed. (Not a fresh load or its history:
        # other writers may have committed since.)
        return existing.version()

    def _files_added_by(self, table: str, version: int) -> dict[str, int]:
        """{path: bytes} of the files commit `version` added (other writers' commits excluded),
        from that commit's own log entry: no snapshot is loaded."""
        files = self.files
        with files.filesystem.open_input_stream(files.path(table, f"_delta_log/{version:020d}.json")) as f:
            actions = [json.loads(line) for line in f.read().splitlines() if line.strip()]
        return {unquote(a["add"]["path"]): a["add"]["size"] for a in actions if "add" in a}

    def read_tasks(self, table: str, task_ids: list[str], columns: list[str] | None = None,
                   version: int | None = None) -> pa.Table | None:
        """The rows of task_ids, as of `version` (Delta time travel) or the current version."""
        dt = self.open(table)
        if dt is None:
            return None
        if version is not None and version != dt.version():
            dt = self.open_version(table, version)
        # only the files whose Delta statistics may hold these tasks (a version's whole table else)
        dataset = dt.to_pyarrow_dataset(file_pruning_predicate=task_predicate(task_ids))
        return dataset.to_table(columns=columns, filter=pc.field("task_id").isin(task_ids))

    def log_bytes(self, table: str) -> int:
        """Bytes of the table's Delta log (commits and checkpoints): needed to read it at all."""
        from pyarrow import fs as pafs

        files = self.files
        selector = pafs.FileSelector(f"{files.path(table, '_delta_log')}", allow_not_found=True, recursive=True)
        return sum(info.size or 0 for info in files.filesystem.get_file_info(selector) if info.type == pafs.FileType.File)

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
