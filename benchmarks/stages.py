"""Where the time of a migration goes, stage by stage (the figures docs/benchmarks.md
"Performance: the benchmark" quotes).

    python -m benchmarks.stages convert FILE        # one task's conversion: parse, normalize, proof
    python -m benchmarks.stages engine SOURCE_DIR   # the batch steps, pipelined, no Dagster
    python -m benchmarks.stages events SOURCE_DIR   # a whole `migrate`: time in the event log storage

`engine` and `events` write into $RESULT_ASSETS_HOME: give each a fresh one.
"""
from __future__ import annotations

import math
import sys
import time
from collections import Counter
from pathlib import Path


def convert_stages(path: Path, repeats: int = 3) -> None:
    """CPU seconds of each stage of `convert` on one file, best of `repeats`."""
    import gc
    import hashlib

    from result_assets.legacy import dumps_document, exact, normalize
    from result_assets.legacy.parse import may_lose_digits, parse_unscreened
    from result_assets.migration.batch import MAX_NESTING, nesting_depth
    from result_assets.store.row_digest import rows_digest

    raw, task_id = path.read_bytes(), path.parent.name
    gc.disable()  # as convert() runs them
    results: dict[str, float] = {}

    def stage(name, fn, *args):
        best, value = float("inf"), None
        for _ in range(repeats):
            started = time.process_time()
            value = fn(*args)
            best = min(best, time.process_time() - started)
        results[name] = best
        return value

    document = stage("parse", parse_unscreened, raw)  # screened only when the proof cannot show it exact
    stage("nesting depth", nesting_depth, document, MAX_NESTING)
    result = stage("normalize", normalize, task_id, document)
    skeleton_text = stage("skeleton text", dumps_document, result.skeleton)
    learned = stage("learn + write", exact.learn, raw, document, skeleton_text, result.signals, result.curves,
                    result.spelled_as, result.numbers_as_strings, result.row_spellings)
    digest = stage("sha-256", lambda: hashlib.sha256(learned[1] if learned else b"").hexdigest())
    if not learned or not exact.patches_spell_exact_floats(learned[0].numbers):
        stage("digit screen", may_lose_digits, raw)  # as convert() does: its proof did not show every number exact
    stage("digests", lambda: (rows_digest(result.signals), rows_digest(result.curves)))
    megabytes = len(raw) / 1e6
    for name, seconds in [*results.items(), ("all", sum(results.values()))]:
        print(f"{name:14s} {seconds * 1000:8.1f} ms CPU  {megabytes / seconds if seconds else 0:8.1f} MB/s")
    proven = digest == hashlib.sha256(raw).hexdigest()
    print(f"{result.n_signals} signals, {result.n_curve_points} curve points, "
          f"the bytes written again hash to the source's: {proven}")


def engine_stages(source_dir: str, batch: int = 50) -> None:
    """The engine's per-stage seconds over a corpus, batch by batch, converting ahead as `migrate` does."""
    from benchmarks.project import pipelined_batches
    from result_assets.migration.sources import scan_source_dir
    from result_assets.store.stores import Stores

    stores = Stores.from_env()
    tasks = scan_source_dir(source_dir).tasks
    total, started = Counter(), time.perf_counter()
    for result in pipelined_batches(stores, tasks, batch):
        total.update(result.seconds)
    print(f"{len(tasks)} tasks in {math.ceil(len(tasks) / batch)} batches: {time.perf_counter() - started:.2f} s")
    for name, seconds in total.most_common():
        print(f"  {name:10s} {seconds:6.2f} s  (main process; 'convert' is the wait for the workers)")


def event_stages(source_dir: str) -> None:
    """A whole `migrate`, with the seconds spent inside the event log storage, by event type."""
    from dagster_postgres.event_log import PostgresEventLogStorage

    from result_assets.cli.migrate import migrate
    from result_assets.platform.dagster_storage import PooledPostgresEventLogStorage
    from result_assets.settings import Settings

    seconds, events = Counter(), Counter()

    def timed(cls, name, kind):
        method = getattr(cls, name)

        def wrapper(self, arg, *args, **kwargs):
            started = time.perf_counter()
            try:
                return method(self, arg, *args, **kwargs)
            finally:
                key = kind(arg)
                seconds[key] += time.perf_counter() - started
                events[key] += len(arg) if isinstance(arg, list) else 1
        setattr(cls, name, wrapper)

    for cls in (PostgresEventLogStorage, PooledPostgresEventLogStorage):  # stock (default), tuned (opt-in)
        timed(cls, "store_event", lambda e: e.dagster_event_type.value if e.is_dagster_event else "log message")
    timed(PostgresEventLogStorage, "store_event_batch", lambda events: "batches (materializations)")
    started = time.perf_counter()
    report = migrate(Settings.from_env(), source_dir).report
    print(f"migrate: {report['tasks']} tasks, {report['runs']} runs, {time.perf_counter() - started:.2f} s")
    print(f"  in the event log storage: {sum(seconds.values()):.2f} s")
    for key, value in seconds.most_common():
        print(f"  {key:40s} {value:6.2f} s  {events[key]:6d} events")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("convert", "engine", "events"):
        print(__doc__, file=sys.stderr)
        return 2
    kind, target = argv
    if kind == "convert":
        convert_stages(Path(target))
    elif kind == "engine":
        engine_stages(target)
    else:
        event_stages(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
