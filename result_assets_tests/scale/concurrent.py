"""Several `result-assets migrate` processes at once against one store and one catalog.

Shared by the concurrency test and its benchmark (bench_concurrency.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Outcome:
    returncode: int
    report: dict | None
    stderr: str


def split_round_robin(task_ids: list[str], parts: int) -> list[list[str]]:
    """Interleaved batches: their task ids overlap in range, so their Delta files do too."""
    return [task_ids[i::parts] for i in range(parts)]


def prepare_instance() -> None:
    """What a deployment does once before workers start: the Dagster tables and the catalog schema.

    (The Helm chart runs `dagster instance migrate` as a job for the same reason.)
    """
    from result_assets.assets.instance import get_instance
    from result_assets.store.stores import Stores

    get_instance()
    Stores.from_env().catalog  # noqa: B018 - creates the schema


def migrate_concurrently(source: Path, batches: list[list[str]], env: dict[str, str] | None = None,
                         timeout: float = 300) -> tuple[list[Outcome], float]:
    """Start one CLI migration per batch at the same moment; (their outcomes, wall seconds)."""
    env = dict(os.environ if env is None else env)
    started = time.perf_counter()
    processes = []
    for batch in batches:
        args = [sys.executable, "-m", "result_assets.cli", "migrate", "--source-dir", str(source), "--json"]
        for task_id in batch:
            args += ["--task", task_id]
        processes.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outcomes = []
    try:
        for p in processes:
            out, err = p.communicate(timeout=max(1.0, timeout - (time.perf_counter() - started)))
            lines = out.strip().splitlines()
            outcomes.append(Outcome(p.returncode, json.loads(lines[-1]) if lines else None, err))
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    return outcomes, time.perf_counter() - started


def replace_in_turn(root: str, storage_options: dict | None, batches: list[list[str]],
                    start_at: float) -> tuple[list[tuple[list[str], int, int]], int]:
    """In a worker process: one DeltaStore commit per batch of rows, the first at time `start_at`.

    ([(ids, version, files added)], conflicts retried).
    """
    import pyarrow as pa

    from result_assets.store.delta_tables import DeltaStore

    store = DeltaStore(root, storage_options)
    time.sleep(max(0.0, start_at - time.time()))  # all workers start together, so they collide
    done = []
    for ids in batches:
        rows = pa.table({
            "task_id": [t for t in ids for _ in range(3)],
            "symbol_idx": pa.array([0] * 3 * len(ids), pa.int32()),
            "seq": pa.array([s for _ in ids for s in range(3)], pa.int32()),
            "price": [float(len(t)) for t in ids for _ in range(3)],
        })
        commit = store.replace_tasks("rows", rows, ids)
        done.append((ids, commit.version, commit.files_added))
    return done, store.conflicts_retried
