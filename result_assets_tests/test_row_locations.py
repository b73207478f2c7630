"""store/row_locations.RowFiles.locate: the row groups that really hold a task's rows, also
in a file whose row groups interleave sorted runs (as a Delta compaction writes them)."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import fs as pafs

from result_assets.store.row_locations import RowFiles


def _rows(task_ids: list[str], per_task: int) -> pa.Table:
    ids = [t for t in task_ids for _ in range(per_task)]
    return pa.table({"task_id": ids, "seq": list(range(len(ids)))})


def test_interleaved_row_groups_name_only_the_groups_holding_each_task(tmp_path):
    # Two sorted runs, their row groups interleaved, and each run's tail in one shared group
    # whose min..max spans tasks it does not hold (what a compaction of two files writes).
    run_a = [f"t{i:03d}" for i in range(0, 20)]
    run_b = [f"t{i:03d}" for i in range(100, 120)]
    groups = [_rows(run_b[:8], 5), _rows(run_a[:8], 5), _rows(run_b[8:16], 5), _rows(run_a[8:16], 5),
              _rows(run_a[16:] + run_b[16:], 5)]
    (tmp_path / "t").mkdir()
    with pq.ParquetWriter(tmp_path / "t" / "f.parquet", groups[0].schema) as writer:
        for group in groups:
            writer.write_table(group, row_group_size=len(group))
    files = RowFiles(str(tmp_path))
    wanted = ["t000", "t007", "t008", "t017", "t050", "t105", "t110", "t119"]
    located = files.locate("t", ["f.parquet"], wanted)
    assert located == {"t000": [["f.parquet", [1]]], "t007": [["f.parquet", [1]]], "t008": [["f.parquet", [3]]],
                       "t017": [["f.parquet", [4]]], "t050": [], "t105": [["f.parquet", [0]]],
                       "t110": [["f.parquet", [2]]], "t119": [["f.parquet", [4]]]}
    # group 4's statistics span t016..t119: by them alone t050 and t105 would name it too
    metadata = pq.read_metadata(tmp_path / "t" / "f.parquet")
    stats = metadata.row_group(4).column(0).statistics
    assert (stats.min, stats.max) == ("t016", "t119")


def test_a_task_across_row_groups_names_each_of_them(tmp_path):
    rows = _rows(["a", "b", "c"], 7)  # 21 rows in groups of 4: "b" spans groups 1..3
    (tmp_path / "t").mkdir()
    pq.write_table(rows, tmp_path / "t" / "f.parquet", row_group_size=4)
    located = RowFiles(str(tmp_path)).locate("t", ["f.parquet"], ["b", "c"])
    assert located == {"b": [["f.parquet", [1, 2, 3]]], "c": [["f.parquet", [3, 4, 5]]]}


def test_an_empty_file_holds_no_task(tmp_path):
    (tmp_path / "t").mkdir()
    pq.write_table(_rows([], 1), tmp_path / "t" / "empty.parquet")
    assert RowFiles(str(tmp_path)).locate("t", ["empty.parquet"], ["a"]) == {"a": []}


def test_a_point_reads_rows_are_split_as_any_reads_are():
    """One task's rows take a shorter check (numpy on the int keys, one Arrow call on the ids)
    than several tasks' do; both give each task its rows in (symbol_idx, seq) order, and never
    another task's rows."""
    from result_assets.store.row_locations import split_by_task

    schema = pa.schema([("task_id", pa.string()), ("symbol_idx", pa.int32()), ("seq", pa.int32()), ("v", pa.int64())])

    def rows(ids, keys):
        return pa.table({"task_id": ids, "symbol_idx": [k[0] for k in keys], "seq": [k[1] for k in keys],
                         "v": list(range(len(ids)))}, schema=schema)

    def keys_of(table):
        return list(zip(table["symbol_idx"].to_pylist(), table["seq"].to_pylist()))

    in_order = rows(["a"] * 4, [(-1, 0), (0, 0), (0, 1), (1, 0)])
    assert split_by_task(in_order, ["a"], schema)["a"].equals(in_order)
    shuffled = rows(["a"] * 4, [(0, 1), (-1, 0), (1, 0), (0, 0)])
    assert keys_of(split_by_task(shuffled, ["a"], schema)["a"]) == [(-1, 0), (0, 0), (0, 1), (1, 0)]
    mixed = rows(["a", "b", "a"], [(0, 0), (0, 0), (0, 1)])
    assert split_by_task(mixed, ["a"], schema)["a"]["task_id"].to_pylist() == ["a", "a"]
    assert split_by_task(rows(["b", "b"], [(0, 0), (0, 1)]), ["a"], schema)["a"].num_rows == 0


def test_a_point_read_gives_its_task_only_its_rows_in_key_order(tmp_path):
    """RowFiles.read of one task takes the rows it found in the named groups as they are,
    ordered by (symbol_idx, seq): never a neighbour's rows, also where the task's rows are
    not together in a group or lie in two files; the same rows a read of several tasks gives."""
    schema = pa.schema([("task_id", pa.string()), ("symbol_idx", pa.int32()), ("seq", pa.int32()), ("v", pa.int64())])

    def write(name, ids, keys):
        table = pa.table({"task_id": ids, "symbol_idx": [k[0] for k in keys], "seq": [k[1] for k in keys],
                          "v": list(range(len(ids)))}, schema=schema)
        pq.write_table(table, tmp_path / "t" / name, row_group_size=3)

    (tmp_path / "t").mkdir()
    write("one.parquet", ["a", "b", "a", "b", "b", "c"], [(0, 0), (0, 2), (0, 1), (-1, 0), (0, 0), (0, 0)])
    write("two.parquet", ["b", "c"], [(1, 0), (0, 1)])
    files = RowFiles(str(tmp_path))
    located = {"b": [["one.parquet", [0, 1]], ["two.parquet", [0]]]}
    alone = files.read("t", located, schema)["b"]
    assert alone["task_id"].to_pylist() == ["b"] * 4
    assert list(zip(alone["symbol_idx"].to_pylist(), alone["seq"].to_pylist())) == [(-1, 0), (0, 0), (0, 2), (1, 0)]
    together = files.read("t", {**located, "a": [["one.parquet", [0]]]}, schema)
    assert together["b"].equals(alone)
    assert together["a"]["seq"].to_pylist() == [0, 1]


class _S3LikeHandler(pafs.FileSystemHandler):
    """The local filesystem, reporting a missing file to a read as S3 reports an object deleted
    after it was opened: a plain OSError."""

    def __init__(self):
        self.local = pafs.LocalFileSystem()

    def open_input_file(self, path):
        if self.local.get_file_info(path).type == pafs.FileType.NotFound:
            raise OSError(f"AWS Error NO_SUCH_KEY during GetObject operation: {path}")
        return self.local.open_input_file(path)

    def get_file_info(self, paths):
        return self.local.get_file_info(paths)

    def get_type_name(self):
        return "s3-like"

    def normalize_path(self, path):
        return path

    def equals(self, other):
        return self is other



def _not_called(self, *args):  # by a read
    raise NotImplementedError


for _name in _S3LikeHandler.__abstractmethods__:
    setattr(_S3LikeHandler, _name, _not_called)
_S3LikeHandler.__abstractmethods__ = frozenset()


def test_a_file_gone_on_s3_is_rows_gone_whatever_oserror_says_so(tmp_path):
    """A vacuum deleting a file between a read's open and its ranges: on S3 a plain OSError,
    which must reach readers as RowsGone (their retry on a new placement), not as an error
    of the store. Another OSError of a file that is there stays what it is."""
    from result_assets.store.row_locations import RowsGone

    (tmp_path / "t").mkdir()
    rows = pa.table({"task_id": ["a"] * 3 + ["b"] * 3, "symbol_idx": [0] * 6, "seq": [0, 1, 2] * 2})
    pq.write_table(rows, tmp_path / "t" / "f.parquet")
    files = RowFiles(str(tmp_path))
    located = files.locate("t", ["f.parquet"], ["a"])  # its footer cached
    files._fs = pafs.PyFileSystem(_S3LikeHandler())
    assert files.read("t", located, rows.schema)["a"].num_rows == 3
    (tmp_path / "t" / "f.parquet").unlink()
    with pytest.raises(RowsGone):
        files.read("t", located, rows.schema)
    with pytest.raises(RowsGone):
        files.metadata("t", "f.parquet")
    (tmp_path / "t" / "g.parquet").mkdir()  # there, and not a file a read can open: not gone
    with pytest.raises(OSError) as raised:
        files.metadata("t", "g.parquet")
    assert not isinstance(raised.value, RowsGone)
