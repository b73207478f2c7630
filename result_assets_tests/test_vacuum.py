"""Vacuum deletes every file out of the snapshot for longer than the retention, except those the catalog names."""
from __future__ import annotations

import time
from pathlib import Path

from result_assets import ResultManager
from result_assets.migration.maintenance import maintain
from result_assets.store.delta_tables import SIGNALS
from result_assets.store.stores import Stores


def parquet_files(table_root: Path) -> set[str]:
    return {p.name for p in table_root.glob("*.parquet")}


def test_maintain_deletes_files_whose_removal_a_checkpoint_left_out_and_files_no_commit_wrote(project_home):
    """Each maintenance writes a checkpoint, which leaves out the log's remove records older
    than the table's deleted-file retention (a week by default; a second here): a vacuum that
    learns what to delete from those records alone deleted nothing at the default retention,
    ever, and never a file whose commit never happened. The files the catalog names stay,
    and every read is as saved."""
    manager = ResultManager("postgres-only")
    documents = {f"vac_{i}": {"strategy": "s", "symbols": [{"symbol": "A", "signals": [
        {"timestamp": 1704240000000 + j, "price": i + j / 8} for j in range(50)]}]} for i in range(4)}
    stores = Stores.from_env()
    for _ in range(2):  # the second flush replaces the rows of the first
        for task_id, document in documents.items():
            manager.save_result(task_id, document)
        maintain(stores, vacuum=False)
    stores.delta.open(SIGNALS).alter.set_table_properties({"delta.deletedFileRetentionDuration": "interval 1 second"})
    root = Path(stores.settings.store_root) / SIGNALS
    live = {Path(p).name for p in stores.delta.open(SIGNALS).file_uris()}
    replaced = parquet_files(root) - live
    assert replaced, "the flush and compaction left no file out of the snapshot"
    orphan = root / "part-00000-killed-mid-commit.c000.snappy.parquet"  # a write whose commit never happened
    orphan.write_bytes(b"PAR1")
    time.sleep(1.5)

    maintain(stores, retention_hours=168)  # out of the snapshot, but for less than the retention: kept
    assert replaced <= parquet_files(root) and orphan.exists()
    report = maintain(stores, retention_hours=0)
    named = {Path(path).name for _, locations in stores.catalog.located_tasks().values()
             for path, _ in locations.get(SIGNALS, [])}
    assert not (replaced - named) & parquet_files(root) and not orphan.exists()
    assert report.vacuumed_files >= len(replaced - named) + 1
    for task_id, document in documents.items():
        assert ResultManager("postgres-only").get_result(task_id) == document
