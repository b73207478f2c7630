"""Keeping the store fast for years: flush the hot tier, then compact, re-point, checkpoint, vacuum.

`maintain` is what the `store_maintenance` schedule runs and what `result-assets maintain`
does. One run at a time (a Postgres advisory lock). The flush publishes hot-tier saves
into Delta through the batch engine, with its proofs (one writer); the steps after it
are the store's own (store/maintenance.py).
"""
from __future__ import annotations

import time
from dataclasses import asdict

from result_assets.migration.engine import flush_hot_tier
from result_assets.store.delta_tables import CURVES, SIGNALS
from result_assets.store.maintenance import (
    MaintenanceReport,
    compact_repoint_vacuum,
    locate_unlocated_rows,
    table_facts,
)

DEFAULT_RETENTION_HOURS = 168  # a week: Delta's own default, and how far back rollback reaches
_MAINTENANCE_LOCK = 7202  # pg advisory lock: one maintenance at a time


class MaintenanceBusy(RuntimeError):
    """Another maintenance run holds the store."""


def maintain(stores, *, compact: bool = True, z_order: bool = False, vacuum: bool = True,
             retention_hours: int = DEFAULT_RETENTION_HOURS, flush_batch: int = 1000,
             max_flush: int | None = None) -> MaintenanceReport:
    report = MaintenanceReport()

    def timed(name, fn, *args, **kwargs):
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            report.seconds[name] = round(report.seconds.get(name, 0.0) + time.perf_counter() - started, 4)

    with stores.catalog.advisory_lock(_MAINTENANCE_LOCK) as held:
        if not held:
            raise MaintenanceBusy("another maintenance run is in progress")
        for table in (SIGNALS, CURVES):
            report.tables[table] = {"before": table_facts(stores, table)}
        report.located, report.unreadable = timed("locate", locate_unlocated_rows, stores)
        held_back: set[str] = set()
        idle_rounds, caught_up = 0, False
        # The rounds the backlog found at the start needs, and two more: applications saving as
        # fast as the flush moves tasks would otherwise keep it going, and compaction waiting.
        rounds_left = -(-stores.catalog.hot_count() // flush_batch) + 2
        while (max_flush is None or report.flushed < max_flush) and rounds_left > 0:
            rounds_left -= 1
            # A task whose rows did not read back as saved is left to the next run: as the
            # oldest it would be each round's first and hold back the tasks after it.
            limit = flush_batch if max_flush is None else min(flush_batch, max_flush - report.flushed)
            flushed = timed("flush", flush_hot_tier, stores, limit, held_back)
            report.flushed += len(flushed.moved)
            report.flushed_task_ids += flushed.moved
            held_back.update(flushed.unproven)
            idle_rounds = 0 if flushed.moved else idle_rounds + 1
            # Another round while a full batch was listed (the tasks after it are waiting). A
            # task saved again while its round committed is not moved at its old version: one
            # more round takes such tasks up at their new one, once per run (applications that
            # keep saving would otherwise keep the flush going, and compaction waiting). Not
            # after a round in which every task was saved again, nor after two rounds that
            # moved nothing: rows that never read back are a fault of the store, not of a few tasks.
            saved_again = set(flushed.listed) - set(flushed.moved) - set(flushed.unproven)
            if idle_rounds == 2 or not (flushed.moved or flushed.unproven):
                break
            if len(flushed.listed) < limit:
                if caught_up or not saved_again:
                    break
                caught_up = True
        report.still_hot = stores.catalog.hot_count()
        # Exclusive against Delta batches between commit and publication: compaction and
        # vacuum never take a file a batch committed and has not published yet.
        with stores.catalog.store_write_lock(exclusive=True):
            compact_repoint_vacuum(stores, report, timed, compact=compact, z_order=z_order, vacuum=vacuum,
                                   retention_hours=retention_hours)
        if stores.serving_cache.enabled:
            report.serving_cache = asdict(timed("serving_cache", stores.serving_cache.trim, drop_superseded=True))
        else:
            emptied = timed("serving_cache", stores.serving_cache.empty_when_off)
            report.serving_cache = asdict(emptied) if emptied is not None else None
    return report


