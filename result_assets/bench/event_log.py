"""A/B of the Dagster event log settings on many tiny tasks (bookkeeping dominates there).

    python -m result_assets.bench.event_log [--tasks 300] [--rounds 2]

Alternates, on fresh homes: stock dagster-postgres event log; the project's pooled one with
synchronous commits; the project's default (pooled, no WAL-flush wait). Prints the
`seconds` of each `result-assets migrate --batch-size 100 --json`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "result_assets_tests" / "samples" / "tasks" / "bt_20250900_74cff6"
MODES = {
    "stock event log": {"RESULT_ASSETS_STOCK_EVENT_LOG": "1"},
    "pooled, synchronous commit": {"RESULT_ASSETS_EVENT_SYNC_COMMIT": "on"},
    "pooled (default)": {},
}


def migrate_seconds(source: Path, home: Path, extra_env: dict) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DAGSTER_HOME")}
    env.update(RESULT_ASSETS_HOME=str(home), **extra_env)
    cli = [sys.executable, "-m", "result_assets.cli"]
    subprocess.run(cli + ["status"], env=env, check=True, capture_output=True)  # server up before the clock
    out = subprocess.run(cli + ["migrate", "--source-dir", str(source), "--batch-size", "100", "--json"],
                         env=env, check=True, capture_output=True, text=True).stdout
    subprocess.run([sys.executable, "-c", "from result_assets.platform.postgres import stop_embedded;"
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
        for i in range(args.tasks):  # one-signal tasks: the data work is negligible
            shutil.copytree(SAMPLE, source / f"tiny_{i:05d}")
        for round_ in range(1, args.rounds + 1):
            for name, env in MODES.items():
                seconds = migrate_seconds(source, work / f"home-{round_}-{len(name)}", env)
                print(f"round {round_}  {name:<28} {seconds:7.1f} s  ({seconds / args.tasks * 1000:.0f} ms per task)",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
