"""Row-group size against point reads and bytes, on the application's steady state.

    python -m benchmarks.row_groups [--saves 300] [--sizes 32768,8192,4096,2048,1024]

Saves --saves 100-signal tasks in postgres-only on a fresh home, runs maintain() (the
hot tier flushed into Delta), then rewrites each table sorted by task with the store's
writer settings at each row-group size and prints, per table and size: the file's bytes,
its row groups, and the p50 of reading one task's rows (its row groups by their task_id
statistics, then filtered), as the reader does by row locations.
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import sys
import tempfile
import time

import pyarrow.compute as pc
import pyarrow.parquet as pq


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=300)
    parser.add_argument("--sizes", default="32768,8192,4096,2048,1024")
    args = parser.parse_args(argv)
    from deltalake import DeltaTable, write_deltalake

    from benchmarks.app_life import fresh_home, make_document, task_id
    from result_assets import ResultManager
    from result_assets.migration.maintenance import maintain
    from result_assets.store import delta_tables

    with fresh_home("row_groups") as home:
        manager = ResultManager("postgres-only", record_in_dagster=False)
        for i in range(args.saves):
            manager.save_result(task_id(i), make_document(0, task_id(i), 100))
        maintain(manager.stores)
        work = tempfile.mkdtemp(prefix="row-groups-")
        try:
            print("| table | rows per group | bytes | row groups | one task's rows, p50 |")
            print("|---|---|---|---|---|")
            for table in ("signals", "curves"):
                data = DeltaTable(str(home / "store" / table)).to_pyarrow_table().sort_by(
                    [("task_id", "ascending"), ("symbol_idx", "ascending"), ("seq", "ascending")])
                ids = sorted(set(data.column("task_id").to_pylist()))[::15]
                for rows in (int(s) for s in args.sizes.split(",")):
                    out = os.path.join(work, f"{table}-{rows}")
                    original = delta_tables.ROW_GROUP_ROWS
                    delta_tables.ROW_GROUP_ROWS = {**original, table: rows}
                    try:
                        write_deltalake(out, data, writer_properties=delta_tables.writer_properties(table, data.schema))
                    finally:
                        delta_tables.ROW_GROUP_ROWS = original
                    [path] = glob.glob(out + "/*.parquet")
                    print(f"| {table} | {rows:,} | {os.path.getsize(path):,} | "
                          f"{pq.ParquetFile(path).metadata.num_row_groups} | {_point_read_ms(path, ids):.2f} ms |",
                          flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _point_read_ms(path: str, ids: list[str]) -> float:
    from result_assets.store.row_locations import THREADED_MIN_GROUPS

    metadata = pq.ParquetFile(path).metadata  # cached, as the reader caches footers
    task_column = metadata.schema.names.index("task_id")
    spans = [(metadata.row_group(g).column(task_column).statistics.min,
              metadata.row_group(g).column(task_column).statistics.max) for g in range(metadata.num_row_groups)]
    samples = []
    for task in ids * 3:
        started = time.perf_counter()
        groups = [g for g, (low, high) in enumerate(spans) if low <= task <= high]
        with open(path, "rb") as f:  # threads as the reader uses them (row_locations.THREADED_MIN_GROUPS)
            rows = pq.ParquetFile(f, metadata=metadata).read_row_groups(
                groups, use_threads=len(groups) >= THREADED_MIN_GROUPS)
        rows.filter(pc.equal(rows["task_id"], task))
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


if __name__ == "__main__":
    sys.exit(main())
