"""Runs executed in the process that asks for them (the CLI's migration, report and
maintenance runs, an application's report of its saves) carry the process that runs them:
its host, pid and identity (boot id, pid namespace, pid and start time).

Dagster's run monitoring ends a run whose run worker died; these have no run worker. Killed
(SIGKILL, an OOM kill), such a run stayed STARTED in the UI for good, its partitions shown as
materializing. `migrate` and `maintain` mark failed those whose process has ended, when they
can tell: a process of the same boot and pid namespace (not another container's under the
same hostname), whose pid now names no process or another one.
"""
from __future__ import annotations

import os
import socket

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from result_assets.processes import identity_gone, process_identity

HOST_TAG = "result_assets/host"
PID_TAG = "result_assets/pid"
PROCESS_TAG = "result_assets/process"
_UNFINISHED = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def process_tags() -> dict[str, str]:
    """The tags of a run this process executes itself."""
    identity = process_identity()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()), **({PROCESS_TAG: identity} if identity else {})}


def fail_orphaned_runs(instance: DagsterInstance) -> list[str]:
    """Report failed the unfinished runs executed by processes of this host that have ended;
    the messages saying which. Called before this process starts runs of its own."""
    host, notes = socket.gethostname(), []
    for record in instance.get_run_records(RunsFilter(statuses=_UNFINISHED, tags={HOST_TAG: host})):
        run = record.dagster_run
        identity = run.tags.get(PROCESS_TAG)
        if not identity or identity.count(":") != 3 or not identity_gone(identity):
            continue
        why = f"the process that ran it (pid {run.tags.get(PID_TAG)} on {host}) ended before the run did (killed?)"
        instance.report_run_failed(run, message=why)
        notes.append(f"run {run.run_id} ({run.job_name}) marked failed: {why}")
    return notes
