"""The everyday UI path through the webserver's GraphQL API, with the daemon running the backfill.

Register the sample tasks with the sensor, backfill them with `launchPartitionBackfill`,
judge the result from the partitioned checks, then materialize one task partition.
"""
from __future__ import annotations

import json
import re

import pytest

from result_assets.legacy import partition_key_for
from result_assets_tests.ui.conftest import (
    LOCATION,
    REPOSITORY,
    TASK_ASSETS,
    register_partitions_with_sensor,
    wait_for,
)

BACKFILL_TIMEOUT = 240  # the backfill daemon ticks every 30 s; a run starts its own process
# Evaluated per partition: each partition's proof (blocking, ERROR).
ERROR_CHECKS = [("result_backup", "backup_checksum"), ("catalog_entry", "lossless_round_trip")]
# Evaluated once per run, over the run's tasks.
RUN_CHECKS = [("signal_table", "row_counts"), ("curve_table", "row_counts"), ("signal_table", "compression_goal"),
              ("validated_result", "quarantine")]
ONE_TASK = "grid...42"  # an id Dagster refuses as a key: its partition key is escaped

LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message stack }
  ... on Error { message } } }
"""
BACKFILL_STATUS = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { status numPartitions runs(limit: 100) { runId status } }
  ... on PythonError { message } } }
"""
PARTITION_STATUS = """
query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
  assetPartitionStatuses { __typename ... on DefaultPartitionStatuses {
    materializedPartitions failedPartitions unmaterializedPartitions materializingPartitions } } } } }
"""
METADATA = """
metadataEntries { label __typename
  ... on TextMetadataEntry { text } ... on IntMetadataEntry { intValue }
  ... on FloatMetadataEntry { floatValue } ... on MarkdownMetadataEntry { mdStr }
  ... on PathMetadataEntry { path } ... on UrlMetadataEntry { url }
  ... on TableSchemaMetadataEntry { schema { columns { name type } } } }
"""
CHECK_EXECUTIONS = """
query($key: AssetKeyInput!, $check: String!) {
  assetCheckExecutions(assetKey: $key, checkName: $check, limit: 1000) {
    runId status partition evaluation { success severity description %s } } }
""" % METADATA
LAUNCH_RUN = """
mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } ... on Error { message } } }
"""
RUN = """
query($id: ID!) { runOrError(runId: $id) { __typename ... on Run {
  status tags { key value } assetMaterializations { partition assetKey { path } } } } }
"""


CHECK_PARTITION_STATUS = """
query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
  assetChecksOrError { ... on AssetChecks { checks { name partitionStatuses {
    ... on AssetCheckDefaultPartitionStatuses { succeededPartitions failedPartitions } } } } } } } }
"""
CHECK_BLOCKING = """
query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
  assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } } }
"""
PARTITION_EVENT = """
query($key: AssetKeyInput!, $partition: String!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
  assetMaterializations(partitions: [$partition], limit: 1) { partition %s } } } }
""" % METADATA


def metadata(entries: list[dict]) -> dict:
    """{label: value} of GraphQL metadata entries."""
    out = {}
    for e in entries:
        values = [v for k, v in e.items() if k not in ("label", "__typename")]
        out[e["label"]] = values[0] if values else None
    return out


def latest_check_executions(ui, asset: str, check: str) -> dict[str, dict]:
    """{partition: its latest execution} of one check (executions come newest first)."""
    executions = ui.graphql(CHECK_EXECUTIONS, {"key": {"path": [asset]}, "check": check})["assetCheckExecutions"]
    latest: dict[str, dict] = {}
    for execution in executions:
        latest.setdefault(execution["partition"], execution)
    return latest


def check_partition_statuses(ui, asset: str) -> dict[str, dict]:
    """{check name: {succeededPartitions, failedPartitions}} as the UI's check Partitions tab reads them."""
    node = ui.graphql(CHECK_PARTITION_STATUS, {"key": {"path": [asset]}})["assetNodeOrError"]
    return {c["name"]: c["partitionStatuses"] for c in node["assetChecksOrError"]["checks"]}


def partition_event(ui, asset: str, partition: str) -> dict:
    """{label: value} of the latest materialization of one partition."""
    node = ui.graphql(PARTITION_EVENT, {"key": {"path": [asset]}, "partition": partition})["assetNodeOrError"]
    return metadata(node["assetMaterializations"][0]["metadataEntries"])


def partition_statuses(ui, asset: str) -> dict:
    node = ui.graphql(PARTITION_STATUS, {"key": {"path": [asset]}})["assetNodeOrError"]
    return node["assetPartitionStatuses"]


def wait_for_run(ui, run_id: str, timeout: float = BACKFILL_TIMEOUT) -> dict:
    def finished():
        run = ui.graphql(RUN, {"id": run_id})["runOrError"]
        return run if run["status"] in ("SUCCESS", "FAILURE", "CANCELED") else None

    return wait_for(finished, timeout, interval=2, what=f"run {run_id}")


@pytest.fixture(scope="module")
def sample_keys(dagster_ui, sample_expectations) -> dict[str, str]:
    """{partition key: task id} of every sample task, registered by new_task_sensor."""
    expected = {partition_key_for(t): t for t in sample_expectations}
    register_partitions_with_sensor(dagster_ui, expected=len(expected))
    return expected


@pytest.fixture(scope="module")
def backfill(dagster_ui, sample_keys) -> dict:
    """A backfill of every sample task, launched through GraphQL and run by the daemon."""
    params = {"assetSelection": [{"path": [a]} for a in TASK_ASSETS],
              "partitionNames": list(sample_keys), "title": "sample tasks"}
    launched = dagster_ui.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def done():
        status = dagster_ui.graphql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        return status if status["status"] not in ("REQUESTED", "CANCELING", "FAILING") else None

    status = wait_for(done, BACKFILL_TIMEOUT, interval=3, what=f"backfill {backfill_id}")
    return {"id": backfill_id, **status}


def test_code_location_loads_without_warnings(dagster_ui):
    for name in ("webserver", "daemon"):
        lines = dagster_ui.log_text(name).splitlines()
        # The daemon's log also carries run workers' DEBUG event lines (check names contain "warn" words).
        problems = [line for line in lines if re.search(r"warning|traceback|error", line, re.I)
                    and " - DEBUG - " not in line and "No heartbeat received" not in line]
        assert problems == [], name


def test_sensor_registers_every_task_directory(dagster_ui, sample_keys):
    from result_assets_tests.ui.conftest import partition_keys

    on_disk = {partition_key_for(p.name) for p in dagster_ui.source.iterdir() if (p / "result.json").exists()}
    assert set(partition_keys(dagster_ui)) == on_disk == set(sample_keys)


def test_backfill_completes_in_one_run(backfill, sample_keys):
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill
    assert backfill["numPartitions"] == len(sample_keys)
    # 22 contiguous partitions, batch size 50: one run migrates them all.
    assert [r["status"] for r in backfill["runs"]] == ["SUCCESS"]


def test_every_partition_is_materialized(dagster_ui, backfill, sample_keys):
    for asset in TASK_ASSETS:
        statuses = partition_statuses(dagster_ui, asset)
        # Quarantined tasks are materialized too: their record is in the catalog, their bytes in the backup.
        assert set(statuses["materializedPartitions"]) == set(sample_keys), asset
        assert statuses["failedPartitions"] == [] and statuses["unmaterializedPartitions"] == [], asset


def test_valid_partitions_pass_their_checks(dagster_ui, backfill, sample_keys, sample_expectations):
    run_id = backfill["runs"][0]["runId"]
    for asset, check in ERROR_CHECKS:
        latest = latest_check_executions(dagster_ui, asset, check)
        for key in sample_keys:
            execution = latest[key]
            assert execution["runId"] == run_id
            assert execution["evaluation"]["success"], (asset, check, key, execution["evaluation"])
    # What the check's Partitions tab shows: each evaluation must name the materialization it checked.
    for asset, check in ERROR_CHECKS:
        statuses = check_partition_statuses(dagster_ui, asset)[check]
        assert set(statuses["succeededPartitions"]) == set(sample_keys), (asset, check, statuses)
    # The run-level checks: one verdict of the run over all its tasks.
    for asset, check in (("signal_table", "row_counts"), ("curve_table", "row_counts")):
        verdict = latest_check_executions(dagster_ui, asset, check)[None]
        assert verdict["runId"] == run_id and verdict["evaluation"]["success"], (asset, check, verdict)
        assert verdict["evaluation"]["description"] == f"{len(sample_keys)} of {len(sample_keys)} tasks passed"
        numbers = metadata(verdict["evaluation"]["metadataEntries"])
        assert (numbers["tasks"], numbers["failed"], numbers["failed_tasks"]) == (len(sample_keys), 0, "none")


def test_run_level_checks_have_no_partitions(dagster_ui, backfill):
    """What a person reads on the run-level checks is the run's verdict: no partition is listed."""
    for asset, check in RUN_CHECKS:
        executions = latest_check_executions(dagster_ui, asset, check)
        assert set(executions) == {None}, (asset, check, set(executions))


def test_the_ui_says_the_integrity_checks_are_blocking(dagster_ui):
    blocking = {}
    for asset in ("result_backup", "signal_table", "curve_table", "catalog_entry", "validated_result"):
        node = dagster_ui.graphql(CHECK_BLOCKING, {"key": {"path": [asset]}})["assetNodeOrError"]
        blocking.update({(asset, c["name"]): c["blocking"] for c in node["assetChecksOrError"]["checks"]})
    assert {key for key, value in blocking.items() if value} == {
        ("result_backup", "backup_checksum"), ("catalog_entry", "lossless_round_trip")}
    assert len(blocking) == 6


def test_compression_goal_check_carries_ratio_and_goal(dagster_ui, backfill, sample_keys, sample_expectations):
    evaluation = latest_check_executions(dagster_ui, "signal_table", "compression_goal")[None]["evaluation"]
    assert evaluation["severity"] == "WARN"
    numbers = metadata(evaluation["metadataEntries"])
    assert 0 < numbers["ratio"] < 1 and numbers["goal"] == pytest.approx(0.90)
    assert numbers["tasks"] == len(sample_keys)
    assert evaluation["success"] == (numbers["ratio"] >= numbers["goal"])
    assert f"goal {numbers['goal']:.0%}" in evaluation["description"]


def test_bad_partitions_show_a_warn_quarantine_check_with_the_reason(dagster_ui, backfill, sample_keys,
                                                                     sample_expectations):
    from result_assets.store.stores import Stores

    reasons = dict(Stores.from_env().catalog.quarantined())
    bad = {k: t for k, t in sample_keys.items() if not sample_expectations[t]["valid"]}
    assert set(reasons) == set(bad.values())
    evaluation = latest_check_executions(dagster_ui, "validated_result", "quarantine")[None]["evaluation"]
    assert not evaluation["success"] and evaluation["severity"] == "WARN", evaluation
    assert evaluation["description"] == f"{len(sample_keys) - len(bad)} of {len(sample_keys)} tasks passed"
    numbers = metadata(evaluation["metadataEntries"])
    assert numbers["failed"] == len(bad)
    listed = numbers["failed_tasks"].splitlines()
    assert sorted(listed) == sorted(f"- `{task}`: quarantined: {reasons[task]}" for task in bad.values())
    for key, task in bad.items():  # each bad partition's own materialization says why
        validated = partition_event(dagster_ui, "validated_result", key)
        assert (validated["status"], validated["reason"]) == ("quarantined", reasons[task])


def test_each_partition_shows_its_own_numbers(dagster_ui, backfill, sample_keys, sample_expectations):
    """Per partition: its row count (not the batch's), its JSON bytes, status, reason and source path."""
    for key, task in sample_keys.items():
        expect = sample_expectations[task]
        signals = partition_event(dagster_ui, "signal_table", key)
        assert signals["dagster/row_count"] == (expect["signals"] if expect["valid"] else 0), key
        validated = partition_event(dagster_ui, "validated_result", key)
        source = dagster_ui.source / task / "result.json"
        assert validated["json_bytes"] == source.stat().st_size, key
        assert validated["status"] == ("migrated" if expect["valid"] else "quarantined"), key
        assert validated["dagster/uri"] == str(source), key
        assert ("reason" in validated) == (not expect["valid"]), key


def test_materialize_one_partition_runs_only_it(dagster_ui, backfill, sample_keys):
    key = partition_key_for(ONE_TASK)
    assert key in sample_keys and key != ONE_TASK
    before = {(asset, check): latest_check_executions(dagster_ui, asset, check) for asset, check in ERROR_CHECKS}
    params = {
        "selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY,
                     "pipelineName": "__ASSET_JOB", "assetSelection": [{"path": [a]} for a in TASK_ASSETS]},
        "mode": "default",
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": key}]},
    }
    launched = dagster_ui.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    run = wait_for_run(dagster_ui, run_id)
    assert run["status"] == "SUCCESS", run
    materialized = {(tuple(m["assetKey"]["path"]), m["partition"]) for m in run["assetMaterializations"]}
    assert materialized == {((asset,), key) for asset in TASK_ASSETS}
    for asset, check in ERROR_CHECKS:
        after = latest_check_executions(dagster_ui, asset, check)
        assert after[key]["runId"] == run_id and after[key]["evaluation"]["success"], (asset, check)
        untouched = {p: e["runId"] for p, e in after.items() if p != key}
        assert untouched == {p: e["runId"] for p, e in before[(asset, check)].items() if p != key}, (asset, check)
    verdict = latest_check_executions(dagster_ui, "signal_table", "row_counts")[None]
    assert verdict["runId"] == run_id and verdict["evaluation"]["success"]
    assert metadata(verdict["evaluation"]["metadataEntries"])["task_id"] == ONE_TASK  # the one task's own numbers


def test_task_assets_describe_themselves(dagster_ui, backfill):
    """Description, kinds and column schema on the definitions; row count and where the data lives on events."""
    query = """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
      description kinds %s
      assetMaterializations(limit: 1) { partition %s } } } }""" % (METADATA, METADATA)
    kinds = {"result_backup": {"json"}, "signal_table": {"delta", "parquet"}, "curve_table": {"delta", "parquet"},
             "catalog_entry": {"postgres"}}
    for asset, want_kinds in kinds.items():
        node = dagster_ui.graphql(query, {"key": {"path": [asset]}})["assetNodeOrError"]
        assert node["description"], asset
        assert want_kinds <= set(node["kinds"]), (asset, node["kinds"])
        if asset != "result_backup":
            assert "dagster/column_schema" in metadata(node["metadataEntries"]), asset
    for table in ("signal_table", "curve_table"):
        node = dagster_ui.graphql(query, {"key": {"path": [table]}})["assetNodeOrError"]
        event = metadata(node["assetMaterializations"][0]["metadataEntries"])
        assert isinstance(event.get("dagster/row_count"), int), (table, event)
        assert event.get("dagster/uri"), (table, event)
    print(json.dumps({"signal_table_event_metadata": sorted(event)}))
