"""The code location in an instance a team already has: stock dagster-postgres storage
(`storage: postgres:` in dagster.yaml), nothing of the project's in the instance config."""
from __future__ import annotations

import json

from dagster import AssetCheckKey, AssetKey, AssetRecordsFilter

from result_assets.cli import main
from result_assets.legacy import partition_key_for


def test_migrate_records_every_partition_on_stock_storage(project_home, sample_source, sample_expectations, capsys):
    from dagster_postgres.event_log import PostgresEventLogStorage

    from result_assets.assets.dagster_internals import PooledPostgresEventLogStorage
    from result_assets.assets.instance import get_instance
    from result_assets.settings import Settings
    from result_assets.store.postgres import dagster_url

    settings = Settings.from_env()
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    (settings.dagster_home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: {json.dumps(dagster_url(settings))}\n")

    assert main(["migrate", "--source-dir", str(sample_source), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    valid = {t for t, e in sample_expectations.items() if e["valid"]}
    assert (report["migrated"], report["quarantined"], report["failed_runs"]) == (
        len(valid), len(sample_expectations) - len(valid), 0)

    instance = get_instance(settings)
    storage = instance.event_log_storage
    assert type(storage) is PostgresEventLogStorage and not isinstance(storage, PooledPostgresEventLogStorage)
    keys = [partition_key_for(t) for t in sample_expectations]
    for asset in ("result_backup", "validated_result", "signal_table", "curve_table", "catalog_entry"):
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=keys), limit=1000).records
        assert {r.partition_key for r in records} == set(keys), asset
    round_trip = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey("catalog_entry"), "lossless_round_trip"), limit=1000)
    # per partition, plus the run's declared summary (no partition)
    assert {e.partition for e in round_trip if e.status.value == "SUCCEEDED"} - {None} == set(keys)
