"""ResultManager in each mode, success and failure, on a real Postgres, Delta tables and Dagster instance."""
from __future__ import annotations

import asyncio
import os

import psycopg2
import pytest
from dagster import AssetKey, build_sensor_context

from result_assets import ResultManager, ResultStoreError, ResultValidationError
from result_assets.app import ResultNotFound
from result_assets.legacy import compare_documents, parse_document, partition_key_for
from result_assets.migration.status import task_statuses
from result_assets.store.stores import Stores
from result_assets_tests.app.helpers import V1_TASK, V2_TASK, expected_signals, sample_document, small_document

TASK_ASSETS = ("result_backup", "validated_result", "signal_table", "curve_table", "catalog_entry")
INVALID = {"strategy": "sma_cross", "symbols": [{"symbol": "KRW-BTC", "signals": [{"type": "buy"}]}]}


@pytest.fixture(scope="module")
def env(project_home, tmp_path_factory):
    source = tmp_path_factory.mktemp("app_source")
    os.environ["RESULT_SOURCE_DIR"] = str(source)
    yield source
    os.environ.pop("RESULT_SOURCE_DIR", None)
    os.environ.pop("RESULT_STORAGE_MODE", None)


def catalog_row(task_id: str):
    return Stores.from_env().catalog.task(task_id)


def materialized(task_id: str) -> set[str]:
    from result_assets.assets.instance import get_instance

    instance = get_instance()
    key = partition_key_for(task_id)
    return {a for a in TASK_ASSETS if key in instance.get_materialized_partitions(AssetKey(a))}


def run_verdicts() -> dict:
    """{check name: evaluation} of the latest run-level evaluations (no partition)."""
    from dagster import DagsterEventType, EventRecordsFilter

    from result_assets.assets.instance import get_instance

    out = {}
    records = get_instance().get_event_records(EventRecordsFilter(DagsterEventType.ASSET_CHECK_EVALUATION),
                                               limit=5000, ascending=True)
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if evaluation.partition is None:
            out[evaluation.check_name] = evaluation
    return out


def checks_recorded(task_id: str) -> dict[str, bool]:
    """{check name: passed} of the latest per-partition evaluations recorded for the task."""
    from dagster import DagsterEventType, EventRecordsFilter

    from result_assets.assets.instance import get_instance

    instance, key = get_instance(), partition_key_for(task_id)
    out = {}
    records = instance.get_event_records(EventRecordsFilter(DagsterEventType.ASSET_CHECK_EVALUATION), limit=5000)
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if evaluation.partition == key:
            out[evaluation.check_name] = out.get(evaluation.check_name, True) and evaluation.passed
    return out


def test_json_only_writes_the_json_and_nothing_else(env):
    manager = ResultManager("json-only", source_dir=env)
    document = sample_document(V2_TASK)
    outcome = manager.save_result("json_only_task", document)
    path = env / "json_only_task" / "result.json"
    assert outcome.json_path == str(path) and outcome.destinations == ["json"] and not outcome.warnings
    assert compare_documents(document, parse_document(path.read_bytes())) == []
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]  # no temp file left behind
    assert catalog_row("json_only_task") is None
    assert manager.get_result("json_only_task") == parse_document(path.read_bytes())
    with pytest.raises(ResultNotFound):
        manager.get_result("never_written")
    with pytest.raises(ResultValidationError, match="not a safe directory name"):
        manager.save_result("../escape", document)


@pytest.mark.parametrize("mode", ["json-only", "dual-write", "postgres-only"])
def test_a_task_id_that_names_no_directory_is_a_validation_error(env, mode):
    """`%bytes:ff` encodes no valid directory name: the caller's error, as in postgres-only,
    not a bare UnsafeTaskId from the JSON path. The same ids in every mode: postgres-only
    saved `%bytes:%ZZ`, which dual-write (after a switch back) then could not read."""
    manager = ResultManager(mode, source_dir=env, record_in_dagster=False)
    for task_id in ("%bytes:ff", "a\udcff", "%bytes:%ZZ"):
        with pytest.raises(ResultValidationError, match="not a safe directory name"):
            manager.save_result(task_id, small_document())
        if mode != "postgres-only":
            with pytest.raises(ResultValidationError, match="not a safe directory name"):
                manager.get_result(task_id)
    # 86 syllables: 258 bytes as a folder name. postgres-only converted it, then failed its
    # backup with "File name too long" as a ResultStoreError, the store's fault.
    with pytest.raises(ResultValidationError, match="longer than a folder name can be \\(258 bytes; at most 255\\)"):
        manager.save_result("가" * 86, small_document())
    from result_assets.legacy import task_id_for_dir_name

    bytes_id = task_id_for_dir_name(b"\xff" * 90)  # 90 bytes as its JSON's folder, 277 as its backup's
    with pytest.raises(ResultValidationError, match="longer than a folder name can be \\(277 bytes"):
        manager.save_result(bytes_id, small_document())
    if mode == "postgres-only":  # it reads any id it may once have saved; text Postgres can hold
        with pytest.raises(ResultNotFound):
            manager.get_result("%bytes:%ZZ")
        with pytest.raises(ResultValidationError, match="not valid Unicode"):
            manager.get_result("a\udcff")


@pytest.mark.parametrize("mode", ["json-only", "dual-write", "postgres-only"])
def test_keys_that_are_not_strings_are_a_listed_correction_and_never_lost(env, mode, tmp_path):
    """JSON keys are strings: a key 1, None or 2.5 comes back as "1", "null" or "2.5", and the
    outcome says so; two keys that would become one are refused (a reader got one of them
    only, and nothing said so). Nesting too deep to write is a validation error, not a
    RecursionError."""
    # a source dir of its own: the sensor test below scans the module's for files not migrated
    manager = ResultManager(mode, source_dir=tmp_path, record_in_dagster=False)
    document = small_document(strategy=f"keys_{mode}")
    document["params"] = {"n1": 5, 1: "a", None: "b", 2.5: "c"}
    outcome = manager.save_result(f"keys_{mode}", document)
    assert any("params.1, params.null, params.2.5" in c for c in outcome.corrections), outcome.corrections
    assert manager.get_result(f"keys_{mode}")["params"] == {"n1": 5, "1": "a", "null": "b", "2.5": "c"}
    document["params"] = {1: "a", "1": "b"}
    with pytest.raises(ResultValidationError, match="both '1'"):
        manager.save_result(f"keys_{mode}", document)
    nested: dict = {}
    for _ in range(5000):
        nested = {"a": nested}
    document["params"] = nested
    with pytest.raises(ResultValidationError, match="nested too deeply"):
        manager.save_result(f"keys_{mode}", document)
    assert manager.get_result(f"keys_{mode}")["params"]["null"] == "b"  # the refused saves left the last one


def test_dual_write_writes_json_store_and_dagster(env):
    manager = ResultManager("dual-write", source_dir=env)
    document = sample_document(V1_TASK)  # symbols given as strings
    outcome = manager.save_result("dual_task", document)
    assert manager.flush_records()  # Dagster bookkeeping runs after the save returned
    assert outcome.destinations == ["json", "store"] and outcome.stored == "migrated"
    assert outcome.materialized and not outcome.warnings and not outcome.pending
    assert outcome.corrections == ["3 symbol(s) given as strings stored as objects"]
    written = parse_document((env / "dual_task" / "result.json").read_bytes())
    assert all(isinstance(s, dict) for s in written["symbols"])
    assert compare_documents(document, written) == []
    row = catalog_row("dual_task")
    assert row["status"] == "migrated" and row["n_signals"] == expected_signals(V1_TASK)
    assert compare_documents(document, manager.get_result("dual_task")) == []
    assert materialized("dual_task") == set(TASK_ASSETS)
    assert {r["task_id"]: r["status"] for r in task_statuses(Stores.from_env())}["dual_task"] == "migrated"


def test_dual_write_whose_json_cannot_be_written_raises_and_stores_nothing(env):
    """The JSON is written beside the conversion; when it cannot be, the save raises and the
    store is not written (in this phase the JSON is the record)."""
    (env / "dual_blocked").write_text("a file where the task's directory goes")
    with pytest.raises(ResultStoreError, match="cannot write"):
        ResultManager("dual-write", source_dir=env).save_result("dual_blocked", small_document())
    assert catalog_row("dual_blocked") is None


def test_two_dual_write_saves_of_one_task_at_once_leave_the_json_and_the_store_on_one_save(env):
    """A's file was written, then B's; B published, then A: the JSON held B and the store A.
    With the same size and an mtime in the same clock tick no change check could see it (a
    review found 2 in 300 rounds). The file now takes its name under the task's save lock."""
    import hashlib
    import threading

    first, second = ResultManager("dual-write", source_dir=env), ResultManager("dual-write", source_dir=env)
    a, b = small_document(strategy="writer_a", n=4), small_document(strategy="writer_b", n=4)
    b_done = threading.Event()
    take_lock = first.stores.catalog.task_save_lock

    def after_b(task_id):  # A has converted (its file written, or staged); B saves whole first
        assert b_done.wait(30)
        return take_lock(task_id)

    first.stores.catalog.task_save_lock = after_b
    saving_a = threading.Thread(target=first.save_result, args=("dual_at_once", a))
    saving_a.start()
    second.save_result("dual_at_once", b)
    b_done.set()
    saving_a.join(30)
    on_disk = (env / "dual_at_once" / "result.json").read_bytes()
    assert hashlib.sha256(on_disk).hexdigest() == catalog_row("dual_at_once")["source_sha256"]
    assert parse_document(on_disk) == a == ResultManager("postgres-only").get_result("dual_at_once")
    assert not list((env / "dual_at_once").glob(".*.tmp"))  # no staged file left behind


def test_a_dual_write_save_interrupted_waiting_for_its_lock_still_writes_its_json(env, tmp_path):
    """The JSON is the record in this phase, and was written before the lock was asked for: a
    Ctrl-C (or a SIGTERM handler's exit) while waiting for it must not lose it. (A folder of its
    own: the module's sensor test counts what its source folder holds.)"""
    env = tmp_path
    manager = ResultManager("dual-write", source_dir=env, record_in_dagster=False)

    def interrupted(task_id):
        raise KeyboardInterrupt

    manager.stores.catalog.task_save_lock = interrupted
    with pytest.raises(KeyboardInterrupt):
        manager.save_result("dual_interrupted", small_document(strategy="interrupted"))
    folder = env / "dual_interrupted"
    assert parse_document((folder / "result.json").read_bytes()) == small_document(strategy="interrupted")
    assert [p.name for p in folder.iterdir()] == ["result.json"]  # no staged file left


def test_dual_write_invalid_document_is_quarantined_and_returns(env, caplog):
    manager = ResultManager("dual-write", source_dir=env)
    outcome = manager.save_result("dual_invalid", INVALID)
    assert outcome.stored == "quarantined" and outcome.json_path
    assert "no timestamp" in outcome.warnings[0] and "no timestamp" in caplog.text
    row = catalog_row("dual_invalid")
    assert row["status"] == "quarantined" and "no timestamp" in row["reason"]
    assert parse_document((env / "dual_invalid" / "result.json").read_bytes()) == INVALID
    assert manager.get_result("dual_invalid") == INVALID  # not readable from the store: the JSON


def test_dual_write_reads_json_of_a_task_not_migrated_yet(env):
    json_writer = ResultManager("json-only", source_dir=env)
    document = small_document()
    json_writer.save_result("written_before_dual", document)
    assert ResultManager("dual-write", source_dir=env).get_result("written_before_dual") == document


def test_dual_write_get_results_reads_the_store_in_one_pass_and_the_json_where_get_result_does(
        env, monkeypatch, tmp_path):
    # a source dir of its own: the sensor test below scans the module's for files not migrated
    dual, json_only = ResultManager("dual-write", source_dir=tmp_path), ResultManager("json-only", source_dir=tmp_path)
    stored = small_document(strategy="bulk_stored", n=3)
    dual.save_result("bulk_stored", stored)
    json_only.save_result("bulk_json_only", small_document(strategy="bulk_json_only", n=2))  # never migrated
    dual.save_result("bulk_rewritten", small_document(strategy="bulk_old", n=2))
    json_only.save_result("bulk_rewritten", small_document(strategy="bulk_new", n=2))  # newer than the store's
    dual.save_result("bulk_invalid", INVALID)  # quarantined: its JSON
    ids = ["bulk_rewritten", "bulk_missing", "bulk_stored", "bulk_json_only", "bulk_invalid"]
    one_by_one = {t: dual.get_result(t) for t in ids if t != "bulk_missing"}
    assert one_by_one["bulk_stored"] == stored and one_by_one["bulk_rewritten"]["strategy"] == "bulk_new"

    def one_task_at_a_time(*args):
        raise AssertionError("a task read from the store on its own")

    with monkeypatch.context() as patched:
        patched.setattr(ResultManager, "_get", one_task_at_a_time)
        got = dual.get_results(ids)
    assert got == one_by_one and list(got) == list(one_by_one)  # the order asked for, the missing one left out

    def store_fails(*args, **kwargs):
        raise psycopg2.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("result_assets.app.manager.rebuild_documents", store_fails)
    assert dual.get_results(ids) == one_by_one  # the pass failed: each task read as get_result reads it


def test_a_bad_json_file_is_left_out_of_a_read_of_many_not_failing_it(tmp_path, caplog):
    """json-only and dual-write read many tasks' files: one truncated, or not a file, is left
    out with a warning (postgres-only leaves its quarantine out the same way)."""
    json_only = ResultManager("json-only", source_dir=tmp_path)
    good = {t: small_document(strategy=t, n=2) for t in ("bad_neighbour_a", "bad_neighbour_b")}
    for task_id, document in good.items():
        json_only.save_result(task_id, document)
    (tmp_path / "bad_truncated_file").mkdir()
    (tmp_path / "bad_truncated_file" / "result.json").write_bytes(b'{"strategy": "x", "symbols": [')
    (tmp_path / "bad_a_directory" / "result.json").mkdir(parents=True)
    (tmp_path / "bad_link_loop").mkdir()
    os.symlink("result.json", tmp_path / "bad_link_loop" / "result.json")  # ELOOP, as migrate quarantines it
    asked = ["bad_neighbour_b", "bad_truncated_file", "bad_a_directory", "bad_link_loop", "bad_neighbour_a"]
    for mode in ("json-only", "dual-write"):
        got = ResultManager(mode, source_dir=tmp_path).get_results(asked)
        assert got == good and list(got) == ["bad_neighbour_b", "bad_neighbour_a"], mode
    assert all(t in caplog.text for t in ("bad_truncated_file", "bad_a_directory", "bad_link_loop"))


def test_an_error_of_the_share_fails_a_read_of_many_not_leaves_tasks_out(tmp_path, monkeypatch):
    """An I/O error of the share (EIO, ESTALE) is not a bad file: leaving every task out would
    hand the caller an empty dict that looks like nothing was saved."""
    import errno
    from pathlib import Path

    json_only = ResultManager("json-only", source_dir=tmp_path)
    json_only.save_result("share_a", small_document(strategy="share_a", n=2))
    read_bytes = Path.read_bytes

    def share_fails(path):
        if path.name == "result.json":
            raise OSError(errno.EIO, "Input/output error", str(path))
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", share_fails)
    with pytest.raises(ResultStoreError, match="Input/output error"):
        json_only.get_results(["share_a"])


def test_dual_write_store_down_keeps_json_then_sensor_migrates(env, store_down, mode):
    mode("dual-write")
    document = small_document(strategy="while_down", n=5)
    manager = ResultManager.from_env()
    outcome = manager.save_result("written_while_down", document)
    assert outcome.pending and outcome.stored is None and not outcome.materialized
    assert "sensor will migrate it" in outcome.warnings[0]
    assert (env / "written_while_down" / "result.json").exists()
    assert manager.get_result("written_while_down") == document  # store unreachable: from the JSON


def test_sensor_picks_up_what_was_written_while_the_store_was_down(env, mode):
    from result_assets.assets.sensors import new_task_sensor
    from result_assets.definitions import build_definitions
    from result_assets.assets.instance import get_instance

    mode("dual-write")
    assert catalog_row("written_while_down") is None
    instance, defs = get_instance(), build_definitions()
    sensor_resources = {"stores": defs.resources["stores"]}  # what the sensor takes
    result = new_task_sensor(build_sensor_context(instance=instance, definitions=defs, resources=sensor_resources))
    requested = [t for r in result.run_requests for t in r.run_config["ops"]["migrate_task_list"]["config"]["task_ids"]]
    # written while down; written by json-only before dual-write; never the tasks already in the store
    assert set(requested) == {"written_while_down", "written_before_dual", "json_only_task"}
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    for request in result.run_requests:
        run = defs.resolve_job_def(request.job_name).execute_in_process(instance=instance, run_config=request.run_config)
        assert run.success
    assert catalog_row("written_while_down")["status"] == "migrated"
    manager = ResultManager.from_env()
    assert compare_documents(small_document(strategy="while_down", n=5), manager.get_result("written_while_down")) == []
    again = new_task_sensor(build_sensor_context(instance=instance, definitions=defs, resources=sensor_resources))
    assert not getattr(again, "run_requests", None)  # nothing stays behind


def test_dual_write_unwritable_delta_root_keeps_saves_hot_until_a_flush_can_write(env, unwritable_store_root):
    """Saves land in the hot tier, so a Delta root that cannot be written fails the flush, not the save."""
    from result_assets.migration.maintenance import maintain

    manager = ResultManager("dual-write", source_dir=env)
    document = small_document()
    outcome = manager.save_result("delta_down", document)
    assert outcome.stored == "migrated" and not outcome.pending and not outcome.warnings
    with pytest.raises(Exception, match="Not a directory"):
        maintain(Stores.from_env())
    assert Stores.from_env().catalog.tasks(["delta_down"])["delta_down"]["hot_signals"] is not None
    assert compare_documents(document, manager.get_result("delta_down")) == []


def test_dual_write_catalog_down_leaves_the_task_pending(env, store_down):
    manager = ResultManager("dual-write", source_dir=env)
    outcome = manager.save_result("catalog_down", small_document())
    assert outcome.pending and "not written to the store" in outcome.warnings[0]
    assert (env / "catalog_down" / "result.json").exists()


def test_postgres_only_writes_only_the_store(env):
    manager = ResultManager("postgres-only", source_dir=env)
    document = sample_document(V2_TASK)
    outcome = manager.save_result("pg_task", document)
    assert manager.flush_records()
    assert outcome.destinations == ["store"] and outcome.materialized and not outcome.warnings
    assert not (env / "pg_task").exists()
    assert compare_documents(document, manager.get_result("pg_task")) == []
    assert materialized("pg_task") == set(TASK_ASSETS)
    recorded = checks_recorded("pg_task")  # judged like a backfill's partition: its proofs per partition
    assert recorded == {"backup_checksum": True, "lossless_round_trip": True}
    verdicts = run_verdicts()  # and the report run's verdicts over its saves (this module's other saves too)
    assert set(verdicts) == {"row_counts", "compression_goal", "quarantine"}
    for check in ("row_counts", "quarantine"):
        assert verdicts[check].metadata["tasks"].value >= 1
        assert "`pg_task`" not in verdicts[check].metadata["failed_tasks"].value, check
    assert {r["task_id"]: r["status"] for r in task_statuses(Stores.from_env())}["pg_task"] == "migrated"


def test_postgres_only_invalid_document_raises_and_writes_nothing(env):
    manager = ResultManager("postgres-only")
    with pytest.raises(ResultValidationError, match="no timestamp"):
        manager.save_result("pg_invalid", INVALID)
    with pytest.raises(ResultValidationError, match='"strategy" is missing'):
        manager.save_result("pg_invalid", {"symbols": []})
    assert catalog_row("pg_invalid") is None
    assert not Stores.from_env().backups.path("pg_invalid").exists()
    with pytest.raises(ResultNotFound):
        manager.get_result("pg_invalid")


def test_postgres_only_store_down_raises(env, store_down):
    manager = ResultManager("postgres-only")
    with pytest.raises(ResultStoreError, match="was not stored: OperationalError"):
        manager.save_result("pg_down", small_document())
    with pytest.raises(ResultStoreError, match="cannot read"):
        manager.get_result("pg_down")


def test_postgres_only_unwritable_backup_dir_raises_without_a_catalog_row(env, monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    monkeypatch.setenv("RESULT_BACKUP_DIR", str(blocker / "backups"))
    manager = ResultManager("postgres-only")
    with pytest.raises(ResultStoreError, match="was not stored"):
        manager.save_result("pg_backup_down", small_document())
    assert catalog_row("pg_backup_down") is None


def test_postgres_only_catalog_failure_keeps_the_published_rows(env):
    """The catalog write times out on a lock held elsewhere: the transaction that would have
    replaced the hot rows and the catalog row together is rolled back whole."""
    manager = ResultManager("postgres-only")
    old = small_document(strategy="kept", n=3)
    manager.save_result("pg_half", old)
    conn = manager.stores.catalog.connect()
    with conn, conn.cursor() as cur:
        cur.execute("SET lock_timeout = '500ms'")
    blocker = psycopg2.connect(manager.stores.catalog.url)
    try:
        with blocker.cursor() as cur:
            cur.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(ResultStoreError, match="lock timeout"):
                manager.save_result("pg_half", small_document(strategy="lost", n=7))
        blocker.rollback()
    finally:
        blocker.close()
    from result_assets.store import hot_rows
    from result_assets.legacy.schema import SIGNAL_SCHEMA

    row = Stores.from_env().catalog.tasks(["pg_half"])["pg_half"]
    assert hot_rows.decode(row["hot_signals"], SIGNAL_SCHEMA).num_rows == 3  # not the 7 of the failed save
    assert compare_documents(old, manager.get_result("pg_half")) == []


def test_async_save_and_get(env):
    manager = ResultManager("dual-write", source_dir=env)
    documents = {f"async_{i}": small_document(strategy=f"async_{i}", n=i + 1) for i in range(3)}

    async def roundtrip():
        outcomes = await asyncio.gather(*(manager.asave_result(t, d) for t, d in documents.items()))
        return outcomes, await asyncio.gather(*(manager.aget_result(t) for t in documents))

    outcomes, read = asyncio.run(roundtrip())
    assert all(o.stored == "migrated" and not o.warnings for o in outcomes)
    for (task_id, document), back in zip(documents.items(), read):
        assert compare_documents(document, back) == [], task_id


def test_the_seed_platforms_calling_convention(env):
    """ResultManager(storage=..., data_root=..., storage_mode=...) and the MODE_* names, as the seed's backend uses them."""
    assert (ResultManager.MODE_JSON_ONLY, ResultManager.MODE_DUAL_WRITE, ResultManager.MODE_POSTGRES_ONLY) == \
        ("json-only", "dual-write", "postgres-only")
    stores = Stores.from_env()
    manager = ResultManager(storage=stores, data_root=env, storage_mode=ResultManager.MODE_DUAL_WRITE)
    assert manager.mode == ResultManager.MODE_DUAL_WRITE and manager.settings.source_dir == str(env)
    document = small_document(strategy="seed_style", n=3)
    outcome = manager.save_result("seed_style", document)
    assert outcome.destinations == ["json", "store"] and (env / "seed_style" / "result.json").exists()
    assert compare_documents(document, manager.get_result("seed_style")) == []
    by_url = ResultManager(storage=stores.catalog.url, storage_mode=ResultManager.MODE_POSTGRES_ONLY)
    assert by_url.settings.database_url == stores.catalog.url
    assert compare_documents(document, by_url.get_result("seed_style")) == []
    with pytest.raises(ValueError, match="unknown storage mode"):
        ResultManager(storage_mode="sqlite-only", data_root=env)
    with pytest.raises(TypeError, match="database URL or a Stores"):
        ResultManager(storage=42, storage_mode=ResultManager.MODE_POSTGRES_ONLY)


def test_reported_saves_proofs_judge_each_partitions_newest_materialization(env):
    """The save reporter finds what each proof judged with one lookup per asset per batch; a
    task saved twice in the batch is judged against its second save's materialization."""
    from dagster import AssetCheckKey, AssetKey, AssetRecordsFilter

    from result_assets.assets.instance import get_instance

    manager = ResultManager("postgres-only")
    manager.save_result("judged_a", small_document())
    manager.save_result("judged_b", small_document())
    manager.save_result("judged_a", small_document(strategy="again"))
    assert manager.flush_records()
    instance = get_instance()
    keys = [partition_key_for(t) for t in ("judged_a", "judged_b")]
    for asset, check in (("catalog_entry", "lossless_round_trip"), ("result_backup", "backup_checksum")):
        newest = {}
        for r in instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=keys),
                                                 limit=100).records:  # newest first
            newest.setdefault(r.partition_key, r.storage_id)
        infos = {i.partition_key: i for i in instance.event_log_storage.get_asset_check_partition_info(
            [AssetCheckKey(AssetKey(asset), check)]) if i.partition_key in keys}
        assert {k: i.latest_target_materialization_storage_id for k, i in infos.items()} == newest, check
        assert all(i.is_current for i in infos.values()), check


def test_a_save_sweeps_the_staged_file_a_killed_save_of_its_task_left(tmp_path):
    """A SIGKILL between a dual-write save's staged write and its rename left the staged file
    for good. The next write beside it removes such files an hour old, never a younger one (a
    live save of another process)."""
    import os
    import time

    folder = tmp_path / "swept"
    folder.mkdir()
    stale, live = folder / ".result.json.4242.staged-3.tmp", folder / ".result.json.4243.staged-9.tmp"
    for path in (stale, live):
        path.write_bytes(b'{"half": ')
    os.utime(stale, (time.time() - 3700, time.time() - 3700))
    ResultManager("dual-write", source_dir=tmp_path, record_in_dagster=False).save_result("swept", small_document())
    assert sorted(p.name for p in folder.iterdir()) == sorted([live.name, "result.json"])
