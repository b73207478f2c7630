"""Validation plus the conversion half of the round-trip check, over a batch, on every core.

Each task is parsed, normalized, rebuilt from exactly the rows and skeleton text to be
stored and compared with the source (legacy-format.md's rules) in a worker process,
which also digests what it proved; the engine then proves that the store gives back
rows with those digests. Together: source == rebuild(read back from the stores). The
parsed source never travels back.
"""
from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from result_assets.legacy import compare_documents, dumps_document, reconstruct
from result_assets.legacy.parse import parse_written
from result_assets.migration.batch import RawResult, TaskProof, ValidatedResult, read_source, validate
from result_assets.migration.sources import LegacyFile
from result_assets.store.row_digest import rows_digest

log = logging.getLogger(__name__)

# Below this much JSON a batch is converted in-process: a worker round trip costs more.
PARALLEL_MIN_BYTES = 4 << 20

# The worker processes, one pool per process (started on first use, joined at exit).
_pool: ProcessPoolExecutor | None = None
_pool_workers = 0


def convert(raw: RawResult) -> ValidatedResult:
    """Validate, convert and prove one task; whatever goes wrong with its data quarantines
    it alone, with a reason that names what failed."""
    started = time.perf_counter()
    # A parsed task is hundreds of thousands of small objects with no cycles: the cyclic
    # GC would re-walk them many times over while they are built (measured: ~1.5-2x slower).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        v = validate(raw)
        if v.result is not None:
            prove_conversion(v)
        v.document = None
    except Exception as exc:  # one task's data must never fail its batch
        v = ValidatedResult(raw.source, raw.sha256, len(raw.raw), None, None,
                            f"could not convert: {type(exc).__name__}: {_first_line(exc)}", 0.0)
    finally:
        if gc_was_enabled:
            gc.enable()
    v.seconds = time.perf_counter() - started
    return v


def prove_conversion(v: ValidatedResult) -> None:
    """Rebuild the task from exactly what will be stored (its rows and the skeleton's JSON
    text) and compare with the source; record digests of what was proven."""
    skeleton_text = dumps_document(v.result.skeleton)
    # parse_written: what readers parse the stored skeleton text with
    rebuilt = reconstruct(parse_written(skeleton_text.encode()), v.result.signals, v.result.curves)
    v.conversion_differences = compare_documents(v.document, rebuilt)
    if v.conversion_differences:
        v.failure = "conversion differs from the source: " + "; ".join(v.conversion_differences[:3])
        return
    v.proof = TaskProof(rows_digest(v.result.signals), rows_digest(v.result.curves), skeleton_text)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else ""


def convert_batch(raws: list[RawResult], workers: int, ahead: "Prefetch | None" = None) -> list[ValidatedResult]:
    """Each task converted and proven, on `workers` processes. A task whose conversion `ahead`
    started (for these very bytes) takes that one."""
    out: list[ValidatedResult | None] = [ahead.take(r) if ahead else None for r in raws]
    todo = [i for i, v in enumerate(out) if v is None]
    if workers == 1 or len(todo) < 2 or sum(len(raws[i].raw) for i in todo) < PARALLEL_MIN_BYTES:
        for i in todo:
            out[i] = convert(raws[i])
        return out  # type: ignore[return-value]
    # Largest first, so one huge task does not start last and idle the other worker.
    order = sorted(todo, key=lambda i: -len(raws[i].raw))
    try:
        results = list(_get_pool(workers).map(convert, [raws[i] for i in order]))
    except (RuntimeError, OSError, BrokenProcessPool) as exc:
        # E.g. a caller's script without an `if __name__ == "__main__":` guard cannot start
        # workers; the batch is still converted, on one core.
        log.warning("converting in-process: worker processes unavailable (%s)", str(exc).strip()[:200])
        _reset_pool()
        results = [convert(raws[i]) for i in order]
    for i, v in zip(order, results):
        out[i] = v
    return out  # type: ignore[return-value]


class Prefetch:
    """Conversions started ahead of their batch. Whoever knows the next batch (the CLI's
    launcher, which plans every run) starts it while the current one is written, read back
    and recorded, so both cores stay busy; it hands this object to each run (the code
    location's `prefetch` resource). A run given none converts its own batch: the same
    result, without the overlap. A result is taken only for the very bytes its batch reads."""

    def __init__(self, max_file_bytes: int, workers: int):
        self.max_file_bytes, self.workers = max_file_bytes, workers
        self.pending: dict[str, Future] = {}  # {task id: Future of ValidatedResult}

    @classmethod
    def none(cls) -> "Prefetch":
        """Nothing started ahead: what a run launched by the daemon or a backfill gets."""
        return cls(max_file_bytes=0, workers=1)

    def start(self, files: list[LegacyFile]) -> None:
        """Start reading and converting these tasks in the workers now, largest first.
        Idempotent; a small batch is left to be converted in-process with its batch."""
        if self.workers == 1 or sum(f.size for f in files) < PARALLEL_MIN_BYTES:
            return
        try:
            pool = _get_pool(self.workers)
            for source in sorted(files, key=lambda f: -f.size):
                if source.task_id not in self.pending and not source.refused and source.size <= self.max_file_bytes:
                    self.pending[source.task_id] = pool.submit(_read_and_convert, source, self.max_file_bytes)
        except (RuntimeError, OSError, BrokenProcessPool):
            self.discard()  # converted in their batch instead

    def take(self, raw: RawResult) -> ValidatedResult | None:
        future = self.pending.pop(raw.source.task_id, None)
        if future is None or raw.unreadable:
            return None
        try:
            v = future.result()
        except Exception:  # noqa: BLE001 - a broken pool or a cancelled future: convert it here
            return None
        if v is None or v.sha256 != raw.sha256:
            return None  # the file changed between the two reads: these bytes are converted now
        v.source = raw.source
        return v

    def discard(self) -> None:
        for future in self.pending.values():
            future.cancel()
        self.pending.clear()


def _read_and_convert(source: LegacyFile, max_file_bytes: int) -> ValidatedResult | None:
    raw = read_source(source, max_file_bytes)
    return None if raw.unreadable or raw.backup_from_file else convert(raw)


def shutdown_workers() -> None:
    """Let the worker processes finish and exit (a process about to end calls this)."""
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
    _pool = None


def _reset_pool() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
    _pool = None


def _get_pool(n: int) -> ProcessPoolExecutor:
    global _pool, _pool_workers
    if _pool is None or _pool_workers != n:
        # forkserver: never fork a process holding Dagster's threads and database connections.
        _pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("forkserver"),
                                    initializer=_exit_with, initargs=(os.getpid(),))
        _pool_workers = n
    return _pool


def _exit_with(client_pid: int) -> None:
    """In each worker: exit once the process that started the pool is gone. A client killed
    with SIGKILL cannot shut its pool down, and the forkserver's workers (and with them the
    forkserver) would otherwise wait for work forever."""
    def watch():
        while True:
            time.sleep(1.0)
            if not _running(client_pid):
                os._exit(0)

    threading.Thread(target=watch, name="result-assets-exit-with-client", daemon=True).start()


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed process not reaped yet still answers kill(pid, 0))."""
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
