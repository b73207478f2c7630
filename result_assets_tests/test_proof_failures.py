"""A task whose proof fails is never published: counted, listed, blocking, and tried again."""
from __future__ import annotations

import json
import re

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from result_assets import ResultStore, read_result
from result_assets.cli import main
from result_assets.legacy import compare_documents, parse_document
from result_assets.migration import engine

VICTIM = "bt_20250901_14ceeb"


def corrupt_one_value(monkeypatch):
    """Change one price of VICTIM after its conversion was proven, before the Delta commit."""
    proven_rows = engine.signal_rows

    def corrupted(validated):
        rows = proven_rows(validated)
        price = rows.table.column("price").combine_chunks()
        first = pc.index(rows.table.column("task_id").combine_chunks(), VICTIM).as_py()
        if first >= 0:
            values = price.to_pylist()
            values[first] = (values[first] or 0.0) + 1.0
            rows.table = rows.table.set_column(rows.table.schema.get_field_index("price"), "price",
                                               pa.array(values, pa.float64()))
        return rows

    monkeypatch.setattr(engine, "signal_rows", corrupted)


def test_a_failed_proof_is_counted_hidden_blocking_and_retried(project_home, sample_source, capsys, monkeypatch,
                                                               tmp_path):
    corrupt_one_value(monkeypatch)
    assert main(["migrate", "--source-dir", str(sample_source), "--json"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["failed_checks"] == 1 and report["migrated"] == 13 and report["quarantined"] == 8
    assert f"task {VICTIM} not published, a proof failed" in captured.err
    # lossless_round_trip is a blocking ERROR check: its run fails, on one line
    assert report["failed_runs"] == 1
    assert re.search(r"run \S+ failed: Execution of step \"migrate_tasks\" failed. 1 blocking asset check "
                     r"failed with ERROR severity: catalog_entry: lossless_round_trip\n", captured.err)
    assert "Traceback" not in captured.err and "Stack Trace" not in captured.err

    with pytest.raises(LookupError, match="failed"):
        read_result(VICTIM)
    assert main(["export", VICTIM]) == 1
    assert VICTIM not in capsys.readouterr().out
    store = ResultStore.from_env()
    assert VICTIM not in {r["task_id"] for r in store.find_tasks(limit=1000)}
    assert VICTIM not in store.read_results([VICTIM])
    store.close()

    assert main(["status", "--json"]) == 0
    statuses = {r["task_id"]: r for r in json.loads(capsys.readouterr().out)["tasks"]}
    assert statuses[VICTIM]["status"] == "failed" and "differ from those proven" in statuses[VICTIM]["reason"]
    monkeypatch.setenv("RESULT_SOURCE_DIR", str(sample_source))
    monkeypatch.setenv("RESULT_STORAGE_MODE", "dual-write")
    assert main(["phase", "--check"]) == 1
    assert "failed (a proof failed" in capsys.readouterr().out

    monkeypatch.undo()  # the fault is gone: the next run tries the failed task again
    assert main(["migrate", "--source-dir", str(sample_source), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["failed_checks"] == 0 and report["skipped"] == 21
    original = parse_document((sample_source / VICTIM / "result.json").read_bytes())
    assert compare_documents(original, read_result(VICTIM)) == []


def test_a_backup_that_does_not_read_back_keeps_its_task_unpublished(project_home, tmp_path, monkeypatch):
    """backup_checksum is judged before the publish, not after it: a task whose backup does not
    read back with the source's SHA-256 is not published (its check fails), while the task
    beside it is; the next run, the fault gone, publishes it."""
    from result_assets.migration.sources import scan_source_dir
    from result_assets.migration.verify import BACKUP_CHECKSUM
    from result_assets.store.backups import BackupStore
    from result_assets.store.stores import Stores

    for task_id in ("backup_bad", "backup_good"):
        (tmp_path / task_id).mkdir()
        (tmp_path / task_id / "result.json").write_text(json.dumps(
            {"strategy": task_id, "symbols": [{"symbol": "A", "signals": [{"timestamp": 1704240000000, "price": 1.5}]}]}))
    holds = BackupStore.holds
    monkeypatch.setattr(BackupStore, "holds", lambda self, task_id, sha: task_id != "backup_bad" and holds(self, task_id, sha))
    stores = Stores.from_env()
    batch = engine.run_batch(stores, scan_source_dir(tmp_path).tasks)
    status = {v.task_id: v.status for v in batch.validated}
    assert status == {"backup_bad": "failed", "backup_good": "migrated"}
    [check] = [c for c in batch.checks if c.check == BACKUP_CHECKSUM and c.task_id == "backup_bad"]
    assert not check.passed
    assert stores.catalog.task("backup_bad")["status"] == "failed" and read_result("backup_good")["strategy"] == "backup_good"
    with pytest.raises(LookupError):
        read_result("backup_bad")
    monkeypatch.undo()
    assert engine.run_batch(stores, scan_source_dir(tmp_path, {"backup_bad"}).tasks).validated[0].status == "migrated"
    assert read_result("backup_bad")["strategy"] == "backup_bad"
