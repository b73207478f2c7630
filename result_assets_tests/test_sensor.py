"""new_task_sensor the Dagster way: a resource, a cursor, run keys, and no writes while it evaluates."""
from __future__ import annotations

import json
import os
import shutil

import pytest
from dagster import SkipReason, build_sensor_context

from result_assets.assets.sensors import new_task_sensor

TASKS = ["bt_20250901_14ceeb", "grid...42"]


@pytest.fixture(scope="module")
def env(project_home, sample_source, tmp_path_factory):
    from result_assets.assets.instance import get_instance
    from result_assets.definitions import build_definitions
    from result_assets.store.stores import Stores

    source = tmp_path_factory.mktemp("src")
    for task in TASKS:
        shutil.copytree(sample_source / task, source / task)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RESULT_SOURCE_DIR", str(source))
        patch.setenv("RESULT_STORAGE_MODE", "dual-write")
        defs = build_definitions()
        stores = Stores.from_env()
        yield get_instance(), defs, stores, source


def catalog_snapshot(stores) -> list:
    with stores.catalog.connect().cursor() as cur:
        cur.execute("SELECT (SELECT count(*) FROM task_sources), "
                    "(SELECT coalesce(json_agg(json_build_array(task_id, source_mtime_ns) ORDER BY task_id), '[]') "
                    "FROM tasks)")
        return list(cur.fetchone())


def tick(env, cursor=None):
    instance, defs, stores, _ = env
    context = build_sensor_context(instance=instance, definitions=defs, cursor=cursor,
                                   resources={"stores": defs.resources["stores"]})
    return new_task_sensor(context)


def run(env, result):
    instance, defs, _, _ = env
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    for request in result.run_requests:
        assert defs.resolve_job_def(request.job_name).execute_in_process(
            instance=instance, run_config=request.run_config).success


def test_a_tick_writes_nothing_and_keys_its_requests(env):
    _, _, stores, _ = env
    before = catalog_snapshot(stores)
    first = tick(env)
    assert catalog_snapshot(stores) == before  # no source registered, nothing touched
    assert sorted(first.dynamic_partitions_requests[0].partition_keys) == sorted(
        ["bt_20250901_14ceeb", "~grid%2E%2E%2E42"])
    [request] = first.run_requests
    assert sorted(request.run_config["ops"]["migrate_task_list"]["config"]["task_ids"]) == sorted(TASKS)
    assert request.run_key.startswith("catch-up-") and request.run_key.endswith("-0-0")
    assert json.loads(first.cursor)["attempt"] == 0
    # The same work asked for again once its run is over (it failed, say) is the next attempt:
    # another run key, so Dagster launches it; a duplicate of the same attempt would be skipped.
    again = tick(env, first.cursor)
    assert again.run_requests[0].run_key.endswith("-1-0") and json.loads(again.cursor)["attempt"] == 1
    run(env, first)
    done = tick(env, again.cursor)
    assert isinstance(done, SkipReason) and "up to date" in done.skip_message


def test_a_touched_source_is_recorded_by_the_run_not_the_tick(env):
    _, _, stores, source = env
    path = source / TASKS[0] / "result.json"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # same bytes, a new mtime
    before = catalog_snapshot(stores)
    result = tick(env)
    assert catalog_snapshot(stores) == before
    [request] = result.run_requests
    config = request.run_config["ops"]["migrate_task_list"]["config"]
    assert config["task_ids"] == [] and config["touched_mtimes"] == {TASKS[0]: stat.st_mtime_ns + 10**9}
    run(env, result)
    assert stores.catalog.states([TASKS[0]])[TASKS[0]].source_mtime_ns == stat.st_mtime_ns + 10**9
    assert isinstance(tick(env, result.cursor), SkipReason)


def test_a_task_whose_dual_write_save_is_under_way_is_not_asked_for(env):
    """A dual-write save renames its JSON, then commits to the store, holding the task's save
    lock between the two. A tick in that window asked for a catch-up run of the same bytes (a
    review counted 14 such runs for 18 tasks in 90 s of two applications saving), and the save
    showed twice in the UI."""
    import threading

    from result_assets import ResultManager
    from result_assets.legacy import parse_document

    _, _, _, source = env
    manager = ResultManager("dual-write", source_dir=source, record_in_dagster=False)
    catalog = manager.stores.catalog
    register, renamed, go_on = catalog.register_sources, threading.Event(), threading.Event()

    def paused(sources):  # the JSON in place, the save lock held, the store not written yet
        renamed.set()
        assert go_on.wait(60)
        return register(sources)

    catalog.register_sources = paused
    document = parse_document((source / TASKS[0] / "result.json").read_bytes())
    document["strategy"] = "saved while the sensor ticks"
    saving = threading.Thread(target=manager.save_result, args=(TASKS[0], document))
    saving.start()
    try:
        assert renamed.wait(60)
        during = tick(env)
        requests = [] if isinstance(during, SkipReason) else during.run_requests
        assert not [r for r in requests if TASKS[0] in r.run_config["ops"]["migrate_task_list"]["config"]["task_ids"]]
    finally:
        go_on.set()
        saving.join(60)
    after = tick(env)
    assert isinstance(after, SkipReason) and "up to date" in after.skip_message


def test_the_same_failing_work_is_retried_a_few_times_then_left_until_it_changes(env):
    """A task that fails every catch-up run (here: its source changes, and its runs are never
    launched) was asked for again every tick, for ever: about 2,900 failed runs a day."""
    from result_assets.assets.sensors import CATCH_UP_RETRIES

    _, _, _, source = env
    path = source / TASKS[1] / "result.json"
    path.write_bytes(path.read_bytes().replace(b"}", b" }", 1))  # other bytes: the store is behind on it
    result = tick(env)
    for attempt in range(1, CATCH_UP_RETRIES + 1):
        result = tick(env, result.cursor)
        assert result.run_requests[0].run_key.endswith(f"-{attempt}-0")
    gave_up = tick(env, result.cursor)
    assert not gave_up.run_requests and "failed 4 catch-up runs in a row" in gave_up.skip_reason.skip_message
    again = tick(env, gave_up.cursor)
    assert isinstance(again, SkipReason) and "catch-up runs in a row" in again.skip_message
    path.write_bytes(path.read_bytes().replace(b" }", b"  }", 1))  # the file changes: new work
    assert tick(env, gave_up.cursor).run_requests[0].run_key.endswith("-0-0")


def test_a_tick_on_a_catalog_without_tables_creates_none(tmp_path, monkeypatch):
    """A sensor writes nothing while it evaluates: on a new database it skipped only after its
    stores had created the catalog's tables (a tick of the code location, the first writer)."""
    from result_assets.assets.resources import NO_CATALOG, StoresResource
    from result_assets.assets.saves import saved_results_sensor
    from result_assets.settings import Settings
    from result_assets.store.catalog import Catalog
    from result_assets.store.postgres import catalog_url, stop_embedded
    from result_assets.store.schema import installed_version

    (tmp_path / "src" / "one_task").mkdir(parents=True)
    (tmp_path / "src" / "one_task" / "result.json").write_text("{}")
    monkeypatch.setenv("RESULT_ASSETS_HOME", str(tmp_path / "fresh"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("RESULT_SOURCE_DIR", str(tmp_path / "src"))
    monkeypatch.setenv("RESULT_STORAGE_MODE", "dual-write")
    settings = Settings.from_env()
    try:
        tick = saved_results_sensor(build_sensor_context(resources={"stores": StoresResource()}))
        assert isinstance(tick, SkipReason) and tick.skip_message == NO_CATALOG
        assert installed_version(Catalog(catalog_url(settings)).connect()) is None  # no table created
    finally:
        stop_embedded(settings)


def test_a_bad_number_only_runs_read_fails_no_tick_of_the_sensors(env, monkeypatch):
    """RESULT_READ_CACHE_MB=abc: the code location loads (Settings.for_definitions), and the
    runs that read it fail naming it; both sensors raised it on every tick instead, so new task
    folders were never registered and no save was reported."""
    from result_assets.assets.resources import StoresResource
    from result_assets.assets.saves import saved_results_sensor
    from result_assets.settings import SettingsError, Settings

    instance, defs, _, _ = env
    monkeypatch.setenv("RESULT_READ_CACHE_MB", "abc")
    with pytest.raises(SettingsError, match="RESULT_READ_CACHE_MB"):
        Settings.from_env()  # what a run reads
    for sensor in (new_task_sensor, saved_results_sensor):
        context = build_sensor_context(instance=instance, definitions=defs, resources={"stores": StoresResource()})
        result = sensor(context)  # a tick: a request, a skip or a result, never the error
        assert result is not None


def test_a_storage_mode_typo_is_said_not_silently_taken_for_no_catch_up(env, monkeypatch):
    """RESULT_STORAGE_MODE=dual_write (an underscore): the sensor took it for a mode without a
    store to catch up, and said "no new task" while the store fell behind."""
    monkeypatch.setenv("RESULT_STORAGE_MODE", "dual_write")
    first = tick(env)
    if not isinstance(first, SkipReason):
        assert not first.run_requests  # no mode's catch-up guessed
        run(env, first)  # its new folders registered
    result = tick(env)
    message = result.skip_message if isinstance(result, SkipReason) else result.skip_reason
    assert "RESULT_STORAGE_MODE is 'dual_write'" in (message or ""), result
