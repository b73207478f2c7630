"""Four backfill batches committing to the same Delta tables and catalog at once, locally and on S3.

Each batch is a separate `result-assets migrate --task ...` process (a run worker, as the
QueuedRunCoordinator with max_concurrent_runs=4 would start them). Batches are interleaved
by task id so their files overlap in range and the predicate overwrites really conflict.
Afterwards every task is checked row by row against its source.
"""
from __future__ import annotations

import os
import time
from multiprocessing import get_context

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from result_assets.legacy import compare_documents, parse_document
from result_assets.store.backups import sha256_hex
from result_assets.store.delta_tables import CURVES, SIGNALS, DeltaStore, s3_storage_options
from result_assets.store.reader import rebuild_documents
from result_assets.store.stores import Stores
from result_assets_tests.scale.concurrent import (migrate_concurrently, prepare_instance, replace_in_turn,
                                                  split_round_robin)
from result_assets_tests.scale.conftest import make_bucket

WRITERS = 4
VALID_PER_STORE = 16


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """One source tree; each store variant migrates its own half (so the shared catalog sees new tasks)."""
    from benchmarks.corpus import generate_corpus

    source = tmp_path_factory.mktemp("corpus") / "tasks"
    expect = generate_corpus(source, 2 * VALID_PER_STORE, seed=11, bad_per_kind=2)
    valid = sorted(t for t, e in expect.items() if e["valid"])
    halves = {
        "local": valid[:VALID_PER_STORE] + sorted(t for t in expect if t.endswith("_000") and not expect[t]["valid"]),
        "s3": valid[VALID_PER_STORE:] + sorted(t for t in expect if t.endswith("_001") and not expect[t]["valid"]),
    }
    return source, expect, halves


@pytest.fixture(scope="module")
def prepared(project_home):
    prepare_instance()
    return project_home


@pytest.mark.parametrize("store", ["local", "s3"])
def test_four_concurrent_batches_commit_every_row_once(store, prepared, corpus, request, monkeypatch):
    source, expect, halves = corpus
    ids = sorted(halves[store])
    env = dict(os.environ)
    if store == "s3":
        bucket = make_bucket(request.getfixturevalue("s3_endpoint"))
        env.update(os.environ, RESULT_STORE_ROOT=f"s3://{bucket}/store", RESULT_BACKUP_DIR=f"s3://{bucket}/backups")
    outcomes, seconds = migrate_concurrently(source, split_round_robin(ids, WRITERS), env, timeout=240)
    print(f"\n{store}: {len(ids)} tasks in {WRITERS} concurrent batches: {seconds:.1f}s wall")
    for o in outcomes:
        assert o.returncode == 0, o.stderr[-3000:]
        assert o.report["failed_runs"] == 0
    assert sum(o.report["migrated"] + o.report["quarantined"] for o in outcomes) == len(ids)

    for key in ("RESULT_STORE_ROOT", "RESULT_BACKUP_DIR"):
        if key in env:
            monkeypatch.setenv(key, env[key])
    check_stores(Stores.from_env(), source, expect, ids)


def check_stores(stores: Stores, source, expect: dict, ids: list[str]) -> None:
    valid = [t for t in ids if expect[t]["valid"]]
    rows = stores.catalog.tasks(ids)
    assert {t: rows[t]["status"] for t in ids} == {t: "migrated" if expect[t]["valid"] else "quarantined" for t in ids}

    # Row by row: every task rebuilt from Delta + catalog equals its source.
    documents = rebuild_documents(stores, valid)
    assert sorted(documents) == valid
    for task_id in valid:
        raw = (source / task_id / "result.json").read_bytes()
        assert compare_documents(parse_document(raw), documents[task_id]) == [], task_id
        assert stores.backups.verify(task_id, sha256_hex(raw)), task_id

    # No row twice, and the signal counts of the source.
    for table in (SIGNALS, CURVES):
        keys = stores.delta.read_tasks(table, ids, columns=["task_id", "symbol_idx", "seq"])
        counts = keys.group_by(["task_id", "symbol_idx", "seq"]).aggregate([([], "count_all")])
        assert pc.max(counts.column("count_all")).as_py() == 1, f"duplicate rows in {table}"
        if table == SIGNALS:
            per_task = dict(zip(*keys.group_by("task_id").aggregate([([], "count_all")]).to_pydict().values()))
            assert {t: per_task.get(t, 0) for t in valid} == {t: expect[t]["signals"] for t in valid}

    # The Delta version stamped on each catalog row is the commit that wrote its rows.
    for task_id in valid:
        version = rows[task_id]["signals_version"]
        assert task_counts(stores.delta, SIGNALS, version, [task_id]).get(task_id, 0) == expect[task_id]["signals"]
        assert task_counts(stores.delta, SIGNALS, version - 1, [task_id]) == {}, (task_id, version)


@pytest.mark.parametrize("store", ["local", "s3"])
def test_concurrent_overwrites_report_their_own_commits(store, tmp_path, request):
    """DeltaStore.replace_tasks from 4 processes at once: conflicts are retried, and each call
    reports the version and files of its own commit, not of a neighbour's."""
    if store == "s3":
        root = f"s3://{make_bucket(request.getfixturevalue('s3_endpoint'))}/store"
    else:
        root = str(tmp_path / "store")
    options = s3_storage_options(root)
    # interleaved ids: every commit's file overlaps the others' in range, so overwrites conflict
    plan = [[[f"t{round_:02d}_{k}_{writer}" for k in range(3)] for round_ in range(4)] for writer in range(WRITERS)]
    start_at = time.time() + 3  # once every worker has imported deltalake
    with get_context("spawn").Pool(WRITERS) as pool:  # spawn: delta-rs's runtime does not survive fork
        # Bounded: a worker that dies must fail the test, not hang it.
        results = pool.starmap_async(replace_in_turn, [(root, options, batches, start_at) for batches in plan]).get(
            timeout=600)
    commits = [c for done, _ in results for c in done]
    print(f"\n{store}: {len(commits)} commits from {WRITERS} processes, "
          f"{sum(retried for _, retried in results)} conflicts retried")
    versions = [version for _, version, _ in commits]
    assert len(set(versions)) == len(commits)  # one commit each, none reported twice
    store_ = DeltaStore(root, options)
    everything = store_.read_tasks("rows", [t for ids, _, _ in commits for t in ids])
    assert everything.num_rows == 3 * 3 * len(commits)
    assert everything.group_by(["task_id", "seq"]).aggregate([([], "count_all")]).num_rows == everything.num_rows
    for ids, version, files_added in commits:
        assert files_added == 1
        assert set(task_counts(store_, "rows", version, ids).values()) == {3}, (ids, version)
        assert task_counts(store_, "rows", version - 1, ids) == {}, (ids, version)


def task_counts(store: DeltaStore, table: str, version: int, task_ids: list[str]) -> dict[str, int]:
    """{task id: rows} of task_ids in table as of version."""
    if version < 0:
        return {}
    dt = DeltaTable(store.uri(table), version=version, storage_options=store.storage_options)
    ids = dt.to_pyarrow_dataset().to_table(columns=["task_id"], filter=pc.field("task_id").isin(task_ids))
    counts = ids.group_by("task_id").aggregate([([], "count_all")]) if ids.num_rows else pa.table({"task_id": [], "count_all": []})
    return dict(zip(counts.column("task_id").to_pylist(), counts.column("count_all").to_pylist()))
