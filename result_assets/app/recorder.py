"""The Dagster bookkeeping of application saves, written by a process of its own.

A save commits to the store and returns; its materializations and check evaluations (about
ten events) go to the Dagster instance afterwards. In a thread they would compete with the
next save for the interpreter (measured: a postgres-only save p50 of 63 ms with them in a
thread, 34 ms without them); in a process they run on the other core. One process per
instance, shared by the managers of this process; it starts with the first save recorded.
"""
from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import threading
from dataclasses import replace
from typing import Callable

log = logging.getLogger("result_assets.app")
_CONTEXT = multiprocessing.get_context("forkserver")  # never fork a process holding threads and connections
_RECORDERS: dict[tuple, "SaveRecorder"] = {}
_RECORDERS_LOCK = threading.Lock()

Done = Callable[[bool, "str | None"], None]


def recorder_for(settings) -> "SaveRecorder":
    key = (str(settings.dagster_home), settings.database_url, str(settings.home))
    with _RECORDERS_LOCK:
        recorder = _RECORDERS.get(key)
        if recorder is None or not recorder.alive:
            recorder = _RECORDERS[key] = SaveRecorder(settings)
        return recorder


class SaveRecorder:
    def __init__(self, settings):
        self._settings = settings
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._callbacks: dict[int, Done] = {}
        self._process = None

    @property
    def alive(self) -> bool:
        return self._process is None or self._process.is_alive()

    def submit(self, task_id: str, metadata: dict, description: str, checks, done: Done) -> None:
        self._send("record", (task_id, metadata, description, list(checks)), done)

    def flush(self, timeout: float | None) -> bool:
        """Wait until everything submitted so far is recorded; False if timeout passed first."""
        if self._process is None:
            return True
        finished = threading.Event()
        self._send("flush", None, lambda ok, error: finished.set())
        return finished.wait(timeout)

    def _send(self, kind: str, payload, done: Done) -> None:
        with self._lock:
            if self._process is None:
                self._start()
            seq = next(self._seq)
            self._callbacks[seq] = done
        self._requests.put((seq, kind, payload))

    def _start(self) -> None:
        self._requests, self._replies = _CONTEXT.Queue(), _CONTEXT.Queue()
        # The forkserver's environment may be older than ours: the child takes this one.
        environ, settings = dict(os.environ), self._settings
        if settings.database_url is None:
            # The embedded server is ours: the child connects to it by URL instead of adopting
            # it, so stopping the server stays this process's decision.
            from result_assets.platform.postgres import dagster_url

            environ["DATABASE_URL"] = dagster_url(settings)
            settings = replace(settings, database_url=environ["DATABASE_URL"])
        self._process = _CONTEXT.Process(target=_serve, name="result-assets-recorder", daemon=True,
                                         args=(settings, environ, self._requests, self._replies))
        self._process.start()
        threading.Thread(target=self._read_replies, name="result-assets-recorder-replies", daemon=True).start()

    def _read_replies(self) -> None:
        while True:
            try:
                seq, ok, error = self._replies.get()
            except (EOFError, OSError):
                return
            done = self._callbacks.pop(seq, None)
            if done is not None:
                done(ok, error)


def _serve(settings, environ: dict, requests, replies) -> None:
    os.environ.clear()
    os.environ.update(environ)
    from result_assets.app.dagster_events import record_save
    from result_assets.platform.instance import get_instance

    instance = None
    while True:
        seq, kind, payload = requests.get()
        if kind == "flush":
            replies.put((seq, True, None))
            continue
        try:
            instance = instance or get_instance(settings)
            record_save(instance, *payload)
            replies.put((seq, True, None))
        except Exception as exc:  # reported to the save's outcome by the parent
            lines = str(exc).strip().splitlines()
            replies.put((seq, False, f"{type(exc).__name__}: {lines[0] if lines else ''}"))
