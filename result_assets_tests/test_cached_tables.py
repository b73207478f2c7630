"""CachedDeltaStore, the Delta tables ResultStore keeps open between queries: a read at a
version gives that version's rows, also when another process commits while it reads."""
from __future__ import annotations

import pyarrow as pa

from result_assets.store.cached_tables import CachedDeltaStore
from result_assets.store.delta_tables import SCHEMAS, SIGNALS, DeltaStore


def _signals(task_id: str, price: float, n: int = 3) -> pa.Table:
    schema = SCHEMAS[SIGNALS]
    given = {"task_id": [task_id] * n, "symbol_idx": [0] * n, "seq": list(range(n)), "price": [price] * n,
             "ts": [1_700_000_000_000_000 + i for i in range(n)]}
    return pa.table({f.name: pa.array(given[f.name], f.type) if f.name in given else pa.nulls(n, f.type)
                     for f in schema}, schema=schema)


def test_a_read_at_the_published_version_never_reads_a_commit_that_lands_meanwhile(tmp_path, monkeypatch):
    """The reader compares the version it was asked for with its table's, then reads: another
    process's batch that commits the task again in between (its rows not published) is not
    what it gets. It did get them when the read opened (so refreshed) the table a second time."""
    writer = DeltaStore(str(tmp_path))
    published = writer.replace_tasks(SIGNALS, _signals("T", 1.0), ["T"]).version
    reader = CachedDeltaStore(str(tmp_path))
    reader.open(SIGNALS)  # a long-lived ResultStore's handle
    real_open, opened = CachedDeltaStore.open, []

    def open_then_another_commits(self, table):
        handle = real_open(self, table)
        if not opened:
            opened.append(table)
            writer.replace_tasks(SIGNALS, _signals("T", 2.0), ["T"])  # another process's batch
        return handle

    monkeypatch.setattr(CachedDeltaStore, "open", open_then_another_commits)
    rows = reader.read_tasks(SIGNALS, ["T"], version=published)
    monkeypatch.undo()
    assert rows.column("price").to_pylist() == [1.0, 1.0, 1.0]
    # the next read sees the new commit as the table's current version, and reads it at the one asked for
    assert reader.read_tasks(SIGNALS, ["T"], version=published).column("price").to_pylist() == [1.0, 1.0, 1.0]
    assert reader.read_tasks(SIGNALS, ["T"]).column("price").to_pylist() == [2.0, 2.0, 2.0]
