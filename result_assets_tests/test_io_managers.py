"""Downstream assets read the store through its IO manager; blocking checks keep them off a
failed partition. Real assets in a real instance on the project's PostgreSQL."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from dagster import AssetKey, Definitions, asset, materialize

from result_assets.assets.partitions import register_partitions, task_partitions
from result_assets.legacy import partition_key_for

TASKS = ["bt_20250901_14ceeb", "grid...42"]


@asset(partitions_def=task_partitions)
def strategy_stats(signal_table: pa.Table) -> dict:
    """What a user writes: per task, its trades and their summed pnl."""
    return {"trades": signal_table.num_rows, "pnl": pc.sum(signal_table.column("pnl")).as_py()}


@asset(partitions_def=task_partitions)
def curve_frame(curve_table: pd.DataFrame) -> int:
    return len(curve_table)


@asset(partitions_def=task_partitions)
def optional_curve_frame(curve_table: pd.DataFrame | None) -> str:
    """An optional pandas hint asks for pandas too."""
    return type(curve_table).__name__


@pytest.fixture(scope="module")
def env(project_home, sample_source, tmp_path_factory):
    import os

    source = tmp_path_factory.mktemp("src")
    for task in TASKS:
        shutil.copytree(sample_source / task, source / task)
    os.environ["RESULT_SOURCE_DIR"] = str(source)
    from result_assets.assets.instance import get_instance
    from result_assets.definitions import build_definitions

    instance = get_instance()
    base = build_definitions()
    defs = Definitions.merge(base, Definitions(assets=[strategy_stats, curve_frame, optional_curve_frame]))
    keys = [partition_key_for(t) for t in TASKS]
    register_partitions(instance, keys)
    for key in keys:
        assert base.resolve_job_def("migrate_job").execute_in_process(instance=instance, partition_key=key).success
    yield instance, defs, source
    os.environ.pop("RESULT_SOURCE_DIR", None)


def test_load_asset_value_gives_a_partitions_rows_and_document(env, sample_expectations):
    instance, defs, source = env
    key = partition_key_for("grid...42")
    signals = defs.load_asset_value("signal_table", partition_key=key, instance=instance)
    assert isinstance(signals, pa.Table) and signals.num_rows == 34  # expect.json: 34 signals
    assert set(signals.column("task_id").to_pylist()) == {"grid...42"}
    curves = defs.load_asset_value("curve_table", partition_key=key, instance=instance)
    assert isinstance(curves, pa.Table) and set(curves.column("task_id").to_pylist()) <= {"grid...42"}
    documents = defs.load_asset_value("catalog_entry", partition_key=key, instance=instance)
    assert documents == {"grid...42": json.loads((source / "grid...42" / "result.json").read_bytes())}


def test_a_users_downstream_asset_gets_the_partitions_rows(env):
    instance, defs, _ = env
    key = partition_key_for("bt_20250901_14ceeb")
    result = materialize([*defs.assets, strategy_stats, curve_frame, optional_curve_frame],
                         selection=[strategy_stats, curve_frame, optional_curve_frame],
                         partition_key=key, instance=instance, resources=defs.resources)
    assert result.success
    assert result.output_for_node("optional_curve_frame") == "DataFrame"
    stats = result.output_for_node("strategy_stats")
    rows = defs.load_asset_value("signal_table", partition_key=key, instance=instance)
    assert stats == {"trades": rows.num_rows, "pnl": pc.sum(rows.column("pnl")).as_py()} and stats["trades"] > 0
    assert result.output_for_node("curve_frame") == defs.load_asset_value(
        "curve_table", partition_key=key, instance=instance).num_rows


def test_a_failed_blocking_check_keeps_the_downstream_asset_off_its_partition(env, monkeypatch):
    """A proof that fails in the run fails the migration step (blocking ERROR check), so the
    user's asset of the same run does not materialize; the last good version stays readable."""
    from result_assets.migration import engine

    instance, defs, source = env
    victim = "grid...42"
    key = partition_key_for(victim)
    before = defs.load_asset_value("signal_table", partition_key=key, instance=instance)
    proven_rows = engine.signal_rows

    def corrupted(validated):
        rows = proven_rows(validated)
        price = rows.table.column("price").combine_chunks()
        rows.table = rows.table.set_column(rows.table.schema.get_field_index("price"), "price",
                                           pc.add(price, pa.scalar(1e-12)))
        return rows

    monkeypatch.setattr(engine, "signal_rows", corrupted)
    migrate = [d for d in defs.assets if "signal_table" in {k.to_user_string() for k in getattr(d, "keys", [])}]
    result = materialize([*defs.assets, strategy_stats], selection=[*migrate, strategy_stats], partition_key=key,
                         instance=instance, resources=defs.resources, raise_on_error=False)
    assert not result.success
    failure = [e for e in result.all_events if e.is_step_failure][0]
    assert "blocking asset check" in failure.event_specific_data.error.message
    evaluation = [e for e in result.get_asset_check_evaluations() if e.check_name == "lossless_round_trip"][0]
    assert not evaluation.passed and evaluation.blocking
    assert not [e for e in result.all_events if e.step_key == "strategy_stats"]  # never started
    latest = instance.get_latest_materialization_event(AssetKey("strategy_stats"))
    assert latest is None or latest.run_id != result.run_id
    # Nor does the migration step call the partition materialized: its latest materialization is
    # still the run that published what readers get, and the failed check judged that one.
    assert not [e for e in result.get_asset_materialization_events() if e.partition == key]
    from dagster import AssetCheckKey, AssetRecordsFilter

    [record] = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey("catalog_entry"),
                                                                  asset_partitions=[key]), limit=1).records
    assert record.run_id != result.run_id
    [check] = instance.event_log_storage.get_asset_check_partition_info(
        [AssetCheckKey(AssetKey("catalog_entry"), "lossless_round_trip")], partition_keys=[key])
    assert (check.latest_execution_status.value, check.is_current) == ("FAILED", True)
    after = defs.load_asset_value("signal_table", partition_key=key, instance=instance)
    assert after.equals(before)  # the last good version, not the changed rows


def test_a_partition_with_no_published_version_is_an_error_not_an_empty_table(env):
    """An empty table (or {}) for a partition that was never published let a user's asset
    materialize over nothing."""
    from dagster import Failure

    instance, defs, _ = env
    pending = partition_key_for("registered_not_migrated")
    register_partitions(instance, [pending])
    for asset in ("signal_table", "curve_table", "catalog_entry"):
        with pytest.raises(Failure, match="has no published version \\(not migrated yet\\)"):
            defs.load_asset_value(asset, partition_key=pending, instance=instance)


def test_a_range_in_which_no_partition_is_published_is_an_error_not_an_empty_table(env):
    """A range left without every partition gave an empty table, and the user's asset
    materialized over nothing; a range with some published partitions gives theirs."""
    from dagster import Failure, PartitionKeyRange, PythonObjectDagsterType, build_input_context, build_resources

    instance, defs, _ = env
    pending = [partition_key_for(t) for t in ("pending_range_a", "pending_range_b")]
    register_partitions(instance, pending)

    def load(first, last):
        with build_resources({"io": defs.resources["store_io_manager"]}) as resources:
            return resources.io.load_input(build_input_context(
                asset_key=AssetKey("signal_table"), asset_partition_key_range=PartitionKeyRange(first, last),
                asset_partitions_def=task_partitions, instance=instance,
                dagster_type=PythonObjectDagsterType(pa.Table)))

    with pytest.raises(Failure, match="none of the 2 partitions asked for has a published version") as refused:
        load(*pending)
    assert all(f"{t} (not migrated yet)" in str(refused.value) for t in ("pending_range_a", "pending_range_b"))
    published = partition_key_for(TASKS[-1])
    rows = load(published, pending[0])
    assert set(rows.column("task_id").to_pylist()) == {TASKS[-1]} and rows.num_rows == 34


def test_the_io_manager_reads_through_the_readers_stores(env, monkeypatch):
    """A load ran DDL on an empty catalog and filled the serving cache: it reads as a sensor does."""
    from result_assets.assets.resources import StoresResource

    instance, defs, source = env

    def writer(self):
        raise AssertionError("the IO manager asked for the writer's stores")

    monkeypatch.setattr(StoresResource, "get", writer)
    key = partition_key_for("grid...42")
    assert defs.load_asset_value("catalog_entry", partition_key=key, instance=instance) == {
        "grid...42": json.loads((source / "grid...42" / "result.json").read_bytes())}
    assert defs.load_asset_value("signal_table", partition_key=key, instance=instance).num_rows == 34


def test_the_io_manager_refuses_to_store_an_assets_output(env):
    from dagster import build_output_context

    _, defs, _ = env
    manager = defs.resources["store_io_manager"]
    with pytest.raises(TypeError, match="written by the migration engine only"):
        manager.handle_output(build_output_context(asset_key=AssetKey("signal_table")), pa.table({"x": [1]}))


def test_a_task_quarantined_while_a_load_reads_is_an_error_not_an_empty_table(env, monkeypatch):
    """A load asked whether the partition was published, then read its rows in a second query:
    a task quarantined between the two gave an empty table. The read's own catalog query decides."""
    from dagster import Failure

    from result_assets.store.catalog import Catalog

    instance, defs, _ = env
    task = TASKS[0]
    rows_of = Catalog.tasks
    catalogs = []

    def quarantined_meanwhile(self, task_ids, *args, **kwargs):
        if not catalogs:  # another process quarantines the task just before the rows are asked for
            with self.connect() as conn, conn.cursor() as cur:
                cur.execute("UPDATE tasks SET status = 'quarantined', reason = 'taken meanwhile' "
                            "WHERE task_id = %s", (task,))
            catalogs.append(self)
        return rows_of(self, task_ids, *args, **kwargs)

    monkeypatch.setattr(Catalog, "tasks", quarantined_meanwhile)
    try:
        with pytest.raises(Failure, match="has no published version \\(quarantined: taken meanwhile\\)"):
            defs.load_asset_value("signal_table", partition_key=partition_key_for(task), instance=instance)
    finally:
        with catalogs[0].connect() as conn, conn.cursor() as cur:
            cur.execute("UPDATE tasks SET status = 'migrated', reason = NULL WHERE task_id = %s", (task,))
