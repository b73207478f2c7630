"""Real faults during a migration: SIGKILL mid-batch, PostgreSQL going away, two
overlapping migrations at once, and a store that is full or read-only.

Each test runs `result-assets migrate` as a process on a generated corpus and then
audits the stores (helpers.audit): every task a reader can see has all its rows, no
row is duplicated, every backup holds the source's bytes, and a re-run completes.
"""
from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from benchmarks.corpus import generate_corpus
from result_assets.legacy import dumps_document, parse_document
from result_assets_tests.faults.helpers import (
    audit,
    delta_commits,
    kill_hard,
    mid_batch,
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
    """26 tasks: 14 ordinary, one of 5k signals, 11 bad files (one of each kind)."""
    dest = tmp_path_factory.mktemp("corpus") / "tasks"
    expect = generate_corpus(dest, 14, seed=11, huge_tasks=1, huge_signals=5_000)
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


@pytest.fixture(scope="module")
def faulted(corpus, tmp_path_factory):
    """One home through a long migration's bad day: SIGKILL mid-batch, then PostgreSQL
    stopped mid-run, then a re-run. Audits are taken after each fault."""
    source, expect = corpus
    home, logs = tmp_path_factory.mktemp("faulted_home"), tmp_path_factory.mktemp("logs")
    store = home / "store"
    args = ["migrate", "--source-dir", str(source), "--batch-size", "5", "--json"]
    seen = {}
    try:
        proc = start_cli(home, *args, out_dir=logs, name="killed")
        try:
            # Batches run in task id order: 1-2 are bad files, 3 starts the valid ones. Kill from
            # batch 4 on (commit 6: the first batch also creates the table), between a batch's
            # signals commit and its curves commit.
            wait_for(lambda: mid_batch(store, 6) or proc.poll() is not None, 120, "batch 4's signals commit")
            seen["killed_mid_run"] = proc.poll() is None
        finally:
            kill_hard(proc)
        seen["after_kill"] = audit(stores_for(home), source)
        seen["commits_at_kill"] = delta_commits(store)

        commits = delta_commits(store)
        proc = start_cli(home, *args, out_dir=logs, name="outage")
        try:
            wait_for(lambda: delta_commits(store) > commits or proc.poll() is not None, 120, "a batch of the re-run")
            seen["stopped_mid_run"] = proc.poll() is None
            stop_server_fast(home)
            seen["outage_exit"] = proc.wait(timeout=180)
        finally:
            if proc.poll() is None:
                kill_hard(proc)
        seen["outage_stderr"] = (logs / "outage.err").read_text()
        seen["rerun"] = run_cli(home, *args)  # restarts the embedded server
        yield home, seen
    finally:
        stop_home_server(home)


def test_sigkill_mid_batch_leaves_nothing_half_visible(faulted):
    _, seen = faulted
    after_kill = seen["after_kill"]
    print(f"\nkilled after {seen['commits_at_kill']} signals commits: {len(after_kill.migrated)} tasks visible, "
          f"rows not yet in the catalog: {after_kill.orphans}, at rest: {after_kill.at_rest}, "
          f"stray backup temp files: {after_kill.stray_backup_files}")
    assert seen["killed_mid_run"], "the migration finished before it could be killed"
    assert after_kill.problems == []  # every task a reader can see is whole and equals its source
    assert after_kill.migrated and len(after_kill.catalog) < 26  # the kill landed mid-migration


def test_postgres_stopped_mid_run_fails_with_one_clear_line(faulted):
    _, seen = faulted
    stderr = seen["outage_stderr"]
    last = stderr.strip().splitlines()[-1]
    print(f"\nexit {seen['outage_exit']}; last line: {last}")
    assert seen["stopped_mid_run"], "the migration finished before the database could be stopped"
    assert seen["outage_exit"] != 0
    assert last.startswith("result-assets: error:") and "database" in last, stderr[-3000:]
    assert "Traceback" not in stderr


def test_rerun_after_kill_and_outage_completes_with_nothing_lost(faulted, corpus):
    home, seen = faulted
    source, expect = corpus
    rerun = seen["rerun"]
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert json.loads(rerun.stdout)["failed_runs"] == 0
    assert_complete(home, source, expect)


def test_two_overlapping_migrations_at_once(corpus, home, tmp_path):
    source, expect = corpus
    ids = sorted(expect)
    # The tables exist already (a first task migrated), as in a backfill that overlaps another;
    # the race on a table that does not exist yet is the next test.
    first = run_cli(home, "migrate", "--source-dir", str(source), "--task", ids[-1])
    assert first.returncode == 0, first.stderr[-2000:]
    runs = []
    # Both start on the same batches at the same time: every task of b is also in a.
    for name, tasks in (("a", ids), ("b", ids[: len(ids) * 2 // 3])):
        args = ["migrate", "--source-dir", str(source), "--batch-size", "6", "--json"]
        for task_id in tasks:
            args += ["--task", task_id]
        runs.append(start_cli(home, *args, out_dir=tmp_path, name=name))
    codes = [p.wait(timeout=240) for p in runs]
    conflicts = sum((tmp_path / f"{n}.err").read_text().count("CommitFailedError") for n in "ab")
    print(f"\nconcurrent exits {codes}, Delta commit conflicts {conflicts}")
    during = audit(stores_for(home), source)
    assert during.problems == [] and during.at_rest == []  # no lost update, no duplicate
    # A run that lost a commit race failed cleanly; a re-run finishes the job.
    rerun = run_cli(home, "migrate", "--source-dir", str(source), "--batch-size", "6", "--json")
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
        # Bounded: a worker that dies fails the test (BrokenProcessPool), never hangs it.
        with context.Manager() as manager, ProcessPoolExecutor(2, mp_context=context) as pool:
            barrier = manager.Barrier(2, timeout=120)
            futures = [pool.submit(_replace_tasks_at_once, root, barrier, v) for v in (1, 2)]
            outcomes.append([f.result(timeout=300) for f in futures])
        rows = DeltaStore(root).read_tasks(SIGNALS, ["t1", "t2"])
        assert rows.num_rows == 6, f"trial {trial}: {rows.num_rows} rows for 2 tasks of 3 signals ({outcomes[-1]})"
        assert len(set(rows.column("price").to_pylist())) == 1  # one writer's rows, not a mix
    print(f"\nconcurrent first writes: {outcomes}")


def test_unwritable_then_full_store_fails_cleanly_and_recovers(corpus, home, tmp_path):
    """The store read-only (every run fails), then a 1 MB tmpfs that fills up mid-migration
    (some runs fail), then room again: the re-run completes with nothing lost."""
    source, expect = corpus
    store = tmp_path / "store"
    args = ["migrate", "--source-dir", str(source), "--batch-size", "7", "--json"]
    mount_read_only(store)
    try:
        result = run_cli(home, *args, RESULT_STORE_ROOT=str(store))
        report = json.loads(result.stdout)
        print(f"\nread-only store: exit {result.returncode}, {report['failed_runs']} of {report['runs']} runs failed")
        assert result.returncode == 1 and report["failed_runs"] == report["runs"] and report["migrated"] == 0
        after = audit(stores_for(home, store_root=str(store)), source)
        assert after.problems == [] and after.migrated == [] and not any(store.iterdir())
    finally:
        unmount(store)
    mount_tmpfs(store, "1m")  # the corpus needs several MB of Delta files
    try:
        result = run_cli(home, *args, RESULT_STORE_ROOT=str(store))
        report = json.loads(result.stdout)
        print(f"disk full: exit {result.returncode}, {report['failed_runs']} of {report['runs']} runs failed, "
              f"{report['migrated']} migrated")
        assert result.returncode == 1 and 1 <= report["failed_runs"] < report["runs"]
        assert "No space left on device" in result.stderr
        after = audit(stores_for(home, store_root=str(store)), source)
        assert after.problems == [] and after.at_rest == []  # nothing half-visible
        remount_tmpfs(store, "64m")  # room again, as after an operator frees space
        rerun = run_cli(home, *args, RESULT_STORE_ROOT=str(store))
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert_complete(home, source, expect, store_root=str(store))
    finally:
        unmount(store)


def test_sigkill_while_changed_sources_re_migrate(faulted, corpus, tmp_path):
    """A changed file re-migrates: killed between its Delta commit and its catalog row,
    readers must still see one whole version of the task, old or new. (Runs last: it edits the corpus.)"""
    home, _ = faulted
    source, expect = corpus
    for task_id in [t for t, e in sorted(expect.items()) if e["valid"] and e["signals"] > 2]:
        path = source / task_id / "result.json"  # drop the last signal of the first symbol that has one
        doc = parse_document(path.read_bytes())
        holders = doc["symbols"] if "signals" not in doc else [doc]
        next(h for h in holders if isinstance(h, dict) and h.get("signals"))["signals"].pop()
        path.write_text(dumps_document(doc), encoding="utf-8")
        expect[task_id] = {**expect[task_id], "signals": expect[task_id]["signals"] - 1}
    commits = delta_commits(home / "store")
    proc = start_cli(home, "migrate", "--source-dir", str(source), "--batch-size", "5", out_dir=tmp_path, name="k")
    try:
        wait_for(lambda: mid_batch(home / "store", commits + 1) or proc.poll() is not None, 120,
                 "a re-migration batch between its commits")
        assert proc.poll() is None, "the re-migration finished before it could be killed"
    finally:
        kill_hard(proc)
    after_kill = audit(stores_for(home))
    print(f"\nkilled after {delta_commits(home / 'store') - commits} new commits: problems {after_kill.problems}")
    rerun = run_cli(home, "migrate", "--source-dir", str(source), "--batch-size", "5", "--json")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_complete(home, source, expect)
    assert after_kill.problems == []
