"""Processes: whether one of this host is alive, by pid (the conversion workers watch the
process that started them, `archive` the runs that took files aside, the CLI the processes
that ran its in-process Dagster runs), and a window a Ctrl-C waits for."""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager


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


@contextmanager
def interrupts_deferred():
    """Hold a Ctrl-C (SIGINT) until the block ends, then hand it to the handler that was
    installed (Python's KeyboardInterrupt, or Dagster's own while it runs a step): what must
    happen together, a run's publish and its report to Dagster, is never cut between the two.
    Only the main thread takes signal handlers; elsewhere this holds nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(signal.SIGINT, received[-1])
        elif received and previous == signal.SIG_DFL:
            raise KeyboardInterrupt
