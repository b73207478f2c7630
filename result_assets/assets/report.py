"""Unpartitioned assets over the whole store: the migration report and table maintenance."""

from dagster import AssetExecutionContext, AssetKey, MetadataValue, asset

from result_assets.assets.resources import StoresResource
from result_assets.store.delta_tables import CURVES, SIGNALS
from result_assets.store.stores import Stores


def store_report(stores: Stores) -> dict:
    """Counts, bytes and compression of the whole store, from the catalog and the Delta logs."""
    totals = stores.catalog.totals()
    signal_bytes, signal_files = stores.delta.total_bytes(SIGNALS)
    curve_bytes, curve_files = stores.delta.total_bytes(CURVES)
    stored = signal_bytes + curve_bytes
    json_bytes = totals["migrated_json_bytes"]
    return {
        **totals,
        "stored_bytes": stored,
        "signal_table_bytes": signal_bytes,
        "curve_table_bytes": curve_bytes,
        "delta_files": signal_files + curve_files,
        "compression_ratio": round(1 - stored / json_bytes, 4) if json_bytes else None,
    }


def report_markdown(report: dict, quarantined: list[tuple[str, str]]) -> str:
    ratio = report["compression_ratio"]
    lines = [
        "| measure | value |", "|---|---|",
        f"| tasks migrated | {report['migrated']} |",
        f"| tasks quarantined | {report['quarantined']} |",
        f"| signals | {report['signals']} |",
        f"| curve points | {report['curve_points']} |",
        f"| JSON bytes (migrated) | {report['migrated_json_bytes']:,} |",
        f"| stored bytes (Delta) | {report['stored_bytes']:,} |",
        f"| Delta files | {report['delta_files']} |",
        f"| compression | {'n/a' if ratio is None else f'{ratio:.1%} smaller'} |",
    ]
    if quarantined:
        lines += ["", "**Quarantined**", "", "| task | reason |", "|---|---|"]
        lines += [f"| `{t}` | {r.replace('|', '/')} |" for t, r in quarantined[:200]]
        if len(quarantined) > 200:
            lines.append(f"| ... | {len(quarantined) - 200} more |")
    return "\n".join(lines)


@asset(
    deps=[AssetKey("catalog_entry"), AssetKey("signal_table"), AssetKey("curve_table")],
    kinds={"postgres", "delta"},
    group_name="migration",
    description="What has been migrated so far: counts, bytes, compression and the quarantine list.",
)
def migration_report(context: AssetExecutionContext, stores: StoresResource) -> None:
    stores_ = stores.get()
    report = store_report(stores_)
    quarantined = stores_.catalog.quarantined()
    context.add_output_metadata({
        "report": MetadataValue.md(report_markdown(report, quarantined)),
        "migrated": report["migrated"],
        "quarantined": report["quarantined"],
        "json_bytes": report["migrated_json_bytes"],
        "stored_bytes": report["stored_bytes"],
        "compression_ratio": report["compression_ratio"],
    })


@asset(
    deps=[AssetKey("signal_table"), AssetKey("curve_table")],
    kinds={"delta"},
    group_name="migration",
    description="Compacts the Delta tables (many small batch commits -> few files, z-ordered by task_id).",
)
def store_maintenance(context: AssetExecutionContext, stores: StoresResource) -> None:
    stores_ = stores.get()
    metadata = {}
    for table in (SIGNALS, CURVES):
        before = stores_.delta.total_bytes(table)
        dt = stores_.delta.open(table)
        if dt is None:
            continue
        dt.optimize.z_order(["task_id"])
        after = stores_.delta.total_bytes(table)
        metadata[f"{table}_files"] = f"{before[1]} -> {after[1]}"
        metadata[f"{table}_bytes"] = f"{before[0]:,} -> {after[0]:,}"
    context.add_output_metadata(metadata)
