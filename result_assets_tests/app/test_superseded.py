"""A task's JSON against the store's version across the switch-over: the last write wins.

In postgres-only the application saves to the store and writes no JSON, so a JSON left in
the source directory is either older than the store's version (superseded: never migrated
or read over it) or was written after it (an instance still writing JSON: newer, taken).
"""
from __future__ import annotations

import json
import os
import threading
import time

import psycopg2
import pyarrow as pa
import pytest

from result_assets import ResultManager
from result_assets.cli import main
from result_assets.migration import engine
from result_assets.store import catalog as catalog_module
from result_assets.store.backups import BackupStore
from result_assets.store.stores import Stores
from result_assets_tests.app.helpers import save_lock_free


@pytest.fixture(scope="module")
def source(project_home, tmp_path_factory):
    path = tmp_path_factory.mktemp("superseded_source")
    os.environ["RESULT_SOURCE_DIR"] = str(path)
    yield path
    os.environ.pop("RESULT_SOURCE_DIR", None)
    os.environ.pop("RESULT_STORAGE_MODE", None)


def doc(price: float) -> dict:
    return {"strategy": "s", "symbols": [{"symbol": "A", "signals": [{"timestamp": 1704240000000, "price": price}]}]}


def price(task_id: str, mode: str = "postgres-only") -> float:
    return ResultManager(mode).get_result(task_id)["symbols"][0]["signals"][0]["price"]


def migrate(source, capsys, *flags) -> dict:
    assert main(["migrate", "--source-dir", str(source), "--json", *flags]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def phase(capsys, mode) -> tuple[int, dict]:
    mode("postgres-only")
    code = main(["phase", "--json", "--check"])
    return code, json.loads(capsys.readouterr().out)


def lagging_json_overtaken_by_a_save(monkeypatch, task_id: str) -> None:
    """A postgres-only save, then a newer JSON (a lagging instance's) that migrate takes, then a
    save that lands while migrate converts that JSON (save_before_migrate_publishes)."""
    ResultManager("postgres-only").save_result(task_id, doc(1.5))
    time.sleep(0.01)
    ResultManager("json-only").save_result(task_id, doc(2.5))
    save_before_migrate_publishes(monkeypatch, task_id, doc(3.5))


def turned_away_then_superseded(source, capsys, monkeypatch, task_id: str) -> None:
    """migrate of task_id's file, which a save (3.5) overtakes while it converts: turned away
    (exit 1, saying why), the save stays; the next migrate calls the file superseded."""
    assert main(["migrate", "--source-dir", str(source), "--json", "--task", task_id]) == 1
    assert "older, not published over it" in capsys.readouterr().err
    monkeypatch.undo()
    assert price(task_id) == 3.5
    assert migrate(source, capsys, "--task", task_id)["superseded"] == 1 and price(task_id) == 3.5


def save_before_migrate_publishes(monkeypatch, task_id: str, document: dict) -> None:
    """Each migration publish is preceded by an application save of task_id: one that lands
    while migrate converts the task's file (the save's own publish goes through untouched)."""
    publish = engine.publish_batch

    def save_meanwhile(*args, **kwargs):
        if kwargs.get("tier") != "hot":  # the migration's publish, not the save's own
            ResultManager("postgres-only", record_in_dagster=False).save_result(task_id, document)
        return publish(*args, **kwargs)

    monkeypatch.setattr(engine, "publish_batch", save_meanwhile)


def test_a_json_older_than_a_postgres_only_save_is_read_and_migrated_as_the_older_one(source, capsys, mode):
    ResultManager("dual-write").save_result("sup_dual", doc(1.5))  # JSON and store, before the switch
    ResultManager("json-only").save_result("sup_lagging", doc(1.5))  # an instance not switched yet
    for task_id in ("sup_dual", "sup_lagging"):
        ResultManager("postgres-only").save_result(task_id, doc(2.5))

    # A dual-write instance (switched back, or not switched yet) reads the newer save.
    assert price("sup_dual", "dual-write") == price("sup_lagging", "dual-write") == 2.5
    assert {t: d["symbols"][0]["signals"][0]["price"] for t, d in
            ResultManager("dual-write").get_results(["sup_dual", "sup_lagging"]).items()} == {
        "sup_dual": 2.5, "sup_lagging": 2.5}
    for flags in ([], ["--force"]):
        assert migrate(source, capsys, *flags)["superseded"] == 2
        assert price("sup_dual") == price("sup_lagging") == 2.5
    code, report = phase(capsys, mode)
    assert code == 0 and report["tasks"]["superseded"] == 2 and report["blockers"] == []


def test_a_json_written_after_the_save_is_newer_unless_its_bytes_are_a_replaced_version(source, capsys, mode):
    """The last write wins, but an old file copied or touched after the save (its mtime
    renewed) is still the version it holds: one the store already replaced."""
    for task_id in ("sup_newer", "sup_touched"):
        ResultManager("dual-write").save_result(task_id, doc(1.5))
        ResultManager("postgres-only").save_result(task_id, doc(2.5))
    time.sleep(0.01)
    ResultManager("json-only").save_result("sup_newer", doc(3.5))  # an instance still writing JSON
    os.utime(source / "sup_touched" / "result.json")  # `touch`, or a copy that does not keep mtimes
    code, report = phase(capsys, mode)
    assert code == 1 and [t.split()[0] for t in report["blockers"][0]["tasks"]] == ["sup_newer"]
    report = migrate(source, capsys, "--task", "sup_newer", "--task", "sup_touched")
    assert report["superseded"] == 1
    assert price("sup_newer") == 3.5 and price("sup_touched") == 2.5
    assert price("sup_touched", "dual-write") == 2.5


def test_a_partition_re_run_from_the_backup_keeps_the_older_json_superseded(source, capsys):
    """Re-running a saved task's partition republishes its backup, whose path the catalog row then
    names: the older JSON is still older than that version."""
    from result_assets.assets.instance import get_instance
    from result_assets.assets.jobs import MIGRATE_JOB
    from result_assets.assets.partitions import register_partitions
    from result_assets.definitions import build_definitions
    from result_assets.settings import Settings

    ResultManager("dual-write").save_result("sup_rerun", doc(1.5))
    ResultManager("postgres-only").save_result("sup_rerun", doc(2.5))
    instance = get_instance(Settings.from_env())
    register_partitions(instance, ["sup_rerun"])
    run = build_definitions().resolve_job_def(MIGRATE_JOB).execute_in_process(
        instance=instance, partition_key="sup_rerun", raise_on_error=False)
    assert run.success and price("sup_rerun") == 2.5
    assert migrate(source, capsys, "--task", "sup_rerun")["superseded"] == 1
    assert price("sup_rerun") == 2.5


def test_a_failed_re_migration_of_an_unchanged_json_is_no_newer_json(source, capsys, mode, monkeypatch):
    """A forced re-migration whose proof failed keeps the published version and is retried; its
    JSON is the published version's file, not one newer than the store."""
    ResultManager("json-only").save_result("sup_failed", doc(1.5))
    migrate(source, capsys, "--task", "sup_failed")
    proven_rows = engine.signal_rows

    def corrupted(validated):
        rows = proven_rows(validated)
        price_at = rows.table.schema.get_field_index("price")
        rows.table = rows.table.set_column(price_at, "price", pa.array([9.5] * rows.table.num_rows, pa.float64()))
        return rows

    monkeypatch.setattr(engine, "signal_rows", corrupted)
    assert main(["migrate", "--source-dir", str(source), "--json", "--force", "--task", "sup_failed"]) == 1
    capsys.readouterr()
    monkeypatch.undo()
    code, report = phase(capsys, mode)
    assert not any("sup_failed" in task for blocker in report["blockers"] for task in blocker["tasks"])
    assert price("sup_failed") == 1.5


def test_after_a_rollback_to_a_save_the_newer_json_is_older_than_the_rollback(source, capsys, mode):
    """Rolled back to an application save, the JSON migrate had taken is older than the
    rollback: every command says so alike, and nothing puts it back."""
    ResultManager("postgres-only").save_result("sup_rollback", doc(1.5))
    time.sleep(0.01)
    ResultManager("json-only").save_result("sup_rollback", doc(2.5))
    migrate(source, capsys, "--task", "sup_rollback")
    assert price("sup_rollback") == 2.5
    assert main(["rollback", "sup_rollback"]) == 0
    assert "it stays superseded (migrate leaves it alone)" in capsys.readouterr().out
    assert price("sup_rollback") == 1.5
    assert migrate(source, capsys, "--task", "sup_rollback")["superseded"] == 1 and price("sup_rollback") == 1.5
    assert main(["status", "--json"]) == 0
    statuses = {r["task_id"]: r["status"] for r in json.loads(capsys.readouterr().out)["tasks"]}
    assert statuses["sup_rollback"] == "migrated"
    code, report = phase(capsys, mode)
    assert not any("sup_rollback" in task for blocker in report["blockers"] for task in blocker["tasks"])


def test_a_save_that_lands_while_migrate_converts_the_older_json_stays(source, capsys, monkeypatch):
    """migrate takes a newer JSON (a lagging instance's); the application saves again after the
    run chose its files, while it converts them: the publish finds that save under the row
    lock and does not go over it."""
    lagging_json_overtaken_by_a_save(monkeypatch, "sup_race")
    turned_away_then_superseded(source, capsys, monkeypatch, "sup_race")


def test_a_turned_away_migration_asks_for_a_save_lock_only_after_the_store_lock(source, capsys, monkeypatch):
    """A rollback holds a task's save lock and then asks for the shared store write lock; a
    migration the publish turned away puts the published backup back under that save lock. Had
    it asked while still holding the store lock, the two (and a maintenance queued for the
    exclusive lock between them) waited for each other for good, on three connections: no
    cycle Postgres could see."""
    from result_assets.store.catalog import STORE_WRITE_LOCK, Catalog

    lagging_json_overtaken_by_a_save(monkeypatch, "sup_order")
    url, asked, lock = Stores.from_env().catalog.url, [], Catalog.task_save_lock

    def probe(self, task_id):
        conn = psycopg2.connect(url)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 "
                            "AND objid = %s AND objsubid = 1", (STORE_WRITE_LOCK,))
                asked.append((task_id, cur.fetchone()[0]))
        finally:
            conn.close()
        return lock(self, task_id)

    monkeypatch.setattr(Catalog, "task_save_lock", probe)
    assert main(["migrate", "--source-dir", str(source), "--json", "--task", "sup_order"]) == 1
    assert "older, not published over it" in capsys.readouterr().err
    monkeypatch.undo()
    assert asked and all(held == 0 for _, held in asked), asked
    assert price("sup_order") == 3.5


def test_an_older_file_that_is_not_valid_is_not_quarantined_over_a_save_that_landed_meanwhile(
        source, capsys, monkeypatch):
    """The file migrate chose is older than a save that lands while it converts, and is not
    valid (truncated): its quarantine is an attempt kept beside the save, as an older valid
    file's is, never a record written over it (the save was gone from every read)."""
    (source / "sup_bad_race").mkdir()
    (source / "sup_bad_race" / "result.json").write_bytes(b'{"strategy": "s", "symbols": [')
    time.sleep(0.01)
    save_before_migrate_publishes(monkeypatch, "sup_bad_race", doc(3.5))
    turned_away_then_superseded(source, capsys, monkeypatch, "sup_bad_race")


def test_an_older_file_refused_unread_is_superseded_not_quarantined_over_the_save(source, capsys, tmp_path):
    """A result.json that is a link (refused unread) and older than the application's save is
    an earlier version, left alone: it was quarantined over the save, and migrate said 0."""
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps(doc(1.0)))
    (source / "sup_link").mkdir()
    os.symlink(target, source / "sup_link" / "result.json")
    time.sleep(0.01)
    ResultManager("postgres-only").save_result("sup_link", doc(3.5))
    assert migrate(source, capsys, "--task", "sup_link")["superseded"] == 1
    assert price("sup_link") == 3.5


def test_a_first_save_that_lands_while_migrate_publishes_an_older_file_stays(source, capsys, monkeypatch):
    """A task never stored: migrate takes its older JSON, and the application saves it for the
    first time just as migrate's publishing transaction has looked for the task's row (none
    yet: a row lock locks only rows that exist). The save waits for that publish (each task's
    publish lock), then publishes over it: it is the newer. It was written over unseen."""
    ResultManager("json-only").save_result("sup_first", doc(2.5))
    time.sleep(0.01)
    overtaken, saving = catalog_module._overtaken, []

    def save_in_the_window(cur, tasks, current, *rest):
        if not saving and any(t.task_id == "sup_first" for t in tasks):
            saving.append(threading.Thread(target=ResultManager("postgres-only", record_in_dagster=False).save_result,
                                           args=("sup_first", doc(3.5))))
            saving[0].start()
            saving[0].join(timeout=2)  # the old code's save committed here, inside migrate's window
        return overtaken(cur, tasks, current, *rest)

    monkeypatch.setattr(catalog_module, "_overtaken", save_in_the_window)
    # (the run may fail its backup_checksum check: the save's backup, written before it waited,
    # is the newer version's; backups follow the task save lock, which migrate does not take)
    main(["migrate", "--source-dir", str(source), "--json", "--task", "sup_first"])
    capsys.readouterr()
    monkeypatch.undo()
    saving[0].join()
    assert price("sup_first") == 3.5
    stores = Stores.from_env()
    assert stores.backups.verify("sup_first", stores.catalog.task("sup_first")["source_sha256"])


def test_a_migration_turned_away_leaves_the_published_versions_bytes_as_the_backup(source, capsys, monkeypatch):
    """migrate backs up the JSON it chose; a save lands before migrate publishes, so the JSON
    is older and not published. The task's backup (a save's registered source, which a re-run of
    its partition publishes) held that JSON's bytes until a re-run; it holds the save's now."""
    ResultManager("postgres-only").save_result("sup_backup", doc(1.5))
    time.sleep(0.01)
    ResultManager("json-only").save_result("sup_backup", doc(2.5))  # newer: migrate takes it
    save_backups, saved = engine.save_backups, []

    def save_then_back_up(stores, raws, **kwargs):
        if not saved and any(r.source.task_id == "sup_backup" and r.source.path for r in raws):  # migrate's
            saved.append("sup_backup")  # first: the save backs up through this function too
            ResultManager("postgres-only", record_in_dagster=False).save_result("sup_backup", doc(3.5))
        return save_backups(stores, raws, **kwargs)

    monkeypatch.setattr(engine, "save_backups", save_then_back_up)
    assert main(["migrate", "--source-dir", str(source), "--json", "--task", "sup_backup"]) == 1
    assert "older, not published over it" in capsys.readouterr().err
    monkeypatch.undo()
    assert price("sup_backup") == 3.5
    stores = Stores.from_env()
    assert stores.backups.verify("sup_backup", stores.catalog.task("sup_backup")["source_sha256"])


def test_a_migration_backs_up_a_file_under_its_task_save_lock(source, capsys, monkeypatch):
    """An application save holds its task's save lock from its backup to its checks, which read
    that backup back: migrate's backup of the task's file waits for the lock, never lands inside."""
    ResultManager("json-only").save_result("sup_locked", doc(1.5))
    url, lock_free, save = Stores.from_env().catalog.url, [], BackupStore.save

    def probe_then_save(self, task_id, raw, *args, **kwargs):
        if task_id == "sup_locked":
            lock_free.append(save_lock_free(url, task_id))
        return save(self, task_id, raw, *args, **kwargs)

    monkeypatch.setattr(BackupStore, "save", probe_then_save)
    migrate(source, capsys, "--task", "sup_locked")
    assert lock_free == [False]
    assert price("sup_locked") == 1.5


def test_task_save_locks_take_every_task_and_let_every_one_go(source):
    """A migration's chunk of save locks, in one statement: each task is held against another
    session (as an application save's), and all are let go, also when the block raises."""
    catalog = Stores.from_env().catalog
    tasks = ["locks_a", "locks_b", "locks_c", "locks_a"]  # a task twice is one lock

    def free(task_id: str) -> bool:
        return save_lock_free(catalog.url, task_id)

    with pytest.raises(RuntimeError):
        with catalog.task_save_locks(tasks):
            assert [free(t) for t in tasks] == [False] * 4
            raise RuntimeError("a backup failed")
    assert [free(t) for t in tasks] == [True] * 4
    with catalog.task_save_locks(["locks_a"]), catalog.task_save_lock("locks_a"):  # one session: re-entered
        assert not free("locks_a")
    assert free("locks_a")


def run_sensor_catch_up(source) -> int:
    """One tick of new_task_sensor in a dual-write code location, and the runs it asks for."""
    from result_assets.assets.instance import get_instance
    from result_assets.assets.launch import QUIET, stores_config
    from result_assets.assets.partitions import register_partitions
    from result_assets.assets.sensors import migration_requests
    from result_assets.definitions import build_definitions
    from result_assets.migration.sources import scan_source_dir
    from result_assets.settings import Settings
    from result_assets.store.stores import Stores

    settings = Settings.from_env()
    instance, tasks = get_instance(settings), scan_source_dir(str(source)).tasks
    register_partitions(instance, [t.partition_key for t in tasks])
    runs, _ = migration_requests(Stores(settings), tasks)
    job = build_definitions(settings).resolve_job_def("migrate_task_list_job")
    for request in runs:
        assert job.execute_in_process(instance=instance, raise_on_error=False, run_config={
            **QUIET, "resources": stores_config(settings), **request.run_config}).success
    return len(runs)


def test_the_sensor_catches_up_a_dual_write_save_made_after_a_postgres_only_one(source, capsys, mode):
    """The save registered its backup as the task's source; the dual-write save after it
    reached only the JSON. The catch-up run takes that JSON (the newest), not the backup."""
    ResultManager("postgres-only").save_result("sup_catch_up", doc(1.5))
    outcome = ResultManager("dual-write", database_url="postgresql://127.0.0.1:1/none").save_result(
        "sup_catch_up", doc(2.5))
    assert outcome.pending
    mode("dual-write")
    assert main(["status", "--json"]) == 0
    statuses = {r["task_id"]: r["status"] for r in json.loads(capsys.readouterr().out)["tasks"]}
    assert statuses["sup_catch_up"] == "stale"  # the JSON, not the registered backup, is compared
    assert main(["phase", "--check"]) == 1
    capsys.readouterr()
    assert run_sensor_catch_up(source) >= 1
    assert price("sup_catch_up") == price("sup_catch_up", "dual-write") == 2.5


def test_a_partition_re_run_republishes_the_stores_version_when_its_json_is_older_or_gone(source, capsys, mode):
    """A re-run of a task whose JSON is older than the store's version (a rollback, then a
    touched copy) or archived republishes the store's version from its backup."""
    from result_assets.assets.instance import get_instance
    from result_assets.assets.jobs import MIGRATE_JOB
    from result_assets.assets.partitions import register_partitions
    from result_assets.cli.archive import archive_tasks
    from result_assets.definitions import build_definitions
    from result_assets.settings import Settings

    ResultManager("postgres-only").save_result("sup_back", doc(1.5))
    time.sleep(0.01)
    ResultManager("json-only").save_result("sup_back", doc(2.5))
    migrate(source, capsys, "--task", "sup_back")
    assert main(["rollback", "sup_back"]) == 0
    os.utime(source / "sup_back" / "result.json")  # a touched copy of the version rolled back from
    ResultManager("json-only").save_result("sup_gone", doc(1.5))
    migrate(source, capsys, "--task", "sup_gone")
    mode("postgres-only")
    archive_tasks(Settings.from_env(), source.parent / "sup_archive", only={"sup_gone"})
    assert not (source / "sup_gone" / "result.json").exists()
    instance = get_instance(Settings.from_env())
    register_partitions(instance, ["sup_back", "sup_gone"])
    for task_id in ("sup_back", "sup_gone"):
        run = build_definitions().resolve_job_def(MIGRATE_JOB).execute_in_process(
            instance=instance, partition_key=task_id, raise_on_error=False)
        assert run.success, task_id
        assert price(task_id) == 1.5, task_id


def test_rollback_restore_source_writes_the_source_directory_not_the_backup(source, capsys):
    """The postgres-only save registered its backup as the task's source: --restore-source
    still writes the JSON in the source directory, and the next migrate keeps the rollback."""
    ResultManager("dual-write").save_result("sup_restore", doc(1.5))
    ResultManager("postgres-only").save_result("sup_restore", doc(2.5))
    time.sleep(0.01)
    ResultManager("json-only").save_result("sup_restore", doc(3.5))  # not migrated
    assert main(["rollback", "sup_restore", "--restore-source"]) == 0
    assert str(source / "sup_restore" / "result.json") in capsys.readouterr().out
    assert json.loads((source / "sup_restore" / "result.json").read_bytes()) == doc(1.5)
    migrate(source, capsys, "--task", "sup_restore")
    assert price("sup_restore") == 1.5


def test_a_republish_of_the_same_bytes_keeps_its_publish_time_and_sources_are_absolute(source, capsys,
                                                                                       monkeypatch):
    """A re-run or --force of unchanged bytes does not make a JSON written in between look older
    than the store's version; a migrate given a relative folder registers absolute paths, which
    runs in other working directories can read."""
    from result_assets.settings import Settings
    from result_assets.store.stores import Stores

    ResultManager("json-only").save_result("sup_same", doc(1.5))
    monkeypatch.chdir(source.parent)
    migrate(source.name, capsys, "--task", "sup_same")
    catalog = Stores(Settings.from_env()).catalog
    assert os.path.isabs(catalog.sources(["sup_same"])["sup_same"])
    first = catalog.states(["sup_same"])["sup_same"].published_at_ns
    migrate(source.name, capsys, "--task", "sup_same", "--force")
    assert catalog.states(["sup_same"])["sup_same"].published_at_ns == first


def test_a_re_run_after_a_refused_attempt_republishes_the_stores_version(source, capsys, monkeypatch):
    """A save landed after migrate chose a lagging JSON and before it backed it up: the publish
    refused the JSON, whose bytes the backup then held. A partition re-run takes the store's
    version (restored as the backup from previous/), not those bytes."""
    from result_assets.assets.instance import get_instance
    from result_assets.assets.jobs import MIGRATE_JOB
    from result_assets.assets.partitions import register_partitions
    from result_assets.definitions import build_definitions
    from result_assets.settings import Settings

    ResultManager("postgres-only").save_result("sup_refused", doc(1.5))
    time.sleep(0.01)
    ResultManager("json-only").save_result("sup_refused", doc(2.5))
    back_up = engine.save_backups

    def save_first(stores, raws, **kwargs):
        if any(r.source.task_id == "sup_refused" and r.source.path for r in raws):
            ResultManager("postgres-only", record_in_dagster=False).save_result("sup_refused", doc(3.5))
        return back_up(stores, raws, **kwargs)

    monkeypatch.setattr(engine, "save_backups", save_first)
    assert main(["migrate", "--source-dir", str(source), "--json", "--task", "sup_refused"]) == 1
    capsys.readouterr()
    monkeypatch.undo()
    assert price("sup_refused") == 3.5
    instance = get_instance(Settings.from_env())
    register_partitions(instance, ["sup_refused"])
    run = build_definitions().resolve_job_def(MIGRATE_JOB).execute_in_process(
        instance=instance, partition_key="sup_refused", raise_on_error=False)
    assert run.success and price("sup_refused") == 3.5


def overlapping_runs(source, task_id: str, a_reads: str, b_reads: str, a_mtime: int, b_mtime: int):
    """Two runs of one task at once: the file's first state published, then run A reads state
    `a_reads` (its mtime `a_mtime`); before A publishes, the file is written again (`b_reads`,
    `b_mtime`) and run B reads and publishes (or quarantines) it. Returns A's batch."""
    from result_assets.migration.sources import stat_legacy_file

    (source / task_id).mkdir()
    path, stores = source / task_id / "result.json", Stores.from_env()

    def write(text: str, mtime: int) -> None:
        path.write_text(text)
        os.utime(path, (mtime, mtime))

    write(json.dumps(doc(1.0)), a_mtime - 20)
    engine.run_batch(stores, [stat_legacy_file(source, task_id)])
    write(a_reads, a_mtime)
    publish, later = engine.publish_batch, []

    def b_publishes_first(*args, **kwargs):
        if not later:
            later.append(True)
            write(b_reads, b_mtime)
            engine.run_batch(stores, [stat_legacy_file(source, task_id)])
        return publish(*args, **kwargs)

    engine.publish_batch = b_publishes_first
    try:
        return engine.run_batch(stores, [stat_legacy_file(source, task_id)])
    finally:
        engine.publish_batch = publish


def test_a_run_that_read_a_file_before_another_run_published_its_later_state_does_not_go_over_it(source):
    """Two runs of one partition at once (a backfill's chunk, and the UI's re-run of the task):
    A read the file, it was written again, B read and published the new state, then A
    published its earlier read over it. Both runs were green, readers got the old content."""
    now = int(time.time())
    a = overlapping_runs(source, "sup_overlap", json.dumps(doc(2.0)), json.dumps(doc(3.0)), now - 10, now)
    assert price("sup_overlap") == 3.0
    assert "later state of this file" in a.validated[0].failure
    assert Stores.from_env().catalog.task("sup_overlap")["source_mtime_ns"] == now * 10 ** 9


def test_a_run_that_read_the_newest_state_after_another_run_published_an_earlier_one_wins(source):
    """The run listed the file (state 2), another run read state 3 and published it, and the
    file was written again (state 4) before this run read it: this run holds the newest bytes.
    It was refused as "the earlier read", judged by the mtime it had listed, not the one it read."""
    from result_assets.migration.sources import stat_legacy_file

    task_dir = source / "sup_listed_early"
    task_dir.mkdir()
    stores = Stores.from_env()

    def write(price: float, mtime: int) -> None:
        (task_dir / "result.json").write_text(json.dumps(doc(price)) + " " * int(price))  # sizes differ
        os.utime(task_dir / "result.json", (mtime, mtime))

    now = int(time.time())
    write(1.0, now - 30)
    engine.run_batch(stores, [stat_legacy_file(source, "sup_listed_early")])
    write(2.0, now - 20)
    listed = stat_legacy_file(source, "sup_listed_early")  # this run's listing: state 2
    read_source, meanwhile = engine.read_source, []

    def read_after_another_run(file, limit):
        if not meanwhile:
            meanwhile.append(True)
            write(3.0, now - 10)
            engine.run_batch(stores, [stat_legacy_file(source, "sup_listed_early")])  # publishes state 3
            write(4.0, now)
        return read_source(file, limit)

    engine.read_source = read_after_another_run
    try:
        latest = engine.run_batch(stores, [listed])
    finally:
        engine.read_source = read_source
    assert latest.validated[0].failure is None
    assert price("sup_listed_early") == 4.0
    assert stores.catalog.task("sup_listed_early")["source_mtime_ns"] == now * 10 ** 9


def test_a_run_that_read_a_file_before_another_run_quarantined_its_later_state_does_not_go_over_it(source):
    """As above, but the file's later state was broken and the other run quarantined it: the
    earlier read was published over the quarantine, the catalog naming its older mtime."""
    now = int(time.time())
    a = overlapping_runs(source, "sup_overlap_broken", json.dumps(doc(2.0)), '{"strategy": "s", "symbols": [',
                         now - 10, now)
    assert "quarantined a later state of this file" in a.validated[0].failure
    row = Stores.from_env().catalog.task("sup_overlap_broken")
    assert (row["status"], row["source_mtime_ns"]) == ("quarantined", now * 10 ** 9)


def test_two_reads_of_one_file_with_the_same_mtime_leave_the_task_to_its_hash(source):
    """Rewritten inside one tick of the file system's clock, two states of a file have the same
    size and mtime: the earlier read, published last, went over the later, and the next plans
    called the task unchanged by its mtime for good. The earlier read stays out, and the version
    there is recorded one tick older, so the next plan hashes the file."""
    from result_assets.migration.plan import plan_migration
    from result_assets.migration.sources import stat_legacy_file

    tick = int(time.time())
    a = overlapping_runs(source, "sup_same_tick", json.dumps(doc(2.0)), json.dumps(doc(3.0)), tick, tick)
    assert "later state of this file" in a.validated[0].failure
    assert price("sup_same_tick") == 3.0
    stores = Stores.from_env()
    assert stores.catalog.task("sup_same_tick")["source_mtime_ns"] == tick * 10 ** 9 - 1
    # the next plan reads the file's bytes: the same as the store's, so it only records the mtime
    plan = plan_migration(stores.catalog, [stat_legacy_file(source, "sup_same_tick")], force=False)
    assert plan.touched_mtimes == {"sup_same_tick": tick * 10 ** 9} and not plan.changed
