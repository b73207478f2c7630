"""A/B of the Dagster instance storages on many tiny tasks (bookkeeping dominates there).

    python -m benchmarks.event_log [--tasks 300] [--rounds 2]

Alternates, on fresh homes: the default instance, stock dagster-postgres storage (as an
existing deployment has); the project's opt-in tuned storage (pooled event log, batched check
evaluations) with synchronous commits; the tuned storage as it ships (no WAL-flush wait).
Prints the `seconds` of each `result-assets migrate --batch-size 100 --json`.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.measure import write_tuned_dagster_yaml

CURVE_POINTS = 500  # the shape of the sample task the published figures were measured on
HOUR_MS = 3_600_000
MODES = {  # name: (opt in to the tuned storage, extra environment)
    "stock dagster-postgres (default)": (False, {}),
    "tuned, synchronous commit": (True, {"RESULT_ASSETS_EVENT_SYNC_COMMIT": "on"}),
    "tuned (opt-in)": (True, {}),
}


def tiny_task(seed: int) -> bytes:
    """A valid legacy result with one signal and a 500-point hourly curve (about 60 KB
    indented): the data work is negligible, so a migration of many is mostly bookkeeping.
    Generated here, so the bench needs no corpus on disk."""
    rng = random.Random(seed)
    start = 1_707_696_000_000 + seed * HOUR_MS  # epoch ms, one of the legacy spellings
    equity, peak, curve = 1.0, 1.0, []
    for i in range(CURVE_POINTS):
        equity *= 1 + rng.gauss(0, 0.003)
        peak = max(peak, equity)
        curve.append({"timestamp": start + i * HOUR_MS, "equity": equity, "drawdown": equity / peak - 1})
    price = rng.uniform(1e6, 5e6)
    signal = {"timestamp": start + 2 * HOUR_MS, "type": "buy", "price": price, "quantity": 0.3,
              "exit_timestamp": start + 400 * HOUR_MS, "exit_price": price * 1.1, "return_pct": 10.0,
              "pnl": price * 0.03, "commission": price * 3e-4, "holding_bars": 398,
              "reason": "time_exit", "indicators": {"λ": rng.random()}, "tag": None}
    document = {
        "strategy": "event_log_bench", "params": {"lookback": 10}, "timeframe": "1h",
        "start_date": "2024-02-12", "end_date": "2024-03-04",
        "symbols": [{"symbol": "KRW-ETH", "signals": [signal],
                     "performance": {"total_return": 10.0, "win_rate": 100.0, "max_drawdown": -1.0,
                                     "sharpe_ratio": 2.0, "profit_factor": float("nan"), "num_trades": 1}}],
        "performance_curve": curve,
    }
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=True).encode()


def write_tiny_tasks(source: Path, n: int) -> None:
    """<source>/tiny_NNNNN/result.json for n tasks."""
    for i in range(n):
        task = source / f"tiny_{i:05d}"
        task.mkdir(parents=True)
        (task / "result.json").write_bytes(tiny_task(i))


def migrate_seconds(source: Path, home: Path, extra_env: dict, tuned: bool = False) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DAGSTER_HOME")}
    env.update(RESULT_ASSETS_HOME=str(home), **extra_env)
    cli = [sys.executable, "-m", "result_assets.cli"]
    try:
        subprocess.run(cli + ["status"], env=env, check=True, capture_output=True)  # server up before the clock
        if tuned:
            write_tuned_dagster_yaml(home)
        out = subprocess.run(cli + ["migrate", "--source-dir", str(source), "--batch-size", "100", "--json"],
                             env=env, check=True, capture_output=True, text=True).stdout
    finally:  # a failed run must not leave its embedded server behind
        subprocess.run([sys.executable, "-c", "from result_assets.store.postgres import stop_embedded;"
                        "from result_assets.settings import Settings; stop_embedded(Settings.from_env())"], env=env)
    return json.loads(out)["seconds"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="event-log-ab-"))
    try:
        source = work / "tasks"
        write_tiny_tasks(source, args.tasks)
        for round_ in range(1, args.rounds + 1):
            for i, (name, (tuned, env)) in enumerate(MODES.items()):
                seconds = migrate_seconds(source, work / f"home-{round_}-{i}", env, tuned=tuned)
                print(f"round {round_}  {name:<34} {seconds:7.1f} s  ({seconds / args.tasks * 1000:.0f} ms per task)",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
