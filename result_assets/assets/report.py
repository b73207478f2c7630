"""Unpartitioned assets over the whole store: the migration report and table maintenance."""

from dagster import AssetExecutionContext, AssetKey, Config, MetadataValue, asset

from result_assets.assets.resources import StoresResource
from result_assets.migration.maintenance import DEFAULT_RETENTION_HOURS, maintain
from result_assets.migration.summary import report_markdown, store_report


@asset(
    deps=[AssetKey("catalog_entry"), AssetKey("signal_table"), AssetKey("curve_table")],
    kinds={"postgres", "delta"},
    group_name="migration",
    description="What has been migrated so far: counts, bytes, compression and the quarantine list.",
)
def migration_report(context: AssetExecutionContext, stores: StoresResource) -> None:
    stores_ = stores.get()
    report = store_report(stores_)
    quarantined, failed = stores_.catalog.quarantined(), stores_.catalog.failed()
    context.add_output_metadata({
        "report": MetadataValue.md(report_markdown(report, quarantined, failed)),
        "migrated": report["migrated"],
        "quarantined": report["quarantined"],
        "failed_checks": report["failed"],
        "json_bytes": report["migrated_json_bytes"],
        "stored_bytes": report["stored_bytes"],
        "compression_ratio": report["compression_ratio"],
    })


class MaintenanceConfig(Config):
    retention_hours: int = DEFAULT_RETENTION_HOURS  # vacuum keeps what rollback needs this far back
    compact: bool = True  # merge small files
    z_order: bool = False  # also cluster by task_id (rewrites the whole table: now and then, not hourly)
    vacuum: bool = True


@asset(
    deps=[AssetKey("signal_table"), AssetKey("curve_table")],
    kinds={"delta"},
    group_name="migration",
    description="Keeps the store fast: flushes the hot tier (application saves) into the Delta tables, "
                "compacts them (z-orders by task_id when asked), re-points the catalog, checkpoints the Delta log "
                "and vacuums past the retention. Runs on the `store_maintenance_schedule`.",
)
def store_maintenance(context: AssetExecutionContext, config: MaintenanceConfig, stores: StoresResource) -> None:
    stores_ = stores.get()
    report = maintain(stores_, compact=config.compact, z_order=config.z_order, vacuum=config.vacuum,
                      retention_hours=config.retention_hours)
    # The flushed tasks' documents did not change, so their partitions get no event of their own
    # (on stock Dagster storage each is a write: thousands an hour); the report lists them.
    metadata = {"flushed_tasks": report.flushed, "still_hot": report.still_hot, "repointed": report.repointed,
                "located": report.located, "unreadable": len(report.unreadable),
                "vacuumed_files": report.vacuumed_files,
                "report": MetadataValue.md(maintenance_markdown(report))}
    if report.vacuum_held:
        context.log.warning(f"vacuum held: {report.vacuum_held}")
        metadata["vacuum_held"] = report.vacuum_held  # in `maintain --json` too, which logs nothing
    for table, facts in report.tables.items():
        before, after = facts["before"], facts.get("after", facts["before"])
        metadata[f"{table}_files"] = f"{before['files']} -> {after['files']}"
        metadata[f"{table}_bytes"] = f"{before['bytes']:,} -> {after['bytes']:,}"
    if report.serving_cache:  # a bounded copy, not the record: beside the tables' bytes, never in them
        metadata["serving_cache_bytes"] = f"{report.serving_cache['stored_bytes']:,} of {report.serving_cache['max_bytes']:,}"
        metadata["serving_cache_entries"] = report.serving_cache["entries"]
    context.add_output_metadata(metadata)


def maintenance_markdown(report) -> str:
    lines = ["| table | files | bytes | Delta version |", "|---|---|---|---|"]
    for table, facts in report.tables.items():
        before, after = facts["before"], facts.get("after", facts["before"])
        lines.append(f"| {table} | {before['files']} -> {after['files']} | {before['bytes']:,} -> {after['bytes']:,} "
                     f"| {before['version']} -> {after['version']} |")
    lines += ["", "| step | seconds |", "|---|---|"]
    lines += [f"| {step} | {seconds:.3f} |" for step, seconds in report.seconds.items()]
    lines += ["", f"Flushed {report.flushed} task(s) from the hot tier ({report.still_hot} still there); "
                  f"re-pointed {report.repointed} catalog row(s); located {report.located} older row(s); "
                  f"{len(report.unreadable)} unreadable{': ' + ', '.join(report.unreadable[:20]) if report.unreadable else ''}; "
                  f"vacuumed {report.vacuumed_files} file(s)."]
    if report.vacuum_held:
        lines += ["", f"**Vacuum held:** {report.vacuum_held}."]
    if report.serving_cache:
        cache = report.serving_cache
        lines += ["", f"Serving cache: {cache['entries']} file(s), {cache['stored_bytes']:,} bytes kept of a "
                      f"{cache['max_bytes']:,}-byte bound ({cache['file_bytes']:,} bytes as files); "
                      f"{cache['evicted']} evicted by this run."]
    if report.flushed_task_ids:  # the tasks themselves, as their partitions get no event of their own
        shown, more = sorted(report.flushed_task_ids)[:200], len(report.flushed_task_ids) - 200
        lines += ["", "Flushed: " + ", ".join(f"`{t}`" for t in shown) + (f" and {more} more" if more > 0 else "")]
    return "\n".join(lines)
