"""Each Delta table's files are cut into row groups of that table's size: a point read decodes
the whole groups a task sits in, and a task has about 20 times fewer signals than curve points."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.app_life import make_document
from result_assets.legacy.normalize import normalize
from result_assets.store.delta_tables import CURVES, ROW_GROUP_ROWS, SIGNALS, DeltaStore


def group_sizes(store: DeltaStore, table: str) -> list[int]:
    sizes = []
    for uri in store.open(table).file_uris():
        metadata = pq.ParquetFile(uri).metadata
        sizes += [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)]
    return sizes


def test_each_table_is_written_in_row_groups_of_its_own_size(tmp_path):
    store = DeltaStore(str(tmp_path))
    task_ids = [f"rg_{i}" for i in range(4)]
    results = [normalize(t, make_document(3, t, 1500)) for t in task_ids]
    for table in (SIGNALS, CURVES):
        rows = pa.concat_tables([getattr(r, table) for r in results])
        assert rows.num_rows > ROW_GROUP_ROWS[table]  # enough rows to fill a group
        store.replace_tasks(table, rows, task_ids)
        sizes = group_sizes(store, table)
        assert sum(sizes) == rows.num_rows
        assert max(sizes) == ROW_GROUP_ROWS[table], (table, sizes)
    assert ROW_GROUP_ROWS[SIGNALS] < ROW_GROUP_ROWS[CURVES]
