"""Reading a migrated task back: catalog skeleton + Delta rows -> the document."""
from __future__ import annotations

import logging

import pyarrow as pa
from deltalake.exceptions import DeltaError

from result_assets.legacy import parse_document, reconstruct
from result_assets.legacy.schema import CURVE_SCHEMA, SIGNAL_SCHEMA
from result_assets.store.delta_tables import CURVES, SIGNALS
from result_assets.store.stores import Stores


log = logging.getLogger(__name__)


class TaskNotMigrated(LookupError):
    pass


def rebuild_documents(stores: Stores, task_ids: list[str]) -> dict[str, dict]:
    """The documents of the migrated tasks among task_ids, with one Delta scan per table."""
    rows = {t: r for t, r in stores.catalog.tasks(task_ids).items() if r["status"] == "migrated"}
    if not rows:
        return {}
    ids = sorted(rows)
    signals = _read_as_committed(stores, SIGNALS, rows, "signals_version", SIGNAL_SCHEMA)
    curves = _read_as_committed(stores, CURVES, rows, "curves_version", CURVE_SCHEMA)
    empty_signals, empty_curves = SIGNAL_SCHEMA.empty_table(), CURVE_SCHEMA.empty_table()
    documents = {}
    for task_id in ids:
        skeleton = parse_document(rows[task_id]["skeleton"].encode())
        documents[task_id] = reconstruct(skeleton, signals.get(task_id, empty_signals), curves.get(task_id, empty_curves))
    return documents


def read_result(task_id: str, stores: Stores | None = None) -> dict:
    stores = stores or Stores.from_env()
    documents = rebuild_documents(stores, [task_id])
    if task_id not in documents:
        state = stores.catalog.task(task_id)
        if state is None:
            raise TaskNotMigrated(f"task {task_id!r} is not in the catalog (not migrated yet?)")
        raise TaskNotMigrated(f"task {task_id!r} is quarantined: {state['reason']}")
    return documents[task_id]


def _read_as_committed(stores: Stores, table: str, rows: dict[str, dict], version_column: str,
                       schema: pa.Schema) -> dict[str, pa.Table]:
    """Each task's rows as of the Delta version its catalog row was committed with.

    A re-migration commits new rows before the catalog row that names them; a reader
    between the two (or after a crash between them) must still see the old, whole task.
    One scan per distinct version; rows without a recorded version read the current one.
    """
    by_version: dict[int | None, list[str]] = {}
    for task_id, row in rows.items():
        by_version.setdefault(row.get(version_column), []).append(task_id)
    out: dict[str, pa.Table] = {}
    for version, ids in by_version.items():
        try:
            out.update(_by_task(stores.delta.read_tasks(table, ids, version=version), schema))
        except (OSError, DeltaError) as exc:  # that version's files were vacuumed
            log.warning("reading %s at its current version: version %s unavailable (%s)", table, version, exc)
            out.update(_by_task(stores.delta.read_tasks(table, ids), schema))
    return out


def _by_task(table: pa.Table | None, schema: pa.Schema) -> dict[str, pa.Table]:
    if table is None or table.num_rows == 0:
        return {}
    table = table.sort_by("task_id")
    ids = table.column("task_id").to_pylist()
    groups, start = {}, 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[start]:
            groups[ids[start]] = table.slice(start, i - start)
            start = i
    return groups
