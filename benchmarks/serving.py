"""A task's first read in a process, by where it comes from: the serving cache, a miss that
fills it, or the tables with the cache off; against reading the same document's JSON file.

    python -m benchmarks.serving [--saves 40]

Saves the app bench's documents (benchmarks/app_life.py) in postgres-only on a fresh home,
then reads each once per round with the per-process read cache emptied before each read:
- hit: the serving cache holds the file (every save fills it);
- miss + fill: its entry dropped first, so the read takes the tables and fills it again;
- no cache: a manager with RESULT_SERVING_CACHE_MB=0 (the tables, nothing filled);
- json-only: the same documents saved and read by a json-only manager;
and a repeat read, the document in the process's read cache (`read cache`), of these and
of `--large` saves of 4,000 signals (over 1 MB), against json-only's read of the same.
Prints the medians (ms) of three rounds; a round reads every task one way, then every task
the next, in the order above (hit, miss + fill, no cache, json-only), the same each round.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def first_reads(manager, ids: list[str], before=lambda task_id: None) -> float:
    """Median ms of one read of each task, nothing of it in the process's read cache."""
    took = []
    for task_id in ids:
        manager.stores.read_cache.clear()
        before(task_id)
        started = time.perf_counter()
        manager.get_result(task_id)
        took.append(time.perf_counter() - started)
    return statistics.median(took) * 1000


def repeat_reads(manager, ids: list[str]) -> float:
    """Median ms of one read of each task, read once before (in the read cache, if it has one)."""
    from benchmarks.app_life import timed_reads

    return timed_reads(manager, ids, len(ids))["p50"] * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=40)
    parser.add_argument("--large", type=int, default=3, help="saves of 4,000 signals (over 1 MB)")
    args = parser.parse_args(argv)
    home = tempfile.mkdtemp(prefix="bench_serving_")
    os.environ["RESULT_ASSETS_HOME"] = home  # before the project reads its settings

    from benchmarks.app_life import large_id, make_document, task_id
    from result_assets import ResultManager
    from result_assets.settings import Settings
    from result_assets.store.postgres import stop_embedded

    cached = ResultManager("postgres-only", record_in_dagster=False)
    uncached = ResultManager("postgres-only", record_in_dagster=False, settings=Settings.from_env(serving_cache_mb=0))
    files = ResultManager("json-only", record_in_dagster=False, source_dir=os.path.join(home, "json"))
    try:
        ids = [task_id(i) for i in range(args.saves)]
        for i, task in enumerate(ids):
            document = make_document(7, task, 100)
            cached.save_result(task, document)
            files.save_result(task, document)
        large = [large_id(j) for j in range(args.large)]
        for task in large:
            document = make_document(7, task, 4000)
            cached.save_result(task, document)
            files.save_result(task, document)
        rows = {"hit": [], "miss + fill": [], "no cache": [], "json-only": []}
        repeats = {"read cache": [], "json-only": []}
        large_repeats = {"read cache": [], "json-only": []}
        for _ in range(3):
            rows["hit"].append(first_reads(cached, ids))
            rows["miss + fill"].append(first_reads(cached, ids, lambda t: cached.stores.serving_cache.forget([t])))
            rows["no cache"].append(first_reads(uncached, ids))
            rows["json-only"].append(first_reads(files, ids))
            for table, chosen in ((repeats, ids), (large_repeats, large)):
                if chosen:
                    table["read cache"].append(repeat_reads(cached, chosen))
                    table["json-only"].append(repeat_reads(files, chosen))
        _print(f"first read of {len(ids)} saved tasks", rows)
        _print(f"repeat read of the same {len(ids)}", repeats)
        _print(f"repeat read of {len(large)} saves of 4,000 signals", large_repeats)
    finally:
        for manager in (cached, uncached, files):
            manager.close()
        stop_embedded(Settings.from_env())


def _print(title: str, rows: dict[str, list[float]]) -> None:
    if not rows["json-only"]:
        return
    baseline = statistics.median(rows["json-only"])
    print(f"{title}, medians of 3 rounds (ms):")
    for name, values in rows.items():
        median = statistics.median(values)
        print(f"  {name:<12} {median:6.2f} ms  ({median / baseline:.1f}x json-only)  rounds: "
              + ", ".join(f"{v:.2f}" for v in values))


if __name__ == "__main__":
    main()
