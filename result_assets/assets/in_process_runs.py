"""Runs executed in the process that asks for them (the CLI's migration, report and
maintenance runs, an application's report of its saves) carry the host and pid that run them.

Dagster's run monitoring ends a run whose run worker died; these have no run worker. Killed
(SIGKILL, an OOM kill, a node lost), such a run stayed STARTED in the UI for good, its
partitions shown as materializing. `migrate` and `maintain` mark those of their host failed
before they start their own.
"""
from __future__ import annotations

import os
import socket

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from result_assets.processes import gone

HOST_TAG = "result_assets/host"
PID_TAG = "result_assets/pid"
_UNFINISHED = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def process_tags() -> dict[str, str]:
    """The tags of a run this process executes itself."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def fail_orphaned_runs(instance: DagsterInstance) -> list[str]:
    """Report failed the unfinished runs executed by processes of this host that have ended;
    the messages saying which. Called before this process starts runs of its own."""
    host, notes = socket.gethostname(), []
    for record in instance.get_run_records(RunsFilter(statuses=_UNFINISHED, tags={HOST_TAG: host})):
        run = record.dagster_run
        pid = run.tags.get(PID_TAG, "")
        if not pid.isdigit() or not gone(int(pid)):
            continue
        why = f"the process that ran it (pid {pid} on {host}) ended before the run did (killed?)"
        instance.report_run_failed(run, message=why)
        notes.append(f"run {run.run_id} ({run.job_name}) marked failed: {why}")
    return notes
