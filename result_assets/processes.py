"""Whether a process of this host is alive, by pid: the conversion workers watch the process
that started them, `archive` the runs that took files aside, the CLI the processes that ran
its in-process Dagster runs."""
from __future__ import annotations

import os


def process_running(pid: int) -> bool:
    """Alive and not a zombie (a killed process not reaped yet still answers kill(pid, 0)).
    A live process of another user counts as alive."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b") ", 1)[1][:1] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
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
    default), or None when it is not running or there is no /proc: a pid alone is not a
    process (reused, or another container's under the same hostname)."""
    pid = os.getpid() if pid is None else pid
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b") ", 1)[1].split()
    except OSError:
        return None
    if fields[0] == b"Z":
        return None
    return f"{boot}:{namespace}:{pid}:{int(fields[19])}"  # field 22 of stat: the start time, in ticks


def identity_gone(identity: str) -> bool | None:
    """Whether the process `identity` names has ended; None when this process cannot tell (another
    boot, another pid namespace, no /proc)."""
    boot, namespace, pid, _ = identity.split(":")
    mine = process_identity()
    if mine is None or mine.split(":")[:2] != [boot, namespace]:
        return None
    return process_identity(int(pid)) != identity
