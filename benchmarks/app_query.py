"""Benchmark of the query API: `python -m benchmarks.app_query [--tasks 100000] [--signals 2000000]`.

Builds a synthetic store in a temporary home (embedded Postgres): `--tasks` catalog rows
(with their symbol rows) and `--signals` signal rows spread over 1000-signal tasks, in
a handful of Delta commits; then prints the p50/p95 of find_tasks, a one-symbol
aggregate over all signals and read_result of a 1000-signal task. Not run in CI.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SIGNALS_PER_TASK = 1000
SYMBOLS = [f"KRW-S{i:02d}" for i in range(20)]
STRATEGIES = [f"strategy_{i}" for i in range(12)]


def build(tasks: int, signals: int) -> None:
    from result_assets.legacy.schema import SIGNAL_SCHEMA
    from result_assets.store.catalog import SymbolRow, TaskRow
    from result_assets.store.delta_tables import SIGNALS
    from result_assets.store.stores import Stores

    stores = Stores.from_env()
    rng = np.random.default_rng(7)
    started = time.perf_counter()
    signal_tasks = signals // SIGNALS_PER_TASK
    rows, symbols = [], []
    for i in range(tasks):
        task_id = f"bt_{i:07d}"
        symbol = SYMBOLS[i % len(SYMBOLS)]
        year = 2019 + i % 6
        n = SIGNALS_PER_TASK if i < signal_tasks else 0
        rows.append(TaskRow(
            task_id=task_id, partition_key=task_id, status="migrated", source_sha256="0" * 64,
            source_bytes=1000, layout=2, strategy=STRATEGIES[i % len(STRATEGIES)], timeframe="1h",
            start_date=f"{year}-01-01", end_date=f"{year}-12-31", params={"n": i % 50}, n_symbols=1,
            n_signals=n, n_curve_points=0, total_return=float(rng.normal(5, 40)) if i % 17 else None,
            sharpe_ratio=float(rng.normal(0.5, 1)), win_rate=float(rng.uniform(20, 70)),
            skeleton=f'{{"strategy":"{STRATEGIES[i % len(STRATEGIES)]}","symbols":[{{"symbol":"{symbol}","signals":[]}}]}}'))
        symbols.append(SymbolRow(task_id, 0, symbol, n))
    for start in range(0, tasks, 20_000):
        stores.catalog.upsert(rows[start:start + 20_000], [s for s in symbols[start:start + 20_000]])
    print(f"catalog: {tasks:,} task rows in {time.perf_counter() - started:.1f}s", flush=True)
    started = time.perf_counter()
    per_commit = max(1, signal_tasks // 4)
    for first in range(0, signal_tasks, per_commit):
        ids = list(range(first, min(first + per_commit, signal_tasks)))
        n = len(ids) * SIGNALS_PER_TASK
        task_idx = np.repeat(ids, SIGNALS_PER_TASK)
        seq = np.tile(np.arange(SIGNALS_PER_TASK, dtype=np.int32), len(ids))
        ts = 1_577_836_800_000_000 + task_idx * 3_600_000_000 + seq.astype(np.int64) * 3_600_000_000
        table = pa.table({
            "task_id": pa.array([f"bt_{i:07d}" for i in task_idx]),
            "symbol_idx": pa.array(np.zeros(n, dtype=np.int32)),
            "seq": pa.array(seq),
            "symbol": pa.array([SYMBOLS[i % len(SYMBOLS)] for i in task_idx]),
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "exit_ts": pa.array(ts + 7_200_000_000, pa.timestamp("us", tz="UTC")),
            "type": pa.array(np.where(seq % 2 == 0, "buy", "sell")),
            "price": pa.array(rng.lognormal(10, 1, n)),
            "quantity": pa.array(rng.uniform(0, 2, n)),
            "exit_price": pa.array(rng.lognormal(10, 1, n)),
            "return_pct": pa.array(rng.normal(0, 2, n)),
            "pnl": pa.array(rng.normal(0, 100, n)),
            "commission": pa.array(rng.uniform(0, 1, n)),
            "holding_bars": pa.array(rng.integers(1, 50, n)),
            "reason": pa.nulls(n, pa.string()),
            "indicators": pa.nulls(n, SIGNAL_SCHEMA.field("indicators").type),
            "extras": pa.nulls(n, pa.string()),
        }).cast(SIGNAL_SCHEMA)
        stores.delta.replace_tasks(SIGNALS, table, [f"bt_{i:07d}" for i in ids])
    print(f"delta: {signal_tasks * SIGNALS_PER_TASK:,} signals in {time.perf_counter() - started:.1f}s", flush=True)


def timed(label: str, fn, repeat: int) -> None:
    fn()  # warm: first open of the tables, plan caching
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    print(f"  {label:<58} p50 {statistics.median(samples):8.2f} ms   p95 {p95:8.2f} ms   (n={repeat})", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.app_query", description=__doc__)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--signals", type=int, default=2_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary home")
    args = parser.parse_args(argv)
    home = tempfile.mkdtemp(prefix="app_query_")
    for key in ("DATABASE_URL", "RESULT_STORE_ROOT", "RESULT_BACKUP_DIR", "DAGSTER_HOME"):
        os.environ.pop(key, None)
    os.environ["RESULT_ASSETS_HOME"] = home
    from result_assets.app import ResultStore
    from result_assets.store.postgres import stop_embedded
    from result_assets.settings import Settings

    try:
        build(args.tasks, args.signals)
        store = ResultStore.from_env()
        conn = store._connection()  # creates the query indexes
        with conn, conn.cursor() as cur:
            cur.execute("ANALYZE tasks; ANALYZE task_symbols")
        print(f"find_tasks over {args.tasks:,} catalog rows:")
        timed("find_tasks() (top 10 by total_return)", lambda: store.find_tasks(), 200)
        timed("find_tasks(strategy=...)", lambda: store.find_tasks(strategy="strategy_3"), 200)
        timed("find_tasks(symbol=...)", lambda: store.find_tasks(symbol="KRW-S07"), 200)
        timed("find_tasks(strategy, since, until, order_by=sharpe_ratio)",
              lambda: store.find_tasks(strategy="strategy_3", since="2022-01-01", until="2022-12-31",
                                       order_by="sharpe_ratio"), 200)
        print(f"signals over {args.signals:,} rows:")
        timed("sum(pnl) of one symbol: signals(symbols=[s], columns=[pnl])",
              lambda: pc.sum(store.signals(symbols=["KRW-S07"], columns=["pnl"]).column("pnl")), 30)
        timed("signals(task_ids=[one task]) (all columns)", lambda: store.signals(task_ids=["bt_0000500"]), 50)
        timed("read_result of a 1000-signal task", lambda: store.read_result("bt_0000500"), 50)
        store.close()
    finally:
        stop_embedded(Settings.from_env())
        if not args.keep:
            import shutil

            shutil.rmtree(home, ignore_errors=True)
        else:
            print(f"home kept: {home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
