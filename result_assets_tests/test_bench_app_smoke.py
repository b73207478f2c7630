"""`bench --app` end to end with tiny numbers: every row, every mode, and the JSON figures."""
from __future__ import annotations

import io
import json
import numbers
import os

from benchmarks.app_life import MODES, NOT_YET, Params, run_app_life

FIGURES = ("first.save.p50", "first.save.p95", "first.get_small.p50", "first.get_large.p50",
           "first.get_migrated.p50", "after_n.save.p50", "after_n.get_small.p50", "after_n.get_large.p50",
           "after_n.get_migrated.p50", "after_n.bulk")


def test_app_bench_smoke(project_home, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    params = Params(saves=5, bulk=3, reads=3, large_tasks=1, large_signals=300)
    assert run_app_life(tmp_path / "work", params, out=out, err=err) == 0, err.getvalue()

    lines = out.getvalue().splitlines()
    assert lines[0] == "| figure | " + " | ".join(MODES) + " | target |"
    text = out.getvalue()
    for label in ("after the first 5 saves", "after 5 saves, no maintenance", "after 5 saves + maintain()",
                  "save_result, 100-signal task", "get_result, small (<200 KB", "get_result, large (>1 MB",
                  "get_result, migrated legacy file (20 tasks",
                  "bulk read of 3 tasks", "proof stage", "alternated with json-only's read of the file",
                  "alternated with json-only's read of the same document saved by json-only"):
        assert label in text, label
    assert "maintain(stores) duration" in text or NOT_YET in text
    for line in lines[2:]:
        if not line.startswith("| ") or line.startswith("| **"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == len(MODES) + 2, line
        assert all(c and c != "error" for c in cells[1:-1]), line

    report = json.loads((tmp_path / "work" / "app_life.json").read_text())
    for mode in MODES:
        figures = report["results"][mode]["figures"]
        for key in FIGURES:
            assert isinstance(figures[key], numbers.Real) and figures[key] > 0, (mode, key)
    for mode in MODES[1:]:  # the stores' first reads beside the file's, read in the same moment
        figures = report["results"][mode]["figures"]
        for block in ("first", "after_n"):
            assert figures[f"{block}.get_migrated_paired.file"] > 0, (mode, block)
            assert figures[f"{block}.get_migrated_paired.store"] > 0, (mode, block)
            assert figures[f"{block}.get_small_paired.file"] > 0, (mode, block)
            assert figures[f"{block}.get_small_paired.store"] > 0, (mode, block)


def test_the_report_run_bench_prints_both_ways():
    """`python -m benchmarks.report_run`: the saves' report to Dagster, as the sensor's run in a
    process of its own and as flush_records, each timed per save."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in ("RESULT_ASSETS_HOME", "DAGSTER_HOME")}
    done = subprocess.run([sys.executable, "-m", "benchmarks.report_run", "--small", "1", "--large", "3"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| run worker") or line.startswith("| flush")]
    assert len(rows) == 2 and all(line.rstrip().endswith("ms |") for line in rows), done.stdout
