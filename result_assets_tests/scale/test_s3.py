"""The migration, export and checks with RESULT_STORE_ROOT and RESULT_BACKUP_DIR on S3.

A local S3-compatible server (moto) on 127.0.0.1 stands in for the object store; endpoint
and credentials reach delta-rs and pyarrow through the standard AWS variables only.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import quote

import boto3
import pytest
from dagster import AssetCheckKey, AssetKey

from result_assets import read_result
from result_assets.cli import main
from result_assets.legacy import compare_documents, parse_document, partition_key_for
from result_assets.store.backups import S3BackupStore, UnsafeTaskId
from result_assets_tests.scale.conftest import make_bucket


@pytest.fixture(scope="module")
def bucket(project_home, s3_endpoint):
    name = make_bucket(s3_endpoint)
    os.environ["RESULT_STORE_ROOT"] = f"s3://{name}/store"
    os.environ["RESULT_BACKUP_DIR"] = f"s3://{name}/backups"
    yield name
    os.environ.pop("RESULT_STORE_ROOT", None)
    os.environ.pop("RESULT_BACKUP_DIR", None)


@pytest.fixture(scope="module")
def s3(s3_endpoint):
    return boto3.client("s3", endpoint_url=s3_endpoint)


@pytest.fixture(scope="module")
def migrated(bucket, sample_source):
    assert main(["migrate", "--source-dir", str(sample_source), "--json"]) == 0
    return bucket


def valid_ids(expect):
    return sorted(t for t, e in expect.items() if e["valid"])


def keys(s3, bucket, prefix):
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_migration_writes_tables_and_backups_to_the_bucket(migrated, s3, sample_source, sample_expectations,
                                                           project_home, capsys):
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    status = {r["task_id"]: r["status"] for r in json.loads(capsys.readouterr().out)["tasks"]}
    assert status == {t: "migrated" if e["valid"] else "quarantined" for t, e in sample_expectations.items()}
    for table in ("signals", "curves"):
        objects = keys(s3, migrated, f"store/{table}/")
        assert any(k.startswith(f"store/{table}/_delta_log/") and k.endswith(".json") for k in objects), table
        assert any(k.endswith(".parquet") for k in objects), table
    for task_id in sample_expectations:
        raw = (sample_source / task_id / "result.json").read_bytes()
        body = s3.get_object(Bucket=migrated, Key=f"backups/{task_id}/result.json")["Body"].read()
        assert body == raw, task_id
    # nothing fell back to the local defaults
    assert not (project_home / "store").exists() and not (project_home / "backups").exists()


def test_store_sizes_are_read_from_the_bucket(migrated, sample_source, capsys):
    capsys.readouterr()
    assert main(["migrate", "--source-dir", str(sample_source), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["skipped"] == report["tasks"] and report["runs"] == 0
    assert report["stored_bytes"] > 0 and 0 < report["compression_ratio"] < 1


def test_checks_pass_per_partition(migrated, sample_expectations):
    from result_assets.assets.instance import get_instance

    instance = get_instance()
    for asset, check, tasks in (("catalog_entry", "lossless_round_trip", list(sample_expectations)),
                                ("result_backup", "backup_checksum", valid_ids(sample_expectations))):
        records = instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(AssetKey(asset), check), limit=200)
        results = {r.event.dagster_event.event_specific_data.partition: r.event.dagster_event.event_specific_data
                   for r in records if r.event}
        for task_id in tasks:
            data = results[partition_key_for(task_id)]
            assert data.passed, (asset, check, task_id, data.description)
    records = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey("signal_table"), "row_counts"), limit=200)
    verdicts = [r.event.dagster_event.event_specific_data for r in records if r.event]
    assert verdicts and all(v.passed and v.partition is None for v in verdicts)  # the run's verdict


def test_export_reads_back_lossless(migrated, sample_source, sample_expectations, tmp_path):
    out = tmp_path / "export"
    assert main(["export", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {f"{quote(t, safe='')}.json" for t in valid_ids(sample_expectations)}
    for task_id in valid_ids(sample_expectations):
        original = parse_document((sample_source / task_id / "result.json").read_bytes())
        exported = parse_document((out / f"{quote(task_id, safe='')}.json").read_bytes())
        assert compare_documents(original, exported) == [], task_id


def test_changed_source_keeps_the_old_backup_in_the_bucket(migrated, s3, sample_source, capsys):
    path = sample_source / "bt_no_trades" / "result.json"
    old = path.read_bytes()
    doc = parse_document(old)
    doc["strategy"] = "sma_cross_s3"
    path.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["migrate", "--source-dir", str(sample_source), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["migrated"] == 1
    assert read_result("bt_no_trades")["strategy"] == "sma_cross_s3"
    prefix = "backups/bt_no_trades/"
    old_sha = hashlib.sha256(old).hexdigest()
    assert sorted(keys(s3, migrated, prefix)) == [f"{prefix}previous/{old_sha}.json", f"{prefix}result.json"]
    assert s3.get_object(Bucket=migrated, Key=f"{prefix}previous/{old_sha}.json")["Body"].read() == old
    assert s3.get_object(Bucket=migrated, Key=f"{prefix}result.json")["Body"].read() == path.read_bytes()


def test_s3_backups_refuse_unsafe_task_ids(migrated):
    from result_assets.store.delta_tables import s3_storage_options

    root = f"s3://{migrated}/backups"
    store = S3BackupStore(root, s3_storage_options(root))
    for bad in ("..", "a/b", "x\x00y", ""):
        with pytest.raises(UnsafeTaskId):
            store.save(bad, b"{}")
    record = store.save("odd id ü", b'{"a": 1}')
    assert record.verified and record.path == f"{root}/odd id ü/result.json"
    assert store.read("odd id ü") == b'{"a": 1}'
    assert not store.verify("odd id ü", hashlib.sha256(b"other").hexdigest())


def test_s3_backups_stream_a_file_and_keep_the_previous_version(migrated, tmp_path):
    """save_file (files over the size limit are never held whole) keeps save's layout on S3."""
    from result_assets.store.delta_tables import s3_storage_options

    root = f"s3://{migrated}/backups"
    store = S3BackupStore(root, s3_storage_options(root))
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_bytes(b"x" * (3 << 20))  # several stream chunks
    second.write_bytes(b"y" * 1000)
    first_sha = hashlib.sha256(first.read_bytes()).hexdigest()
    assert store.save_file("streamed", first, first_sha)
    assert store.read("streamed") == first.read_bytes()
    assert store.save_file("streamed", second, hashlib.sha256(second.read_bytes()).hexdigest())
    assert store.read("streamed") == second.read_bytes()
    assert store._sha256(f"{root}/streamed/previous/{first_sha}.json") == first_sha
    assert store.read_version("streamed", first_sha) == first.read_bytes()  # what rollback restores
    assert store.read_version("streamed", hashlib.sha256(b"never").hexdigest()) is None


def test_a_partition_re_run_of_an_archived_task_republishes_it_from_its_backup_in_the_bucket(
        migrated, sample_source, tmp_path, monkeypatch):
    """Phase 4: the JSON archived, the backup in the bucket is the task's only raw copy. A re-run
    of its partition (the UI's "re-run one task") republishes the store's version from that
    backup, as it does from a local backup folder; before, it found no file and kept the
    attempt beside the published version, materializing nothing."""
    from dagster import AssetRecordsFilter

    from result_assets.assets.instance import get_instance
    from result_assets.assets.jobs import MIGRATE_JOB
    from result_assets.cli.archive import archive_tasks
    from result_assets.definitions import build_definitions
    from result_assets.settings import Settings
    from result_assets.store.stores import Stores

    task_id = "grid...42"
    before = read_result(task_id)
    monkeypatch.setenv("RESULT_SOURCE_DIR", str(sample_source))
    monkeypatch.setenv("RESULT_STORAGE_MODE", "postgres-only")
    archive_tasks(Settings.from_env(), tmp_path / "archive", only={task_id})
    assert not (sample_source / task_id / "result.json").exists()
    instance = get_instance(Settings.from_env())
    run = build_definitions().resolve_job_def(MIGRATE_JOB).execute_in_process(
        instance=instance, partition_key=partition_key_for(task_id), raise_on_error=False)
    assert run.success
    [latest] = instance.fetch_materializations(AssetRecordsFilter(
        asset_key=AssetKey("catalog_entry"), asset_partitions=[partition_key_for(task_id)]), limit=1).records
    assert latest.run_id == run.run_id  # republished by this run, not an attempt kept beside
    state = Stores.from_env().catalog.states([task_id])[task_id]
    assert state.status == "migrated" and state.failed_attempt is None
    assert read_result(task_id) == before


def bucket_refuses(monkeypatch, task_id: str, error: str) -> None:
    """The bucket answers every look at one task's backup with an error (throttled, denied)."""
    from result_assets.store.backups import safe_name

    for name in ("_get", "_sha256"):
        def refusing(self, uri, _read=getattr(S3BackupStore, name)):
            if f"/{safe_name(task_id)}/" in uri:
                raise OSError(error)
            return _read(self, uri)

        monkeypatch.setattr(S3BackupStore, name, refusing)


def test_a_re_run_takes_an_archived_tasks_backup_from_the_bucket_once(migrated, sample_source, tmp_path,
                                                                      monkeypatch):
    """The store's version of an archived task was downloaded twice per re-run: whole to check
    its SHA-256, then whole again to copy it for the migration."""
    from result_assets.migration.engine import registered_sources
    from result_assets.store.backups import safe_name
    from result_assets.store.stores import Stores

    task_id = "bt_20250901_14ceeb"
    reads = []
    for name in ("_get", "_sha256"):
        def counted(self, uri, _read=getattr(S3BackupStore, name)):
            if f"/{safe_name(task_id)}/" in uri:
                reads.append(uri)
            return _read(self, uri)

        monkeypatch.setattr(S3BackupStore, name, counted)
    (sample_source / task_id).rename(tmp_path / task_id)  # archived, as in phase 4
    try:
        [file] = registered_sources(Stores.from_env(), [task_id])
    finally:
        (tmp_path / task_id).rename(sample_source / task_id)
    assert file.refused is None and "result-assets-restored-" in file.path
    assert Path(file.path).read_bytes() == (sample_source / task_id / "result.json").read_bytes()
    assert reads == [S3BackupStore.path(Stores.from_env().backups, task_id)]


def test_a_backup_the_bucket_will_not_give_refuses_that_task_alone(migrated, sample_source, tmp_path, monkeypatch):
    """A re-run that must take a task's version from the bucket (its JSON gone) and cannot
    (throttled, access denied) refuses that task alone; it failed the whole batch, every task of
    the step."""
    from result_assets.migration.engine import registered_sources
    from result_assets.migration.sources import BACKUP_UNREADABLE
    from result_assets.store.stores import Stores

    unreachable, reachable = "bt_20250900_600020", "bt_20250901_14ceeb"
    bucket_refuses(monkeypatch, unreachable, "AWS Error SLOW_DOWN: please reduce your request rate")
    for task_id in (unreachable, reachable):  # archived, as in phase 4
        (sample_source / task_id).rename(tmp_path / task_id)
    try:
        files = {f.task_id: f for f in registered_sources(Stores.from_env(), [unreachable, reachable])}
    finally:
        for task_id in (unreachable, reachable):
            (tmp_path / task_id).rename(sample_source / task_id)
    assert files[unreachable].refused.startswith(BACKUP_UNREADABLE) and "SLOW_DOWN" in files[unreachable].refused
    assert files[reachable].refused is None and "result-assets-restored-" in files[reachable].path


def test_a_backup_the_bucket_will_not_give_refuses_its_task_also_beside_an_older_json(migrated, sample_source,
                                                                                     monkeypatch):
    """The JSON is there but older than the store's version (an application saved since): the
    store's version is in the bucket alone. When the bucket will not give it, the task is
    refused (kept beside its published version), not migrated from the older file, whose
    backup write then failed the whole batch on the same error."""
    from result_assets import ResultManager
    from result_assets.migration.batch import read_source
    from result_assets.migration.engine import registered_sources
    from result_assets.migration.sources import BACKUP_UNREADABLE
    from result_assets.store.stores import Stores

    task_id = "bt_20250901_92a477"
    saved = parse_document((sample_source / task_id / "result.json").read_bytes())
    saved["strategy"] = "saved since"
    ResultManager("postgres-only").save_result(task_id, saved)
    bucket_refuses(monkeypatch, task_id, "AWS Error ACCESS_DENIED")
    [file] = registered_sources(Stores.from_env(), [task_id])
    assert file.refused.startswith(BACKUP_UNREADABLE)
    assert read_source(file, 1 << 30).unread  # kept beside the published version, never a quarantine
    assert read_result(task_id)["strategy"] == "saved since"
