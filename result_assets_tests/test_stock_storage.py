"""The code location as an instance a team already has runs it: stock dagster-postgres storage
(`storage: postgres:` in dagster.yaml), nothing of the project's in the instance config. A new
home's instance is such an instance."""
from __future__ import annotations

import json

import yaml
from dagster import AssetCheckKey, AssetKey, AssetRecordsFilter, DagsterEventType, EventRecordsFilter

from result_assets.assets.metadata import TASK_ASSETS
from result_assets.cli import main
from result_assets.legacy import partition_key_for

PER_PARTITION = (("result_backup", "backup_checksum"), ("catalog_entry", "lossless_round_trip"))
PER_RUN = (("signal_table", "row_counts"), ("curve_table", "row_counts"), ("signal_table", "compression_goal"),
           ("validated_result", "quarantine"))


def test_migrate_records_every_partition_on_stock_storage(project_home, sample_source, sample_expectations, capsys):
    from dagster_postgres.event_log import PostgresEventLogStorage

    from result_assets.assets.instance import get_instance
    from result_assets.settings import Settings

    assert main(["migrate", "--source-dir", str(sample_source), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    valid = {t for t, e in sample_expectations.items() if e["valid"]}
    assert (report["migrated"], report["quarantined"], report["failed_runs"]) == (
        len(valid), len(sample_expectations) - len(valid), 0)

    settings = Settings.from_env()
    written = yaml.safe_load((settings.dagster_home / "dagster.yaml").read_text())
    assert set(written["storage"]) == {"postgres"}
    instance = get_instance(settings)
    assert type(instance.event_log_storage) is PostgresEventLogStorage
    keys = [partition_key_for(t) for t in sample_expectations]
    for asset in ("result_backup", "validated_result", "signal_table", "curve_table", "catalog_entry"):
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=keys), limit=1000).records
        assert {r.partition_key for r in records} == set(keys), asset
    for asset, check in PER_PARTITION:  # each partition's proof, plus the run's declared summary
        history = instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(AssetKey(asset), check), limit=1000)
        assert {e.partition for e in history if e.status.value == "SUCCEEDED"} - {None} == set(keys), check
    for asset, check in PER_RUN:  # one verdict for the run (22 tasks, one batch)
        history = instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(AssetKey(asset), check), limit=1000)
        assert [e.partition for e in history] == [None], check
    # a range run plans one materialization event per asset, not one per asset and partition
    planned = instance.get_event_records(EventRecordsFilter(DagsterEventType.ASSET_MATERIALIZATION_PLANNED),
                                         limit=1000)
    by_asset = [r.event_log_entry.dagster_event.asset_key.to_user_string() for r in planned]
    assert sorted(a for a in by_asset if a != "migration_report") == sorted(TASK_ASSETS)


def test_an_unedited_earlier_default_is_brought_to_stock_and_an_edited_file_is_kept(project_home):
    from result_assets.assets.instance import TUNED_STORAGE_YAML, ensure_dagster_home
    from result_assets.settings import Settings

    settings = Settings.from_env()
    config = settings.dagster_home / "dagster.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    earlier = ("# Written by result-assets. Storage resolves its Postgres from DATABASE_URL or the\n"
               "# embedded server under RESULT_ASSETS_HOME; no URL or password is kept here.\n" + TUNED_STORAGE_YAML)
    config.write_text(earlier)
    ensure_dagster_home(settings)
    assert set(yaml.safe_load(config.read_text())["storage"]) == {"postgres"}
    config.write_text(TUNED_STORAGE_YAML)  # a person's own file (opting in): left alone
    ensure_dagster_home(settings)
    assert config.read_text() == TUNED_STORAGE_YAML


def test_a_migration_holds_its_connections_to_stock_storage(project_home):
    """Stock dagster-postgres opens a connection per storage operation; a migration's process
    (the CLI, a run's worker) keeps them open instead, as Dagster's webserver does: Postgres
    counts the sessions opened on the instance's database (pg_stat_database.sessions)."""
    import psycopg2

    from result_assets.assets.instance import get_instance, hold_connections
    from result_assets.settings import Settings
    from result_assets.store.postgres import dagster_url

    settings = Settings.from_env()
    instance = get_instance(settings)
    url = dagster_url(settings).replace("postgresql+psycopg2://", "postgresql://", 1)

    def sessions_opened(operations) -> int:
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            before = cur.fetchone()[0]
        operations()
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_stat_force_next_flush()")  # this session's own count is flushed at its end
            cur.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            return cur.fetchone()[0] - before - 1  # the first probe's session

    def twenty_reads():
        for _ in range(20):
            instance.get_runs(limit=1)
            instance.get_latest_materialization_event(AssetKey("catalog_entry"))

    assert sessions_opened(twenty_reads) >= 20  # stock: one per operation
    hold_connections(instance)
    hold_connections(instance)  # once per instance: a second call builds no new engines
    assert sessions_opened(twenty_reads) <= 3
