"""The integrity checks of a batch, evaluated against what the stores hold now."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from result_assets.legacy import compare_documents
from result_assets.migration.batch import ValidatedResult
from result_assets.store.delta_tables import CURVES, SIGNALS, CommitInfo
from result_assets.store.reader import rebuild_documents
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
     "The task rebuilt from Delta + catalog equals the source under the rules of legacy-format.md."),
    ("signal_table", "compression_goal", True,
     "The Delta tables are the goal smaller than the JSON of the tasks they hold (WARN; compacting helps)."),
    ("validated_result", "quarantine", True, "The source file is valid (WARN with the reason when quarantined)."),
]


def count_rows(stores: Stores, table: str, task_ids: list[str]) -> Counter:
    rows = stores.delta.read_tasks(table, task_ids, columns=["task_id"])
    return Counter(rows.column("task_id").to_pylist()) if rows is not None else Counter()


def evaluate(stores: Stores, validated: list[ValidatedResult], commits: list[CommitInfo | None],
             compression_goal: float = DEFAULT_COMPRESSION_GOAL) -> list[CheckOutcome]:
    ids = [v.task_id for v in validated]
    signals, curves = count_rows(stores, SIGNALS, ids), count_rows(stores, CURVES, ids)
    rebuilt = rebuild_documents(stores, [v.task_id for v in validated if v.result is not None])
    batch_json = sum(v.json_bytes for v in validated if v.result is not None)
    batch_stored = sum(c.bytes_added for c in commits if c is not None)
    # Judged on the whole store: a small batch's files carry fixed Parquet overhead
    # that compaction removes, so its own ratio says little.
    json_bytes = stores.catalog.totals()["migrated_json_bytes"]
    stored_bytes = sum(stores.delta.total_bytes(t)[0] for t in (SIGNALS, CURVES))
    ratio = 1 - stored_bytes / json_bytes if json_bytes else None
    out: list[CheckOutcome] = []
    for v in validated:
        key, tid = v.source.partition_key, v.task_id

        def add(asset, check, passed, warn, description, **metadata):
            out.append(CheckOutcome(asset, check, tid, key, passed, warn, description, metadata))

        backed_up = stores.backups.verify(tid, v.sha256)
        add("result_backup", "backup_checksum", backed_up, False,
            "backup matches the source" if backed_up else "backup missing or its SHA-256 differs",
            sha256=v.sha256, bytes=v.json_bytes)
        want_signals = v.result.n_signals if v.result else 0
        want_curve = v.result.n_curve_points if v.result else 0
        add("signal_table", "row_counts", signals[tid] == want_signals, False,
            f"{signals[tid]} rows found, {want_signals} expected",
            expected_rows=want_signals, found_rows=signals[tid])
        add("curve_table", "row_counts", curves[tid] == want_curve, False,
            f"{curves[tid]} rows found, {want_curve} expected",
            expected_rows=want_curve, found_rows=curves[tid])
        if v.result is None:
            add("catalog_entry", "lossless_round_trip", True, False,
                "quarantined: nothing to rebuild; raw bytes kept in the backup", status="quarantined")
        elif tid not in rebuilt:
            add("catalog_entry", "lossless_round_trip", False, False, "task missing from the catalog after write")
        else:
            differences = compare_documents(v.document, rebuilt[tid])
            add("catalog_entry", "lossless_round_trip", not differences, False,
                "rebuilt document equals the source" if not differences else "; ".join(differences[:5]),
                differences=len(differences))
        if ratio is None:
            add("signal_table", "compression_goal", True, True, "no valid task stored yet")
        else:
            add("signal_table", "compression_goal", ratio >= compression_goal, True,
                f"store is {ratio:.1%} smaller than its JSON (goal {compression_goal:.0%})",
                store_json_bytes=json_bytes, store_bytes=stored_bytes, ratio=round(ratio, 4),
                goal=compression_goal, batch_json_bytes=batch_json, batch_bytes_written=batch_stored)
        add("validated_result", "quarantine", v.result is not None, True,
            "valid" if v.result is not None else f"quarantined: {v.reason}",
            **({"reason": v.reason} if v.reason else {}))
    return out
