"""The integrity checks of a batch, evaluated against what the stores hold now."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from result_assets.migration.batch import CatalogBatch, TaskRows, ValidatedResult
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
     "The Delta tables are the goal smaller than the JSON of the tasks they hold (WARN; compacting helps)."),
    ("validated_result", "quarantine", True, "The source file is valid (WARN with the reason when quarantined)."),
]


def evaluate(stores: Stores, validated: list[ValidatedResult], signals: TaskRows, curves: TaskRows,
             catalog: CatalogBatch, compression_goal: float = DEFAULT_COMPRESSION_GOAL) -> list[CheckOutcome]:
    ids = [v.task_id for v in validated]
    stored_signals = _read_back(stores, SIGNALS, ids, signals.table.schema)
    stored_curves = _read_back(stores, CURVES, ids, curves.table.schema)
    signal_counts = Counter(stored_signals.column("task_id").to_pylist())
    curve_counts = Counter(stored_curves.column("task_id").to_pylist())
    differing = _differing_tasks(signals.table, stored_signals) | _differing_tasks(curves.table, stored_curves)
    written_skeletons = {t.task_id: t.skeleton for t in catalog.tasks}
    stored_rows = stores.catalog.tasks(ids)
    json_bytes = stores.catalog.totals()["migrated_json_bytes"]
    stored_bytes = sum(stores.delta.total_bytes(t)[0] for t in (SIGNALS, CURVES))
    # Judged on the whole store: a small batch's files carry fixed Parquet overhead
    # that compaction removes, so its own ratio says little.
    ratio = 1 - stored_bytes / json_bytes if json_bytes else None
    out: list[CheckOutcome] = []
    for v in validated:
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
        add("signal_table", "row_counts", signal_counts[tid] == want_signals, False,
            f"{signal_counts[tid]} rows found, {want_signals} expected",
            expected_rows=want_signals, found_rows=signal_counts[tid])
        add("curve_table", "row_counts", curve_counts[tid] == want_curve, False,
            f"{curve_counts[tid]} rows found, {want_curve} expected",
            expected_rows=want_curve, found_rows=curve_counts[tid])
        passed, description, metadata = _round_trip(v, differing, written_skeletons, stored_rows)
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


def _round_trip(v: ValidatedResult, differing: set[str], skeletons: dict, stored: dict):
    """(passed, description, metadata) of catalog_entry/lossless_round_trip."""
    tid = v.task_id
    row = stored.get(tid)
    if v.result is None:
        ok = row is not None and row["status"] == "quarantined"
        return ok, ("quarantined: nothing to rebuild; raw bytes kept in the backup" if ok
                    else "quarantine record missing from the catalog"), {}
    problems = list(v.conversion_differences or [])
    if v.conversion_differences is None:
        problems.append("conversion was not checked")
    if tid in differing:
        problems.append("Delta gives back rows that differ from those written")
    if row is None or row["status"] != "migrated":
        problems.append("task missing from the catalog after write")
    elif row["skeleton"] != skeletons.get(tid):
        problems.append("catalog gives back a different skeleton")
    if problems:
        return False, "; ".join(problems[:5]), {"differences": len(problems)}
    return True, "rebuilt document equals the source", {"differences": 0}


def _read_back(stores: Stores, table: str, ids: list[str], schema: pa.Schema) -> pa.Table:
    rows = stores.delta.read_tasks(table, ids)
    if rows is None:
        return schema.empty_table()
    return rows.select(schema.names)


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([("task_id", "ascending"), ("symbol_idx", "ascending"), ("seq", "ascending")])


def _differing_tasks(written: pa.Table, stored: pa.Table) -> set[str]:
    """Tasks whose stored rows are not bit for bit those written (NaN payloads and -0.0 included)."""
    written, stored = _sorted(written), _sorted(stored)
    if _same_bits(written, stored):
        return set()
    ids = set(written.column("task_id").to_pylist()) | set(stored.column("task_id").to_pylist())
    return {tid for tid in ids
            if not _same_bits(written.filter(pc.equal(written["task_id"], tid)),
                              stored.filter(pc.equal(stored["task_id"], tid)))}


def _same_bits(a: pa.Table, b: pa.Table) -> bool:
    if a.num_rows != b.num_rows or a.column_names != b.column_names:
        return False
    for name in a.column_names:
        left, right = _bits(a[name].combine_chunks()), _bits(b[name].combine_chunks())
        if len(left) != len(right) or not all(x.equals(y) for x, y in zip(left, right)):
            return False
    return True


def _bits(array: pa.Array) -> list[pa.Array]:
    """Arrays whose equality is bit-exact equality of `array` (Arrow's own says NaN != NaN)."""
    if pa.types.is_float64(array.type):
        return [array.view(pa.int64())]
    if pa.types.is_map(array.type):
        offsets = pc.subtract(array.offsets, array.offsets[0])
        return [array.is_null(), offsets, array.keys, *_bits(array.items)]
    return [array]
