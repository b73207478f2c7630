"""The read cache (store/read_cache.py): a repeat read is served from it as a fresh copy, never
a version the catalog no longer names (a save by another process, a new version here), it
outlives maintenance, stays within its bound, and bulk reads do not fill it."""
from __future__ import annotations

import json
import os
import marshal
import math
import subprocess
import sys

import pytest

from result_assets import ResultManager
from result_assets.migration.maintenance import maintain
from result_assets.settings import Settings
from result_assets.store.read_cache import LARGEST_SHARE, ReadCache
from result_assets_tests.app.helpers import V2_TASK, sample_document, small_document, text


@pytest.fixture(scope="module")
def cache_on(project_home):
    with pytest.MonkeyPatch.context() as env:  # the suite runs with it off (conftest.py)
        env.setenv("RESULT_READ_CACHE_MB", "64")
        yield


def manager(**settings) -> ResultManager:
    return ResultManager("postgres-only", record_in_dagster=False,
                         settings=Settings.from_env(**settings) if settings else None)


def uncached(task_id: str) -> dict:
    m = manager(read_cache_mb=0)
    try:
        return m.get_result(task_id)
    finally:
        m.close()


def test_a_repeat_read_comes_from_the_cache_as_a_fresh_copy(cache_on):
    m = manager()
    m.save_result("cache_a", sample_document(V2_TASK))
    first = m.get_result("cache_a")
    before = m.stores.read_cache.stats()
    first["strategy"] = "changed by the caller"
    first["symbols"][0]["signals"].clear()
    second = m.get_result("cache_a")
    after = m.stores.read_cache.stats()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)
    assert text(second) == text(uncached("cache_a")) != text(first)
    assert second is not m.get_result("cache_a")
    m.close()


def test_managers_of_one_process_share_one_cache_within_one_bound(cache_on):
    """RESULT_READ_CACHE_MB bounds the process, as documented: a manager made per request finds
    what the one before read. Each manager had a cache of its own: N managers held N bounds,
    and a manager per request never hit."""
    first = manager()
    first.save_result("cache_shared", sample_document(V2_TASK))
    first.get_result("cache_shared")
    first.close()
    second = manager()
    before = second.stores.read_cache.stats()
    assert text(second.get_result("cache_shared")) == text(uncached("cache_shared"))
    assert second.stores.read_cache.stats().hits == before.hits + 1
    assert second.stores.read_cache is manager().stores.read_cache
    second.close()


def test_a_save_by_another_process_is_read_never_the_cached_version(cache_on, tmp_path):
    m = manager()
    m.save_result("cache_b", small_document(strategy="first"))
    assert m.get_result("cache_b")["strategy"] == "first"
    assert m.get_result("cache_b")["strategy"] == "first"  # now cached
    new = tmp_path / "new.json"
    new.write_text(json.dumps(small_document(strategy="second", n=5)))
    subprocess.run([sys.executable, "-c",
                    "import json, sys; from result_assets import ResultManager; "
                    "ResultManager('postgres-only', record_in_dagster=False)"
                    ".save_result('cache_b', json.load(open(sys.argv[1])))", str(new)],
                   env=os.environ.copy(), check=True, capture_output=True)
    got = m.get_result("cache_b")
    assert got["strategy"] == "second" and len(got["symbols"][0]["signals"]) == 5
    assert text(got) == text(uncached("cache_b"))
    m.save_result("cache_b", small_document(strategy="third"))  # and a save of its own
    assert m.get_result("cache_b")["strategy"] == "third"
    m.close()


def test_cached_documents_outlive_maintenance_unchanged(cache_on):
    m = manager()
    m.save_result("cache_c", sample_document(V2_TASK))
    assert m.stores.catalog.tasks(["cache_c"])["cache_c"]["hot_signals"] is not None
    before_text = text(m.get_result("cache_c"))  # read from the hot tier, cached
    maintain(m.stores)
    assert m.stores.catalog.tasks(["cache_c"])["cache_c"]["hot_signals"] is None  # now in Delta
    hits = m.stores.read_cache.stats().hits
    assert text(m.get_result("cache_c")) == before_text == text(uncached("cache_c"))
    assert m.stores.read_cache.stats().hits == hits + 1
    m.close()


def test_a_bulk_read_takes_from_the_cache_but_does_not_fill_it(cache_on):
    m = manager()
    ids = [f"cache_bulk_{i:02d}" for i in range(20)]
    for i, task_id in enumerate(ids):
        m.save_result(task_id, small_document(strategy=f"s{i}"))
    m.get_result(ids[0])
    entries = m.stores.read_cache.stats().entries
    got = m.get_results(ids)
    assert [got[t]["strategy"] for t in ids] == [f"s{i}" for i in range(20)]
    assert m.stores.read_cache.stats().entries == entries  # 20 tasks: a scan, not kept
    m.close()


def test_the_cache_stays_within_its_bound_least_recently_used_out_first():
    documents = {f"t{i}": small_document(strategy=f"s{i}", n=40) for i in range(10)}
    one = max(len(marshal.dumps(d)) for d in documents.values())
    too_small = ReadCache(max_bytes=one * LARGEST_SHARE - LARGEST_SHARE)  # an entry over its share
    too_small.put(("t0", 1), documents["t0"])
    assert too_small.stats().entries == 0
    cache = ReadCache(max_bytes=one * 8 + one // 2)  # eight fit
    for i in range(8):
        cache.put((f"t{i}", 1), documents[f"t{i}"])
    assert cache.stats().entries == 8 and cache.stats().evictions == 0
    assert cache.get(("t0", 1))["strategy"] == "s0"  # t0 used last: t1 is now the oldest
    cache.put(("t8", 1), documents["t8"])
    cache.put(("t9", 1), documents["t9"])
    stats = cache.stats()
    assert (stats.entries, stats.evictions) == (8, 2) and stats.bytes <= cache.max_bytes
    assert cache.get(("t1", 1)) is None and cache.get(("t2", 1)) is None
    assert cache.get(("t0", 1))["strategy"] == "s0"
    assert cache.get(("t0", 2)) is None  # another version of t0: a miss
    cache.put(("t0", 2), documents["t3"])  # replaces t0's old version
    assert cache.stats().entries == 8 and cache.get(("t0", 1)) is None
    assert cache.get(("t0", 2))["strategy"] == "s3"


def test_a_cached_document_keeps_what_json_keeps_and_one_it_cannot_hold_is_not_kept():
    """NaN, -0.0, an int past 64 bits, int against float and key order come back as they went
    in; a document nested past what the cache writes is simply not kept."""
    document = {"z": [math.nan, -0.0, 10**30, 1, 1.0, True, None], "a": {"é": "\u2028", "b": [{}]}}
    cache = ReadCache(max_bytes=1 << 20)
    cache.put(("t", 1), document)
    got = cache.get(("t", 1))
    assert json.dumps(got) == json.dumps(document) and list(got) == ["z", "a"]
    assert [type(v) for v in got["z"]] == [float, float, int, int, float, bool, type(None)]
    assert math.copysign(1, got["z"][1]) == -1 and got is not cache.get(("t", 1))
    deep: list = []
    for _ in range(3000):
        deep = [deep]
    cache.put(("deep", 1), {"nested": deep})
    assert cache.get(("deep", 1)) is None and cache.stats().entries == 1


def test_zero_turns_it_off_and_a_bad_value_is_one_line(project_home):
    assert not ReadCache(Settings.from_env({"RESULT_READ_CACHE_MB": "0"}).read_cache_mb << 20).enabled
    assert Settings.from_env({}).read_cache_mb == 64
    env = {**os.environ, "RESULT_READ_CACHE_MB": "lots"}
    done = subprocess.run([sys.executable, "-m", "result_assets.cli", "status"], env=env,
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "result-assets: error: RESULT_READ_CACHE_MB must be a whole number (0: off), not 'lots'"]


def test_a_cached_read_is_not_sent_the_bytes_of_the_version_it_holds(cache_on):
    """The catalog's query leaves out a held version's hot rows and file (a large save's
    were half of a cached read's time); a task the cache dropped between that query and its
    lookup is asked for again, whole, and read as any other."""
    from result_assets.store.reader import catalog_rows, settled_documents

    m = manager()
    m.save_result("cache_held", sample_document(V2_TASK))
    expected = text(m.get_result("cache_held"))  # cached now
    rows = catalog_rows(m.stores, ["cache_held"])
    assert rows["cache_held"]["held_version"] and rows["cache_held"]["hot_signals"] is None
    assert text(settled_documents(m.stores, rows)["cache_held"]) == expected
    m.stores.read_cache.put(("cache_held", 0, "", ""), {})  # another version replaces it
    assert text(settled_documents(m.stores, rows)["cache_held"]) == expected
    m.save_result("cache_held", small_document(strategy="moved on"))  # a version it does not hold
    rows = catalog_rows(m.stores, ["cache_held"])
    assert not rows["cache_held"]["held_version"] and rows["cache_held"]["hot_signals"] is not None
    assert m.get_result("cache_held")["strategy"] == "moved on"
    m.close()
