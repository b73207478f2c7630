"""The application's store: saves land in the hot tier, readable as soon as save_result returns;
maintenance flushes them into Delta, compacts, re-points and vacuums, losing nothing and
showing nothing twice, also when saves and a flush run at once or a flush is killed."""
from __future__ import annotations

import hashlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from result_assets import ResultManager
from result_assets.legacy import compare_documents
from result_assets.store.delta_tables import CURVES, SIGNALS
from result_assets.migration.maintenance import maintain
from result_assets.settings import Settings
from result_assets.store.stores import Stores
from result_assets_tests.app.helpers import V2_TASK, sample_document, small_document, text


@pytest.fixture(scope="module")
def stores(project_home):
    return Stores.from_env()


def manager() -> ResultManager:
    return ResultManager("postgres-only", record_in_dagster=False)


def delta_row_counts(stores: Stores, table: str) -> Counter:
    dt = stores.delta.open(table)
    return Counter(dt.to_pyarrow_table(columns=["task_id"]).column("task_id").to_pylist()) if dt else Counter()


def assert_whole(stores: Stores, documents: dict[str, dict]) -> None:
    """Every task reads back as its last save; once in Delta, its rows are there exactly once."""
    m = manager()
    for task_id, document in documents.items():
        assert compare_documents(document, m.get_result(task_id)) == [], task_id
    got = m.get_results(list(documents))
    assert set(got) == set(documents)
    hot = {r["task_id"] for r in stores.catalog.hot_tasks(10**6)}
    counts, curve_counts = delta_row_counts(stores, SIGNALS), delta_row_counts(stores, CURVES)
    for task_id in set(documents) - hot:
        row = stores.catalog.task(task_id)
        assert counts[task_id] == row["n_signals"], task_id
        assert curve_counts[task_id] == row["n_curve_points"], task_id


def flush_rounds(monkeypatch, most: int) -> list:
    """The rounds of flush a maintenance run takes (one entry each), failing past `most`."""
    from result_assets.migration import engine

    flush, rounds = engine.flush_hot_tier, []

    def counted(*args, **kwargs):
        rounds.append(1)
        assert len(rounds) <= most, "the flush went on round after round"
        return flush(*args, **kwargs)

    monkeypatch.setattr("result_assets.migration.maintenance.flush_hot_tier", counted)
    return rounds


def test_save_is_hot_and_readable_then_flushed_into_delta(stores):
    m = manager()
    document = sample_document(V2_TASK)
    outcome = m.save_result("tier_big", document)
    assert outcome.stored == "migrated" and {"convert", "publish"} <= set(outcome.timings)
    row = stores.catalog.tasks(["tier_big"])["tier_big"]
    assert row["hot_signals"] is not None and row["row_locations"] is None  # in the hot tier, no Delta commit
    assert delta_row_counts(stores, SIGNALS)["tier_big"] == 0
    assert compare_documents(document, m.get_result("tier_big")) == []

    report = maintain(stores, retention_hours=0)
    assert report.flushed >= 1 and report.still_hot == 0
    row = stores.catalog.tasks(["tier_big"])["tier_big"]
    assert row["hot_signals"] is None and row["row_locations"][SIGNALS]  # now read from Delta files
    assert compare_documents(document, m.get_result("tier_big")) == []
    assert delta_row_counts(stores, SIGNALS)["tier_big"] == row["n_signals"]


def test_a_task_id_beyond_ascii_keeps_its_hot_rows(stores):
    """The hot rows go in by binary COPY, the task id in the connection's encoding: the
    catalog row and its hot rows name the same task, read back whole before and after the
    flush."""
    m = manager()
    document = small_document(strategy="hangul", n=5)
    m.save_result("저장_백테스트_7", document)
    row = stores.catalog.tasks(["저장_백테스트_7"])["저장_백테스트_7"]
    assert row["hot_signals"] is not None
    assert_whole(stores, {"저장_백테스트_7": document})
    maintain(stores, retention_hours=0)
    assert_whole(stores, {"저장_백테스트_7": document})


def test_a_save_whose_floats_orjson_spells_its_own_way_exports_as_saved(stores):
    """A save is orjson's text of its document; orjson writes 5.96e-05 as 0.0000596 and 1e-07
    as 1e-7, unlike repr. The store marks such a file as orjson's (exact.Spelling.by_orjson)
    and writes it again by orjson: the export hashes to the save's bytes, hot and after a
    flush, and reads give the document back."""
    from result_assets.store.reader import file_bytes

    m = manager()
    document = small_document(strategy="tiny_floats", n=4)
    document["symbols"][0]["signals"][1]["pnl"] = 5.96e-05
    document["symbols"][0]["signals"][2]["quantity"] = 1e-07
    m.save_result("tier_orjson_floats", document)
    row = stores.catalog.task("tier_orjson_floats")
    assert '"by_orjson":true' in row["spelling"]
    for _ in range(2):
        written = file_bytes(stores, ["tier_orjson_floats"])["tier_orjson_floats"]
        assert b"0.0000596" in written and hashlib.sha256(written).hexdigest() == row["source_sha256"]
        assert compare_documents(document, m.get_result("tier_orjson_floats")) == []
        maintain(stores, retention_hours=0)


def test_saving_again_after_a_flush_replaces_the_old_rows(stores):
    m = manager()
    m.save_result("tier_again", small_document(strategy="first", n=4))
    maintain(stores, retention_hours=0)
    newer = small_document(strategy="second", n=9)
    m.save_result("tier_again", newer)
    assert compare_documents(newer, m.get_result("tier_again")) == []  # the hot copy wins over Delta's
    maintain(stores, retention_hours=0)
    assert compare_documents(newer, m.get_result("tier_again")) == []
    assert delta_row_counts(stores, SIGNALS)["tier_again"] == 9


def test_concurrent_saves_while_a_flush_runs(stores):
    documents: dict[str, dict] = {}
    lock = threading.Lock()
    errors: list[str] = []

    def guarded(fn):
        def run(*args):
            try:
                fn(*args)
            except BaseException as exc:  # noqa: BLE001 - an exception in a thread must fail the test
                errors.append(f"{fn.__name__}: {type(exc).__name__}: {exc}")
        return run

    @guarded
    def saver(worker: int):
        m = manager()
        for i in range(25):
            task_id = f"tier_conc_{worker}_{i % 10}"  # each task saved two or three times
            document = small_document(strategy=f"w{worker}_{i}", n=1 + (i % 7))
            m.save_result(task_id, document)
            back = m.get_result(task_id)  # readable the moment save_result returned
            if compare_documents(document, back):
                errors.append(f"{task_id} read back other than saved")
            with lock:
                documents[task_id] = document

    @guarded
    def flusher(stop: threading.Event):
        while not stop.is_set():
            maintain(Stores.from_env(), compact=False, vacuum=False, flush_batch=7)

    stop = threading.Event()
    flush_thread = threading.Thread(target=flusher, args=(stop,))
    flush_thread.start()
    savers = [threading.Thread(target=saver, args=(w,)) for w in range(3)]
    for t in savers:
        t.start()
    for t in savers:
        t.join()
    stop.set()
    flush_thread.join()
    assert errors == []
    assert_whole(stores, documents)
    maintain(stores, retention_hours=0)
    assert stores.catalog.hot_count() == 0
    assert_whole(stores, documents)


def with_curve(document: dict, points: int) -> dict:
    """The document with a portfolio performance curve of `points` points."""
    curve = [{"timestamp": f"2024-01-{2 + i:02d} 09:00:00", "equity": 1_000_000.0 + 17.5 * i, "drawdown": -0.25 * i}
             for i in range(points)]
    return {**document, "performance_curve": curve}


def test_a_flush_killed_mid_way_loses_nothing_and_shows_nothing_twice(stores, tmp_path):
    m = manager()
    documents = {f"tier_kill_{i}": with_curve(small_document(strategy=f"k{i}", n=2 + i % 5), 3 + i % 4)
                 for i in range(60)}
    for task_id, document in documents.items():
        m.save_result(task_id, document)
    signals_log = os.path.join(stores.settings.store_root, SIGNALS, "_delta_log")
    before = len([f for f in os.listdir(signals_log) if f.endswith(".json")])
    # A flush in its own process, in batches of 10, killed right after a Delta commit.
    code = ("from result_assets.store.stores import Stores\n"
            "from result_assets.migration.maintenance import maintain\n"
            "maintain(Stores.from_env(), compact=False, vacuum=False, flush_batch=10)\n")
    # By URL: a killed process that had adopted the embedded server would keep it running.
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "DATABASE_URL": stores.catalog.url})
    deadline = time.monotonic() + 120
    while len([f for f in os.listdir(signals_log) if f.endswith(".json")]) < before + 2:
        assert proc.poll() is None and time.monotonic() < deadline, "the flush ended before it could be killed"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert 0 < stores.catalog.hot_count() < len(documents)  # killed part way through
    assert_whole(stores, documents)
    maintain(stores, retention_hours=0)
    assert stores.catalog.hot_count() == 0
    assert_whole(stores, documents)


def test_compaction_and_vacuum_keep_every_task_readable(stores):
    m = manager()
    documents = {f"tier_vac_{i}": small_document(strategy=f"v{i}", n=3) for i in range(5)}
    for task_id, document in documents.items():
        m.save_result(task_id, document)
        maintain(stores, compact=False, vacuum=False)  # one small file per task
    report = maintain(stores, retention_hours=0)
    assert report.repointed > 0 and report.vacuumed_files > 0
    assert report.tables[SIGNALS]["after"]["files"] <= 2
    assert_whole(stores, documents)
    for table in (SIGNALS, CURVES):  # every file a catalog row names is in the current snapshot
        current = set(stores.delta.open(table).file_uris())
        for _, locations in stores.catalog.located_tasks().values():
            for path, _ in locations[table]:
                assert any(uri.endswith(path) for uri in current), path
    import pyarrow.parquet as pq

    for task_id, (_, locations) in stores.catalog.located_tasks().items():  # every named row group holds the task
        for table in (SIGNALS, CURVES):
            for path, groups in locations[table]:
                file = pq.ParquetFile(os.path.join(stores.settings.store_root, table, path))
                for group in groups:
                    assert task_id in file.read_row_group(group, columns=["task_id"])["task_id"].to_pylist()


def test_a_vanished_file_is_a_clear_error_never_another_version(stores):
    from result_assets.store.reader import TaskUnreadable

    m = manager()
    m.save_result("tier_gone", small_document(n=4))
    maintain(stores, compact=False, vacuum=False)
    row = stores.catalog.task("tier_gone")
    path, _ = row["row_locations"][SIGNALS][0]
    os.rename(os.path.join(stores.settings.store_root, SIGNALS, path), os.path.join(stores.settings.store_root, "moved"))
    fresh = ResultManager("postgres-only", record_in_dagster=False)  # no footer cached
    with pytest.raises(Exception, match="as published") as info:
        fresh.get_result("tier_gone")
    assert isinstance(info.value.__cause__, TaskUnreadable)
    os.rename(os.path.join(stores.settings.store_root, "moved"), os.path.join(stores.settings.store_root, SIGNALS, path))


def test_a_task_whose_rows_are_gone_is_left_out_of_a_read_of_many(stores, caplog):
    """One task's file gone (deleted, a vacuum past its retention): a point read of it is a
    clear error that names it alone, and a read of many leaves it out with a warning, as it
    leaves out a quarantined task; the others, in Delta or in the hot tier, are read in the
    order asked. One such task failed every bulk read that included it."""
    from result_assets import ResultStore
    from result_assets.app.errors import ResultStoreError

    m = manager()
    m.save_result("tier_many_gone", small_document(strategy="gone", n=3))
    maintain(stores, compact=False, vacuum=False)  # in a file of its own flush
    kept = {f"tier_many_{i}": small_document(strategy=f"m{i}", n=2 + i) for i in range(2)}
    for task_id, document in kept.items():
        m.save_result(task_id, document)
    maintain(stores, compact=False, vacuum=False)
    kept["tier_many_hot"] = small_document(strategy="hot", n=2)
    m.save_result("tier_many_hot", kept["tier_many_hot"])
    path, _ = stores.catalog.task("tier_many_gone")["row_locations"][SIGNALS][0]
    where = os.path.join(stores.settings.store_root, SIGNALS, path)
    os.rename(where, where + ".moved")
    try:
        asked = ["tier_many_hot", "tier_many_gone", "tier_many_1", "tier_many_0"]
        fresh = ResultManager("postgres-only", record_in_dagster=False)  # no footer cached
        got = fresh.get_results(asked)
        assert got == kept and list(got) == ["tier_many_hot", "tier_many_1", "tier_many_0"]
        assert "tier_many_gone" in caplog.text and "left out" in caplog.text
        store = ResultStore.from_env()
        assert store.read_results(asked) == kept
        with pytest.raises(ResultStoreError, match="as published") as info:
            store.read_result("tier_many_gone")
        assert "tier_many_gone" in str(info.value) and "tier_many_0" not in str(info.value)
    finally:
        os.rename(where + ".moved", where)


def _with_curves(stores, task_id: str) -> dict:
    """A save with signals and curve points, flushed into Delta: a point read reads both tables' files."""
    document = sample_document(V2_TASK)
    document["performance_curve"] = [{"timestamp": f"2024-01-{d:02d} 09:00:00", "equity": 1000.0 + d}
                                     for d in range(1, 29)]
    manager().save_result(task_id, document)
    maintain(stores, compact=False, vacuum=False)
    row = stores.catalog.task(task_id)
    assert row["row_locations"][SIGNALS] and row["row_locations"][CURVES]
    return document


def test_a_point_read_decodes_the_curves_beside_the_signals(stores, monkeypatch):
    from result_assets.store import reader

    document = _with_curves(stores, "tier_beside")
    threads = {}
    read_rows = reader.read_rows

    def recording(stores_, table, rows):
        threads[table] = threading.current_thread().name
        return read_rows(stores_, table, rows)

    monkeypatch.setattr(reader, "read_rows", recording)
    fresh = ResultManager("postgres-only", record_in_dagster=False,
                          settings=Settings.from_env(read_cache_mb=0, serving_cache_mb=0))
    assert text(fresh.get_result("tier_beside")) == text(document)
    assert threads[SIGNALS] == threading.current_thread().name
    assert threads[CURVES].startswith("result-assets-read")
    fresh.close()


def test_a_vanished_curves_file_is_the_same_clear_error_from_the_reading_thread(stores):
    from result_assets.store.reader import TaskUnreadable

    _with_curves(stores, "tier_curves_gone")
    path, _ = stores.catalog.task("tier_curves_gone")["row_locations"][CURVES][0]
    where = os.path.join(stores.settings.store_root, CURVES, path)
    os.rename(where, where + ".moved")
    try:
        fresh = ResultManager("postgres-only", record_in_dagster=False)  # no footer cached
        with pytest.raises(Exception, match="as published") as info:
            fresh.get_result("tier_curves_gone")
        assert isinstance(info.value.__cause__, TaskUnreadable)
    finally:
        os.rename(where + ".moved", where)


def test_a_forked_child_reads_after_its_parent_did(stores):
    """The reading threads are the parent's: a child forked after a read starts its own
    (else its first read would wait for a thread that does not exist)."""
    document = _with_curves(stores, "tier_forked")
    settings = Settings.from_env(read_cache_mb=0, serving_cache_mb=0)
    parent = ResultManager("postgres-only", record_in_dagster=False, settings=settings)
    assert text(parent.get_result("tier_forked")) == text(document)
    parent.close()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: read, report, leave without running the parent's exit handlers
        code = 1
        try:
            child = ResultManager("postgres-only", record_in_dagster=False, settings=settings)
            code = 0 if text(child.get_result("tier_forked")) == text(document) else 2
        finally:
            os.write(write, bytes([code]))
            os._exit(code)
    os.close(write)
    ready, _, _ = select.select([read], [], [], 60)
    code = os.read(read, 1) if ready else b"timed out"
    if not ready:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(read)
    assert code == bytes([0]), f"the forked child did not read the task ({code!r})"


def test_rows_published_before_locations_get_them_and_survive_vacuum(stores):
    """A row without row_locations (published by an earlier release, read by time travel)
    is located by maintenance before anything is compacted or vacuumed."""
    m = manager()
    documents = {f"tier_old_{i}": small_document(strategy=f"o{i}", n=2 + i) for i in range(3)}
    for task_id, document in documents.items():
        m.save_result(task_id, document)
    maintain(stores, compact=False, vacuum=False)
    conn = stores.catalog.connect()
    with conn, conn.cursor() as cur:  # as an earlier release left them: versions, no locations
        cur.execute("UPDATE tasks SET row_locations = NULL WHERE task_id LIKE 'tier_old_%'")
    assert len(stores.catalog.unlocated_tasks()) >= 3
    assert_whole(stores, documents)  # still read, by time travel
    report = maintain(stores, retention_hours=0)
    assert report.located >= 3 and stores.catalog.unlocated_tasks() == {}
    assert_whole(stores, documents)


def test_a_row_whose_delta_version_is_gone_does_not_stop_maintenance(stores):
    """A row published before locations were recorded, at a Delta version whose log was cleaned
    up since: named unreadable, and maintenance goes on (it raised before the flush, every
    hour, and the hot tier grew) but for vacuum, held while such rows are left. Saving the
    task again heals it."""
    m = manager()
    m.save_result("tier_lost_old", small_document(strategy="lost", n=2))
    maintain(stores, compact=False, vacuum=False)
    conn = stores.catalog.connect()
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE tasks SET row_locations = NULL, signals_version = 999999 WHERE task_id = 'tier_lost_old'")
    saved = {"tier_after_lost": small_document(strategy="after", n=3)}
    m.save_result("tier_after_lost", saved["tier_after_lost"])
    report = maintain(stores, retention_hours=0)
    assert report.unreadable == ["tier_lost_old"] and "tier_after_lost" in report.flushed_task_ids
    # rows that name a version, not files: vacuum would take files such rows still read from
    assert report.vacuum_held and report.vacuumed_files == 0
    assert_whole(stores, saved)
    healed = {"tier_lost_old": small_document(strategy="lost again", n=2)}
    m.save_result("tier_lost_old", healed["tier_lost_old"])
    report = maintain(stores, retention_hours=0)
    assert report.unreadable == [] and report.vacuum_held is None and stores.catalog.unlocated_tasks() == {}
    assert_whole(stores, healed)


def test_a_task_saved_again_during_a_flush_does_not_end_the_flush_early(stores, monkeypatch):
    """A flush takes up the oldest hot tasks a batch at a time, leaving out one saved again
    since it listed them: the batch is short by that task, and the tasks after it still wait.
    Maintenance stopped there, and they stayed hot until the next hour."""
    from result_assets.store.catalog import Catalog

    m = manager()
    documents = {f"tier_flush_{i}": small_document(strategy=f"f{i}", n=2) for i in range(5)}
    for task_id, document in documents.items():
        m.save_result(task_id, document)
    still_hot, dropped = Catalog.still_hot, []

    def one_saved_again(self, hot):
        kept = still_hot(self, hot)
        if not dropped:  # the first batch: as if its first task had been saved again meanwhile
            dropped.append(kept.pop(0)["task_id"])
        return kept

    monkeypatch.setattr(Catalog, "still_hot", one_saved_again)
    report = maintain(stores, flush_batch=2, compact=False, vacuum=False)
    assert dropped and report.still_hot == 0 and set(documents) <= set(report.flushed_task_ids)
    assert_whole(stores, documents)


def test_a_hot_task_that_fails_the_flushs_proof_does_not_hold_back_the_others(stores, monkeypatch):
    """A hot task whose rows do not read back from Delta as they were saved stays hot, readable
    from there. It is the oldest, so each round of the flush took it up first: with a round of
    one task, nothing was moved and maintenance stopped, leaving every later save hot."""
    from result_assets.migration import engine

    m = manager()
    documents = {f"tier_stuck_{i}": small_document(strategy=f"s{i}", n=2) for i in range(4)}
    for task_id, document in documents.items():
        m.save_result(task_id, document)
    stuck = "tier_stuck_0"
    read_back = engine.read_back

    def not_as_saved(stores_, task_ids, *commits):
        located, stored = read_back(stores_, task_ids, *commits)
        if stuck in stored[SIGNALS]:
            stored[SIGNALS][stuck] = stored[SIGNALS][stuck].slice(0, 0)
        return located, stored

    monkeypatch.setattr(engine, "read_back", not_as_saved)
    report = maintain(stores, flush_batch=1, compact=False, vacuum=False)
    assert stuck not in report.flushed_task_ids
    assert set(documents) - {stuck} <= set(report.flushed_task_ids)
    assert {r["task_id"] for r in stores.catalog.hot_tasks(10**6)} & set(documents) == {stuck}
    assert_whole(stores, documents)
    monkeypatch.undo()  # the fault gone, the next maintenance moves it
    assert stuck in maintain(stores, flush_batch=1, compact=False, vacuum=False).flushed_task_ids
    assert_whole(stores, documents)


def test_a_task_saved_again_while_its_flush_round_commits_is_flushed_in_the_same_run(stores, monkeypatch):
    """Saved again after the round listed it (while its rows were committed and read back): it
    is not moved at the old version, and a later round of the same run moves its new save, also
    when the first round listed every hot task; it is not held back like a task whose rows did
    not read back."""
    from result_assets.store.catalog import Catalog

    m = manager()
    documents = {f"tier_again_{i}": small_document(strategy=f"a{i}", n=2) for i in range(4)}
    for task_id, document in documents.items():
        m.save_result(task_id, document)
    repoint, saved_again = Catalog.repoint, []

    def save_first_again(self, moves, expected_versions=None):
        if not saved_again:
            saved_again.append(m.save_result("tier_again_0", small_document(strategy="again", n=3)))
            documents["tier_again_0"] = small_document(strategy="again", n=3)
        return repoint(self, moves, expected_versions)

    monkeypatch.setattr(Catalog, "repoint", save_first_again)
    report = maintain(stores, compact=False, vacuum=False)  # one round lists them all
    assert saved_again and set(documents) <= set(report.flushed_task_ids)
    assert {r["task_id"] for r in stores.catalog.hot_tasks(10**6)} & set(documents) == set()
    assert_whole(stores, documents)


def test_an_application_that_keeps_saving_does_not_keep_the_flush_going(stores, monkeypatch):
    """A task saved again during every round (an application that keeps saving it): the flush
    takes it up again once, not round after round; the run ends and compaction gets its turn
    (the soak showed one maintenance run in five minutes)."""
    from result_assets.store.catalog import Catalog

    m = manager()
    m.save_result("tier_busy_0", small_document(strategy="b0", n=2))
    m.save_result("tier_busy_quiet", small_document(strategy="quiet", n=2))
    repoint, rounds = Catalog.repoint, flush_rounds(monkeypatch, most=10)

    def save_again(self, moves, expected_versions=None):
        m.save_result("tier_busy_0", small_document(strategy=f"b{len(rounds)}", n=2))
        m.save_result(f"tier_busy_{len(rounds)}", small_document(strategy="new", n=2))
        return repoint(self, moves, expected_versions)

    monkeypatch.setattr(Catalog, "repoint", save_again)
    maintain(stores, compact=False, vacuum=False)
    assert len(rounds) == 2  # the round, and one more for what was saved again meanwhile


def test_applications_saving_as_fast_as_the_flush_do_not_keep_it_going(stores, monkeypatch):
    """Each round moves a full batch and, meanwhile, the applications save a full batch of new
    tasks: the run takes up the backlog it found (and two rounds more), then compacts; before,
    it never ended. max_flush caps the tasks moved, not just the rounds started."""
    from result_assets.store.catalog import Catalog

    m = manager()
    for i in range(4):
        m.save_result(f"tier_pace_{i}", small_document(strategy="p", n=2))
    backlog = stores.catalog.hot_count()
    repoint, rounds = Catalog.repoint, flush_rounds(monkeypatch, most=20)

    def saving_as_fast(self, moves, expected_versions=None):
        for k in range(len(moves) + 1):
            m.save_result(f"tier_pace_{len(rounds)}_{k}", small_document(strategy="q", n=2))
        return repoint(self, moves, expected_versions)

    monkeypatch.setattr(Catalog, "repoint", saving_as_fast)
    maintain(stores, flush_batch=2, compact=False, vacuum=False)
    assert len(rounds) == -(-backlog // 2) + 2
    monkeypatch.undo()
    assert maintain(stores, flush_batch=2, max_flush=3, compact=False, vacuum=False).flushed == 3


def test_rows_that_never_read_back_stop_the_flush_and_leave_no_rows_behind(stores, monkeypatch):
    """When no task's rows read back (a fault of the store, not of a few tasks), the flush stops
    after two rounds that moved nothing, rather than writing every hot task to Delta round after
    round, and takes out the rows it wrote, as a batch does."""
    from result_assets.migration import engine

    m = manager()
    documents = {f"tier_never_{i}": small_document(strategy=f"n{i}", n=2) for i in range(4)}
    for task_id, document in documents.items():
        m.save_result(task_id, document)
    read_back, rounds = engine.read_back, flush_rounds(monkeypatch, most=20)

    def all_short(stores_, task_ids, *commits):
        located, stored = read_back(stores_, task_ids, *commits)
        return located, {table: {t: rows.slice(0, 0) for t, rows in by_task.items()}
                         for table, by_task in stored.items()}

    monkeypatch.setattr(engine, "read_back", all_short)
    report = maintain(stores, flush_batch=1, compact=False, vacuum=False)
    assert len(rounds) == 2 and not set(report.flushed_task_ids) & set(documents)
    assert not set(delta_row_counts(stores, SIGNALS)) & set(documents)
    assert_whole(stores, documents)
    monkeypatch.undo()
    assert set(documents) <= set(maintain(stores, compact=False, vacuum=False).flushed_task_ids)
    assert_whole(stores, documents)


def test_vacuum_never_deletes_a_file_a_catalog_row_names(stores):
    """Rows replaced in Delta by a write that was never published keep their published file."""
    from result_assets.store.delta_tables import SCHEMAS

    m = manager()
    document = small_document(strategy="published", n=5)
    m.save_result("tier_named", document)
    maintain(stores, retention_hours=0)
    named = stores.catalog.task("tier_named")["row_locations"][SIGNALS][0][0]
    # an unpublished write of the same task (a re-migration killed before its catalog commit)
    stores.delta.replace_tasks(SIGNALS, SCHEMAS[SIGNALS].empty_table(), ["tier_named"])
    maintain(stores, retention_hours=0)  # the file left the snapshot: Delta's vacuum alone would delete it
    assert named in {p for p, _ in stores.catalog.task("tier_named")["row_locations"][SIGNALS]}  # not re-pointed
    assert os.path.exists(os.path.join(stores.settings.store_root, SIGNALS, named))
    assert compare_documents(document, manager().get_result("tier_named")) == []


def test_one_maintenance_at_a_time(stores):
    from result_assets.migration.maintenance import MaintenanceBusy

    with stores.catalog.advisory_lock(7202) as held:
        assert held
        with pytest.raises(MaintenanceBusy):
            maintain(stores)
    maintain(stores, compact=False, vacuum=False)  # free again


def test_scans_see_hot_tasks_once_whichever_columns_are_asked(stores):
    from result_assets import ResultStore

    m = manager()
    m.save_result("tier_scan", small_document(strategy="scan", n=4))
    store = ResultStore.from_env()
    try:
        hot_pnl = store.signals(task_ids=["tier_scan"], columns=["pnl"])
        assert hot_pnl.column_names == ["pnl"] and hot_pnl.num_rows == 4
        m.save_result("tier_scan", small_document(strategy="scan", n=6))  # saved again, still hot
        assert store.signals(task_ids=["tier_scan"]).num_rows == 6
        maintain(stores, compact=False, vacuum=False)
        assert store.signals(task_ids=["tier_scan"], columns=["pnl"]).num_rows == 6
    finally:
        store.close()


def test_hot_rows_are_compressed_and_rows_saved_uncompressed_before_still_read(stores):
    """The hot tier writes LZ4-compressed Arrow streams (smaller INSERTs); a row written by
    an earlier release, uncompressed, reads back the same."""
    import pyarrow as pa

    from result_assets.legacy.schema import CURVE_SCHEMA, SIGNAL_SCHEMA
    from result_assets.store import hot_rows

    m = manager()
    document = sample_document(V2_TASK)
    m.save_result("tier_lz4", document)
    row = stores.catalog.tasks(["tier_lz4"])["tier_lz4"]
    signals = hot_rows.decode(row["hot_signals"], SIGNAL_SCHEMA)
    curves = hot_rows.decode(row["hot_curves"], CURVE_SCHEMA)

    def plain(table: pa.Table) -> bytes:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()

    old_signals, old_curves = plain(signals), plain(curves)
    assert len(row["hot_signals"]) + len(row["hot_curves"]) < 0.8 * (len(old_signals) + len(old_curves))
    conn = stores.catalog.connect()
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE hot_rows SET signals = %s, curves = %s WHERE task_id = 'tier_lz4'",
                    (old_signals, old_curves))
    reader = manager()
    assert compare_documents(document, reader.get_result("tier_lz4")) == []
    assert hot_rows.decode(old_signals, SIGNAL_SCHEMA).equals(signals)
