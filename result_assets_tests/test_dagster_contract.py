"""Contract tests of the Dagster internals fenced in result_assets/assets/dagster_internals.py:
one per private use, each failing on a Dagster release that changes what the use relies on.
Results are read back through the instance's and its event log's read APIs (what the UI reads)."""
from __future__ import annotations

import hashlib
import inspect
import os
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSpec,
    AssetKey,
    AssetMaterialization,
    AssetRecordsFilter,
    AssetSpec,
    DagsterEventType,
    DynamicPartitionsDefinition,
    MaterializeResult,
    instance_for_test,
    materialize,
    multi_asset,
)

from result_assets.assets.dagster_internals import attach_partition_metadata, target_materialization

CHECK = "proved"


def contract_assets(partitions: DynamicPartitionsDefinition):
    """A tiny copy of the migration step: one step over a partition range, per-partition metadata
    through attach_partition_metadata, one check evaluation per partition naming its target."""
    a, b = f"{partitions.name}_a", f"{partitions.name}_b"

    @multi_asset(name=f"{partitions.name}_step", partitions_def=partitions,
                 specs=[AssetSpec(a, partitions_def=partitions), AssetSpec(b, partitions_def=partitions)],
                 check_specs=[AssetCheckSpec(CHECK, asset=a, partitions_def=partitions)])
    def step(context):
        keys = list(context.partition_keys)
        for asset in (a, b):
            attach_partition_metadata(context, asset, {k: {"task_id": k, "asset": asset} for k in keys})
            yield MaterializeResult(asset_key=asset, metadata={"batch_size": len(keys)})
        records = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(a), asset_partitions=keys), limit=len(keys)).records
        targets = {r.partition_key: target_materialization(r.storage_id, r.run_id, r.timestamp)
                   for r in records if r.run_id == context.run.run_id}
        for k in keys:
            yield AssetCheckEvaluation(asset_key=AssetKey(a), check_name=CHECK, passed=k != keys[-1], partition=k,
                                       target_materialization_data=targets[k])
        yield AssetCheckResult(asset_key=a, check_name=CHECK, passed=False)  # the step's declared output

    return step, AssetKey(a), AssetKey(b)


def run_contract_step(instance, keys: list[str]):
    """Register `keys` in a fresh dynamic partitions definition and materialize them in one run."""
    partitions = DynamicPartitionsDefinition(name=f"contract_{uuid.uuid4().hex[:8]}")
    instance.add_dynamic_partitions(partitions.name, keys)
    step, a, b = contract_assets(partitions)
    result = materialize([step], instance=instance, tags={
        "dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]})
    assert result.success
    return result.run_id, a, b


def latest_partition_materializations(instance, key: AssetKey, partitions: list[str]) -> dict:
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=key, asset_partitions=partitions),
                                              limit=100).records
    latest = {}
    for r in records:  # newest first
        latest.setdefault(r.partition_key, r)
    return latest


def partition_check_info(instance, check_key: AssetCheckKey) -> dict:
    """{partition: what the UI's per-partition check status reads}."""
    infos = instance.event_log_storage.get_asset_check_partition_info([check_key])
    return {i.partition_key: i for i in infos if i.partition_key is not None}


def check_evaluations(instance, check_key: AssetCheckKey) -> dict:
    """{partition: latest check execution record} through the event log's public reads
    (without the step's unpartitioned declared result)."""
    records = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=100)
    latest = {}
    for r in records:  # newest first
        if r.partition is not None:
            latest.setdefault(r.partition, r)
    return latest


# --- 1. attach_partition_metadata --------------------------------------------------------------


def test_each_partition_of_a_multi_partition_step_carries_its_own_metadata():
    keys = ["p1", "p2", "p3"]
    with instance_for_test() as instance:
        run_id, a, b = run_contract_step(instance, keys)
        for asset in (a, b):
            latest = latest_partition_materializations(instance, asset, keys)
            assert set(latest) == set(keys)
            for k, record in latest.items():
                assert record.run_id == run_id
                metadata = {name: v.value for name, v in record.asset_materialization.metadata.items()}
                # its own partition's metadata, merged with the step-level metadata of the result
                assert metadata == {"task_id": k, "asset": asset.to_user_string(), "batch_size": 3}


# --- 2. target_materialization -----------------------------------------------------------------


def test_a_check_evaluation_names_the_materialization_it_judged():
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("contract_runless", ["t1", "t2"])
        key = AssetKey("contract_runless_a")
        check_key = AssetCheckKey(key, CHECK)
        for partition in ("t1", "t2"):
            instance.report_runless_asset_event(AssetMaterialization(asset_key=key, partition=partition))
        latest = latest_partition_materializations(instance, key, ["t1", "t2"])
        t1 = latest["t1"]
        target = target_materialization(t1.storage_id, t1.run_id, t1.timestamp)
        instance.report_runless_asset_event(AssetCheckEvaluation(
            asset_key=key, check_name=CHECK, passed=True, partition="t1", target_materialization_data=target))

        evaluation = check_evaluations(instance, check_key)["t1"].event.dagster_event.event_specific_data
        assert evaluation.target_materialization_data == target
        assert (evaluation.target_materialization_data.storage_id, evaluation.target_materialization_data.run_id,
                evaluation.target_materialization_data.timestamp) == (t1.storage_id, t1.run_id, t1.timestamp)
        # What the UI's per-partition check status reads: t1's evaluation is current, t2 has none.
        infos = partition_check_info(instance, check_key)
        assert set(infos) == {"t1"}
        assert infos["t1"].latest_target_materialization_storage_id == t1.storage_id
        assert infos["t1"].is_current


def test_target_materialization_builds_the_value_dagster_declares():
    """No public export of the value class in this release; when one appears, use it and drop
    the private import."""
    import typing

    import dagster

    public = [name for name in dir(dagster) if "TargetMaterialization" in name]
    assert not public, f"dagster now exports {public}: use it in dagster_internals.target_materialization"
    declared = inspect.signature(AssetCheckEvaluation).parameters["target_materialization_data"].annotation
    (value_class,) = [t for t in typing.get_args(declared) if t is not type(None)]
    value = target_materialization(7, "run", 2.5)
    assert type(value) is value_class
    assert (value.storage_id, value.run_id, value.timestamp) == (7, "run", 2.5)


# --- 3. ResultAssetsStorage --------------------------------------------------------------------

# sha256 of dagster-postgres' PostgresEventLogStorage.store_event, which
# PooledPostgresEventLogStorage.store_event copies minus the NOTIFY. When this fails, diff the new
# source against ours, port the change, then update the hash.
STOCK_STORE_EVENT_SHA256 = "21647c85c536c99530f0b27fd7f92271ee5b2bdee74b82eed020b264dd619d06"


def test_the_copied_store_event_is_the_stock_one_of_this_release():
    from dagster_postgres.event_log import PostgresEventLogStorage

    source = textwrap.dedent(inspect.getsource(PostgresEventLogStorage.store_event))
    assert hashlib.sha256(source.encode()).hexdigest() == STOCK_STORE_EVENT_SHA256, source


# The stock row-by-row check writes the batched ones mirror (PooledPostgresEventLogStorage:
# _store_asset_check_evaluation_planned, _flush_check_evaluations). When one fails, diff the new
# source against ours, port the change, then update the hash.
STOCK_CHECK_WRITES_SHA256 = {
    "_store_asset_check_evaluation_planned": "e98c70e3f28269a6e2e71971a7e1c9b197e103d32dd7a926fe4ad85dd3a250c7",
    "_update_asset_check_evaluation": "6703dae3c64e8d91919acec8b1fedc6a8d75bd3c22e5d5a4f08512e904ab4533",
}


def test_the_mirrored_check_writes_are_the_stock_ones_of_this_release():
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

    for name, digest in STOCK_CHECK_WRITES_SHA256.items():
        source = textwrap.dedent(inspect.getsource(getattr(SqlEventLogStorage, name)))
        assert hashlib.sha256(source.encode()).hexdigest() == digest, source


def parameters(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_private_names_the_storage_uses_keep_their_shape():
    import dagster_postgres.event_log.event_log as stock
    from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
    from dagster._core.storage.event_log import SqlEventLogStorageTable
    from dagster._serdes import ConfigurableClassData
    from dagster_postgres import DagsterPostgresStorage
    from dagster_postgres.event_log import PostgresEventLogStorage
    from dagster_postgres.utils import create_pg_engine

    from result_assets.platform import dagster_storage

    # the same objects the stock store_event uses
    assert dagster_storage.ASSET_EVENTS is stock.ASSET_EVENTS is ASSET_EVENTS
    assert dagster_storage.ASSET_CHECK_EVENTS is stock.ASSET_CHECK_EVENTS is ASSET_CHECK_EVENTS
    assert dagster_storage.SqlEventLogStorageTable is stock.SqlEventLogStorageTable is SqlEventLogStorageTable
    assert {DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_OBSERVATION} <= ASSET_EVENTS
    assert ASSET_CHECK_EVENTS == {DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
                                  DagsterEventType.ASSET_CHECK_EVALUATION}
    assert "id" in SqlEventLogStorageTable.c

    E = PostgresEventLogStorage
    assert parameters(E.prepare_insert_event) == ["self", "event"]
    assert parameters(E._store_asset_event_tags) == ["self", "conn", "events", "event_ids"]
    assert parameters(E._store_asset_event) == ["self", "conn", "event", "event_id"]
    assert parameters(E.store_asset_check_event) == ["self", "event", "event_id"]
    assert parameters(E.index_transaction) == ["self"]
    assert parameters(E._connect) == ["self"]
    assert parameters(E.__init__)[:4] == ["self", "postgres_url", "should_autocreate_tables", "inst_data"]
    assert parameters(DagsterPostgresStorage.__init__)[:4] == ["self", "postgres_url", "should_autocreate_tables",
                                                               "inst_data"]
    create = inspect.signature(create_pg_engine).parameters
    assert list(create)[0] == "postgres_url"
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in create.values())
    assert ConfigurableClassData._fields == ("module_name", "class_name", "config_yaml")
    # the engine and event-log attributes the subclasses replace are the ones the stock code reads
    assert "self._engine" in inspect.getsource(E._connect)
    assert re.search(r"return self\._event_log_storage\b", inspect.getsource(DagsterPostgresStorage))


def test_dagster_yaml_path_still_names_the_storage():
    """An instance that opts in names result_assets.platform.dagster_storage.ResultAssetsStorage."""
    from result_assets.platform import dagster_storage
    from result_assets.assets.instance import TUNED_STORAGE_YAML

    assert dagster_storage.ResultAssetsStorage.__module__ == "result_assets.platform.dagster_storage"
    assert "module: result_assets.platform.dagster_storage" in TUNED_STORAGE_YAML
    assert "class: ResultAssetsStorage" in TUNED_STORAGE_YAML


def test_only_the_fenced_module_imports_dagster_internals():
    package = Path(__file__).parents[1] / "result_assets"
    users = sorted(str(p.relative_to(package)) for p in package.rglob("*.py")
                   if re.search(r"^\s*(from|import) dagster\._", p.read_text(), re.M))
    assert users == ["assets/dagster_internals.py"]


def test_a_code_location_on_stock_storage_loads_no_dagster_postgres_internals():
    """The opt-in storage's private pieces (dagster-postgres' event log, Dagster's schema
    tables) load only with the instance that names it: a rename in a Dagster upgrade cannot
    fail the load of a code location on stock storage."""
    code = ("import sys, result_assets.definitions as d; d.defs(); "
            "print(sorted(m for m in sys.modules if m.startswith(('dagster_postgres.event_log', "
            "'dagster._core.storage.event_log.schema', 'result_assets.platform'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def assert_round_trip(instance, tuned: bool = True) -> None:
    """Everything the event log writes (the tuned one, or stock dagster-postgres), read back
    through the public reads the UI uses."""
    from dagster_postgres.event_log import PostgresEventLogStorage

    from result_assets.platform.dagster_storage import PooledPostgresEventLogStorage

    storage = instance.event_log_storage
    if not tuned:
        assert type(storage) is PostgresEventLogStorage
        run_id, a, b = run_contract_step(instance, ["k1", "k2"])
        _read_back(instance, run_id, a, b, ["k1", "k2"])
        return
    assert type(storage) is PooledPostgresEventLogStorage
    with storage._connect() as conn:  # noqa: SLF001
        assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"

    stored = []  # event types that went through our store_event (not a batch write)
    store_event = storage.store_event
    storage.store_event = lambda event: (stored.append(event.dagster_event_type), store_event(event))[1]
    try:
        keys = ["k1", "k2"]
        run_id, a, b = run_contract_step(instance, keys)
        _read_back(instance, run_id, a, b, keys)
    finally:
        del storage.store_event
    assert {DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_CHECK_EVALUATION} <= set(stored)


def _read_back(instance, run_id: str, a: AssetKey, b: AssetKey, keys: list[str]) -> None:
    assert instance.get_run_by_id(run_id).is_success
    # materializations: latest, per partition (with their own metadata), the partition status
    assert instance.get_latest_materialization_event(a).run_id == run_id
    for asset in (a, b):
        latest = latest_partition_materializations(instance, asset, keys)
        assert {k: r.asset_materialization.metadata["task_id"].value for k, r in latest.items()} == {"k1": "k1",
                                                                                                   "k2": "k2"}
        assert instance.get_materialized_partitions(asset) == set(keys)
    (record,) = instance.get_asset_records([a])
    assert record.asset_entry.last_materialization_record.run_id == run_id
    if os.environ.get("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "0").lower() not in ("0", "false", ""):
        assert instance.get_latest_planned_materialization_info(a).run_id == run_id  # one event, the subset
    else:
        assert all(instance.get_latest_planned_materialization_info(a, k).run_id == run_id for k in keys)

    # check evaluations: one per partition, each current against its partition's materialization
    check_key = AssetCheckKey(a, CHECK)
    evaluations = check_evaluations(instance, check_key)
    assert {k: r.status.value for k, r in evaluations.items()} == {"k1": "SUCCEEDED", "k2": "FAILED"}
    latest = latest_partition_materializations(instance, a, keys)
    infos = partition_check_info(instance, check_key)
    assert {k: i.latest_target_materialization_storage_id for k, i in infos.items()} == {
        k: latest[k].storage_id for k in keys}
    assert all(i.is_current for i in infos.values())

    # a runless report (what an application save records) goes through the NOTIFY-less store_event
    instance.report_runless_asset_event(AssetMaterialization(asset_key=a, partition="k1", metadata={"task_id": "k1"}))
    newest = latest_partition_materializations(instance, a, ["k1"])["k1"]
    assert newest.run_id != run_id and newest.storage_id > latest["k1"].storage_id
    instance.report_runless_asset_event(AssetCheckEvaluation(
        asset_key=a, check_name=CHECK, passed=True, partition="k1",
        target_materialization_data=target_materialization(newest.storage_id, newest.run_id, newest.timestamp)))
    infos = partition_check_info(instance, check_key)
    assert infos["k1"].latest_target_materialization_storage_id == newest.storage_id and infos["k1"].is_current
    assert check_evaluations(instance, check_key)["k1"].status.value == "SUCCEEDED"
    # every event the run wrote is in the run's log
    types = [e.dagster_event_type for e in instance.all_logs(run_id) if e.is_dagster_event]
    assert types.count(DagsterEventType.ASSET_MATERIALIZATION) == 4
    assert types.count(DagsterEventType.ASSET_CHECK_EVALUATION) == 3  # 2 partitions + the declared result
    assert types[-1] == DagsterEventType.RUN_SUCCESS


def test_the_tuned_instance_reads_everything_it_writes(project_home, monkeypatch):
    from result_assets.assets.instance import TUNED_STORAGE_YAML, get_instance
    from result_assets.settings import Settings

    # one planned event per asset and partition: the writes the tuned storage batches
    monkeypatch.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "0")

    dagster_home = Settings.from_env().dagster_home
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(TUNED_STORAGE_YAML)  # opted in
    with get_instance() as instance:
        assert_round_trip(instance)
