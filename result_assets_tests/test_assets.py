"""The partitioned assets run directly in a Dagster instance: one partition, and a batch with a bad file."""
from __future__ import annotations

import shutil

import pytest
from dagster import AssetCheckKey, AssetKey, DagsterEventType, EventRecordsFilter

from result_assets import read_result
from result_assets.assets.launch import RANGE_END, RANGE_START
from result_assets.assets.partitions import register_partitions
from result_assets.legacy import compare_documents, parse_document, partition_key_for

GOOD = ["bt_20250901_14ceeb", "grid...42", "백테스트_005"]
BAD = "bad_signal_without_timestamp"


@pytest.fixture(scope="module")
def env(project_home, sample_source, tmp_path_factory):
    import os

    source = tmp_path_factory.mktemp("src")
    for task in GOOD + [BAD]:
        shutil.copytree(sample_source / task, source / task)
    os.environ["RESULT_SOURCE_DIR"] = str(source)
    from result_assets.definitions import build_definitions
    from result_assets.assets.instance import get_instance

    instance = get_instance()
    defs = build_definitions()
    yield instance, defs, source
    os.environ.pop("RESULT_SOURCE_DIR", None)


def _materialized_in_run(instance, run_id: str, asset: str) -> set[str]:
    records = instance.get_event_records(
        EventRecordsFilter(DagsterEventType.ASSET_MATERIALIZATION, asset_key=AssetKey(asset)), limit=1000)
    return {r.partition_key for r in records if r.run_id == run_id}


def run_one_partition(env, task_id: str):
    instance, defs, _ = env
    key = partition_key_for(task_id)
    register_partitions(instance, [key])
    return key, defs.resolve_job_def("migrate_job").execute_in_process(instance=instance, partition_key=key)


def test_single_partition_materialization(env):
    instance, defs, source = env
    key, result = run_one_partition(env, "grid...42")
    assert result.success
    for asset in ("result_backup", "validated_result", "signal_table", "curve_table", "catalog_entry"):
        assert _materialized_in_run(instance, result.run_id, asset) == {key}, asset
    original = parse_document((source / "grid...42" / "result.json").read_bytes())
    assert compare_documents(original, read_result("grid...42")) == []


def test_batch_with_a_bad_file_migrates_the_others(env):
    instance, defs, source = env
    keys = [partition_key_for(t) for t in sorted(GOOD + [BAD])]
    register_partitions(instance, keys)
    ordered = [k for k in instance.get_dynamic_partitions("tasks") if k in keys]
    result = defs.resolve_job_def("migrate_job").execute_in_process(
        instance=instance, tags={RANGE_START: ordered[0], RANGE_END: ordered[-1]})
    assert result.success
    assert _materialized_in_run(instance, result.run_id, "catalog_entry") == set(ordered)
    for task in GOOD:
        original = parse_document((source / task / "result.json").read_bytes())
        assert compare_documents(original, read_result(task)) == [], task
    with pytest.raises(LookupError, match="quarantined: .*no timestamp"):
        read_result(BAD)
    # quarantine is the run's verdict: one WARN evaluation naming the quarantined task and its reason
    [verdict] = [e for e in result.get_asset_check_evaluations()
                 if e.asset_check_key == AssetCheckKey(AssetKey("validated_result"), "quarantine")]
    assert not verdict.passed and verdict.severity.value == "WARN" and verdict.partition is None
    assert verdict.description == f"{len(GOOD)} of {len(GOOD) + 1} tasks passed"
    assert verdict.metadata["failed"].value == 1
    assert f"`{BAD}`: quarantined: " in verdict.metadata["failed_tasks"].value
    assert "no timestamp" in verdict.metadata["failed_tasks"].value
    round_trip = [e for e in result.get_asset_check_evaluations()
                  if e.check_name == "lossless_round_trip" and e.partition]
    assert len(round_trip) == len(ordered) and all(e.passed for e in round_trip)


def test_partition_metadata_shows_rows_reason_and_location(env):
    instance, defs, source = env
    key = partition_key_for("grid...42")
    signals = instance.get_latest_materialization_event(AssetKey("signal_table"))  # any partition: shape check
    assert signals is not None
    records = instance.get_event_records(
        EventRecordsFilter(DagsterEventType.ASSET_MATERIALIZATION, asset_key=AssetKey("signal_table"),
                           asset_partitions=[key]), limit=1)
    metadata = records[0].asset_materialization.metadata
    assert metadata["dagster/row_count"].value == 34  # grid...42 has 34 signals (expect.json)
    assert metadata["dagster/uri"].value.endswith("/signals")
    bad = instance.get_event_records(
        EventRecordsFilter(DagsterEventType.ASSET_MATERIALIZATION, asset_key=AssetKey("catalog_entry"),
                           asset_partitions=[partition_key_for(BAD)]), limit=1)
    assert "no timestamp" in bad[0].asset_materialization.metadata["reason"].value


def test_round_trip_check_catches_a_changed_bit(env, monkeypatch):
    """The check is honest: flip one float bit between conversion and commit and it fails
    for that task only, whose attempt is then not published: readers keep its last good
    version (published by the tests above), never the changed rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from result_assets.migration import engine
    from result_assets.migration.sources import scan_source_dir
    from result_assets.store.stores import Stores

    instance, defs, source = env
    stores = Stores.from_env()
    victim = "grid...42"
    proven_rows = engine.signal_rows

    def corrupted(validated):
        rows = proven_rows(validated)
        table = rows.table
        price = table.column("price").combine_chunks()
        mask = pc.equal(table.column("task_id").combine_chunks(), victim)
        bumped = pc.if_else(mask, pc.add(price, pa.scalar(1e-12)), price).cast(pa.float64())
        rows.table = table.set_column(table.schema.get_field_index("price"), "price", bumped)
        return rows

    monkeypatch.setattr(engine, "signal_rows", corrupted)
    batch = engine.run_batch(stores, scan_source_dir(source).tasks)
    outcomes = [o for o in batch.checks if o.check == "lossless_round_trip"]
    failed = {o.task_id for o in outcomes if not o.passed}
    assert failed == {victim}
    row = stores.catalog.task(victim)
    assert row["status"] == "migrated"  # the last good version stays published
    assert "differ from those proven" in stores.catalog.failed_attempts([victim])[victim]
    original = parse_document((source / victim / "result.json").read_bytes())
    assert compare_documents(original, read_result(victim)) == []  # the last good version, not the changed rows
    assert stores.delta.read_tasks("signals", [victim]).num_rows == 0  # taken out of the current snapshot again


def test_a_single_partition_run_keeps_the_partitions_own_evaluation(env):
    """The latest evaluation of a one-partition run carries the numbers it judged, not a summary."""
    key, result = run_one_partition(env, "grid...42")
    assert result.success
    evaluations = [e for e in result.get_asset_check_evaluations()
                   if e.asset_check_key == AssetCheckKey(AssetKey("signal_table"), "row_counts")]
    assert len(evaluations) == 1
    assert evaluations[0].description == "34 rows found, 34 expected"
    assert evaluations[0].metadata["found_rows"].value == 34
    assert evaluations[0].metadata["task_id"].value == "grid...42"
    proofs = [e for e in result.get_asset_check_evaluations() if e.check_name == "lossless_round_trip"]
    assert [e.partition for e in proofs] == [key] and proofs[0].passed


def test_a_range_run_of_one_partition_records_its_proofs_on_that_partition(env):
    """A UI backfill runs a chunk of one partition as a range (start == end, no partition
    tag): Dagster gives a declared check result no partition there, so the partition's own
    evaluations must be reported, each naming the materialization it judged."""
    instance, defs, _ = env
    key = partition_key_for("bt_20250901_14ceeb")
    register_partitions(instance, [key])
    result = defs.resolve_job_def("migrate_job").execute_in_process(
        instance=instance, tags={RANGE_START: key, RANGE_END: key})
    assert result.success
    for asset, check in (("catalog_entry", "lossless_round_trip"), ("result_backup", "backup_checksum")):
        mine = [e for e in result.get_asset_check_evaluations() if e.check_name == check and e.partition == key]
        assert len(mine) == 1 and mine[0].passed and mine[0].target_materialization_data is not None, check
        infos = instance.event_log_storage.get_asset_check_partition_info([AssetCheckKey(AssetKey(asset), check)])
        latest = {i.partition_key: i for i in infos}[key]
        assert latest.latest_execution_status.value == "SUCCEEDED", (check, latest)


def test_the_task_list_job_takes_an_id_given_twice_once_and_refuses_one_that_is_no_partition(env):
    """From the launchpad: a duplicated id failed the publish on the catalog's unique key (and
    the whole run with it); an id that names no partition was "materialized" as a quarantine."""
    instance, defs, _ = env
    ids = ["bt_20250901_14ceeb", "grid...42"]
    register_partitions(instance, [partition_key_for(t) for t in ids])
    job = defs.resolve_job_def("migrate_task_list_job")
    config = {"ops": {"migrate_task_list": {"config": {"task_ids": [ids[0], ids[1], ids[0]]}}}}
    result = job.execute_in_process(instance=instance, run_config=config)
    assert result.success
    materialized = [e.partition for e in result.get_asset_materialization_events()
                    if e.asset_key == AssetKey("catalog_entry")]
    assert sorted(materialized) == sorted(partition_key_for(t) for t in ids)
    config = {"ops": {"migrate_task_list": {"config": {"task_ids": [ids[0], "no_such_task"]}}}}
    result = job.execute_in_process(instance=instance, run_config=config, raise_on_error=False)
    assert not result.success and not result.get_asset_materialization_events()
    failure = [e for e in result.all_events if e.is_step_failure][0]
    assert "not task partitions" in failure.step_failure_data.error.message
    assert "no_such_task" in failure.step_failure_data.error.message
