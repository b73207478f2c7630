"""Nothing of ours outlives the process that started it: an application process that saved
starts no process at all (and loads no Dagster), and the conversion workers of a process
killed with SIGKILL exit by themselves."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


SAVE_THEN_DIE = """
import glob, json, os, signal, sys
from result_assets import ResultManager
from result_assets_tests.app.helpers import small_document
manager = ResultManager("postgres-only")  # record_in_dagster: on, as the application runs it
outcome = manager.save_result("no_process_left", small_document(n=5))
assert manager.get_result("no_process_left")["symbols"]  # and reads, through the same API
children = "".join(open(f).read() for f in glob.glob("/proc/self/task/*/children")).split()
print(json.dumps({"stored": outcome.stored, "children": children,
                  "dagster": sorted(m for m in sys.modules if m.split(".")[0] == "dagster")}), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""

CONVERT_THEN_DIE = """
import json, multiprocessing.forkserver as fs, os, signal, time
from result_assets.migration import convert
pool = convert._get_pool(2)  # the conversion workers a large batch starts
futures = [pool.submit(time.sleep, 0.5) for _ in range(4)]
[f.result() for f in futures]
pids = list(pool._processes) + [fs._forkserver._forkserver_pid]
print(json.dumps({"pids": pids}), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def run_and_die(code: str, tmp_path) -> dict:
    """Run code in a process that ends by SIGKILL; its output goes to a file, so nothing it
    left running can hold this call up."""
    out = tmp_path / "out.txt"
    with open(out, "w") as stdout:
        proc = subprocess.run([sys.executable, "-c", code], stdout=stdout, stderr=subprocess.STDOUT, timeout=300,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    text = out.read_text()
    assert proc.returncode == -signal.SIGKILL, text[-2000:]
    return json.loads(text.strip().splitlines()[-1])


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_saving_process_starts_no_process_and_loads_no_dagster(project_home, tmp_path):
    seen = run_and_die(SAVE_THEN_DIE, tmp_path)
    assert seen == {"stored": "migrated", "children": [], "dagster": []}


def test_the_workers_of_a_killed_process_exit_by_themselves(project_home, tmp_path):
    seen = run_and_die(CONVERT_THEN_DIE, tmp_path)
    assert len(set(seen["pids"])) == 3  # two workers and their forkserver
    deadline = time.monotonic() + 60  # the workers look for their client once a second
    while any(alive(pid) for pid in seen["pids"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [pid for pid in seen["pids"] if alive(pid)] == []
