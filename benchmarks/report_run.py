"""The cost of reporting application saves to Dagster, per save: `python -m benchmarks.report_run`.

On a fresh home, postgres-only saves of a 20-signal document queue their Dagster records; then
`report_saves_job` reports them in each of the two ways it runs:
- as the saves sensor's run, in a process of its own (a run worker: DefaultRunLauncher's
  subprocess, a pod), timed from the job's start, not the process's;
- as `ResultManager.flush_records()`, in the application's process.
Each way reports a small and a large batch; the per-save cost is the difference of the two
divided by the difference in saves (the run's own start-up cancels out).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

# The sensor's run as a run worker executes it: its own process, no pid tag of the application's.
_WORKER = """
import time
from result_assets.assets.instance import get_instance
from result_assets.assets.resources import StoresResource
from result_assets.assets.saves import report_saves_job
started = time.perf_counter()
result = report_saves_job.execute_in_process(instance=get_instance(), resources={"stores": StoresResource()},
    run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
assert result.success
print(time.perf_counter() - started)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report_run", description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10, help="saves in the small batch (default 10)")
    parser.add_argument("--large", type=int, default=200, help="saves in the large batch (default 200)")
    args = parser.parse_args(argv)
    home = tempfile.mkdtemp(prefix="report_run_")
    for key in ("DATABASE_URL", "RESULT_STORE_ROOT", "DAGSTER_HOME", "RESULT_SOURCE_DIR", "RESULT_BACKUP_DIR"):
        os.environ.pop(key, None)
    os.environ["RESULT_ASSETS_HOME"] = home

    from benchmarks.app_life import make_document, task_id
    from result_assets.app.manager import ResultManager
    from result_assets.settings import Settings
    from result_assets.store.postgres import stop_embedded

    manager = ResultManager("postgres-only", record_in_dagster=True)
    documents = [make_document(7, task_id(i), 20) for i in range(50)]
    saved = 0
    try:
        manager.save_result("warm_up", documents[0])
        manager.flush_records()  # Dagster's import and the instance's first use, untimed

        def report(way: str, n: int) -> float:
            nonlocal saved
            for i in range(n):
                manager.save_result(task_id(saved + i), documents[i % len(documents)])
            saved += n
            if way == "run worker":
                out = subprocess.run([sys.executable, "-c", _WORKER], capture_output=True, text=True, check=True)
                return float(out.stdout.strip().splitlines()[-1])
            started = time.perf_counter()
            assert manager.flush_records()
            return time.perf_counter() - started

        print(f"| way | {args.small} saves | {args.large} saves | per save (the difference) |")
        print("|---|---:|---:|---:|")
        for way in ("run worker", "flush_records"):
            small, large = report(way, args.small), report(way, args.large)
            per_save = (large - small) / (args.large - args.small)
            print(f"| {way} | {small:.2f} s | {large:.2f} s | {per_save * 1000:.1f} ms |", flush=True)
    finally:
        manager.close()
        stop_embedded(Settings.from_env())
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
