"""`--scale`: the fixed costs that grow with the number of tasks, at 100k tasks.

A tree of tiny tasks (written directly: the point is the count, not the content),
its partitions registered in a fresh instance, and a catalog row per task.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

TINY_RESULT = (b'{"strategy": "sma_cross", "params": {"n1": 5}, "symbols": [{"symbol": "KRW-BTC", "signals": '
               b'[{"timestamp": "2024-01-03 09:00:00", "type": "buy", "price": 42000000.5}]}]}')


def task_ids(n: int) -> list[str]:
    return [f"scale_{i:06d}" for i in range(n)]


def write_tree(root: Path, n: int) -> float:
    """n tasks of TINY_RESULT under root (kept if already there); seconds taken."""
    started = time.perf_counter()
    marker = root.with_name(root.name + ".complete")  # beside the tree: inside, migrate lists it as a non-task
    if marker.exists() and marker.read_text() == str(n):
        return 0.0
    for task_id in task_ids(n):
        folder = root / task_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "result.json").write_bytes(TINY_RESULT)
    marker.write_text(str(n))
    return time.perf_counter() - started


def register(n: int) -> dict:
    """Register n task partitions in this home's (fresh) instance, then again (all known)."""
    from result_assets.assets.partitions import register_partitions
    from result_assets.assets.instance import get_instance

    instance = get_instance()
    keys = task_ids(n)
    started = time.perf_counter()
    added = register_partitions(instance, keys)
    first = time.perf_counter() - started
    started = time.perf_counter()
    again = register_partitions(instance, keys)
    return {"added": added, "register_seconds": first, "added_again": again,
            "reregister_seconds": time.perf_counter() - started}


def fill_catalog(root: Path, n: int, chunk: int = 10_000) -> dict:
    """A migrated catalog row and a registered source per task, matching the files (so none is stale)."""
    from result_assets.legacy import partition_key_for
    from result_assets.store.catalog import TaskRow
    from result_assets.store.stores import Stores

    catalog = Stores.from_env().catalog
    sha = hashlib.sha256(TINY_RESULT).hexdigest()
    started = time.perf_counter()
    ids = task_ids(n)
    for start in range(0, n, chunk):
        rows, sources = [], {}
        for task_id in ids[start:start + chunk]:
            path = str(root / task_id / "result.json")
            st = os.stat(path)
            key = partition_key_for(task_id)
            rows.append(TaskRow(task_id=task_id, partition_key=key, status="migrated", source_sha256=sha,
                                source_bytes=st.st_size, source_path=path, source_mtime_ns=st.st_mtime_ns,
                                strategy="sma_cross", n_signals=1))
            sources[task_id] = (key, path)
        catalog.upsert(rows, [])
        catalog.register_sources(sources)
    return {"catalog_rows": n, "fill_seconds": time.perf_counter() - started}
