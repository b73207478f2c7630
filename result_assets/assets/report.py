"""Unpartitioned assets over the whole store: the migration report and table maintenance."""

from dagster import AssetExecutionContext, AssetKey, MetadataValue, asset

from result_assets.assets.resources import StoresResource
from result_assets.migration.summary import report_markdown, store_report
from result_assets.store.delta_tables import CURVES, SIGNALS, writer_properties


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
        # The table's own writer settings, or compaction would undo the encodings and row groups.
        dt.optimize.z_order(["task_id"], writer_properties=writer_properties(dt.schema().to_arrow()))
        after = stores_.delta.total_bytes(table)
        metadata[f"{table}_files"] = f"{before[1]} -> {after[1]}"
        metadata[f"{table}_bytes"] = f"{before[0]:,} -> {after[0]:,}"
    context.add_output_metadata(metadata)
