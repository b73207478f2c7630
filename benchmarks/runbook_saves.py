"""`python -m benchmarks.runbook_saves`: one script saving results through ResultManager
in the runbook's order (a few json-only, a few dual-write, then postgres-only), in a fresh
home, as a platform switching over would; prints how many saves failed and the first error.

    python -m benchmarks.runbook_saves [--saves 1000] [--runs 3]

Exit 1 if any save failed in any run.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

FIRST_MODES = (("json-only", 10), ("dual-write", 10))  # then postgres-only for the rest


def one_run(saves: int, seed: int) -> tuple[int, list[str], float]:
    """(saves made, errors, seconds) in a fresh home, the embedded server stopped afterwards."""
    from result_assets.app.manager import ResultManager
    from benchmarks.measure import fresh_home, home_settings, stop_home

    home = fresh_home(Path(tempfile.mkdtemp(prefix="runbook_saves_")))
    errors: list[str] = []
    started = time.perf_counter()
    try:
        plan = [m for mode, n in FIRST_MODES for m in [mode] * n]
        plan += ["postgres-only"] * (saves - len(plan))
        managers = {}
        for i, mode in enumerate(plan):
            manager = managers.get(mode) or managers.setdefault(
                mode, ResultManager(mode, source_dir=str(home / "json"), settings=home_settings(home)))
            try:
                manager.save_result(f"runbook_{seed}_{i:05d}", document(i))
            except Exception as exc:  # noqa: BLE001 - counted and shown
                errors.append(f"save {i} ({mode}): {type(exc).__name__}: {str(exc).splitlines()[0]}")
        return len(plan), errors, time.perf_counter() - started
    finally:
        stop_home(home)


def document(i: int) -> dict:
    """A valid v2 result of 1-9 signals, different for each i."""
    signals = [{"timestamp": f"2024-01-{1 + k:02d} 09:00:00", "type": "buy" if k % 2 == 0 else "sell",
                "price": 100.0 + i + k, "quantity": 0.5, "pnl": float(k) - 1.0, "indicators": {"rsi": 30.0 + k}}
               for k in range(1 + i % 9)]
    summary = {"total_return": i / 7, "num_trades": len(signals)}
    return {"strategy": f"s{i}", "params": {"n1": i}, "timeframe": "1d", "start_date": "2024-01-01",
            "end_date": "2024-01-31", "symbols": [{"symbol": "KRW-BTC", "signals": signals, "performance": summary}],
            "summary": summary, "metadata": {"engine_version": "1.0.0"}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.runbook_saves", description=__doc__)
    parser.add_argument("--saves", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    failed_runs = 0
    for run in range(1, args.runs + 1):
        made, errors, seconds = one_run(args.saves, run)
        failed_runs += bool(errors)
        print(f"run {run}: {made} saves, {len(errors)} failed, {seconds:.1f} s"
              + (f"; first: {errors[0]}" if errors else ""), flush=True)
    print(f"{args.runs - failed_runs} of {args.runs} runs completed every save")
    return 1 if failed_runs else 0


if __name__ == "__main__":
    sys.exit(main())
