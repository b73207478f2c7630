"""Real faults during a migration: SIGKILL mid-batch, PostgreSQL going away, two
overlapping migrations at once, and a store that is full or read-only.

Each test runs `result-assets migrate` as a process on a generated corpus and then
audits the stores (helpers.audit): every task a reader can see has all its rows, no
row is duplicated, every backup holds the source's bytes, and a re-run completes.
"""
from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from result_assets.corpus import generate_corpus
from result_assets_tests.faults.helpers import (
    audit,
    delta_commits,
    kill_hard,
    mount_read_only,
    mount_tmpfs,
    remount_tmpfs,
    run_cli,
    start_cli,
    stop_home_server,
    stop_server_fast,
    stores_for,
    unmount,
    wait_for,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    """27 tasks: 14 ordinary, 2 of 15k signals (slow batches to land a kill in), 11 bad files."""
    dest = tmp_path_factory.mktemp("corpus") / "tasks"
    expect = generate_corpus(dest, 14, seed=11, huge_tasks=2, huge_signals=15_000)
    return dest, expect


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    yield home
    stop_home_server(home)


def assert_complete(home: Path, source: Path, expect: dict, **store_overrides) -> None:
    """Every task migrated or quarantined as expected, nothing lost, nothing left over."""
    result = audit(stores_for(home, **store_overrides), source)
    assert result.problems == []
    assert result.at_rest == []
    assert result.orphans == {"signals": [], "curves": []}
    assert result.migrated == sorted(t for t, e in expect.items() if e["valid"])
    assert result.quarantined == sorted(t for t, e in expect.items() if not e["valid"])
    signals = sum(e["signals"] for e in expect.values() if e["valid"])
    assert sum(result.delta_rows["signals"].values()) == signals  # no duplicated row anywhere


def test_sigkill_mid_batch_then_rerun(corpus, home, tmp_path):
    source, expect = corpus
    store = home / "store"
    proc = start_cli(home, "migrate", "--source-dir", str(source), "--batch-size", "5",
                     out_dir=tmp_path, name="killed")
    try:
        # Batches run in task id order: 1-2 are bad files, 3 starts the valid ones. The 4th
        # signals commit is batch 4's: its curves and catalog rows are not written yet.
        wait_for(lambda: delta_commits(store) >= 4 or proc.poll() is not None, 120, "batch 4's Delta commit")
        assert proc.poll() is None, "the migration finished before it could be killed"
    finally:
        kill_hard(proc)
    after_kill = audit(stores_for(home), source)
    print(f"\nkilled after {delta_commits(store)} signals commits: {len(after_kill.migrated)} tasks visible, "
          f"orphan rows of {after_kill.orphans}, stray backup temp files {after_kill.stray_backup_files}, "
          f"at rest: {after_kill.at_rest}")
    assert after_kill.problems == []  # what readers can see is whole
    assert after_kill.migrated and len(after_kill.catalog) < len(expect)  # the kill landed mid-migration

    rerun = run_cli(home, "migrate", "--source-dir", str(source), "--batch-size", "5", "--json")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert json.loads(rerun.stdout)["failed_runs"] == 0
    assert_complete(home, source, expect)


def test_sigkill_while_changed_sources_re_migrate(corpus, home, tmp_path):
    """A changed file re-migrates: killed between its Delta commit and its catalog row,
    readers must still see one whole version of the task, old or new."""
    source, expect = corpus
    work = tmp_path / "tasks"
    import shutil

    shutil.copytree(source, work)
    first = run_cli(home, "migrate", "--source-dir", str(work), "--batch-size", "5")
    assert first.returncode == 0, first.stderr[-2000:]
    changed = [t for t, e in sorted(expect.items()) if e["valid"] and e["signals"] > 2]
    for task_id in changed:  # drop the last signal of the first symbol that has one
        path = work / task_id / "result.json"
        from result_assets.legacy import dumps_document, parse_document

        doc = parse_document(path.read_bytes())
        holders = doc["symbols"] if "signals" not in doc else [doc]
        holder = next(h for h in holders if isinstance(h, dict) and h.get("signals"))
        holder["signals"].pop()
        path.write_text(dumps_document(doc), encoding="utf-8")
        expect = {**expect, task_id: {**expect[task_id], "signals": expect[task_id]["signals"] - 1}}
    commits = delta_commits(home / "store")
    proc = start_cli(home, "migrate", "--source-dir", str(work), "--batch-size", "5", out_dir=tmp_path, name="killed")
    try:
        wait_for(lambda: delta_commits(home / "store") > commits or proc.poll() is not None, 120,
                 "the first re-migration commit")
        assert proc.poll() is None, "the re-migration finished before it could be killed"
    finally:
        kill_hard(proc)
    after_kill = audit(stores_for(home))
    print(f"\nkilled after {delta_commits(home / 'store') - commits} new commits: problems {after_kill.problems}")
    assert after_kill.problems == []

    rerun = run_cli(home, "migrate", "--source-dir", str(work), "--batch-size", "5", "--json")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_complete(home, work, expect)


def test_postgres_stops_during_run_then_rerun(corpus, home, tmp_path):
    source, expect = corpus
    proc = start_cli(home, "migrate", "--source-dir", str(source), "--batch-size", "5",
                     out_dir=tmp_path, name="outage")
    try:
        wait_for(lambda: delta_commits(home / "store") >= 1 or proc.poll() is not None, 120, "the first batch")
        assert proc.poll() is None, "the migration finished before the database could be stopped"
        stop_server_fast(home)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            kill_hard(proc)
    stderr = (tmp_path / "outage.err").read_text()
    last = stderr.strip().splitlines()[-1]
    print(f"\nexit {code}; last line: {last}")
    assert code != 0
    assert last.startswith("result-assets: error:") and "database" in last, stderr[-3000:]

    rerun = run_cli(home, "migrate", "--source-dir", str(source), "--batch-size", "5", "--json")  # restarts the server
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_complete(home, source, expect)


def test_two_overlapping_migrations_at_once(corpus, home, tmp_path):
    source, expect = corpus
    ids = sorted(expect)
    first_half, second_half = ids[: len(ids) * 2 // 3], ids[len(ids) // 3:]  # a third in both
    stores_for(home).catalog  # start the server and create the schema once, as a first run would
    runs = []
    for name, tasks in (("a", first_half), ("b", second_half)):
        args = ["migrate", "--source-dir", str(source), "--batch-size", "4", "--json"]
        for task_id in tasks:
            args += ["--task", task_id]
        runs.append(start_cli(home, *args, out_dir=tmp_path, name=name))
    codes = [p.wait(timeout=240) for p in runs]
    print(f"\nconcurrent exits {codes}")
    # A run may fail on a Delta commit conflict (the other process wrote the same tasks):
    # that is a clean failure, and a re-run finishes the job.
    rerun = run_cli(home, "migrate", "--source-dir", str(source), "--batch-size", "4", "--json")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_complete(home, source, expect)


def _replace_tasks_at_once(root: str, barrier, version: int) -> str:
    import pyarrow as pa

    from result_assets.legacy import normalize
    from result_assets.store.delta_tables import SIGNALS, DeltaStore

    doc = {"strategy": "s", "symbols": [{"symbol": "A", "signals": [
        {"timestamp": 1704240000000 + i, "price": float(version)} for i in range(3)]}]}
    rows = pa.concat_tables([normalize(t, doc).signals for t in ("t1", "t2")])
    barrier.wait()
    try:
        DeltaStore(root).replace_tasks(SIGNALS, rows, ["t1", "t2"])
        return "ok"
    except Exception as exc:  # a commit conflict is an acceptable outcome; duplicates are not
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


def test_concurrent_first_writes_to_a_fresh_table_never_duplicate(tmp_path):
    """Two batches of the same tasks commit to a table that does not exist yet, at the same moment."""
    from result_assets.store.delta_tables import SIGNALS, DeltaStore

    context = multiprocessing.get_context("spawn")  # deltalake's runtime does not survive fork
    outcomes = []
    for trial in range(3):
        root = str(tmp_path / f"store{trial}")
        with context.Manager() as manager, context.Pool(2) as pool:
            barrier = manager.Barrier(2)
            outcomes.append(pool.starmap(_replace_tasks_at_once, [(root, barrier, 1), (root, barrier, 2)]))
        rows = DeltaStore(root).read_tasks(SIGNALS, ["t1", "t2"])
        assert rows.num_rows == 6, f"trial {trial}: {rows.num_rows} rows for 2 tasks of 3 signals ({outcomes[-1]})"
        assert len(set(rows.column("price").to_pylist())) == 1  # one writer's rows, not a mix
    print(f"\nconcurrent first writes: {outcomes}")


def test_store_disk_full_fails_cleanly(corpus, home, tmp_path):
    source, expect = corpus
    store = tmp_path / "small_store"
    mount_tmpfs(store, "1m")  # the corpus needs several MB of Delta files
    try:
        result = run_cli(home, "migrate", "--source-dir", str(source), "--batch-size", "5", "--json",
                         RESULT_STORE_ROOT=str(store))
        report = json.loads(result.stdout)
        print(f"\ndisk full: exit {result.returncode}, {report['failed_runs']} of {report['runs']} runs failed, "
              f"{report['migrated']} migrated")
        assert result.returncode == 1 and report["failed_runs"] >= 1
        assert "No space left on device" in result.stderr
        after = audit(stores_for(home, store_root=str(store)), source)
        assert after.problems == []  # nothing half-visible
        remount_tmpfs(store, "64m")  # room again, as after an operator frees space
        rerun = run_cli(home, "migrate", "--source-dir", str(source), "--batch-size", "5", "--json",
                        RESULT_STORE_ROOT=str(store))
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert_complete(home, source, expect, store_root=str(store))
    finally:
        unmount(store)


def test_store_read_only_fails_cleanly(corpus, home, tmp_path):
    source, expect = corpus
    store = tmp_path / "ro_store"
    mount_read_only(store)
    try:
        result = run_cli(home, "migrate", "--source-dir", str(source), "--batch-size", "10", "--json",
                         RESULT_STORE_ROOT=str(store))
        report = json.loads(result.stdout)
        print(f"\nread-only store: exit {result.returncode}, {report['failed_runs']} of {report['runs']} runs failed")
        assert result.returncode == 1 and report["failed_runs"] == report["runs"]
        assert report["migrated"] == 0
        after = audit(stores_for(home, store_root=str(store)), source)
        assert after.problems == [] and after.migrated == []
        assert not any(store.iterdir())
    finally:
        unmount(store)
    rerun = run_cli(home, "migrate", "--source-dir", str(source), "--batch-size", "10", "--json",
                    RESULT_STORE_ROOT=str(store))
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_complete(home, source, expect, store_root=str(store))
