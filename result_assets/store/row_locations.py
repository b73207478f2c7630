"""Where each task's rows live in the Delta tables: file and row groups, recorded in the catalog.

A reader that knows the file and row groups opens one Parquet footer (cached: Delta
data files never change) and decodes just those row groups. It never replays the Delta
log nor lists files, so a read costs the same after ten commits or ten thousand. A file
named by a catalog row is immutable, so the reader sees the task exactly as the commit
that catalog row names wrote it. Maintenance re-points rows that compaction moved (once
proven the same), and its vacuum never deletes a file a catalog row names.
"""
from __future__ import annotations

import bisect
import threading
from collections import OrderedDict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from result_assets.legacy.reconstruct import in_key_order, key_ordered
from result_assets.store.backups import s3_filesystem

# [[relative file path, [row group, ...]], ...] per table, as stored in tasks.row_locations
Locations = list[list]
# A read of this many row groups or fewer decodes them on the calling thread: a point read's
# one or two groups cost more handed to Arrow's thread pool (1.59 -> 1.39 ms for a signals
# group of 3,600 rows, docs/performance.md "Reads and saves"); reads of many groups
# (a batch's read-back, a scan) keep the pool.
THREADED_MIN_GROUPS = 3


class RowsGone(LookupError):
    """A file a catalog row names is gone (vacuumed or deleted): the task cannot be read as published."""

    def __init__(self, table: str, relative: str):
        super().__init__(f"{table}/{relative} is gone")
        self.table, self.relative = table, relative


class RowFiles:
    """Opens Parquet files under one Delta table root, with their footers cached."""

    def __init__(self, root: str, storage_options: dict[str, str] | None = None, footers: int = 512):
        self.root = root.rstrip("/")
        if root.startswith("s3://"):
            self._fs, self._base = s3_filesystem(storage_options or {}), self.root.split("://", 1)[1]
        else:
            self._fs, self._base = pafs.LocalFileSystem(), self.root
        self._footers: OrderedDict[str, pq.FileMetaData] = OrderedDict()
        self._limit = footers
        self._lock = threading.Lock()

    def path(self, table: str, relative: str) -> str:
        return f"{self._base}/{table}/{relative}"

    @property
    def filesystem(self) -> pafs.FileSystem:
        return self._fs

    def exists(self, table: str, relative: str) -> bool:
        return self._fs.get_file_info(self.path(table, relative)).type == pafs.FileType.File

    def metadata(self, table: str, relative: str) -> pq.FileMetaData:
        key = f"{table}/{relative}"
        with self._lock:
            cached = self._footers.get(key)
            if cached is not None:
                self._footers.move_to_end(key)
                return cached
        try:
            with self._fs.open_input_file(self.path(table, relative)) as f:
                metadata = pq.read_metadata(f)
        except OSError as exc:
            raise self._gone(table, relative, exc) from exc
        with self._lock:
            self._footers[key] = metadata
            while len(self._footers) > self._limit:
                self._footers.popitem(last=False)
        return metadata

    def locate(self, table: str, files: list[str], task_ids: list[str]) -> dict[str, Locations]:
        """{task_id: locations} of task_ids within files: the row groups that hold their rows.
        The task_id statistics of each row group name the candidates; the task_id column of
        those groups (dictionary-encoded: a few bytes a group) says which really hold them.
        A compaction interleaves its inputs' row groups, so a group's min..max can span many
        tasks it does not hold, and every point read of those tasks decoded it for nothing."""
        wanted = sorted(set(task_ids))
        out: dict[str, Locations] = {t: [] for t in wanted}
        for relative in files:
            metadata = self.metadata(table, relative)
            column = metadata.schema.to_arrow_schema().get_field_index("task_id")
            candidates = []
            for group in range(metadata.num_row_groups):
                stats = metadata.row_group(group).column(column).statistics
                if stats is None or not stats.has_min_max:
                    candidates.append(group)  # no statistics: every wanted task may be here
                elif bisect.bisect_left(wanted, stats.min) < bisect.bisect_right(wanted, stats.max):
                    candidates.append(group)
            for task_id, groups in self._groups_holding(table, relative, metadata, candidates, set(wanted)).items():
                out[task_id].append([relative, groups])
        return out

    def _groups_holding(self, table: str, relative: str, metadata: pq.FileMetaData, groups: list[int],
                        wanted: set[str]) -> dict[str, list[int]]:
        """{task_id: the groups among `groups` holding rows of it}, for the wanted tasks."""
        if not groups:
            return {}
        ids = self._read_groups(table, relative, metadata, groups, ["task_id"])["task_id"].combine_chunks()
        if len(ids) == 0:
            return {}
        # runs of one task_id: where each starts and ends, and the group each row is in
        ends = np.cumsum([metadata.row_group(g).num_rows for g in groups])
        starts = np.flatnonzero(_differs_from_next(ids)) + 1
        run_starts = np.concatenate(([0], starts)).astype(np.int64)
        run_ends = np.concatenate((starts, [len(ids)])).astype(np.int64)
        first = np.searchsorted(ends, run_starts, side="right")
        last = np.searchsorted(ends, run_ends - 1, side="right")
        held: dict[str, set[int]] = {}
        for task_id, a, b in zip(ids.take(pa.array(run_starts)).to_pylist(), first.tolist(), last.tolist()):
            if task_id in wanted:
                held.setdefault(task_id, set()).update(groups[a:b + 1])
        return {task_id: sorted(found) for task_id, found in held.items()}

    def read(self, table: str, located: dict[str, Locations], schema: pa.Schema) -> dict[str, pa.Table]:
        """{task_id: its rows} reading only the named row groups, each file opened once."""
        pieces = [_as_schema(rows, schema) for rows in self._named_rows(table, located, None)]
        if not pieces:
            return {t: schema.empty_table() for t in located}
        rows = pa.concat_tables(pieces)
        if len(located) == 1:  # a point read: _rows_of kept this task's rows and no other's
            (task_id,) = located
            return {task_id: key_ordered(rows)}
        return split_by_task(rows, list(located), schema)

    def scan(self, table: str, located: dict[str, Locations], schema: pa.Schema, columns: list[str] | None,
             expression=None, filter_columns: tuple[str, ...] = ()) -> pa.Table:
        """The rows of the located tasks matching `expression` (over `filter_columns`), with
        `columns` (all when None) and task_id: nothing unpublished and no task twice."""
        names = schema.names if columns is None else list(dict.fromkeys([*columns, "task_id", *filter_columns]))
        out = pa.schema([schema.field(n) for n in names])
        pieces = [(rows if expression is None else rows.filter(expression)).cast(out)
                  for rows in self._named_rows(table, located, names)]
        return pa.concat_tables(pieces) if pieces else out.empty_table()

    def _named_rows(self, table: str, located: dict[str, Locations], columns: list[str] | None):
        """Per file, its named row groups (`columns` only), keeping only the tasks that name it:
        a file can hold other versions of a task too (a later commit that was never published,
        a concurrent writer)."""
        by_file: dict[str, tuple[set[int], list[str]]] = {}
        for task_id, locations in located.items():
            for relative, groups in locations:
                entry = by_file.setdefault(relative, (set(), []))
                entry[0].update(groups)
                entry[1].append(task_id)
        for relative, (groups, task_ids) in sorted(by_file.items()):
            rows = self._read_groups(table, relative, self.metadata(table, relative), sorted(groups), columns)
            yield _rows_of(rows, task_ids)

    def _read_groups(self, table: str, relative: str, metadata: pq.FileMetaData, groups: list[int],
                     columns: list[str] | None) -> pa.Table:
        """These row groups of one file (`columns` only); RowsGone when the file is."""
        try:
            with self._fs.open_input_file(self.path(table, relative)) as f:
                return pq.ParquetFile(f, metadata=metadata).read_row_groups(
                    groups, columns=columns, use_threads=len(groups) >= THREADED_MIN_GROUPS)
        except OSError as exc:
            raise self._gone(table, relative, exc) from exc

    def _gone(self, table: str, relative: str, error: OSError) -> OSError:
        """RowsGone when the file is gone, else `error`. On S3 an object deleted after it was
        opened (a vacuum between a read's open and its ranges) fails the read with a plain
        OSError ("NO_SUCH_KEY"), not FileNotFoundError: the file's absence is asked for then."""
        if not isinstance(error, FileNotFoundError):
            try:
                if self._fs.get_file_info(self.path(table, relative)).type != pafs.FileType.NotFound:
                    return error
            except OSError:
                return error
        with self._lock:
            self._footers.pop(f"{table}/{relative}", None)
        return RowsGone(table, relative)


def _rows_of(rows: pa.Table, task_ids: list[str]) -> pa.Table:
    """The rows of task_ids: a slice where they lie together (a point read's task, in the
    groups that hold it), not a filter's copy of every column."""
    ids = rows["task_id"]
    held = pc.equal(ids, task_ids[0]) if len(task_ids) == 1 else pc.is_in(ids, pa.array(task_ids, pa.string()))
    at = np.flatnonzero(held.to_numpy(zero_copy_only=False))
    if at.size and at[-1] - at[0] + 1 == at.size:
        return rows.slice(int(at[0]), int(at.size))
    return rows.filter(held)


def _as_schema(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """rows with schema's columns and types (a cast only where a file's differ: one call per column)."""
    rows = rows.select(schema.names)
    return rows if rows.schema == schema else rows.cast(schema)


def split_by_task(rows: pa.Table, task_ids: list[str], schema: pa.Schema) -> dict[str, pa.Table]:
    """{task_id: its rows}, every id present (empty when it has none)."""
    if rows.num_rows == 0:
        return {t: schema.empty_table() for t in task_ids}
    if len(task_ids) == 1 and _one_task_in_order(rows, task_ids[0]):
        return {task_ids[0]: rows}  # a point read: its rows as the file holds them, in order
    out = _split(rows)
    return {t: out[t] if t in out else schema.empty_table() for t in task_ids}


def _split(rows: pa.Table) -> dict[str, pa.Table]:
    """{task_id: its rows} of the tasks rows holds, each in (symbol_idx, seq) order."""
    out = {}
    if not _in_row_order(rows):  # files are written sorted: reordering (every column) is rarely needed
        rows = rows.sort_by([("task_id", "ascending"), ("symbol_idx", "ascending"), ("seq", "ascending")])
    ids = rows.column("task_id").combine_chunks()
    starts = [0, *(np.flatnonzero(_differs_from_next(ids)) + 1).tolist()]
    for start, end in zip(starts, [*starts[1:], rows.num_rows]):
        out[ids[start].as_py()] = rows.slice(start, end - start)
    return out


def _one_task_in_order(rows: pa.Table, task_id: str) -> bool:
    """rows all of task_id and in (symbol_idx, seq) order: one Arrow call on the ids and
    reconstruct's numpy check of the keys (_in_row_order's fifteen Arrow calls were about
    0.1 ms of each table of a point read)."""
    ids = rows.column("task_id")
    return not ids.null_count and pc.all(pc.equal(ids, task_id)).as_py() and in_key_order(rows)


def _differs_from_next(column: pa.Array) -> np.ndarray:
    return pc.not_equal(*_neighbours(column)).to_numpy(zero_copy_only=False)


def _in_row_order(rows: pa.Table) -> bool:
    """rows already sorted by (task_id, symbol_idx, seq)?"""
    if rows.num_rows < 2:
        return True
    (id_a, id_b), (symbol_a, symbol_b), (seq_a, seq_b) = (
        _neighbours(rows.column(name).combine_chunks()) for name in ("task_id", "symbol_idx", "seq"))
    ordered = pc.or_(pc.less(id_a, id_b), pc.and_(pc.equal(id_a, id_b), pc.or_(
        pc.less(symbol_a, symbol_b), pc.and_(pc.equal(symbol_a, symbol_b), pc.less_equal(seq_a, seq_b)))))
    return bool(pc.all(ordered).as_py())


def _neighbours(column: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(each value but the last, each value but the first)"""
    return column.slice(0, len(column) - 1), column.slice(1)
