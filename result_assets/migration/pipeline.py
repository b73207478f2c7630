"""One batch through every step, outside Dagster, in commit order (backups, rows, catalog last).

The explicit-list job and the benchmark's no-Dagster baseline run exactly this; the
multi-asset runs the same steps with an IO manager around each write.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from result_assets.migration.batch import (
    CatalogBatch,
    RawResult,
    TaskRows,
    ValidatedResult,
    catalog_batch,
    curve_rows,
    read_source,
    save_backups,
    signal_rows,
    write_catalog,
    write_rows,
)
from result_assets.migration.convert import convert_batch
from result_assets.migration.sources import DEFAULT_MAX_FILE_BYTES, LegacyFile
from result_assets.store.delta_tables import CURVES, SIGNALS


@dataclass
class WrittenBatch:
    validated: list[ValidatedResult]
    signals: TaskRows
    curves: TaskRows
    catalog: CatalogBatch


def migrate_batch(stores, files: Iterable[LegacyFile], max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                  on_backed_up: Callable[[list[RawResult]], None] | None = None) -> WrittenBatch:
    raws = [read_source(f, max_file_bytes) for f in files]
    save_backups(stores, raws)
    if on_backed_up is not None:
        on_backed_up(raws)
    validated = convert_batch(raws)
    del raws  # the batch's raw bytes are the largest thing held; the rows take over
    signals, curves = signal_rows(validated), curve_rows(validated)
    write_rows(stores, SIGNALS, signals)
    write_rows(stores, CURVES, curves)
    catalog = catalog_batch(validated)
    write_catalog(stores, catalog, signals, curves)
    return WrittenBatch(validated, signals, curves, catalog)
