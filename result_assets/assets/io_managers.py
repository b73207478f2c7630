"""IO managers: each asset's output goes to its store in one write per batch.

They take and give whole batches (a run holds up to batch-size partitions), which
is why they are written on the stores rather than on UPathIOManager, which refuses
multi-partition outputs.
"""
from __future__ import annotations

from pathlib import Path

from dagster import InputContext, IOManager, OutputContext

from result_assets.legacy import task_id_for, validate_result
from result_assets.migration.batch import CatalogBatch, RawResult, TaskRows, save_backups, write_catalog, write_rows
from result_assets.migration.sources import LegacyFile, stat_legacy_file
from result_assets.store.stores import Stores


def _task_ids(context: InputContext | OutputContext) -> list[str]:
    return [task_id_for(k) for k in context.asset_partition_keys]


class LegacyResultIOManager(IOManager):
    """Loads the legacy files of the requested partitions (the files are the source of truth)."""

    def __init__(self, stores: Stores):
        self.stores = stores

    def handle_output(self, context: OutputContext, obj) -> None:
        raise NotImplementedError("legacy_result is external: the platform writes these files")

    def load_input(self, context: InputContext) -> dict[str, LegacyFile]:
        return self.files(_task_ids(context))

    def files(self, ids: list[str]) -> dict[str, LegacyFile]:
        registered = self.stores.catalog.sources(ids)
        source_dir = self.stores.settings.source_dir
        files: dict[str, LegacyFile] = {}
        for task_id in ids:
            path = registered.get(task_id)
            found = None
            if path is not None:
                found = stat_legacy_file(Path(path).parent.parent, task_id)
            elif source_dir:
                found = stat_legacy_file(source_dir, task_id)
            files[task_id] = found or LegacyFile(task_id, path or "", 0, 0, refused="source file not found")
        return files


class BackupIOManager(IOManager):
    """result_backup: the exact bytes under <backup-dir>/<task_id>/result.json."""

    def __init__(self, stores: Stores):
        self.stores = stores

    def handle_output(self, context: OutputContext, obj: list[RawResult]) -> None:
        save_backups(self.stores, obj)

    def load_input(self, context: InputContext) -> dict[str, bytes]:
        return {t: self.stores.backups.read(t) for t in _task_ids(context)}


class ValidatedResultIOManager(IOManager):
    """validated_result is derived from the backup: it is re-derived on load, never stored twice."""

    def __init__(self, stores: Stores):
        self.stores = stores

    def handle_output(self, context: OutputContext, obj) -> None:
        pass  # the quarantine record lands in the catalog with catalog_entry

    def load_input(self, context: InputContext):
        return {t: validate_result(t, self.stores.backups.read(t)) for t in _task_ids(context)}


class DeltaTableIOManager(IOManager):
    """signal_table / curve_table: one Delta commit per batch, replacing just these tasks."""

    def __init__(self, stores: Stores, table: str):
        self.stores = stores
        self.table = table

    def handle_output(self, context: OutputContext, obj: TaskRows) -> None:
        commit = write_rows(self.stores, self.table, obj)
        if commit is not None:
            context.add_output_metadata({
                "dagster/uri": self.stores.delta.uri(self.table),
                "delta_version": commit.version,
                "batch_rows": commit.rows,
                "batch_bytes_written": commit.bytes_added,
                "batch_files_written": commit.files_added,
            })

    def load_input(self, context: InputContext):
        return self.stores.delta.read_tasks(self.table, _task_ids(context))


class CatalogIOManager(IOManager):
    """catalog_entry: the batch's catalog rows, in one Postgres transaction (COPY + upsert)."""

    def __init__(self, stores: Stores):
        self.stores = stores

    def handle_output(self, context: OutputContext, obj: CatalogBatch) -> None:
        write_catalog(self.stores, obj)

    def load_input(self, context: InputContext) -> dict[str, dict]:
        return self.stores.catalog.tasks(_task_ids(context))
