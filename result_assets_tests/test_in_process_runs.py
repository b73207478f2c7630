"""A run the CLI executes in its own process has no run worker for Dagster's run monitoring to
watch: killed, it stayed STARTED in the UI for good. The next `maintain` or `migrate` of the
host marks it failed; a live process's run is left alone. Real runs, a real SIGKILL."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from dagster import DagsterRunStatus, RunsFilter

from result_assets.cli import main

# A run that waits in its op, executed the way the CLI executes its runs (tagged by process_tags).
WAITING_RUN = """
import time
from dagster import job, op
from result_assets.assets.in_process_runs import process_tags
from result_assets.assets.instance import get_instance

@op
def wait_for_a_signal():
    time.sleep(600)

@job
def {name}():
    wait_for_a_signal()

{name}.execute_in_process(instance=get_instance(), tags=process_tags())
"""


def start_waiting_run(instance, name: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", WAITING_RUN.format(name=name)], env=os.environ.copy())
    deadline = time.monotonic() + 120
    while not instance.get_runs(RunsFilter(job_name=name, statuses=[DagsterRunStatus.STARTED])):
        assert process.poll() is None and time.monotonic() < deadline, "the waiting run never started"
        time.sleep(0.2)
    return process


def status(instance, name: str) -> DagsterRunStatus:
    [run] = instance.get_runs(RunsFilter(job_name=name))
    return run.status


def test_a_killed_processs_run_is_marked_failed_by_the_next_command_and_a_live_ones_is_not(
        project_home, sample_source, capsys):
    from result_assets.assets.instance import get_instance

    assert main(["migrate", "--source-dir", str(sample_source), "--json"]) == 0
    capsys.readouterr()
    instance = get_instance()
    killed, alive = start_waiting_run(instance, "killed_run"), start_waiting_run(instance, "live_run")
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(30)
        assert status(instance, "killed_run") == DagsterRunStatus.STARTED  # what the UI showed for good
        assert main(["maintain", "--json", "--no-vacuum"]) == 0
        err = capsys.readouterr().err
        assert f"(killed_run) marked failed: the process that ran it (pid {killed.pid} on" in err
        assert status(instance, "killed_run") == DagsterRunStatus.FAILURE
        assert status(instance, "live_run") == DagsterRunStatus.STARTED and "live_run" not in err
    finally:
        alive.kill()
        alive.wait(30)
    assert main(["migrate", "--source-dir", str(sample_source), "--json", "--force"]) == 0  # so does migrate
    assert "(live_run) marked failed" in capsys.readouterr().err
    assert status(instance, "live_run") == DagsterRunStatus.FAILURE


def test_a_process_is_its_pid_and_start_time_on_this_boot_and_pid_namespace():
    """Judged by pid alone, a run of another container sharing the hostname (its pids not in
    this /proc) or of this very process was marked failed while it ran; a reused pid kept a
    dead run STARTED."""
    from result_assets.processes import identity_gone, process_identity

    mine = process_identity()
    boot, namespace, pid, start = mine.split(":")
    assert identity_gone(mine) is False
    assert identity_gone(f"{boot}:{namespace}:{pid}:{int(start) - 1}") is True  # the pid of an ended process, reused
    assert identity_gone(f"{boot}:{namespace}:999999999:{start}") is True
    assert identity_gone(f"another-boot:{namespace}:{pid}:{start}") is True  # a reboot ended every process
    assert identity_gone(f"{boot}:1:{pid}:{start}") is None  # another pid namespace: cannot tell, left alone


def test_a_process_hidden_from_this_user_is_not_taken_for_ended(monkeypatch):
    """With /proc mounted hidepid, another user's live process cannot be read: its run was
    marked failed while it ran."""
    from result_assets import processes

    mine = processes.process_identity()

    def hidden(pid):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(processes, "_start_time", hidden)
    assert processes.identity_gone(mine) is None
