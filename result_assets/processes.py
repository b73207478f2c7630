"""Whether a process of this host is alive, by pid: the conversion workers watch the process
that started them, `archive` the runs that took files aside, the CLI the processes that ran
its in-process Dagster runs."""
from __future__ import annotations

import os


def process_running(pid: int) -> bool:
    """Alive and not a zombie (a killed process not reaped yet still answers kill(pid, 0)).
    A live process of another user counts as alive."""
    try:
        return _start_time(pid) is not None
    except OSError:  # no /proc, or it hides the process: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True


def gone(pid: int) -> bool:
    """The process that wrote `pid` down has ended: not running, or this very process (a
    container's pid 1 on every run: whatever it left was left by a run before this one)."""
    return pid == os.getpid() or not process_running(pid)


def process_identity(pid: int | None = None) -> str | None:
    """"<boot id>:<pid namespace>:<pid>:<start time>" of a process of this machine (this one by
    default), or None when there is no such process or no /proc to say: a pid alone is not a
    process (reused, or another container's under the same hostname)."""
    pid = os.getpid() if pid is None else pid
    try:
        boot, namespace = _boot_and_namespace()
        start = _start_time(pid)
    except OSError:
        return None
    return None if start is None else f"{boot}:{namespace}:{pid}:{start}"


def identity_gone(identity: str) -> bool | None:
    """Whether the process `identity` names has ended; None when this process cannot tell: its
    pid namespace is another (a container of its own, or restarted), /proc hides it
    (`hidepid`), or there is no /proc. Of another boot, it has ended: a boot ends every process."""
    boot, namespace, pid, start = identity.split(":")
    try:
        here = _boot_and_namespace()
    except OSError:
        return None
    if boot != here[0]:
        return True
    if namespace != str(here[1]):
        return None
    try:
        now = _start_time(int(pid))
    except OSError:  # hidden from this user (hidepid): alive or not, this process cannot see
        return None
    return now is None or str(now) != start


def _boot_and_namespace() -> tuple[str, int]:
    with open("/proc/sys/kernel/random/boot_id") as f:
        return f.read().strip(), os.stat("/proc/self/ns/pid").st_ino


def _start_time(pid: int) -> int | None:
    """The process's start time (field 22 of /proc/<pid>/stat, in clock ticks since boot); None
    when there is no such process, or only its zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b") ", 1)[1].split()
    except FileNotFoundError:
        return None
    return None if fields[0] == b"Z" else int(fields[19])
