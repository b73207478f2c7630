"""Validation plus the conversion half of the round-trip check, over a batch, on every core.

Each task is parsed, normalized, rebuilt from its own rows and compared with the
source (legacy-format.md's rules) in a worker process; the parent then only has to
prove that storage gives back the rows it was given (verify.py). Together: source ==
rebuild(read back from the stores). The parsed source never travels back.
"""
from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from result_assets.legacy import compare_documents, reconstruct
from result_assets.migration.batch import RawResult, ValidatedResult, validate

log = logging.getLogger(__name__)

# Below this much JSON a batch is converted in-process: a worker round trip costs more.
PARALLEL_MIN_BYTES = 4 << 20

_pool: ProcessPoolExecutor | None = None
_pool_workers = 0


def workers() -> int:
    return max(1, int(os.environ.get("RESULT_WORKERS") or os.cpu_count() or 1))


def convert(raw: RawResult) -> ValidatedResult:
    started = time.perf_counter()
    # A parsed task is hundreds of thousands of small objects with no cycles: the cyclic
    # GC would re-walk them many times over while they are built (measured: ~1.5-2x slower).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        v = validate(raw)
        if v.result is not None:
            rebuilt = reconstruct(v.result.skeleton, v.result.signals, v.result.curves)
            v.conversion_differences = compare_documents(v.document, rebuilt)
            del rebuilt
        v.document = None
    finally:
        if gc_was_enabled:
            gc.enable()
    v.seconds = time.perf_counter() - started
    return v


def convert_batch(raws: list[RawResult]) -> list[ValidatedResult]:
    n = workers()
    if n == 1 or len(raws) < 2 or sum(len(r.raw) for r in raws) < PARALLEL_MIN_BYTES:
        return [convert(r) for r in raws]
    # Largest first, so one huge task does not start last and idle the other worker.
    order = sorted(range(len(raws)), key=lambda i: -len(raws[i].raw))
    try:
        results = list(_get_pool(n).map(convert, [raws[i] for i in order]))
    except (RuntimeError, OSError, BrokenProcessPool) as exc:
        # E.g. a caller's script without an `if __name__ == "__main__":` guard cannot start
        # workers; the batch is still converted, on one core.
        log.warning("converting in-process: worker processes unavailable (%s)", str(exc).strip()[:200])
        _reset_pool()
        return [convert(r) for r in raws]
    out: list[ValidatedResult | None] = [None] * len(raws)
    for i, v in zip(order, results):
        out[i] = v
    return out  # type: ignore[return-value]


def _reset_pool() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
    _pool = None


def _get_pool(n: int) -> ProcessPoolExecutor:
    global _pool, _pool_workers
    if _pool is None or _pool_workers != n:
        # forkserver: never fork a process holding Dagster's threads and database connections.
        _pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("forkserver"))
        _pool_workers = n
    return _pool
