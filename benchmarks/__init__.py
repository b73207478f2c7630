"""`result-assets bench`: the migration measured against the scripts and tools a team would use instead.

Contenders, each in its own subprocess on the same generated corpus:
  (a) naive.py       json.load + pandas.json_normalize + to_parquet + one INSERT per task
  (b) dlt_loader.py  dlt to Postgres and to Parquet files, tuned as its docs advise
  (c) project.py     `result-assets migrate` through Dagster, re-run, compaction, export check
  (d) project.py     the converter alone (validate_result + DeltaStore), no Dagster, no catalog
scale.py times partition registration, a dry run and `status` over 100k tasks.

Not part of the installed package: these run from a source checkout (`python -m benchmarks.<module>`
from its root, or `result-assets bench`, which finds the checkout beside the editable package).
"""
from __future__ import annotations

import os
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]  # the folder holding benchmarks/ (and result_assets/)


def child_env(env: dict | None = None) -> dict:
    """env (default: this process's) with the checkout on PYTHONPATH, so that a child started
    as `python -m benchmarks.<module>` imports this package whatever its working directory."""
    env = dict(os.environ if env is None else env)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(CHECKOUT) not in parts:
        env["PYTHONPATH"] = os.pathsep.join([*parts, str(CHECKOUT)])
    return env
