"""The integrity checks of a batch, evaluated against what the stores hold now."""
from __future__ import annotations

from dataclasses import dataclass, field

from result_assets.migration.batch import ValidatedResult
from result_assets.store.delta_tables import CURVES, SIGNALS
from result_assets.store.stores import Stores

DEFAULT_COMPRESSION_GOAL = 0.90  # stored bytes at least 90% smaller than the JSON


@dataclass
class CheckOutcome:
    asset: str
    check: str
    task_id: str
    partition_key: str
    passed: bool
    warn: bool  # severity WARN rather than ERROR
    description: str
    metadata: dict = field(default_factory=dict)


# (asset, check name, severity is WARN, description)
CHECKS = [
    ("result_backup", "backup_checksum", False, "The backup file's SHA-256 equals the source file's."),
    ("signal_table", "row_counts", False, "Signal rows in Delta equal the signals in the source."),
    ("curve_table", "row_counts", False, "Curve rows in Delta equal the curve points in the source."),
    ("catalog_entry", "lossless_round_trip", False,
     "The task rebuilt from its rows equals the source under the rules of legacy-format.md, and the "
     "Delta tables and the catalog give back exactly those rows and that skeleton."),
    ("signal_table", "compression_goal", True,
     "Everything the store needs to rebuild the documents (Delta data files and logs, catalog skeletons) is "
     "the goal smaller than the JSON of the tasks it holds (WARN; compacting helps)."),
    ("validated_result", "quarantine", True, "The source file is valid (WARN with the reason when quarantined)."),
]


def judge(stores: Stores, batch, compression_goal: float = DEFAULT_COMPRESSION_GOAL,
          report: dict | None = None) -> list[CheckOutcome]:
    """Each check's outcome for each task of a published batch (engine.BatchResult), the
    compression goal against `report` (store_report: the bytes the migrate report counts)."""
    from result_assets.migration.summary import store_report

    signal_counts, curve_counts = batch.stored_rows[SIGNALS], batch.stored_rows[CURVES]
    report = report or store_report(stores)
    json_bytes, stored_bytes = report["migrated_json_bytes"], report["stored_bytes"]
    # Judged on the whole store: a small batch's files carry fixed Parquet overhead
    # that compaction removes, so its own ratio says little.
    ratio = 1 - stored_bytes / json_bytes if json_bytes else None
    out: list[CheckOutcome] = []
    for v in batch.validated:
        key, tid = v.source.partition_key, v.task_id

        def add(asset, check, passed, warn, description, **metadata):
            out.append(CheckOutcome(asset, check, tid, key, passed, warn, description, metadata))

        if v.source.refused:  # never copy what the source dir must not hand out
            add("result_backup", "backup_checksum", True, False, f"not copied: {v.source.refused}")
        else:
            backed_up = stores.backups.verify(tid, v.sha256)
            add("result_backup", "backup_checksum", backed_up, False,
                "backup matches the source" if backed_up else "backup missing or its SHA-256 differs",
                sha256=v.sha256, bytes=v.json_bytes)
        want_signals = v.result.n_signals if v.result else 0
        want_curve = v.result.n_curve_points if v.result else 0
        found_signals, found_curve = signal_counts.get(tid, 0), curve_counts.get(tid, 0)
        add("signal_table", "row_counts", found_signals == want_signals, False,
            f"{found_signals} rows found, {want_signals} expected",
            expected_rows=want_signals, found_rows=found_signals)
        add("curve_table", "row_counts", found_curve == want_curve, False,
            f"{found_curve} rows found, {want_curve} expected",
            expected_rows=want_curve, found_rows=found_curve)
        passed, description, metadata = _round_trip(v)
        add("catalog_entry", "lossless_round_trip", passed, False, description, **metadata)
        if ratio is None:
            add("signal_table", "compression_goal", True, True, "no valid task stored yet")
        else:
            add("signal_table", "compression_goal", ratio >= compression_goal, True,
                f"store is {ratio:.1%} smaller than its JSON (goal {compression_goal:.0%})",
                store_json_bytes=json_bytes, store_bytes=stored_bytes, ratio=round(ratio, 4),
                goal=compression_goal)
        add("validated_result", "quarantine", v.result is not None, True,
            "valid" if v.result is not None else f"quarantined: {v.reason}",
            **({"reason": v.reason} if v.reason else {}))
    return out


def _round_trip(v: ValidatedResult):
    """(passed, description, metadata) of catalog_entry/lossless_round_trip."""
    if v.result is None:
        return True, "quarantined: nothing to rebuild; raw bytes kept in the backup", {}
    if v.status != "migrated":
        return False, f"not published: {v.failure}", {"differences": max(1, len(v.conversion_differences or []))}
    return True, ("rebuilt document equals the source; the store gives back exactly the proven rows "
                  "and skeleton"), {"differences": 0}
