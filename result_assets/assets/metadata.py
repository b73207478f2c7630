"""What a person looks for on each task partition's materializations, from a published batch.

Plain dicts, no Dagster: {asset: {partition key: metadata}}.
"""
from __future__ import annotations

from collections import Counter

from result_assets.migration.sources import display_path
from result_assets.store.delta_tables import CURVES, SIGNALS, sql_string

TASK_ASSETS = ("result_backup", "validated_result", "signal_table", "curve_table", "catalog_entry")


def partition_metadata(stores, batch) -> dict[str, dict[str, dict]]:
    return {
        "result_backup": _backups(stores, batch),
        "validated_result": _validation(batch),
        "signal_table": _rows(batch, SIGNALS, stores.delta.uri(SIGNALS)),
        "curve_table": _rows(batch, CURVES, stores.delta.uri(CURVES)),
        "catalog_entry": _catalog(batch),
    }


def batch_summary(batch) -> dict:
    counts = Counter(v.status for v in batch.validated)
    return {
        "tasks": len(batch.validated),
        "migrated": counts["migrated"],
        "quarantined": counts["quarantined"],
        "failed_checks": counts["failed"],
        "json_bytes": sum(v.json_bytes for v in batch.validated),
        "signals": sum(v.result.n_signals for v in batch.validated if v.result),
        **{f"seconds_{stage}": round(s, 4) for stage, s in batch.seconds.items()},
    }


def _backups(stores, batch) -> dict[str, dict]:
    out = {}
    for b in batch.backups:
        if not b.copied:
            out[b.partition_key] = {"copied": False, "reason": b.reason}
        else:
            out[b.partition_key] = {"dagster/uri": str(stores.backups.path(b.task_id)),
                                    "sha256": b.sha256, "bytes": b.bytes}
    return out


def _validation(batch) -> dict[str, dict]:
    out = {}
    for v in batch.validated:
        metadata = {"status": v.status, "json_bytes": v.json_bytes, "source_sha256": v.sha256,
                    "dagster/uri": display_path(v.source.path)}
        if v.result is not None:
            metadata.update(signals=v.result.n_signals, curve_points=v.result.n_curve_points,
                            symbols=len(v.result.symbols), layout=f"v{v.result.layout}")
            if v.result.warnings:
                metadata["warnings"] = "; ".join(v.result.warnings)
        else:
            metadata["reason"] = v.reason
        out[v.source.partition_key] = metadata
    return out


def _rows(batch, table: str, uri: str) -> dict[str, dict]:
    counts = batch.stored_rows[table]
    return {v.source.partition_key: {"dagster/row_count": counts.get(v.task_id, 0), "dagster/uri": uri,
                                     "predicate": f"task_id = {sql_string(v.task_id)}"}
            for v in batch.validated}


def _catalog(batch) -> dict[str, dict]:
    """Status and reason, plus the task's share of the bytes its batch wrote (by row count)."""
    rows = Counter(batch.stored_rows[SIGNALS]) + Counter(batch.stored_rows[CURVES])
    total_rows = sum(rows.values())
    written = sum(c.bytes_added for c in (batch.signals.commit, batch.curves.commit) if c is not None)
    out = {}
    for v in batch.validated:
        metadata = {"status": v.status, "json_bytes": v.json_bytes}
        if v.reason or v.failure:
            metadata["reason"] = v.reason or v.failure
        elif total_rows:
            share = round(written * rows[v.task_id] / total_rows)
            metadata["stored_bytes_estimate"] = share
            if v.json_bytes:
                metadata["compression_estimate"] = round(1 - share / v.json_bytes, 4)
        out[v.source.partition_key] = metadata
    return out
