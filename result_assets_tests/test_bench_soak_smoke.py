"""`bench --soak` end to end, briefly: the table, soak.json, and nothing left running after it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROWS = ("processes", "seconds", "saves", "failed saves", "reads", "failed reads", "lost", "shown twice",
        "save p50 / p99 ms", "read p50 / p99 ms", "migrate runs", "maintain runs")


def processes_naming(home: str) -> list[str]:
    """Processes whose command line names the home (its Postgres: -D <home>/pg) or whose
    environment points at it (the soak's workers, migrate and maintain runs)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes()
            environ = Path(entry.path, "environ").read_bytes()
        except OSError:
            continue
        if home.encode() in cmdline or f"RESULT_ASSETS_HOME={home}".encode() in environ.split(b"\0"):
            command = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {command[:200]}")
    return found


def test_soak_smoke(tmp_path):
    cli = Path(sys.executable).with_name("result-assets")
    argv = [str(cli), "bench", "--soak", "--soak-seconds", "15", "--soak-processes", "2", "--workdir",
            str(tmp_path / "work")]
    env = {k: v for k, v in os.environ.items() if k not in ("RESULT_ASSETS_HOME", "RESULT_STORAGE_MODE")}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240, env=env)
    # Exit 1 is a soak that ran and found failures (e.g. deadlocked saves): the figures still count here.
    assert done.returncode in (0, 1), done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "| figure | value |", done.stdout
    names = [line.split("|")[1].strip() for line in lines if line.startswith("| ")][1:]
    assert names == list(ROWS), done.stdout
    assert "soak: verifying" in done.stderr, done.stderr[-3000:]

    report = json.loads((tmp_path / "work" / "soak.json").read_text())
    assert report["saves"] > 0, report
    assert report["exit_code"] == done.returncode
    assert report["verify_error"] is None, report["verify_error"]
    assert report["migrate_rc"] and report["final_maintain_rc"] is not None, report
    assert report["left_running"] == []
    home = report["home"]
    assert home and not Path(home).exists()  # the temporary home is gone with its server
    assert processes_naming(home) == []
