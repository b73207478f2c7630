"""The integrity checks of a batch, evaluated against what the stores hold now."""
from __future__ import annotations

from dataclasses import dataclass, field

from result_assets.migration.batch import ValidatedResult
from result_assets.store.delta_tables import CURVES, SIGNALS
from result_assets.store.stores import Stores

DEFAULT_COMPRESSION_GOAL = 0.90  # stored bytes at least 90% smaller than the JSON


# The engine's checks, by id. The code location gives each its asset, check name,
# severity and description (assets/checks.py); the engine knows none of them.
BACKUP_CHECKSUM = "backup_checksum"
SIGNAL_ROWS = "signal_rows"
CURVE_ROWS = "curve_rows"
LOSSLESS_ROUND_TRIP = "lossless_round_trip"
COMPRESSION_GOAL = "compression_goal"
QUARANTINE = "quarantine"
CHECK_IDS = (BACKUP_CHECKSUM, SIGNAL_ROWS, CURVE_ROWS, LOSSLESS_ROUND_TRIP, COMPRESSION_GOAL, QUARANTINE)


@dataclass
class CheckOutcome:
    check: str  # one of CHECK_IDS
    task_id: str
    partition_key: str
    passed: bool
    description: str
    metadata: dict = field(default_factory=dict)


def judge(stores: Stores, batch, compression_goal: float = DEFAULT_COMPRESSION_GOAL,
          report: dict | None = None, verified: dict[str, bool] | None = None) -> list[CheckOutcome]:
    """Each check's outcome for each task of a batch (engine.BatchResult: published, or for
    an application save about to be, its record queued with them), the
    compression goal against `report` (store_report: the bytes the migrate report counts).
    `verified`: {task_id: backup reads back} as the engine found it before publishing."""
    from result_assets.migration.summary import store_report

    signal_counts, curve_counts = batch.stored_rows[SIGNALS], batch.stored_rows[CURVES]
    report = report or store_report(stores)
    json_bytes, stored_bytes = report["migrated_json_bytes"], report["stored_bytes"]
    # Judged on the whole store: a small batch's files carry fixed Parquet overhead
    # that compaction removes, so its own ratio says little.
    ratio = 1 - stored_bytes / json_bytes if json_bytes else None
    out: list[CheckOutcome] = []
    not_copied = {b.task_id: b.reason for b in batch.backups if not b.copied}
    for v in batch.validated:
        key, tid = v.source.partition_key, v.task_id

        def add(check, passed, description, **metadata):
            out.append(CheckOutcome(check, tid, key, passed, description, metadata))

        # Refused (never copy what the source dir must not hand out) or unreadable: nothing was
        # copied, and the task is quarantined with why.
        if tid in not_copied:
            add(BACKUP_CHECKSUM, True, f"not copied: {not_copied[tid]}")
        else:
            backed_up = verified[tid] if verified and tid in verified else stores.backups.verify(tid, v.sha256)
            add(BACKUP_CHECKSUM, backed_up,
                "backup matches the source" if backed_up else "backup missing or its SHA-256 differs",
                sha256=v.sha256, bytes=v.json_bytes)
        want_signals = v.result.n_signals if v.result else 0
        want_curve = v.result.n_curve_points if v.result else 0
        found_signals, found_curve = signal_counts.get(tid, 0), curve_counts.get(tid, 0)
        add(SIGNAL_ROWS, found_signals == want_signals,
            f"{found_signals} rows found, {want_signals} expected",
            expected_rows=want_signals, found_rows=found_signals)
        add(CURVE_ROWS, found_curve == want_curve,
            f"{found_curve} rows found, {want_curve} expected",
            expected_rows=want_curve, found_rows=found_curve)
        passed, description, metadata = _round_trip(v)
        add(LOSSLESS_ROUND_TRIP, passed, description, **metadata)
        if ratio is None:
            add(COMPRESSION_GOAL, True, "no valid task stored yet")
        else:
            add(COMPRESSION_GOAL, ratio >= compression_goal,
                f"store is {ratio:.1%} smaller than its JSON (goal {compression_goal:.0%})",
                store_json_bytes=json_bytes, store_bytes=stored_bytes, ratio=round(ratio, 4),
                goal=compression_goal)
        add(QUARANTINE, v.result is not None,
            "valid" if v.result is not None else f"quarantined: {v.reason}",
            **({"reason": v.reason} if v.reason else {}))
    return out


def _round_trip(v: ValidatedResult):
    """(passed, description, metadata) of the lossless round trip. It fails for every task not
    published, a quarantine kept beside the published version too (an unread file, one older
    than a save): the partition is not materialized, so the step fails for it (blocking)."""
    hashes = {"source_sha256": v.sha256}
    if v.proof is not None and v.proof.regenerated_sha256:
        hashes["regenerated_sha256"] = v.proof.regenerated_sha256
    if v.failure is not None:
        return False, f"not published: {v.failure}", {
            "differences": max(1, len(v.conversion_differences or [])), **hashes}
    if v.result is None:
        return True, "quarantined: nothing to rebuild; raw bytes kept in the backup", {}
    kept = "its text (no spelling reproduces it)" if v.proof.exact_text is not None else "its rows and a spelling"
    return True, (f"the file's exact bytes come back from {kept}: same SHA-256; the store gives back exactly "
                  "the proven rows and skeleton"), {"differences": 0, **hashes}
