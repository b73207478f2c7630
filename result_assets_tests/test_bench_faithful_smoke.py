"""`python -m benchmarks.faithful` runs from a checkout and prints its counts (issue 19's yardstick)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_the_faithfulness_bench_counts_the_samples():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.faithful", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (samples,) = json.loads(proc.stdout)["corpora"]
    assert samples["valid"] == 14  # the samples' valid tasks, as the quickstart migrates them
    assert samples["styles"] == 14  # every sample is one of four json.dumps calls
    assert samples["regenerable"] == 14  # and comes back from its rows and a Spelling
    assert 0 < samples["spelling_bytes"] < samples["json_bytes"] // 100
    assert 0 < samples["saves"] <= samples["valid"]
    for key in ("export", "get"):
        assert 0 <= samples[key] <= samples["valid"]
    for key in ("saved_hot", "saved_flushed"):
        assert 0 <= samples[key] <= samples["saves"]
    # a save reads back the same before and after maintenance moved it to Delta
    assert samples["saved_hot"] == samples["saved_flushed"]
    # every valid sample exports byte for byte and reads back as json.loads of its file, alone
    # or read together with the others; every save reads back as saved
    assert samples["export"] == samples["get"] == samples["get_many"] == samples["valid"]
    assert samples["saved_hot"] == samples["saved_flushed"] == samples["saved_many"] == samples["saves"]
