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
    from result_assets.platform.instance import get_instance

    instance = get_instance()
    defs = build_definitions()
    yield instance, defs, source
    os.environ.pop("RESULT_SOURCE_DIR", None)


def _materialized_in_run(instance, run_id: str, asset: str) -> set[str]:
    records = instance.get_event_records(
        EventRecordsFilter(DagsterEventType.ASSET_MATERIALIZATION, asset_key=AssetKey(asset)), limit=1000)
    return {r.partition_key for r in records if r.run_id == run_id}


def test_single_partition_materialization(env):
    instance, defs, source = env
    key = partition_key_for("grid...42")
    register_partitions(instance, [key])
    result = defs.resolve_job_def("migrate_job").execute_in_process(instance=instance, partition_key=key)
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
    evaluations = {
        e.partition: e for e in result.get_asset_check_evaluations()
        if e.asset_check_key == AssetCheckKey(AssetKey("validated_result"), "quarantine") and e.partition}
    assert not evaluations[partition_key_for(BAD)].passed
    assert evaluations[partition_key_for(BAD)].severity.value == "WARN"
    assert all(evaluations[partition_key_for(t)].passed for t in GOOD if partition_key_for(t) in evaluations)
    round_trip = [e for e in result.get_asset_check_evaluations()
                  if e.check_name == "lossless_round_trip" and e.partition]
    assert len(round_trip) == len(ordered) and all(e.passed for e in round_trip)
