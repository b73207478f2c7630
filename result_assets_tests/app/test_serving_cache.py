"""The serving cache (store/serving_cache.py): the files of recent saves and reads, shared by every
process, served only when they hash to the published version's SHA-256, within their bound,
and never to a bulk read."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time

import psycopg2
import pyarrow as pa
import pytest

from result_assets import ResultManager
from result_assets.assets.report import maintenance_markdown
from result_assets.legacy import dumps_document, exact, parse_document
from result_assets.migration.engine import run_batch
from result_assets.migration.maintenance import maintain
from result_assets.migration.sources import stat_legacy_file
from result_assets.settings import Settings
from result_assets.store import reader, serving_cache
from result_assets.store.catalog import Catalog
from result_assets.store.serving_cache import LARGEST_SHARE, ServingCache
from result_assets.store.stores import Stores
from result_assets_tests.app.helpers import SAMPLES, V1_TASK, V2_TASK, sample_document, small_document, text


@pytest.fixture(scope="module")
def serving_on(project_home):
    with pytest.MonkeyPatch.context() as env:  # the suite runs with it off (conftest.py)
        env.setenv("RESULT_SERVING_CACHE_MB", "64")
        yield


def manager(**settings) -> ResultManager:
    return ResultManager("postgres-only", record_in_dagster=False, settings=Settings.from_env(**settings))


def entries(m: ResultManager) -> dict[str, tuple[str, int]]:
    m.stores.serving_cache.settle()  # saves and reads fill it on a thread of their own
    conn = m.stores.catalog.connect()
    with conn, conn.cursor() as cur:
        cur.execute("SELECT task_id, source_sha256, file_bytes FROM served_files")
        return {t: (sha, size) for t, sha, size in cur.fetchall()}


def tables_unread(*args, **kwargs):
    """Put in place of reader.read_rows: a read that still answers was served by the cache."""
    raise AssertionError("the tables were read")


def test_a_saved_file_is_served_to_the_next_first_read_exactly(serving_on, monkeypatch):
    saver, other = manager(), manager()
    document = sample_document(V2_TASK)
    saver.save_result("serve_a", document)
    sha = saver.stores.catalog.task("serve_a")["source_sha256"]
    saved = dumps_document(document).encode()
    assert entries(saver)["serve_a"] == (sha, len(saved))
    from_rows = text(manager(serving_cache_mb=0).get_result("serve_a"))
    monkeypatch.setattr(reader, "read_rows", tables_unread)
    served = other.get_result("serve_a")  # another manager: its own connection, nothing cached in it
    assert text(served) == text(parse_document(saved)) == from_rows
    assert reader.file_bytes(other.stores, ["serve_a"]) == {"serve_a": saved}
    saver.close(), other.close()


def test_an_entry_that_is_not_the_published_file_is_never_served(serving_on):
    m = manager()
    m.save_result("serve_b", small_document(strategy="published"))
    m.stores.serving_cache.settle()
    forged = pa.Codec("zstd", compression_level=1).compress(dumps_document(small_document(strategy="forged")).encode(),
                                                            asbytes=True)
    conn = m.stores.catalog.connect()
    with conn, conn.cursor() as cur:  # same hash column, other bytes: damaged or forged
        cur.execute("UPDATE served_files SET body = %s, file_bytes = %s WHERE task_id = 'serve_b'",
                    (psycopg2.Binary(forged), len(dumps_document(small_document(strategy="forged")))))
    assert m.get_result("serve_b")["strategy"] == "published"
    with conn, conn.cursor() as cur:  # not even zstd
        cur.execute("UPDATE served_files SET body = %s WHERE task_id = 'serve_b'", (psycopg2.Binary(b"\x00" * 64),))
    assert m.get_result("serve_b")["strategy"] == "published"
    # The miss filled it again with the file written from the rows, proven by its hash.
    m.stores.serving_cache.settle()
    assert reader.served_file(m.stores.catalog.tasks(["serve_b"], served=True)["serve_b"]) == \
        dumps_document(small_document(strategy="published")).encode()
    with conn, conn.cursor() as cur:  # a forged size: the decompression reserved it (MemoryError)
        cur.execute("UPDATE served_files SET file_bytes = %s WHERE task_id = 'serve_b'", (2 ** 62,))
    assert m.get_result("serve_b")["strategy"] == "published"
    m.close()


def test_a_served_save_comes_without_its_hot_rows_until_its_entry_fails(serving_on):
    """A point read's query leaves out the hot rows of a task whose file the serving cache
    holds (the file is read instead); when that entry does not give the published file, the
    rows are asked for again and the document is read whole from them."""
    m = manager()
    saved = sample_document(V2_TASK)
    m.save_result("serve_hot", saved)
    m.stores.serving_cache.settle()
    row = reader.catalog_rows(m.stores, ["serve_hot"])["serve_hot"]
    assert row["served_body"] is not None and row["hot_signals"] is None and row["hot_left_out"]
    conn = m.stores.catalog.connect()
    with conn, conn.cursor() as cur:  # not the file: a damaged entry
        cur.execute("UPDATE served_files SET body = %s WHERE task_id = 'serve_hot'", (psycopg2.Binary(b"\x00" * 64),))
    assert text(m.get_result("serve_hot")) == text(saved)
    m.close()


def test_a_newer_version_is_read_never_an_older_entry(serving_on):
    m = manager()
    m.save_result("serve_c", small_document(strategy="first"))
    assert m.get_result("serve_c")["strategy"] == "first"
    first_sha = entries(m)["serve_c"][0]
    # Another process saves a new version and does not fill the cache: the entry is the old file.
    new = small_document(strategy="second", n=5)
    subprocess.run([sys.executable, "-c",
                    "import json, sys; from result_assets import ResultManager; "
                    "ResultManager('postgres-only', record_in_dagster=False)"
                    ".save_result('serve_c', json.loads(sys.argv[1]))", json.dumps(new)],
                   env={**os.environ, "RESULT_SERVING_CACHE_MB": "0"}, check=True, capture_output=True)
    assert entries(m)["serve_c"][0] == first_sha
    got = m.get_result("serve_c")
    assert text(got) == text(parse_document(dumps_document(new).encode()))
    assert entries(m)["serve_c"][0] == m.stores.catalog.task("serve_c")["source_sha256"] != first_sha
    m.close()


@pytest.mark.parametrize("backup", ["kept", "gone"])
def test_a_migrated_file_read_once_is_served_byte_for_byte(serving_on, tmp_path, monkeypatch, backup):
    """The fill reads the file's JSON backup where there is one, and writes it from the rows where not."""
    m = manager()
    raw = (SAMPLES / V1_TASK / "result.json").read_bytes()
    (tmp_path / V1_TASK).mkdir()
    (tmp_path / V1_TASK / "result.json").write_bytes(raw)
    run_batch(m.stores, [stat_legacy_file(tmp_path, V1_TASK)])
    m.stores.serving_cache.forget([V1_TASK])  # another parameter's run filled it
    if backup == "gone":
        m.stores.backups.path(V1_TASK).unlink()
    assert m.stores.backups.read_version(V1_TASK, m.stores.catalog.task(V1_TASK)["source_sha256"]) == \
        (raw if backup == "kept" else None)
    assert V1_TASK not in entries(m)  # a migration does not fill it
    first = m.get_result(V1_TASK)  # from the tables; the miss fills it
    assert entries(m)[V1_TASK][1] == len(raw)
    monkeypatch.setattr(reader, "read_rows", tables_unread)
    again = manager().get_result(V1_TASK)
    assert text(again) == text(first) == text(parse_document(raw))
    assert reader.file_bytes(m.stores, [V1_TASK]) == {V1_TASK: raw}
    m.close()




def test_archive_proves_each_file_from_the_rows_never_from_the_cache(serving_on, tmp_path):
    """A read fills the cache from the JSON backup; the archive must still find that the store's
    rows cannot write this file (its spelling lost, as for a task migrated before spellings
    were kept) and keep the JSON, not take the cached copy as the proof."""
    from result_assets.cli.archive import archive_tasks

    task = "serve_archive_v1"
    (tmp_path / "src" / task).mkdir(parents=True)
    source = tmp_path / "src" / task / "result.json"
    source.write_bytes((SAMPLES / V1_TASK / "result.json").read_bytes())
    m = manager()
    run_batch(m.stores, [stat_legacy_file(tmp_path / "src", task)])
    conn = m.stores.catalog.connect()
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE tasks SET spelling = NULL, exact_text = NULL WHERE task_id = %s", (task,))
    m.get_result(task)  # the miss fills the cache from the backup
    assert entries(m)[task][1] == len(source.read_bytes())
    report = archive_tasks(Settings.from_env(source_dir=str(tmp_path / "src")), tmp_path / "archives", only={task})
    assert report.verified == 0 and "byte for byte" in report.skipped[task] and source.exists()
    m.close()


@pytest.mark.parametrize("total_return", [1.5, float("nan"), float("-inf")])
def test_a_saved_file_a_read_fills_again_is_the_saved_file(serving_on, monkeypatch, total_return):
    """The fill writes a saved document again as dumps_document did (orjson's text, with bare
    NaN and infinities put back where there are any) and keeps it only when it hashes to the file."""
    m = manager()
    document = small_document(strategy="refilled", total_return=total_return, n=7)
    m.save_result("serve_f", document)
    saved = dumps_document(document).encode()
    m.stores.serving_cache.forget(["serve_f"])
    first = m.get_result("serve_f")  # from the tables; the miss fills it
    assert entries(m)["serve_f"] == (m.stores.catalog.task("serve_f")["source_sha256"], len(saved))
    monkeypatch.setattr(reader, "read_rows", tables_unread)
    assert reader.file_bytes(m.stores, ["serve_f"]) == {"serve_f": saved}
    assert text(manager().get_result("serve_f")) == text(first) == text(parse_document(saved))
    # and from the rows: orjson's text (the proof's writer), a non-finite metric written bare
    monkeypatch.undo()
    m.stores.serving_cache.forget(["serve_f"])
    assert reader.file_bytes(m.stores, ["serve_f"]) == {"serve_f": saved}
    assert exact.Spelling.from_json(m.stores.catalog.task("serve_f")["spelling"]).by_orjson
    m.close()


def test_a_reads_late_fill_never_replaces_the_entry_of_a_save_published_meanwhile(serving_on, monkeypatch):
    """A read's fill waits for its burst to pause; a save published meanwhile (in another
    process: its fill lands at once) must keep its entry. Before, the read's older file
    replaced it: never served (its hash is not the published one), but every process's first
    read of the save missed."""
    m = manager()
    m.save_result("serve_late", small_document(strategy="first", n=3))
    m.stores.serving_cache.forget(["serve_late"])
    burst_over = threading.Event()  # the read's fill waits for this, not for a length of time
    monkeypatch.setattr(serving_cache._Filler, "_wait_for_quiet", lambda self: burst_over.wait(30))
    reader_ = manager()
    assert reader_.get_result("serve_late")["strategy"] == "first"  # a miss: its fill is queued
    manager(serving_cache_mb=0).save_result("serve_late", small_document(strategy="second", n=4))
    published = m.stores.catalog.task("serve_late")["source_sha256"]
    other_process = ServingCache(Catalog(m.stores.catalog.url), m.stores.serving_cache.max_bytes)
    assert other_process.fill({"serve_late": (published, m.stores.backups.read("serve_late"), None)}) == 1
    assert other_process.fill({"serve_late": ("0" * 64, b"{}", None)}) == 0  # not published: not kept
    burst_over.set()
    assert entries(m)["serve_late"][0] == published  # after the read's fill landed (entries settles)
    other_process.catalog.close()
    m.close()
    reader_.close()


def test_a_bulk_read_neither_takes_from_it_nor_fills_it(serving_on):
    m = manager()
    ids = [f"serve_bulk_{i:02d}" for i in range(20)]
    for i, task_id in enumerate(ids):
        m.save_result(task_id, small_document(strategy=f"s{i}"))
    m.stores.serving_cache.forget(ids)
    got = m.get_results(ids)
    assert [got[t]["strategy"] for t in ids] == [f"s{i}" for i in range(20)]
    assert not set(ids) & set(entries(m))
    m.close()


def test_a_dual_write_bulk_read_fills_neither_cache(serving_on, tmp_path):
    """dual-write's get_results reads one task at a time (each against its JSON), as a scan."""
    m = ResultManager("dual-write", source_dir=tmp_path, record_in_dagster=False,
                      settings=Settings.from_env(read_cache_mb=64))
    ids = [f"serve_dual_{i:02d}" for i in range(20)]
    for i, task_id in enumerate(ids):
        m.save_result(task_id, small_document(strategy=f"d{i}"))
    assert set(ids) <= set(entries(m))  # a dual-write save fills it
    m.stores.serving_cache.forget(ids)
    got = m.get_results(ids)
    assert [got[t]["strategy"] for t in ids] == [f"d{i}" for i in range(20)]
    assert not set(ids) & set(entries(m)) and m.stores.read_cache.stats().entries == 0
    assert m.get_result(ids[0])["strategy"] == "d0"  # a point read fills both
    assert ids[0] in entries(m) and m.stores.read_cache.stats().entries == 1
    m.close()


def test_it_keeps_its_bound_the_oldest_fills_out_first(serving_on, monkeypatch):
    monkeypatch.setattr(serving_cache, "TRIM_EVERY", 1)  # every fill trims
    m = manager()
    files = {f"serve_bound_{i}": dumps_document(small_document(strategy=f"s{i}", n=30)).encode() for i in range(10)}
    one = max(len(pa.Codec("zstd", compression_level=1).compress(raw, asbytes=True)) for raw in files.values())
    cache = ServingCache(m.stores.catalog, max_bytes=one * 8 + one // 2)  # eight fit
    cache.forget(list(entries(m)))
    too_big = ServingCache(m.stores.catalog, max_bytes=one * LARGEST_SHARE - LARGEST_SHARE)
    over_its_share = {"serve_bound_0": ("x", files["serve_bound_0"], True)}
    assert too_big.fill(over_its_share, published_only=False) == 0  # not kept
    for task_id, raw in files.items():  # one at a time: each a later fill
        cache.fill({task_id: ("sha-" + task_id, raw, True)}, published_only=False)
    assert len(entries(m)) == 8  # trimmed by the tenth fill itself
    stats = cache.trim()
    assert stats.stored_bytes <= cache.max_bytes and stats.entries == 8 and stats.evicted == 0
    assert sorted(entries(m)) == [f"serve_bound_{i}" for i in range(2, 10)]  # the newest eight
    m.close()


def test_many_short_lived_processes_keep_the_bound_together(serving_on, monkeypatch):
    """A fill trims by chance, not by a count kept per process: forty caches (as forty
    managers made per request would be) filling once each still trim it."""
    monkeypatch.setattr(serving_cache, "TRIM_EVERY", 4)
    monkeypatch.setattr(serving_cache, "_chance", random.Random(7))
    m = manager()
    files = {f"serve_many_{i:02d}": dumps_document(small_document(strategy=f"m{i}", n=30)).encode() for i in range(40)}
    one = max(len(pa.Codec("zstd", compression_level=1).compress(raw, asbytes=True)) for raw in files.values())
    ServingCache(m.stores.catalog, max_bytes=1).forget(list(entries(m)))
    for task_id, raw in files.items():
        ServingCache(m.stores.catalog, max_bytes=one * 8 + one // 2).fill({task_id: ("sha-" + task_id, raw, True)},
                                                                   published_only=False)
    assert 8 <= len(entries(m)) < 8 + 4 * 4  # a count per process never trimmed: all 40 stayed
    m.close()


def test_a_trim_never_deadlocks_with_fills_of_several_tasks(serving_on, monkeypatch):
    """A fill upserts several rows in one transaction; maintenance's trim used to delete rows in
    its scan's order and deadlock with it (3 of 3 tries within seconds), failing the run."""
    monkeypatch.setattr(serving_cache, "TRIM_EVERY", 10 ** 9)  # only the maintenance-style trims below
    m = manager()
    url, ids, errors = m.stores.catalog.url, [f"serve_race_{i:02d}" for i in range(40)], []
    stop = time.monotonic() + 8

    def filler(seed: int) -> None:
        pick, cache = random.Random(seed), ServingCache(Catalog(url), 64 << 20)
        while time.monotonic() < stop and not errors:
            cache.fill({t: ("0" * 64, os.urandom(200), True) for t in pick.sample(ids, pick.randint(2, 16))},
                       published_only=False)

    def trimmer() -> None:
        cache = ServingCache(Catalog(url), 64 << 20)
        while time.monotonic() < stop and not errors:
            try:
                cache.trim(drop_superseded=True)  # as maintain() trims
            except psycopg2.Error as exc:
                errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")

    threads = [threading.Thread(target=filler, args=(seed,)) for seed in range(2)] + [threading.Thread(target=trimmer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    m.close()


def test_a_trim_is_not_held_up_by_the_store_write_lock(serving_on, monkeypatch):
    """Its advisory lock is its own: a Delta batch between its commit and its publication (the
    store write lock, shared) does not stop the cache from holding its bound."""
    monkeypatch.setattr(serving_cache, "TRIM_EVERY", 10 ** 9)  # no fill trims by chance: the trim below evicts
    m = manager()
    files = {f"serve_lock_{i}": dumps_document(small_document(strategy=f"l{i}", n=30)).encode() for i in range(10)}
    one = max(len(pa.Codec("zstd", compression_level=1).compress(raw, asbytes=True)) for raw in files.values())
    cache = ServingCache(m.stores.catalog, max_bytes=one * 8 + one // 2)
    cache.forget(list(entries(m)))
    for task_id, raw in files.items():
        cache.fill({task_id: ("sha-" + task_id, raw, True)}, published_only=False)
    with m.stores.catalog.store_write_lock(exclusive=False):
        assert cache.trim().evicted == 2
    m.close()


def test_maintenance_drops_entries_no_published_version_names_and_reports_the_cache(serving_on):
    m = manager()
    m.save_result("serve_d", small_document(strategy="kept"))
    m.stores.serving_cache.fill({"serve_gone": ("0" * 64, b'{"strategy": "never published"}', None)},
                                published_only=False)
    assert {"serve_d", "serve_gone"} <= set(entries(m))
    report = maintain(m.stores)
    assert "serve_gone" not in entries(m) and "serve_d" in entries(m)
    assert report.serving_cache["entries"] == len(entries(m)) and report.serving_cache["evicted"] >= 1
    assert report.serving_cache["max_bytes"] == 64 << 20
    assert "Serving cache:" in maintenance_markdown(report)
    # Turned off (0), its entries are dropped by the next maintenance: no read asks for them.
    off = manager(serving_cache_mb=0)
    report = maintain(off.stores)
    assert entries(m) == {} and report.serving_cache["entries"] == 0
    assert "Serving cache:" in maintenance_markdown(report)
    assert m.get_result("serve_d")["strategy"] == "kept"
    m.close(), off.close()


def test_fills_land_behind_the_caller_in_order_and_one_past_the_bound_is_dropped(serving_on):
    m = manager()
    cache = m.stores.serving_cache
    filler = serving_cache._filler(m.stores.catalog.url)
    gate = threading.Event()
    cache.fill_later(lambda: gate.wait(30) and {})  # holds the filler thread until set
    deadline = time.monotonic() + 30
    while filler.pending.qsize() and time.monotonic() < deadline:
        time.sleep(0.01)
    ids = [f"serve_queued_{i:02d}" for i in range(serving_cache.PENDING_FILLS + 1)]
    for task_id in ids:
        cache.fill_later(lambda t=task_id: {t: ("sha-" + t, t.encode(), True)}, published_only=False)
    conn = m.stores.catalog.connect()
    with conn, conn.cursor() as cur:  # nothing landed yet: the caller did not wait for it
        cur.execute("SELECT count(*) FROM served_files WHERE task_id LIKE 'serve_queued_%%'")
        assert cur.fetchone()[0] == 0
    cache.fill_later(lambda: {ids[0]: ("sha-newer", b"newer", True)}, published_only=False)  # past the bound: dropped
    gate.set()
    held = entries(m)
    assert [t for t in ids if t in held] == ids[:-1]  # the one past the bound dropped, never raised
    assert held[ids[0]][0] == "sha-" + ids[0]
    cache.fill_later(lambda: {ids[0]: ("sha-newer", b"newer", True)}, published_only=False)
    assert entries(m)[ids[0]][0] == "sha-newer"  # in the order queued: a later fill replaces
    cache.forget(ids)
    m.close()


def test_a_reads_fill_waits_for_the_burst_to_end_a_saves_goes_at_once(serving_on, monkeypatch):
    """A read's fill shares the cores and the GIL with the reads queueing fills: it starts once
    none was queued for QUIET_SECONDS, or FILL_DELAY_MAX after it was taken up, whichever is
    first. A save's fill (its bytes in hand) does not wait: other processes are served it."""
    m = manager()
    cache = m.stores.serving_cache
    started: list[float] = []

    def burst(quiet: float, delay_max: float, pause: float, after_burst: bool = True) -> tuple[float, float]:
        monkeypatch.setattr(serving_cache, "QUIET_SECONDS", quiet)
        monkeypatch.setattr(serving_cache, "FILL_DELAY_MAX", delay_max)
        started.clear()
        first = last = time.monotonic()
        for _ in range(3):  # a burst: each "read" queues a fill
            last = time.monotonic()  # at most the time the fill is queued at
            cache.fill_later(lambda: started.append(time.monotonic()) or {}, after_burst=after_burst)
            time.sleep(pause)
        cache.settle()
        return first, last

    first, last = burst(quiet=0.5, delay_max=30, pause=0.05)
    assert len(started) == 3 and started[0] >= last + 0.5  # nothing ran during the burst
    first, last = burst(quiet=30, delay_max=0.3, pause=0)
    assert len(started) == 3 and started[0] - first < 10  # bounded: not the 30 s of quiet
    first, last = burst(quiet=30, delay_max=30, pause=0, after_burst=False)
    assert len(started) == 3 and started[-1] - first < 10  # a save's fills: no wait at all
    m.close()


def test_a_forked_child_fills_on_a_filler_of_its_own(serving_on):
    """Threads do not survive a fork: a child (a worker forked by a web server) that found its
    parent's filler would queue fills nobody takes, and one forked while another thread held
    the fillers' lock would wait on it for ever."""
    m = manager()
    cache, url = m.stores.serving_cache, m.stores.catalog.url
    # the parent's filler runs
    cache.fill_later(lambda: {"serve_parent": ("sha-parent", b"parent", True)}, published_only=False)
    cache.settle()
    held, release = threading.Event(), threading.Event()

    def starting_a_filler():  # another thread inside _filler at the moment of the fork
        with serving_cache._fillers_lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=starting_a_filler)
    holder.start()
    held.wait(30)
    pid = os.fork()
    if pid == 0:  # the child: its own connections only, and out by os._exit
        code = 2
        try:
            child = ServingCache(Catalog(url), cache.max_bytes)
            queued = threading.Thread(target=child.fill_later,
                                      args=(lambda: {"serve_child": ("sha-child", b"c", True)},),
                                      kwargs={"published_only": False}, daemon=True)
            queued.start()
            queued.join(10)
            for _ in range(500 if not queued.is_alive() else 0):  # up to 10 s for the fill to land
                if "serve_child" in _served(url):
                    code = 0
                    break
                time.sleep(0.02)
        finally:
            os._exit(code)
    release.set()
    holder.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # the child's fill landed
    assert {"serve_parent", "serve_child"} <= set(entries(m))
    cache.forget(["serve_parent", "serve_child"])
    m.close()


def test_forked_children_draw_their_own_trim_chances(serving_on):
    """Children forked from one parent (a preforking web server) drew the same trim chances: when
    those said no, none of them trimmed, and the bound held only at the next maintenance."""
    draws = []
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.write(write, repr(serving_cache._chance.random()).encode())
            finally:
                os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        draws.append(os.read(read, 64))
        os.close(read)
    assert draws[0] != draws[1]


def test_a_fill_that_cannot_start_its_thread_fails_neither_the_save_nor_the_read(serving_on, monkeypatch):
    """fill_later never raises: with no thread to be had (a container's process limit), a save
    that was published raised to the application, and a read that missed failed."""
    class NoThread:
        def __init__(self, url):
            raise RuntimeError("can't start new thread")

    monkeypatch.setattr(serving_cache, "_Filler", NoThread)
    monkeypatch.setattr(serving_cache, "_fillers", {})
    m = manager()
    assert m.save_result("serve_no_thread", small_document(strategy="saved", n=3)).stored == "migrated"
    m.stores.serving_cache.forget(["serve_no_thread"])
    assert manager().get_result("serve_no_thread")["strategy"] == "saved"
    m.close()


def _served(url: str) -> set[str]:
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT task_id FROM served_files")
            return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


def test_a_reader_that_may_not_write_reads_and_fills_nothing(serving_on):
    m = manager()
    m.save_result("serve_e", small_document(strategy="read only"))
    m.stores.serving_cache.forget(["serve_e"])
    readonly = Stores(m.settings, readonly=True)
    assert reader.read_result("serve_e", readonly)["strategy"] == "read only"
    assert "serve_e" not in entries(m)
    m.close()


def test_zero_turns_it_off_and_a_bad_value_is_one_line(project_home):
    assert Settings.from_env({}).serving_cache_mb == 512
    off = ServingCache(None, Settings.from_env({"RESULT_SERVING_CACHE_MB": "0"}).serving_cache_mb << 20)
    assert not off.enabled and off.fill({"t": ("x", b"{}", None)}) == 0
    env = {**os.environ, "RESULT_SERVING_CACHE_MB": "-1"}
    done = subprocess.run([sys.executable, "-m", "result_assets.cli", "status"], env=env,
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "result-assets: error: RESULT_SERVING_CACHE_MB must be a whole number (0: off), not '-1'"]


def test_a_backup_is_read_by_the_version_asked_for(tmp_path):
    from result_assets.store.backups import BackupStore, sha256_hex

    backups = BackupStore(tmp_path)
    backups.save("t", b'{"v": 1}')
    backups.save("t", b'{"v": 2}')  # the first moves to previous/
    assert backups.read_version("t", sha256_hex(b'{"v": 1}')) == b'{"v": 1}'
    assert backups.read_version("t", sha256_hex(b'{"v": 2}')) == b'{"v": 2}'
    assert backups.read_version("t", sha256_hex(b'{"v": 3}')) is None
    assert backups.read_version("never saved", sha256_hex(b'{"v": 1}')) is None


def test_a_file_a_rebuild_reads_faster_is_not_kept(serving_on):
    """A 29 MB save served from the cache took 1.5-2x its rebuild from the rows (its text parsed
    again): files over LARGEST_FILE are left to the rebuild, whatever the bound."""
    m = manager()
    cache = ServingCache(m.stores.catalog, max_bytes=1 << 40)
    large = b" " * serving_cache.LARGEST_FILE + b"{}"
    assert cache.fill({"serve_large": ("x", large, True)}, published_only=False) == 0
    assert cache.fill({"serve_large": ("x", large[2:], True)}, published_only=False) == 1  # at the size: kept
    cache.forget(["serve_large"])
    m.close()
