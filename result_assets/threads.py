"""A piece of work on a thread of its own, for a wait (a write's fsync) beside CPU work."""
from __future__ import annotations

import threading
from concurrent.futures import Future


def in_thread(work, *args) -> Future:
    """work(*args) on a thread of its own (a thread per call: nothing to restart in a forked
    child); its result or exception through the Future."""
    future: Future = Future()

    def run():
        try:
            future.set_result(work(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who raises it
            future.set_exception(exc)

    threading.Thread(target=run, name="result-assets-write", daemon=True).start()
    return future
