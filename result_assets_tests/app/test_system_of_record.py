"""The store as the platform's system of record: no DDL at run time, first uses, saves,
reporting and maintenance at once never deadlock, a failed attempt never hides the last
good version, scans show only published rows, maintenance never breaks an in-flight batch."""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from multiprocessing import get_context

import psycopg2
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from result_assets import ResultManager, ResultStore, read_result
from result_assets.app.errors import ResultStoreError
from result_assets.cli import main
from result_assets.legacy import compare_documents, dumps_document, parse_document
from result_assets.migration import engine, verify
from result_assets.migration.batch import RawResult
from result_assets.migration.maintenance import maintain
from result_assets.migration.plan import make_plan
from result_assets.migration.sources import LegacyFile, scan_source_dir
from result_assets.migration.status import task_statuses
from result_assets.store import catalog as catalog_module
from result_assets.store.backups import BackupStore, sha256_hex
from result_assets.store.catalog import STORE_WRITE_LOCK
from result_assets.store.delta_tables import SIGNALS
from result_assets.store.pg_text import pg_text
from result_assets.store.schema import SCHEMA_VERSION, SchemaOutdated
from result_assets.store.stores import Stores
from result_assets_tests.app.helpers import small_document

VICTIM = "bt_20250901_14ceeb"


@pytest.fixture(scope="module")
def stores(project_home):
    return Stores.from_env()


def run_threads(*targets) -> list[str]:
    """Run each target in a thread; an exception in any of them is returned, never lost."""
    errors: list[str] = []

    def guarded(fn):
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=guarded, args=(fn,)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread never finished"
    return errors


# --- no schema changes at run time -------------------------------------------------------------

DDL_LOG = """
CREATE TABLE IF NOT EXISTS test_ddl_log (tag text, object text);
CREATE OR REPLACE FUNCTION test_log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
    IF r.schema_name IS NULL OR r.schema_name NOT LIKE 'pg_temp%' THEN
      INSERT INTO test_ddl_log VALUES (r.command_tag, r.object_identity);
    END IF;
  END LOOP;
END $$;
DROP EVENT TRIGGER IF EXISTS test_ddl_trigger;
CREATE EVENT TRIGGER test_ddl_trigger ON ddl_command_end EXECUTE FUNCTION test_log_ddl();
"""


def sql(url: str, statement: str, fetch: bool = False):
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall() if fetch else None
    finally:
        conn.close()


def test_saves_reads_reporting_and_maintenance_run_no_ddl(stores):
    """Every DDL statement on the catalog (temporary tables aside) is logged by an event
    trigger: none may come from the application's or the code location's daily work."""
    url = stores.catalog.url
    sql(url, DDL_LOG)
    try:
        manager = ResultManager("postgres-only")
        for i in range(3):
            manager.save_result(f"ddl_{i}", small_document(strategy=f"ddl{i}", n=3 + i))
        assert manager.get_result("ddl_1")["strategy"] == "ddl1"
        assert manager.flush_records()
        store = ResultStore.from_env()
        assert store.signals(task_ids=["ddl_0", "ddl_2"]).num_rows == 3 + 5
        store.close()
        maintain(Stores.from_env(), retention_hours=0)
        Stores.from_env().catalog.states()  # a new process's first use
        assert sql(url, "SELECT tag, object FROM test_ddl_log", fetch=True) == []
    finally:
        sql(url, "DROP EVENT TRIGGER IF EXISTS test_ddl_trigger; DROP TABLE IF EXISTS test_ddl_log")


# --- concurrent first uses, saves, reporting and maintenance -----------------------------------

def _saver(worker: int, saves: int) -> list[str]:
    errors = []
    manager = ResultManager("postgres-only")  # a new process's first use of the store
    for i in range(saves):
        task_id = f"conc_{worker}_{i % 8}"  # some tasks saved again
        document = small_document(strategy=f"w{worker}_{i}", n=1 + i % 5)
        try:
            manager.save_result(task_id, document)
            if compare_documents(document, manager.get_result(task_id)):
                errors.append(f"{task_id}: read back other than saved")
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the test
            errors.append(f"{task_id}: {type(exc).__name__}: {exc}")
    return errors


def _background(kind: str, seconds: float) -> list[str]:
    """A code-location process: a sensor tick plus the report run it asks for, or maintenance,
    in a loop, each with a first use of the store."""
    from dagster import build_sensor_context

    from result_assets.assets.resources import StoresResource
    from result_assets.assets.saves import saved_results_sensor
    from result_assets.migration.maintenance import MaintenanceBusy

    errors, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if kind == "report":
                saved_results_sensor(build_sensor_context(resources={"stores": StoresResource()}))
                ResultManager("postgres-only").flush_records()
            else:
                fresh = Stores.from_env()
                maintain(fresh, retention_hours=0)
                fresh.catalog.close()
        except MaintenanceBusy:
            pass
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{kind}: {type(exc).__name__}: {exc}")
    return errors


def test_first_uses_saves_reporting_and_maintenance_at_once_never_fail(stores):
    context = get_context("spawn")  # separate processes, as the platform runs them
    with context.Pool(5) as pool:
        savers = [pool.apply_async(_saver, (w, 24)) for w in range(3)]
        background = [pool.apply_async(_background, (kind, 25.0)) for kind in ("report", "maintain")]
        errors = [e for r in savers + background for e in r.get(timeout=600)]
    assert errors == [], "\n".join(errors[:3])
    manager = ResultManager("postgres-only", record_in_dagster=False)
    got = manager.get_results([f"conc_{w}_{i}" for w in range(3) for i in range(8)])
    assert len(got) == 24
    assert ResultManager("postgres-only").flush_records()
    assert stores.catalog.queued_records(10) == []  # every save reported


def test_the_saves_sensor_asks_for_a_report_and_writes_nothing(stores):
    from dagster import RunRequest, SkipReason, build_sensor_context

    from result_assets.assets.resources import StoresResource
    from result_assets.assets.saves import saved_results_sensor

    manager = ResultManager("postgres-only")
    outcome = manager.save_result("sensed", small_document(n=2))
    assert not outcome.materialized  # saving never waits on Dagster
    newest = stores.catalog.newest_record_id()
    tick = saved_results_sensor(build_sensor_context(resources={"stores": StoresResource()}))
    assert [r.run_key for r in tick.run_requests] == [f"saves-{newest}"] and tick.cursor == str(newest)
    assert isinstance(tick.run_requests[0], RunRequest)
    assert stores.catalog.newest_record_id() == newest  # the tick wrote nothing
    from result_assets.assets.instance import get_instance

    again = saved_results_sensor(build_sensor_context(instance=get_instance(), cursor=str(newest),
                                                      resources={"stores": StoresResource()}))
    assert isinstance(again, SkipReason)
    assert manager.flush_records() and outcome.materialized


def test_the_saves_sensor_asks_again_when_a_report_run_failed(stores, monkeypatch):
    """The saves of a report run that failed stay queued; the sensor used to skip them until
    another save came (its cursor already named them)."""
    from dagster import SkipReason, build_sensor_context

    from result_assets.assets import saves
    from result_assets.assets.resources import StoresResource
    from result_assets.assets.saves import REPORT_RETRIES, report_saves_job, saved_results_sensor
    from result_assets.assets.instance import get_instance

    def unreachable_event_log(*args, **kwargs):
        raise ConnectionError("the instance's event log is unreachable")
        yield  # a generator, as the real one

    def tick(cursor=None):
        return saved_results_sensor(build_sensor_context(instance=instance, cursor=cursor,
                                                         resources={"stores": StoresResource()}))

    def launch(run_key: str, fails: bool) -> None:  # as the daemon launches the requested run
        with monkeypatch.context() as patch:
            if fails:
                patch.setattr(saves, "queued_save_events", unreachable_event_log)
            report_saves_job.execute_in_process(instance=instance, tags={"dagster/run_key": run_key},
                                                resources={"stores": StoresResource()}, raise_on_error=False)

    instance = get_instance()
    ResultManager("postgres-only").save_result("report_failed", small_document(n=2))
    newest = stores.catalog.newest_record_id()
    first = tick()
    assert [r.run_key for r in first.run_requests] == [f"saves-{newest}"]
    assert isinstance(tick(first.cursor), SkipReason)  # asked for, not launched yet
    launch(f"saves-{newest}", fails=True)
    retry = tick(first.cursor)
    assert [r.run_key for r in retry.run_requests] == [f"saves-{newest}-1"]
    cursor = retry.cursor
    for attempt in range(1, REPORT_RETRIES):
        launch(f"saves-{newest}-{attempt}", fails=True)
        cursor = tick(cursor).cursor
    launch(f"saves-{newest}-{REPORT_RETRIES}", fails=True)
    assert "failed 4 times" in tick(cursor).skip_message
    launch("by hand", fails=False)
    assert stores.catalog.newest_record_id() is None and isinstance(tick(cursor), SkipReason)


def test_the_saves_sensor_never_repeats_a_run_key_once_the_record_ids_went_back(stores):
    """A catalog made anew, or restored from a backup, numbers its save records from where it
    stands: the run key `saves-<id>` of a new save was one Dagster had seen, so the request was
    skipped, and the saves went unreported until their ids passed the old ones."""
    from dagster import build_sensor_context

    from result_assets.assets.resources import StoresResource
    from result_assets.assets.saves import saved_results_sensor

    ResultManager("postgres-only").save_result("ids_went_back", small_document(n=2))
    newest = stores.catalog.newest_record_id()

    def tick(cursor):
        return saved_results_sensor(build_sensor_context(cursor=cursor, resources={"stores": StoresResource()}))

    restored = tick(str(newest + 1000))  # the sensor had asked for ids the catalog no longer has
    assert [r.run_key for r in restored.run_requests] == [f"saves-{newest}@1"] and restored.cursor == f"{newest}@1"
    ResultManager("postgres-only").save_result("ids_went_back", small_document(n=3))
    later = tick(restored.cursor)
    assert [r.run_key for r in later.run_requests] == [f"saves-{newest + 1}@1"] and later.cursor == f"{newest + 1}@1"
    again = tick(f"{newest + 1000}@1")  # and once more: a generation of its own
    assert [r.run_key for r in again.run_requests] == [f"saves-{newest + 1}@2"]
    assert ResultManager("postgres-only").flush_records()


# --- a failed attempt never hides the last good version ----------------------------------------

def corrupt_victim(monkeypatch):
    """One price of VICTIM changed after its conversion was proven, before the Delta commit."""
    proven_rows = engine.signal_rows

    def corrupted(validated):
        rows = proven_rows(validated)
        table = rows.table
        mask = pc.equal(table.column("task_id").combine_chunks(), VICTIM)
        bumped = pc.if_else(mask, pc.add(table.column("price").combine_chunks(), pa.scalar(1.0)),
                            table.column("price").combine_chunks()).cast(pa.float64())
        rows.table = table.set_column(table.schema.get_field_index("price"), "price", bumped)
        return rows

    monkeypatch.setattr(engine, "signal_rows", corrupted)


def test_a_failed_re_migration_keeps_the_last_good_version(stores, sample_source, monkeypatch):
    files = [f for f in scan_source_dir(sample_source).tasks if f.task_id == VICTIM]
    engine.run_batch(stores, files)
    source = parse_document((sample_source / VICTIM / "result.json").read_bytes())
    assert compare_documents(source, read_result(VICTIM)) == []

    corrupt_victim(monkeypatch)
    batch = engine.run_batch(stores, files)  # a forced re-migration whose proof fails
    monkeypatch.undo()
    check = next(o for o in batch.checks if o.check == "lossless_round_trip")
    assert not check.passed and "differ from those proven" in check.description
    assert stores.catalog.task(VICTIM)["status"] == "migrated"
    assert compare_documents(source, read_result(VICTIM)) == []  # the last good version, still readable
    scanned = ResultStore.from_env().signals(task_ids=[VICTIM])
    assert scanned.num_rows == stores.catalog.task(VICTIM)["n_signals"]

    status = {r["task_id"]: r for r in task_statuses(stores)}[VICTIM]
    assert status["status"] == "migrated" and "differ from those proven" in status["failed_attempt"]
    assert VICTIM in dict(stores.catalog.failed())
    assert make_plan(files, stores.catalog.states([VICTIM]), force=False).to_migrate == files  # retried

    engine.run_batch(stores, files)  # the fault is gone: the retry publishes, the failure is cleared
    assert stores.catalog.failed_attempts([VICTIM]) == {}
    assert make_plan(files, stores.catalog.states([VICTIM]), force=False).to_migrate == []


def test_a_rollback_is_proven_and_published_like_any_write(stores, sample_source, monkeypatch):
    """Rollback publishes through the batch engine: rows that do not read back as proven are
    not published, and the current version stays readable; without the fault it goes through."""
    from result_assets.migration.rollback import RollbackError, rollback_task

    path = sample_source / VICTIM / "result.json"
    original = path.read_bytes()
    source, edited = parse_document(original), parse_document(original)
    edited["strategy"] = "edited"
    engine.run_batch(stores, [f for f in scan_source_dir(sample_source).tasks if f.task_id == VICTIM])
    try:  # a forced re-migration of an edit: the first version is in history
        path.write_text(json.dumps(edited))
        engine.run_batch(stores, [f for f in scan_source_dir(sample_source).tasks if f.task_id == VICTIM])
    finally:
        path.write_bytes(original)
    version = stores.catalog.task(VICTIM)["version"]

    corrupt_victim(monkeypatch)
    with pytest.raises(RollbackError, match="differ from those proven"):
        rollback_task(stores, VICTIM)
    monkeypatch.undo()
    assert stores.catalog.task(VICTIM)["status"] == "migrated"
    assert compare_documents(edited, read_result(VICTIM)) == []  # the current version, still readable

    rolled = rollback_task(stores, VICTIM)
    assert rolled.status == "migrated" and stores.catalog.task(VICTIM)["version"] > version
    assert compare_documents(source, read_result(VICTIM)) == []
    assert stores.catalog.failed_attempts([VICTIM]) == {}


def test_a_save_that_does_not_read_back_keeps_the_last_good_save(stores, monkeypatch):
    manager = ResultManager("postgres-only", record_in_dagster=False)
    good = small_document(strategy="good", n=4)
    manager.save_result("keep_last_good", good)
    real = catalog_module._unfaithful

    def spoiled(cur, tasks, hot):
        found = real(cur, tasks, hot)
        return {**found, **{t.task_id: "the hot tier gives back different rows than were written"
                            for t in tasks if t.task_id == "keep_last_good"}}

    monkeypatch.setattr(catalog_module, "_unfaithful", spoiled)
    with pytest.raises(ResultStoreError, match="not published"):
        manager.save_result("keep_last_good", small_document(strategy="bad", n=9))
    monkeypatch.undo()
    assert compare_documents(good, manager.get_result("keep_last_good")) == []
    assert "different rows" in stores.catalog.failed_attempts(["keep_last_good"])["keep_last_good"]
    manager.save_result("keep_last_good", small_document(strategy="again", n=2))
    assert manager.get_result("keep_last_good")["strategy"] == "again"
    assert stores.catalog.failed_attempts(["keep_last_good"]) == {}


def test_a_saves_transaction_touches_no_temporary_table(stores):
    """A transaction that touches a temporary table truncates every ON COMMIT DELETE ROWS table
    of its session at commit (about a millisecond of a save's commit): the publish sends its
    rows as JSON parameters instead of staging them, so its session has none."""
    manager = ResultManager("postgres-only", record_in_dagster=True)
    try:
        manager.save_result("no_staging", small_document(strategy="first", n=3))
        manager.save_result("no_staging", small_document(strategy="second", n=5))
        assert manager.get_result("no_staging")["strategy"] == "second"
        connection = manager.stores.catalog.connect()
        with connection, connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()")
            assert cur.fetchone()[0] == 0
    finally:
        manager.close()


def _newest_record_checks(stores, task_id: str) -> dict[str, bool]:
    """{check id: passed} of the task's newest save record queued for Dagster."""
    records = [r for r in stores.catalog.queued_records(10_000) if r["task_id"] == task_id]
    return {c["check"]: c["passed"] for c in records[-1]["checks"] or []}


def test_a_saves_record_is_queued_with_its_checks_and_a_demoted_one_with_its_failure(stores, monkeypatch):
    """The save record carries its checks from its publishing transaction (no second one); a
    save the publish demotes is queued with checks that say so, never the ones judged before."""
    manager = ResultManager("postgres-only", record_in_dagster=True)

    def no_second_transaction(*args, **kwargs):
        raise AssertionError("a published save's checks were written in a transaction of their own")

    monkeypatch.setattr(catalog_module.Catalog, "attach_checks", no_second_transaction)
    manager.save_result("record_checks", small_document(strategy="good", n=4))
    checks = _newest_record_checks(stores, "record_checks")
    assert checks[verify.LOSSLESS_ROUND_TRIP] is True and checks[verify.BACKUP_CHECKSUM] is True
    monkeypatch.undo()

    real = catalog_module._unfaithful

    def spoiled(cur, tasks, hot):
        return {**real(cur, tasks, hot), **{t.task_id: "the hot tier gives back different rows than were written"
                                           for t in tasks if t.task_id == "record_checks"}}

    held, attach = [], catalog_module.Catalog.attach_checks
    monkeypatch.setattr(catalog_module, "_unfaithful", spoiled)
    monkeypatch.setattr(catalog_module.Catalog, "attach_checks", lambda *args: held.append(args))
    with pytest.raises(ResultStoreError, match="not published"):
        manager.save_result("record_checks", small_document(strategy="bad", n=9))
    monkeypatch.undo()
    # what a reporter finds between the publish and the checks judged after it: no verdict yet
    assert verify.LOSSLESS_ROUND_TRIP not in _newest_record_checks(stores, "record_checks")
    for args in held:
        attach(*args)
    assert _newest_record_checks(stores, "record_checks")[verify.LOSSLESS_ROUND_TRIP] is False
    manager.close()


def test_a_save_that_was_not_published_is_reported_without_materializations(stores, monkeypatch):
    """A save the publish turned away is reported to Dagster as a backfill reports a task that
    was not published: a failed check on the partition's latest materialization (the save
    readers still get), no materialization of its own; its record says `failed`. Before, its
    five materializations said `migrated`, with the rejected save's figures."""
    from dagster import AssetCheckKey, AssetKey, AssetRecordsFilter

    from result_assets.assets.instance import get_instance
    from result_assets.legacy import partition_key_for

    task, key = "reported_unpublished", partition_key_for("reported_unpublished")
    manager = ResultManager("postgres-only", record_in_dagster=True)
    manager.save_result(task, small_document(strategy="good", n=3))
    assert manager.flush_records()
    instance = get_instance()

    def latest(asset: str):
        return instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[key]),
                                               limit=1).records[0]

    good = {asset: latest(asset).storage_id for asset in ("validated_result", "catalog_entry")}
    real = catalog_module._unfaithful

    def spoiled(cur, tasks, hot):
        return {**real(cur, tasks, hot), **{t.task_id: "the hot tier gives back different rows than were written"
                                           for t in tasks if t.task_id == task}}

    monkeypatch.setattr(catalog_module, "_unfaithful", spoiled)
    with pytest.raises(ResultStoreError, match="not published"):
        manager.save_result(task, small_document(strategy="bad", n=9))
    monkeypatch.undo()
    [record] = [r for r in stores.catalog.queued_records(10_000) if r["task_id"] == task]
    assert record["metadata"]["status"] == "failed" and "different rows" in record["metadata"]["reason"]
    assert manager.flush_records()
    assert {asset: latest(asset).storage_id for asset in good} == good
    [check] = instance.event_log_storage.get_asset_check_partition_info(
        [AssetCheckKey(AssetKey("catalog_entry"), "lossless_round_trip")], partition_keys=[key])
    assert (check.latest_execution_status.value, check.is_current) == ("FAILED", True)
    assert check.latest_target_materialization_storage_id == good["catalog_entry"]
    manager.close()


def test_hot_rows_the_server_stores_otherwise_are_caught_and_the_last_good_save_kept(stores):
    """The publish reads each save's hot rows back before it commits: rows that Postgres stores
    otherwise than sent (here a trigger appends a byte) fail the save, and the last good one
    stays readable."""
    manager = ResultManager("postgres-only", record_in_dagster=False)
    good = small_document(strategy="good", n=3)
    manager.save_result("hot_spoiled", good)
    conn = stores.catalog.connect()
    with conn, conn.cursor() as cur:
        cur.execute("CREATE FUNCTION spoil_hot_rows() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "IF NEW.task_id = 'hot_spoiled' THEN NEW.signals := NEW.signals || '\\x00'::bytea; END IF; "
                    "RETURN NEW; END $$;"
                    "CREATE TRIGGER spoil_hot_rows BEFORE INSERT ON hot_rows FOR EACH ROW EXECUTE FUNCTION spoil_hot_rows()")
    try:
        with pytest.raises(ResultStoreError, match="different rows"):
            manager.save_result("hot_spoiled", small_document(strategy="spoiled", n=5))
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("DROP TRIGGER spoil_hot_rows ON hot_rows; DROP FUNCTION spoil_hot_rows()")
    assert compare_documents(good, manager.get_result("hot_spoiled")) == []
    manager.close()


def test_a_failed_save_leaves_the_published_bytes_as_the_tasks_backup(stores, monkeypatch):
    """A save backs its bytes up before it publishes. When it then fails, they must not stay the
    task's current backup, which is its registered source: `status` called the task stale, and
    a rematerialization of its partition published the save the application was told failed."""
    manager = ResultManager("postgres-only", record_in_dagster=False)
    manager.save_result("failed_save_backup", small_document(strategy="published", n=3))

    def unreachable(*args, **kwargs):
        raise psycopg2.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(catalog_module.Catalog, "upsert", unreachable)
    with pytest.raises(ResultStoreError, match="not stored"):
        manager.save_result("failed_save_backup", small_document(strategy="rejected", n=7))
    monkeypatch.undo()
    published = stores.catalog.task("failed_save_backup")["source_sha256"]
    assert sha256_hex(stores.backups.read("failed_save_backup")) == published
    assert {r["task_id"]: r["status"] for r in task_statuses(stores)}["failed_save_backup"] == "migrated"
    engine.run_batch(stores, engine.registered_sources(stores, ["failed_save_backup"]))  # a rematerialization
    assert manager.get_result("failed_save_backup")["strategy"] == "published"


def test_two_saves_of_one_task_leave_as_its_backup_what_the_catalog_publishes(stores, monkeypatch):
    """A save backs up, then publishes. Two saves of one task could back up in one order and
    publish in the other: the catalog named one, the task's backup (its registered source) held
    the other. One save of a task at a time (across processes: an advisory lock)."""
    first, second = (ResultManager("postgres-only", record_in_dagster=False) for _ in range(2))
    first.save_result("save_order", small_document(strategy="zero"))
    second_done, real = threading.Event(), catalog_module.Catalog.upsert

    def held_up(self, *args, **kwargs):
        if threading.current_thread().name == "first":  # backed up, about to publish
            second_done.wait(3)  # the second save runs meanwhile, unless it waits for this one
        return real(self, *args, **kwargs)

    def save_second():
        time.sleep(0.5)  # once the first has backed up
        second.save_result("save_order", small_document(strategy="second", n=5))
        second_done.set()

    monkeypatch.setattr(catalog_module.Catalog, "upsert", held_up)
    threads = [threading.Thread(target=first.save_result, args=("save_order", small_document(strategy="first")),
                                name="first"), threading.Thread(target=save_second, name="second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    monkeypatch.undo()
    published = stores.catalog.task("save_order")["source_sha256"]
    assert sha256_hex(stores.backups.read("save_order")) == published
    assert first.get_result("save_order")["strategy"] == "second"  # the last to save is the last published


@pytest.mark.parametrize("record_in_dagster", [False, True], ids=["checks after the publish", "checks before it"])
def test_a_save_publishes_only_after_its_backup_written_beside_its_read_back(stores, monkeypatch, record_in_dagster):
    """A save writes its backup on a thread of its own while its rows are read back (a wait on
    the disk beside CPU); its checks (which read the backup: backup_checksum) and its
    publication still come after the backup is whole. A save queued for Dagster judges its
    checks before it publishes, to queue them in the same transaction; one that is not, after."""
    task_id = f"backed_up_first_{record_in_dagster}"
    manager = ResultManager("postgres-only", record_in_dagster=record_in_dagster)
    document = small_document(strategy="backed_up_first", n=4)
    real_save, real_upsert, real_judge = BackupStore.save, catalog_module.Catalog.upsert, engine.judge
    writers, seen_at_publish, seen_by_checks = [], [], []

    def slow_save(self, task_id, raw, *args, **kwargs):
        writers.append(threading.current_thread())
        time.sleep(0.3)  # a slow disk: the read-back finishes first
        return real_save(self, task_id, raw, *args, **kwargs)

    def upsert(self, *args, **kwargs):
        seen_at_publish.append(sha256_hex(stores.backups.read(task_id)))
        return real_upsert(self, *args, **kwargs)

    def judge(*args, **kwargs):
        seen_by_checks.append(sha256_hex(stores.backups.read(task_id)))
        return real_judge(*args, **kwargs)

    monkeypatch.setattr(BackupStore, "save", slow_save)
    monkeypatch.setattr(catalog_module.Catalog, "upsert", upsert)
    monkeypatch.setattr(engine, "judge", judge)
    manager.save_result(task_id, document)
    monkeypatch.undo()
    published = stores.catalog.task(task_id)["source_sha256"]
    assert writers and threading.current_thread() not in writers
    assert seen_at_publish == [published]
    assert seen_by_checks == [published]
    assert compare_documents(document, manager.get_result(task_id)) == []
    manager.close()


def test_a_save_whose_backup_fails_on_its_thread_is_not_published(stores, monkeypatch):
    """The backup written beside the read-back fails (a full disk): the save fails with that
    error, nothing of it is published, and the version published before stays, its backup whole."""
    manager = ResultManager("postgres-only", record_in_dagster=False)
    manager.save_result("backup_fails", small_document(strategy="published", n=3))
    real_save, caller = BackupStore.save, threading.current_thread()

    def full_disk(self, *args, **kwargs):
        if threading.current_thread() is caller:  # putting the published version's bytes back
            return real_save(self, *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(BackupStore, "save", full_disk)
    with pytest.raises(ResultStoreError, match="No space left on device"):
        manager.save_result("backup_fails", small_document(strategy="rejected", n=7))
    monkeypatch.undo()
    published = stores.catalog.task("backup_fails")["source_sha256"]
    assert sha256_hex(stores.backups.read("backup_fails")) == published
    assert manager.get_result("backup_fails")["strategy"] == "published"
    manager.close()


def test_recording_unchanged_files_mtimes_never_fails_on_a_deadlock(stores):
    """touch_mtime (migrate and the sensor record the mtime of a file found unchanged) against
    another transaction that holds one of its rows and then asks for another: it locked its rows
    in the order its UPDATE found them, and failed as the deadlock's victim. It now locks them in
    task_id order, as every writer of task rows does, and is run again when chosen as a victim."""
    manager = ResultManager("postgres-only", record_in_dagster=False)
    for task_id in ("mtime_a", "mtime_b"):
        manager.save_result(task_id, small_document(strategy=task_id, n=2))
    manager.close()
    other = psycopg2.connect(stores.catalog.url)
    errors = []
    try:
        with other.cursor() as cur:  # another writer, holding mtime_b's row
            cur.execute("SELECT 1 FROM tasks WHERE task_id = 'mtime_b' FOR UPDATE")

        def touch():
            try:
                Stores.from_env().catalog.touch_mtime({"mtime_a": 111, "mtime_b": 222})
            except Exception as exc:  # noqa: BLE001 - the assertion below names it
                errors.append(exc)

        toucher = threading.Thread(target=touch)
        toucher.start()
        time.sleep(0.5)  # touch_mtime holds mtime_a and waits for mtime_b
        with other.cursor() as cur:  # the other writer now asks for mtime_a: a deadlock
            try:
                cur.execute("UPDATE tasks SET source_mtime_ns = 5 WHERE task_id = 'mtime_a'")
                other.commit()
            except psycopg2.errors.DeadlockDetected:
                other.rollback()
        toucher.join(timeout=30)
    finally:
        other.close()
    assert not toucher.is_alive() and errors == []
    rows = {t: stores.catalog.task(t)["source_mtime_ns"] for t in ("mtime_a", "mtime_b")}
    assert rows == {"mtime_a": 111, "mtime_b": 222}


def test_a_save_backs_up_in_line_when_no_thread_can_start(stores, monkeypatch):
    """At interpreter shutdown (a save from an atexit handler) Thread.start raises RuntimeError:
    the save writes its backup on the caller's thread, as it did before the thread, and succeeds."""
    manager = ResultManager("postgres-only", record_in_dagster=False)
    real_save, writers = BackupStore.save, []

    def no_threads(self):
        raise RuntimeError("can't create new thread at interpreter shutdown")

    def recording_save(self, *args, **kwargs):
        writers.append(threading.current_thread())
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(threading.Thread, "start", no_threads)
    monkeypatch.setattr(BackupStore, "save", recording_save)
    outcome = manager.save_result("no_threads", small_document(strategy="in_line", n=3))
    monkeypatch.undo()
    assert outcome.stored == "migrated"
    assert writers == [threading.current_thread()]
    assert sha256_hex(stores.backups.read("no_threads")) == stores.catalog.task("no_threads")["source_sha256"]
    manager.close()


def test_a_backup_that_fails_beside_another_failure_is_logged(stores, monkeypatch, caplog):
    """The read-back fails first, and the backup on its thread fails too: the caller hears of
    the first, and the second is in the log, not lost (a full disk may be behind both)."""
    manager = ResultManager("postgres-only", record_in_dagster=False)
    caller = threading.current_thread()
    real_save = BackupStore.save

    def full_disk(self, *args, **kwargs):
        if threading.current_thread() is caller:
            return real_save(self, *args, **kwargs)
        time.sleep(0.2)  # still writing when the read-back fails
        raise OSError(28, "No space left on device")

    def broken_encode(table):
        raise pa.ArrowInvalid("no room to encode the rows")

    monkeypatch.setattr(BackupStore, "save", full_disk)
    monkeypatch.setattr(engine.hot_rows, "encode", broken_encode)
    with caplog.at_level(logging.WARNING, logger=engine.__name__):
        with pytest.raises(ResultStoreError, match="no room to encode"):
            manager.save_result("both_fail", small_document(strategy="rejected", n=2))
    monkeypatch.undo()
    assert any("both_fail" in r.getMessage() and "No space left on device" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    manager.close()


def test_a_save_that_fails_returns_only_once_its_backup_is_written(stores, monkeypatch):
    """Its read-back fails while the backup is still being written: the caller hears of the
    failure only after that write ended, so that putting back the published version's bytes
    (engine.keep_published_backup) never races a write still under way."""
    manager = ResultManager("postgres-only", record_in_dagster=False)
    manager.save_result("failed_while_backing_up", small_document(strategy="published", n=3))
    real_save, written = BackupStore.save, threading.Event()
    caller = threading.current_thread()

    def slow_save(self, *args, **kwargs):
        if threading.current_thread() is caller:  # putting the published bytes back
            return real_save(self, *args, **kwargs)
        time.sleep(0.5)  # the save's own backup, on its thread
        try:
            return real_save(self, *args, **kwargs)
        finally:
            written.set()

    def broken_encode(table):
        raise pa.ArrowInvalid("no room to encode the rows")

    monkeypatch.setattr(BackupStore, "save", slow_save)
    monkeypatch.setattr(engine.hot_rows, "encode", broken_encode)
    with pytest.raises(ResultStoreError, match="no room to encode"):
        manager.save_result("failed_while_backing_up", small_document(strategy="rejected", n=7))
    assert written.is_set()
    monkeypatch.undo()
    published = stores.catalog.task("failed_while_backing_up")["source_sha256"]
    assert sha256_hex(stores.backups.read("failed_while_backing_up")) == published
    assert manager.get_result("failed_while_backing_up")["strategy"] == "published"
    manager.close()


def test_a_metric_past_float64s_range_is_kept_in_the_document_not_the_catalogs_column(stores, tmp_path):
    """float(10**400) overflows: it failed the whole batch (and a postgres-only save with a
    store error) when the catalog's summary column took the metric."""
    manager = ResultManager("postgres-only", record_in_dagster=False)
    huge = small_document(strategy="huge")
    huge["summary"] = {**huge["summary"], "num_trades": 10 ** 400}
    manager.save_result("huge_metric", huge)
    assert manager.get_result("huge_metric")["summary"]["num_trades"] == 10 ** 400
    assert stores.catalog.task("huge_metric")["num_trades"] is None
    for task_id, document in (("huge_metric_file", huge), ("its_batch_mate", small_document(strategy="mate"))):
        (tmp_path / task_id).mkdir()
        (tmp_path / task_id / "result.json").write_text(dumps_document(document))
    batch = engine.run_batch(stores, scan_source_dir(tmp_path).tasks)
    assert [v.status for v in batch.validated] == ["migrated", "migrated"]
    assert read_result("huge_metric_file")["summary"]["num_trades"] == 10 ** 400


def test_a_dual_write_save_records_the_file_it_wrote_not_a_later_writers(stores, tmp_path, monkeypatch):
    """Another save may replace the JSON between this save's rename and its catalog write; the
    catalog must pair this save's SHA-256 with its own file's size and mtime, so that the
    replaced file shows as stale (a change check trusts size and mtime when they match)."""
    from result_assets.app import manager as manager_module

    real = manager_module.StagedFile.put

    def replaced_meanwhile(staged):  # by a writer that takes no save lock (an instance in json-only)
        written = real(staged)
        other = staged.path.read_bytes().replace(b'"mine"', b'"your"')  # the same size, other bytes
        theirs = staged.path.with_name("their_writer.tmp")  # not write_atomic: it puts by this method too
        theirs.write_bytes(other)
        os.replace(theirs, staged.path)
        os.utime(staged.path, ns=(written.st_mtime_ns + 10 ** 9, written.st_mtime_ns + 10 ** 9))
        return written

    manager = ResultManager("dual-write", source_dir=tmp_path, record_in_dagster=False)
    monkeypatch.setattr(manager_module.StagedFile, "put", replaced_meanwhile)
    manager.save_result("dual_race", small_document(strategy="mine"))
    monkeypatch.undo()
    assert {r["task_id"]: r["status"] for r in task_statuses(stores)}["dual_race"] == "stale"


def test_a_batch_whose_catalog_read_back_fails_for_one_task_publishes_the_others_once(stores, monkeypatch):
    """The publishing transaction writes again, from its savepoint, with the task that did not
    read back failed: the others are written once (no row twice in the staging tables), the
    failed one is recorded and unreadable, and the next batch writes cleanly."""
    manager = ResultManager("postgres-only", record_in_dagster=False)
    names = ["batch_ok_a", "batch_bad", "batch_ok_b"]
    docs = {name: small_document(strategy=name, n=3 + i) for i, name in enumerate(names)}
    real = catalog_module._unfaithful
    attempts = []

    def spoiled(cur, tasks, hot):
        attempts.append(sorted(t.task_id for t in tasks))
        found = real(cur, tasks, hot)
        return {**found, **{t.task_id: "the catalog gives back a different skeleton or spelling than was written"
                            for t in tasks if t.task_id == "batch_bad" and t.status == "migrated"}}

    raws = [RawResult(LegacyFile(n, "", len(b), 0), b, sha256_hex(b))
            for n, b in ((n, dumps_document(docs[n]).encode()) for n in names)]
    monkeypatch.setattr(catalog_module, "_unfaithful", spoiled)
    batch = engine.run_batch(stores, raws=raws, keep_source_path=False)
    monkeypatch.undo()
    assert attempts == [sorted(names), sorted(names)]  # written again, batch_bad as failed
    states = {n: stores.catalog.task(n)["status"] for n in names}
    assert states == {"batch_ok_a": "migrated", "batch_bad": "failed", "batch_ok_b": "migrated"}
    assert [v.task_id for v in batch.validated if v.failure] == ["batch_bad"]
    for name in ("batch_ok_a", "batch_ok_b"):
        assert compare_documents(docs[name], manager.get_result(name)) == []
    engine.run_batch(stores, raws=raws, keep_source_path=False)  # the staging tables start empty again
    assert {n: stores.catalog.task(n)["status"] for n in names} == dict.fromkeys(names, "migrated")


# --- readers see only published rows ----------------------------------------------------------

def test_scans_show_only_published_rows(stores):
    manager = ResultManager("postgres-only", record_in_dagster=False)
    published = small_document(strategy="published", n=5)
    manager.save_result("pub_a", published)
    maintain(stores, compact=False, vacuum=False)  # into Delta
    store = ResultStore.from_env()
    before = store.signals(task_ids=["pub_a"])
    assert before.num_rows == 5
    # An in-flight batch: new rows for pub_a and a new task committed, not published (yet).
    changed = before.set_column(before.schema.get_field_index("price"), "price",
                                pc.add(before.column("price"), pa.scalar(1000.0)))
    ghost = before.set_column(before.schema.get_field_index("task_id"), "task_id",
                              pa.array(["ghost"] * before.num_rows, pa.string()))
    stores.delta.replace_tasks(SIGNALS, pa.concat_tables([changed.cast(before.schema), ghost.cast(before.schema)]),
                               ["pub_a", "ghost"])
    everything = store.signals(columns=["task_id", "price"])
    assert "ghost" not in set(everything.column("task_id").to_pylist())
    mine = everything.filter(pc.equal(everything["task_id"], "pub_a"))
    assert sorted(mine.column("price").to_pylist()) == sorted(before.column("price").to_pylist())
    assert store.signals(task_ids=["pub_a", "ghost"]).num_rows == 5
    assert store.signals(symbols=["KRW-BTC"], task_ids=["pub_a"], columns=["ts"]).num_rows == 5
    store.close()


def test_scans_show_only_published_rows_of_a_task_published_before_row_locations(stores):
    """A task an earlier release published (a table version, no row locations) is scanned at
    the version that published it: a batch in flight since showed in its place."""
    manager = ResultManager("postgres-only", record_in_dagster=False)
    manager.save_result("pub_old", small_document(strategy="published", n=5))
    maintain(stores, compact=False, vacuum=False)  # into Delta
    conn = stores.catalog.connect()
    with conn, conn.cursor() as cur:  # as an earlier release left it: a version, no locations
        cur.execute("UPDATE tasks SET row_locations = NULL WHERE task_id = 'pub_old'")
    store = ResultStore.from_env()
    before = store.signals(task_ids=["pub_old"])
    assert before.num_rows == 5
    in_flight = before.slice(0, 2)
    in_flight = in_flight.set_column(in_flight.schema.get_field_index("price"), "price",
                                     pc.add(in_flight.column("price"), pa.scalar(1000.0)))
    stores.delta.replace_tasks(SIGNALS, in_flight.cast(before.schema), ["pub_old"])
    for task_ids in (["pub_old"], None):
        scanned = store.signals(task_ids=task_ids, columns=["task_id", "price"])
        mine = scanned.filter(pc.equal(scanned["task_id"], "pub_old"))
        assert sorted(mine.column("price").to_pylist()) == sorted(before.column("price").to_pylist())
    assert store.signals(task_ids=["pub_old"], symbols=["KRW-BTC"], columns=["ts"]).num_rows == 5
    store.close()


# --- maintenance never breaks an in-flight batch -----------------------------------------------

def test_maintenance_waits_for_a_batch_between_commit_and_publish(stores, sample_source):
    files = [f for f in scan_source_dir(sample_source).tasks if f.task_id == "bt_20250900_600020"]
    writer = Stores.from_env()
    committed, release = threading.Event(), threading.Event()
    real_upsert = writer.catalog.upsert

    def paused_upsert(*args, **kwargs):
        committed.set()  # rows are in Delta, read back, not published yet
        assert release.wait(120)
        return real_upsert(*args, **kwargs)

    writer.catalog.upsert = paused_upsert
    maintenance_done = threading.Event()

    def batch():
        engine.run_batch(writer, files)

    def maintenance():
        assert committed.wait(120)
        maintain(Stores.from_env(), retention_hours=0)  # compaction and vacuum at retention 0
        maintenance_done.set()

    def releaser():
        # Deterministic: release the batch once maintenance is seen waiting for the store lock.
        assert committed.wait(120)
        deadline = time.monotonic() + 120
        while not sql(stores.catalog.url, "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                                          f"AND objid = {STORE_WRITE_LOCK} AND NOT granted", fetch=True):
            assert time.monotonic() < deadline, "maintenance never waited for the batch"
            assert not maintenance_done.is_set(), "maintenance ran while a batch was unpublished"
            time.sleep(0.02)
        release.set()

    assert run_threads(batch, maintenance, releaser) == []
    assert maintenance_done.is_set()
    source = parse_document((sample_source / "bt_20250900_600020" / "result.json").read_bytes())
    assert compare_documents(source, read_result("bt_20250900_600020")) == []


# --- the schema: one explicit, versioned step ---------------------------------------------------

def test_sources_registered_in_one_statement_or_through_copy_read_back_the_same(stores):
    """A dual-write save registers its one task by one INSERT (one round trip), a migration its
    thousands through COPY: the rows, hostile paths included, are the same either way."""
    catalog = stores.catalog
    paths = ["/data/a b/result.json", "/data/\udcb9/result.json", '/data/"q",x\\y/result.json', "/data/\x00/r.json"]
    few = {f"src_few_{i}": (f"src_few_{i}", path) for i, path in enumerate(paths)}
    many = {f"src_many_{i:02d}": (f"src_many_{i:02d}", paths[i % len(paths)]) for i in range(40)}
    for sources in (few, many):
        catalog.register_sources(sources)
    assert catalog.sources(list(few) + list(many)) == {t: pg_text(p) for t, (_, p) in {**few, **many}.items()}
    catalog.register_sources({"src_few_0": ("src_few_0", "/moved/result.json")})  # a later write moved it
    assert catalog.sources(["src_few_0"]) == {"src_few_0": "/moved/result.json"}


def test_the_hot_tiers_compressed_rows_are_stored_as_they_are(stores):
    """Postgres's own compression of the hot tier's LZ4 rows kept nothing and cost a save's COPY 1.7 ms."""
    url = stores.catalog.url
    sql(url, "ALTER TABLE hot_rows ALTER COLUMN signals SET STORAGE EXTENDED, ALTER COLUMN curves SET STORAGE EXTENDED")
    sql(url, "DELETE FROM result_assets_schema WHERE version >= 7")  # a catalog of version 6
    assert main(["db", "upgrade"]) == 0
    storage = sql(url, "SELECT attname, attstorage FROM pg_attribute WHERE attrelid = 'hot_rows'::regclass "
                       "AND attname IN ('signals', 'curves') ORDER BY attname", fetch=True)
    assert storage == [("curves", "e"), ("signals", "e")]


def test_an_older_catalog_is_one_line_naming_the_upgrade(stores, capsys):
    url = stores.catalog.url
    sql(url, f"DELETE FROM result_assets_schema WHERE version = {SCHEMA_VERSION}")
    with pytest.raises(SchemaOutdated, match="result-assets db upgrade"):
        Stores.from_env().catalog
    with pytest.raises(ResultStoreError, match="result-assets db upgrade"):
        ResultManager("postgres-only", record_in_dagster=False).save_result("old_schema", small_document())
    assert main(["status"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "db upgrade" in err[0]
    assert main(["db", "upgrade"]) == 0
    assert f"to {SCHEMA_VERSION}" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0 and "already at" in capsys.readouterr().out
    # A catalog of a release before versions (no version table at all) upgrades in place too.
    sql(url, "DROP TABLE result_assets_schema")
    assert main(["db", "version"]) == 1
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "version"]) == 0
    assert ResultManager("postgres-only", record_in_dagster=False).save_result(
        "old_schema", small_document()).stored == "migrated"


def test_a_catalog_half_way_through_its_first_upgrade_is_waited_for_not_called_old(stores):
    """A new home's first processes start at once: one creates the catalog, committing each
    step of its schema as it goes, while another finds an earlier version and stopped with
    "run result-assets db upgrade" (a failed save, seen in the soak). A version below the
    code's is now read again once no upgrade holds the schema lock."""
    import threading

    import psycopg2

    from result_assets.store import schema

    url = stores.catalog.url
    upgrading = psycopg2.connect(url)
    upgrading.autocommit = True
    outcome = []
    try:
        with upgrading.cursor() as cur:  # an upgrade under way, at step 6 of SCHEMA_VERSION
            cur.execute("SELECT pg_advisory_lock(%s)", (schema.SCHEMA_LOCK,))
            cur.execute("DELETE FROM result_assets_schema WHERE version > 6")
        reader_conn = psycopg2.connect(url)

        def first_use():
            try:
                schema.require_current(reader_conn, create_if_empty=True)
                outcome.append("current")
            except Exception as exc:  # noqa: BLE001 - the outcome is the test's
                outcome.append(f"{type(exc).__name__}: {exc}")

        waiter = threading.Thread(target=first_use)
        waiter.start()
        waiter.join(1.0)
        assert outcome == []  # waiting for the upgrade, not deciding on a half-made catalog
        with upgrading.cursor() as cur:  # the upgrade's last steps, then its lock let go
            cur.execute("INSERT INTO result_assets_schema (version) SELECT generate_series(7, %s)",
                        (SCHEMA_VERSION,))
            cur.execute("SELECT pg_advisory_unlock(%s)", (schema.SCHEMA_LOCK,))
        waiter.join(30)
        assert outcome == ["current"]
        reader_conn.close()
    finally:
        upgrading.close()
        sql(url, "INSERT INTO result_assets_schema (version) SELECT generate_series(7, %s) ON CONFLICT DO NOTHING"
            % SCHEMA_VERSION)


def test_an_upgrade_that_hangs_is_a_one_line_error_not_a_hung_first_use(stores, monkeypatch):
    """A first use waits for an upgrade under way, but not for ever: a session holding the
    schema lock past UPGRADE_WAIT_SECONDS (a hung `db upgrade`) makes it the one-line error,
    also under a shorter statement_timeout, and leaves the connection usable."""
    import psycopg2

    from result_assets.store import schema

    monkeypatch.setattr(schema, "UPGRADE_WAIT_SECONDS", 0.5)
    url = stores.catalog.url
    hung = psycopg2.connect(url)
    hung.autocommit = True
    try:
        with hung.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (schema.SCHEMA_LOCK,))
            cur.execute("DELETE FROM result_assets_schema WHERE version > 6")
        # a role's statement_timeout shorter than the wait (usual on managed servers) is not the bound
        first_use = psycopg2.connect(url, options="-c statement_timeout=200")
        with pytest.raises(SchemaOutdated, match="held the schema lock for over 0 s"):
            schema.require_current(first_use, create_if_empty=True)
        with first_use, first_use.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        first_use.close()
    finally:
        hung.close()
        sql(url, "INSERT INTO result_assets_schema (version) SELECT generate_series(7, %s) ON CONFLICT DO NOTHING"
            % SCHEMA_VERSION)


def test_an_upgrade_from_older_code_on_a_newer_catalog_is_refused(stores, capsys):
    """A rolled-back deploy's `db upgrade` said "upgraded from 10 to 9" and exit 0 (so did
    the upgrade `migrate` makes), and its runs then failed on the newer catalog."""
    url = stores.catalog.url
    sql(url, f"INSERT INTO result_assets_schema (version) VALUES ({SCHEMA_VERSION + 1})")
    try:
        assert main(["db", "upgrade"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"version {SCHEMA_VERSION + 1}, newer than this code's" in err[0]
    finally:
        sql(url, f"DELETE FROM result_assets_schema WHERE version > {SCHEMA_VERSION}")


def test_an_upgrade_behind_an_open_transaction_lets_saves_through_and_finishes_after_it(stores, monkeypatch):
    """An upgrade step's ALTER waited without limit behind a transaction that had read the
    table (a long report), and every save queued behind the ALTER, even after the upgrade's
    client was killed. Each step now waits a short while, lets go, and tries again."""
    import threading

    import psycopg2

    from result_assets.store import schema

    monkeypatch.setattr(schema, "STEP_LOCK_TIMEOUT", "200ms", raising=False)
    url = stores.catalog.url
    running = ResultManager("postgres-only", record_in_dagster=False)  # an application already running
    running.save_result("during_upgrade", small_document())
    sql(url, "DELETE FROM result_assets_schema WHERE version >= 7")  # step 7 alters hot_rows
    report = psycopg2.connect(url)
    upgraded, saved = [], []
    try:
        with report.cursor() as cur:  # a transaction left open after reading the hot tier
            cur.execute("SELECT count(*) FROM hot_rows")
        upgrading = threading.Thread(target=lambda: upgraded.append(main(["db", "upgrade"])), daemon=True)
        upgrading.start()
        time.sleep(0.5)
        saving = threading.Thread(daemon=True, target=lambda: saved.append(
            running.save_result("during_upgrade", small_document(n=4)).stored))
        saving.start()
        saving.join(20)
        assert saved == ["migrated"]  # went through beside the waiting upgrade
        assert upgraded == []  # still waiting for the report's transaction
    finally:
        report.rollback()
        report.close()
    upgrading.join(30)
    assert upgraded == [0]
    assert schema.installed_version(psycopg2.connect(url)) == SCHEMA_VERSION


def test_a_read_racing_maintenance_reads_where_the_rows_moved(stores):
    """A reader holds a catalog row; maintenance then compacts, re-points and vacuums at
    retention 0, deleting the file that row named. The read follows the fresh catalog row
    (found by the soak: 1 failed read in 1,771 before)."""
    from result_assets.store.reader import TaskUnreadable, documents_from_rows, settled_documents

    manager = ResultManager("postgres-only", record_in_dagster=False)
    documents = {}
    for i in range(2):  # two flushes: two small files, which compaction merges
        documents[f"race_{i}"] = small_document(strategy=f"race{i}", n=3 + i)
        manager.save_result(f"race_{i}", documents[f"race_{i}"])
        maintain(stores, compact=False, vacuum=False)
    held = stores.catalog.tasks(list(documents))  # what a reader read before maintenance ran
    maintain(Stores.from_env(), retention_hours=0)
    with pytest.raises(TaskUnreadable):
        documents_from_rows(stores, held)  # the rows it named are gone
    got = settled_documents(stores, held)
    assert {t: compare_documents(d, got[t]) for t, d in documents.items()} == {t: [] for t in documents}


def _dagster_sessions() -> tuple[int, int]:
    """(sessions ever opened, connected now) of Dagster's database: Postgres' own counts."""
    from result_assets.settings import Settings
    from result_assets.store.postgres import dagster_url

    conn = psycopg2.connect(dagster_url(Settings.from_env()).replace("postgresql+psycopg2://", "postgresql://", 1))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT sessions, numbackends - 1 FROM pg_stat_database WHERE datname = current_database()")
            return cur.fetchone()
    finally:
        conn.close()


# The sensor's report run, as a run worker executes it: in a process of its own, untagged.
_WORKER_REPORT = """
from result_assets.assets.instance import get_instance
from result_assets.assets.resources import StoresResource
from result_assets.assets.saves import report_saves_job
assert report_saves_job.execute_in_process(instance=get_instance(), resources={"stores": StoresResource()}).success
"""


def test_a_report_run_writes_its_events_on_held_connections_and_a_flush_leaves_none_open(stores):
    """The sensor's report run writes several events per save; in a run worker (a process of
    its own) they go on held connections, not one new connection each (it opened 5 per save
    reported: 67-92 ms per save). An application's flush_records opens them per event still:
    Dagster keeps its last instance referenced, which would hold them open for good."""
    import subprocess
    import sys

    manager = ResultManager("postgres-only")
    for i in range(8):
        manager.save_result(f"reported_on_held_{i}", small_document(n=2))
    manager.flush_records()  # whatever was queued before, and the first use's own connections
    for i in range(8):
        manager.save_result(f"reported_on_held_{i}", small_document(n=3))

    opened_before, _ = _dagster_sessions()
    subprocess.run([sys.executable, "-c", _WORKER_REPORT], check=True, timeout=300, capture_output=True)
    deadline = time.monotonic() + 10  # a backend counts its session in the shared stats by then
    while True:
        opened = _dagster_sessions()[0] - opened_before
        if opened or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # 8 saves: 40 materializations and 24 check evaluations. Held, the run's connections are
    # about the run's own start-up (28 here); one per event, 183.
    assert 0 < opened < 40, opened
    assert not stores.catalog.record_ids([f"reported_on_held_{i}" for i in range(8)])  # all reported

    for i in range(8):
        manager.save_result(f"reported_on_held_{i}", small_document(n=4))
    _, connected_before = _dagster_sessions()
    assert manager.flush_records()
    assert _dagster_sessions()[1] <= connected_before  # none left open by the application's report


def _forked_child(manager, k: int, results) -> None:
    told, errors = 0, []
    for i in range(15):
        try:
            assert manager.get_result("forked_base")["strategy"] == "base"
            manager.save_result(f"forked_{k}_{i}", small_document(strategy=f"child{k}", n=2))
            told += 1
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.append(f"{type(exc).__name__}: {exc}")
    manager.close()  # the child's own connection; the parent's stays open
    results.put((told, errors))


def test_a_manager_made_before_a_fork_serves_the_children_and_the_parent(stores):
    """gunicorn --preload or a prefork worker pool: a manager made in the parent, used in its
    forked children. They shared the parent's one catalog connection and read each other's
    replies: errors, hangs, saves reported failed that were committed; a child's close ended
    the parent's session."""
    manager = ResultManager("postgres-only", record_in_dagster=False)
    manager.save_result("forked_base", small_document(strategy="base", n=3))
    parent_backend = manager.stores.catalog.connect().get_backend_pid()
    ctx = get_context("fork")
    results = ctx.Queue()
    children = [ctx.Process(target=_forked_child, args=(manager, k, results), daemon=True) for k in range(3)]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    assert [errors for _, errors in outcomes] == [[], [], []]
    conn = stores.catalog.connect()
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM tasks WHERE task_id LIKE 'forked\\_%\\_%'")
        assert cur.fetchone()[0] == sum(told for told, _ in outcomes) == 45
    assert manager.get_result("forked_base")["strategy"] == "base"
    assert manager.stores.catalog.connect().get_backend_pid() == parent_backend  # its session never ended
