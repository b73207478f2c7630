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
NEIGHBOUR = "grid...42"  # a task the fault leaves alone


def materialization_runs(task_id: str) -> dict[str, str | None]:
    """{asset: run id of the latest materialization of the task's partition, or None}."""
    from dagster import AssetKey, AssetRecordsFilter

    from result_assets.assets.instance import get_instance
    from result_assets.assets.metadata import TASK_ASSETS
    from result_assets.legacy import partition_key_for

    out = {}
    with get_instance() as instance:
        for asset in TASK_ASSETS:
            records = instance.fetch_materializations(AssetRecordsFilter(
                asset_key=AssetKey(asset), asset_partitions=[partition_key_for(task_id)]), limit=1).records
            out[asset] = records[0].run_id if records else None
    return out


def check_partition_state(task_id: str, asset: str = "catalog_entry", check: str = "lossless_round_trip"):
    """(status, is_current) of a check's latest execution on the task's partition, as the UI's
    check Partitions tab judges it: failed or succeeded, and whether it judged the partition's
    latest materialization."""
    from dagster import AssetCheckKey, AssetKey

    from result_assets.assets.instance import get_instance
    from result_assets.legacy import partition_key_for

    with get_instance() as instance:
        [info] = instance.event_log_storage.get_asset_check_partition_info(
            [AssetCheckKey(AssetKey(asset), check)], partition_keys=[partition_key_for(task_id)])
        return info.latest_execution_status.value, info.is_current


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

    # Dagster does not call the task materialized: no event of any of its five assets, while its
    # neighbour's run materialized them; the failed check is the partition's current status.
    assert set(materialization_runs(VICTIM).values()) == {None}
    assert None not in materialization_runs(NEIGHBOUR).values()
    assert check_partition_state(VICTIM) == ("FAILED", True)
    assert check_partition_state(NEIGHBOUR) == ("SUCCEEDED", True)

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
    assert None not in materialization_runs(VICTIM).values()
    assert check_partition_state(VICTIM) == ("SUCCEEDED", True)


@pytest.mark.parametrize("scattered", [False, True], ids=["range run", "explicit-list run"])
def test_a_failed_rerun_leaves_the_last_good_materialization_the_latest(project_home, sample_source, capsys,
                                                                       monkeypatch, scattered):
    """A forced re-run whose proof fails for one task: the partition's latest materialization is
    still the run that published the version readers get, and the failed check judged that
    materialization (Dagster's own target for a check without one of its step), so the UI shows
    the partition materialized with a failed check; the other tasks of the run materialize."""
    assert main(["migrate", "--source-dir", str(sample_source), "--json"]) == 0
    capsys.readouterr()
    good = materialization_runs(VICTIM)
    assert None not in good.values() and check_partition_state(VICTIM) == ("SUCCEEDED", True)
    before = read_result(VICTIM)
    neighbour_before = materialization_runs(NEIGHBOUR)

    corrupt_one_value(monkeypatch)
    # scattered: two tasks that are not neighbours among the partitions run as an explicit list
    tasks = ["--task", VICTIM, "--task", NEIGHBOUR] if scattered else []
    assert main(["migrate", "--source-dir", str(sample_source), "--force", "--json", *tasks]) == 1
    capsys.readouterr()
    assert materialization_runs(VICTIM) == good
    assert check_partition_state(VICTIM) == ("FAILED", True)
    neighbour = materialization_runs(NEIGHBOUR)
    assert None not in neighbour.values() and neighbour != neighbour_before
    assert check_partition_state(NEIGHBOUR) == ("SUCCEEDED", True)
    assert read_result(VICTIM) == before
    if not scattered:  # each materialization still carries the step's figures besides its own
        from dagster import AssetKey, AssetRecordsFilter

        from result_assets.assets.instance import get_instance
        from result_assets.legacy import partition_key_for

        with get_instance() as instance:
            [record] = instance.fetch_materializations(AssetRecordsFilter(
                asset_key=AssetKey("signal_table"), asset_partitions=[partition_key_for(NEIGHBOUR)]), limit=1).records
        assert {"delta_version", "dagster/row_count", "predicate"} <= set(record.asset_materialization.metadata)


def test_a_file_that_cannot_be_read_beside_a_published_version_fails_its_blocking_check(
        project_home, sample_source, capsys, monkeypatch):
    """A re-run that cannot read a published task's file (an I/O error on the share) keeps the
    attempt beside the published version, and Dagster says so: the partition is not
    materialized, its lossless_round_trip fails (blocking: the step fails, so a downstream asset
    of the run is not handed a range it did not get). It passed before ("quarantined: nothing
    to rebuild"), so the step succeeded without materializing the partition."""
    from result_assets.migration.batch import RawResult
    from result_assets.store.backups import sha256_hex

    assert main(["migrate", "--source-dir", str(sample_source), "--json"]) == 0
    capsys.readouterr()
    good = materialization_runs(VICTIM)
    read_source = engine.read_source

    def share_error(source, limit):
        if source.task_id == VICTIM:
            return RawResult(source, b"", sha256_hex(b""), "cannot read it: Input/output error", unread=True)
        return read_source(source, limit)

    monkeypatch.setattr(engine, "read_source", share_error)
    assert main(["migrate", "--source-dir", str(sample_source), "--force", "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["failed_runs"] == 1
    assert "1 blocking asset check failed with ERROR severity: catalog_entry: lossless_round_trip" in captured.err
    assert materialization_runs(VICTIM) == good
    assert check_partition_state(VICTIM) == ("FAILED", True)
    assert check_partition_state(NEIGHBOUR) == ("SUCCEEDED", True)
    assert None not in materialization_runs(NEIGHBOUR).values()
    original = parse_document((sample_source / VICTIM / "result.json").read_bytes())
    assert compare_documents(original, read_result(VICTIM)) == []
    # The report counts the attempt it lists: it said 0 tasks failed above a list naming one.
    report = latest_metadata("migration_report")
    assert report["failed_checks"].value == 1
    assert "| tasks failed (a proof failed: not published) | 1 |" in report["report"].value


def latest_metadata(asset: str) -> dict:
    from dagster import AssetKey

    from result_assets.assets.instance import get_instance

    return get_instance().get_latest_materialization_event(AssetKey(asset)).asset_materialization.metadata


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
