"""What the store holds as a whole: counts, bytes and compression (no Dagster)."""
from __future__ import annotations

from result_assets.store.delta_tables import CURVES, SIGNALS
from result_assets.store.stores import Stores


def store_report(stores: Stores) -> dict:
    """Counts, bytes and compression of the whole store, from the catalog and the Delta logs.

    stored_bytes counts everything stored of the migrated tasks: the Delta data files, the
    Delta logs, the catalog's rows (skeleton text, spellings and the query columns; its
    indexes and the rollback history left out, as Delta's earlier versions are) and the hot
    tier's rows.
    """
    totals = stores.catalog.totals()
    signal_bytes, signal_files = stores.delta.total_bytes(SIGNALS)
    curve_bytes, curve_files = stores.delta.total_bytes(CURVES)
    log_bytes = stores.delta.log_bytes(SIGNALS) + stores.delta.log_bytes(CURVES)
    stored = signal_bytes + curve_bytes + log_bytes + totals["catalog_bytes"] + totals["hot_bytes"]
    json_bytes = totals["migrated_json_bytes"]
    return {
        **totals,
        "stored_bytes": stored,
        "signal_table_bytes": signal_bytes,
        "curve_table_bytes": curve_bytes,
        "delta_log_bytes": log_bytes,
        "delta_files": signal_files + curve_files,
        "compression_ratio": round(1 - stored / json_bytes, 4) if json_bytes else None,
    }


def recent_store_report(stores: Stores, max_age_seconds: float = 60.0) -> dict:
    """store_report, at most max_age_seconds old: an application save judges the compression
    goal against it instead of listing the whole store on every save."""
    import time

    taken, report = stores.memo.get("store_report", (None, None))
    if taken is None or time.monotonic() - taken > max_age_seconds:
        report = store_report(stores)
        stores.memo["store_report"] = (time.monotonic(), report)
    return report


def report_markdown(report: dict, quarantined: list[tuple[str, str]],
                    failed: list[tuple[str, str]] = ()) -> str:
    ratio = report["compression_ratio"]
    lines = [
        "| measure | value |", "|---|---|",
        f"| tasks migrated | {report['migrated']} |",
        f"| tasks quarantined | {report['quarantined']} |",
        f"| tasks failed (a proof failed: not published) | {report.get('failed', 0)} |",
        f"| signals | {report['signals']} |",
        f"| curve points | {report['curve_points']} |",
        f"| JSON bytes (migrated) | {report['migrated_json_bytes']:,} |",
        f"| stored bytes (everything the store keeps of its tasks) | {report['stored_bytes']:,} |",
        f"| of which Delta data files | {report['signal_table_bytes'] + report['curve_table_bytes']:,} |",
        f"| of which Delta logs | {report['delta_log_bytes']:,} |",
        f"| of which catalog rows | {report['catalog_bytes']:,} |",
        f"| (of those, skeletons and spellings) | {report['skeleton_bytes']:,} |",
        f"| of which hot tier (not flushed yet) | {report['hot_bytes']:,} |",
        f"| Delta files | {report['delta_files']} |",
        f"| compression | {'n/a' if ratio is None else f'{ratio:.1%} smaller'} |",
        f"| conversion time, all tasks | {report['convert_seconds']:.1f} s |",
        f"| slowest task | {report['slowest_convert_seconds']:.2f} s |",
        f"| first / last migrated | {report['first_migrated_at']} / {report['last_migrated_at']} |",
    ]
    if failed:
        lines += ["", "**Failed: not published**", "", "| task | first difference |", "|---|---|"]
        lines += [f"| `{t}` | {r.replace('|', '/')} |" for t, r in failed[:200]]
    if quarantined:
        lines += ["", "**Quarantined**", "", "| task | reason |", "|---|---|"]
        lines += [f"| `{t}` | {r.replace('|', '/')} |" for t, r in quarantined[:200]]
        if len(quarantined) > 200:
            lines.append(f"| ... | {len(quarantined) - 200} more |")
    return "\n".join(lines)
