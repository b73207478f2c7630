"""`migrate --dry-run` validates and plans, and writes nothing at all."""
from __future__ import annotations

import json

from result_assets.cli import main


def test_dry_run_writes_nothing(project_home, sample_source, sample_expectations, capsys):
    before = sorted(p.relative_to(project_home) for p in project_home.rglob("*"))
    code = main(["migrate", "--source-dir", str(sample_source), "--dry-run", "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    report = json.loads(out)
    bad = sum(1 for e in sample_expectations.values() if not e["valid"])
    assert report["dry_run"] is True
    assert report["tasks"] == len(sample_expectations)
    assert report["quarantined"] == bad
    assert report["migrated"] == len(sample_expectations) - bad
    assert sorted(p.relative_to(project_home) for p in project_home.rglob("*")) == before == []
