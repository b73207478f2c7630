"""Reading a migrated task back: catalog skeleton + its rows -> the document.

Rows are read where the catalog row says they live: the hot tier (a save not flushed
yet, hot_rows.py) or a file and its row groups (row_locations.py). Rows published before locations were recorded are read by Delta
time travel at the version the catalog row names. Either way a task is read as its
publishing commit wrote it, never as a mix, and never at another version.

A point read first asks the process's read cache (read_cache.py), then the serving cache
shared by every process (serving_cache.py: the file's bytes, taken only when they hash to
the published version's SHA-256), and fills both when it read the tables.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import pyarrow as pa
from deltalake.exceptions import DeltaError

from result_assets.legacy import dumps_document, exact
from result_assets.legacy.acyclic import cyclic_gc_paused
from result_assets.legacy.reconstruct import key_ordered
from result_assets.store import hot_rows
from result_assets.store.backups import BackupStore
from result_assets.store.delta_tables import CURVES, SCHEMAS, SIGNALS
from result_assets.store.read_cache import version_key
from result_assets.store.row_locations import RowsGone, split_by_task
from result_assets.store.serving_cache import LARGEST_FILE, served_document, served_file
from result_assets.store.stores import Stores


log = logging.getLogger(__name__)


class TaskNotMigrated(LookupError):
    pass


class TaskUnreadable(RuntimeError):
    """The rows a catalog row names are gone (vacuumed): the task cannot be read as published."""

    def __init__(self, message: str, task_ids: list[str]):
        super().__init__(message)
        self.task_ids = task_ids  # the tasks whose catalog rows name what is gone


# Tasks read per pass: one catalog query and one read per file each (bounds a pass's memory).
READ_BATCH = 1000
# A read of more tasks than this (a bulk read, a scan) takes from the read cache but does not
# fill it: one pass over thousands of tasks would evict what the point reads keep coming back to.
CACHE_FILL_MAX_TASKS = 16
# A point read decodes its curves on a thread of these while the caller decodes its signals:
# Parquet decodes without the GIL, and each table's row groups cost about 1 ms, most of it
# a fixed cost per column whatever the group's size (docs/performance.md "Row groups for
# point reads"). Several, so that callers reading at once do not queue behind each other.
BESIDE_THREADS = 4


def rebuild_documents(stores: Stores, task_ids: list[str], only=None,
                      unreadable: dict[str, str] | None = None) -> dict[str, dict]:
    """The documents of the migrated tasks among task_ids (what json.loads of each stored
    file gives): per READ_BATCH tasks, one catalog query, then each table's rows read
    where they live. `only(catalog row)`: read just the tasks it accepts (dual-write: those
    whose JSON the store has caught up with). `unreadable`: a task whose rows are gone is
    left out (a warning logged) and named there ({task_id: why}) instead of failing the whole read."""
    return _in_passes(stores, task_ids, _documents, only, unreadable)


def file_bytes(stores: Stores, task_ids: list[str]) -> dict[str, bytes]:
    """The exact bytes of the migrated tasks' files among task_ids (the source's SHA-256),
    read as rebuild_documents reads the documents."""
    return _in_passes(stores, task_ids, _files)


def _documents(rows: dict[str, dict], signals: dict[str, pa.Table], curves: dict[str, pa.Table]) -> dict[str, dict]:
    """Each task's document from its catalog row and rows. Rebuilt, not parsed from bytes
    written from the columns: rebuilding is the faster of the two at every size measured.
    Several tasks' timestamps are spelled together (exact.spelled_in_bulk)."""
    with cyclic_gc_paused():  # measured: over a quarter of a bulk rebuild was the GC's passes
        return _rebuilt(rows, signals, curves)


def _rebuilt(rows: dict[str, dict], signals: dict[str, pa.Table], curves: dict[str, pa.Table]) -> dict[str, dict]:
    spelled = {}
    if len(rows) > 1:
        signals = {t: key_ordered(signals[t]) for t in rows}  # the row order the spelled lists follow
        curves = {t: key_ordered(curves[t]) for t in rows}
        spelled = exact.spelled_in_bulk({t: (r["spelling"], signals[t], curves[t]) for t, r in rows.items()
                                         if r.get("spelling") is not None and r.get("exact_text") is None})
    return {t: exact.file_document(r["skeleton"], signals[t], curves[t], r.get("spelling"), r.get("exact_text"),
                                   spelled.get(t)) for t, r in rows.items()}


def _files(rows: dict[str, dict], signals: dict[str, pa.Table], curves: dict[str, pa.Table]) -> dict[str, bytes]:
    """Each task's file, written from the columns when they give its SHA-256 (faster than
    through the document for all but the smallest one-line files: docs/performance.md)."""
    return {t: exact.file_bytes(r["skeleton"], signals[t], curves[t], r.get("spelling"), r.get("exact_text"),
                                r.get("source_sha256")) for t, r in rows.items()}


def _in_passes(stores: Stores, task_ids: list[str], make, only=None, unreadable: dict | None = None) -> dict:
    out = {}
    scan = len(task_ids) > CACHE_FILL_MAX_TASKS  # decided by the tasks asked for, as catalog_rows decides
    for start in range(0, len(task_ids), READ_BATCH):
        rows = catalog_rows(stores, list(task_ids[start:start + READ_BATCH]), documents=make is _documents)
        if only is not None:
            rows = {t: r for t, r in rows.items() if r["status"] == "migrated" and only(r)}
        out.update(settled_documents(stores, rows, make=make, scan=scan, unreadable=unreadable))
    return out


def catalog_rows(stores: Stores, task_ids: list[str], documents: bool = True) -> dict[str, dict]:
    """The catalog rows of task_ids (Catalog.tasks); a point read also brings each task's
    serving-cache entry, in the same query. A bulk read neither takes from that cache nor
    fills it: its rebuild costs about what parsing the files would. `documents`: a read of
    documents, which the read cache may hold: their rows come without the bytes a rebuild
    would need (held_version; _from_rows asks again for any not in the cache by then)."""
    point = len(task_ids) <= CACHE_FILL_MAX_TASKS and stores.serving_cache.enabled
    held = stores.read_cache.held(task_ids) if documents else None
    return stores.catalog.tasks(task_ids, served=point, held=held)


def published_rows(stores: Stores, table: str, task_ids: list[str], found: set | None = None) -> pa.Table:
    """The rows in `table` (signals or curves) of the migrated tasks among task_ids, each as
    its publishing commit wrote it, task after task: what the IO managers hand a downstream
    asset. Read as rebuild_documents reads (per READ_BATCH tasks, maintenance-race retry).
    `found`: gets the ids of the tasks read, those the catalog's query said were published."""
    parts: list[pa.Table] = []
    for start in range(0, len(task_ids), READ_BATCH):
        chunk = stores.catalog.tasks(list(task_ids[start:start + READ_BATCH]))
        published, read = _settled(stores, chunk, lambda rows: _published_rows(stores, table, rows))
        parts += [read[t] for t in sorted(read)]
        if found is not None:
            found.update(published)
    return pa.concat_tables(parts) if parts else SCHEMAS[table].empty_table()


def _published_rows(stores: Stores, table: str, catalog_rows: dict[str, dict]) -> tuple[set[str], dict]:
    published = {t: r for t, r in catalog_rows.items() if r["status"] == "migrated"}
    return set(published), read_rows(stores, table, published)


def settled_documents(stores: Stores, catalog_rows: dict[str, dict], attempts: int = 3,
                      make=_documents, scan: bool | None = None, unreadable: dict | None = None) -> dict:
    """documents_from_rows (or, with `make=_files`, the files' bytes), read again
    from fresh catalog rows when a file they name is gone because maintenance moved those
    tasks meanwhile (re-pointed after a compaction or a flush, then vacuumed at a short
    retention). A file gone under an unchanged catalog row raises. `scan`: part of a read of many
    tasks, made one at a time (it takes from the caches and fills neither); by default a read of
    more than CACHE_FILL_MAX_TASKS is one. `unreadable`: as rebuild_documents'."""
    return _settled(stores, catalog_rows, lambda rows: _from_rows(stores, rows, make, scan), attempts, unreadable)


def _settled(stores: Stores, catalog_rows: dict[str, dict], read, attempts: int = 3,
             unreadable: dict | None = None) -> dict:
    retried = 0
    while True:
        try:
            return read(catalog_rows)
        except TaskUnreadable as exc:
            fresh = stores.catalog.tasks(list(catalog_rows))
            if retried < attempts - 1 and _placement(fresh) != _placement(catalog_rows):
                retried += 1  # moved meanwhile: read again where the catalog says now
                catalog_rows = fresh
                continue
            gone = set(exc.task_ids) & set(catalog_rows)
            if unreadable is None or not gone:
                raise
            # Each round leaves out at least one task: the loop ends.
            unreadable.update(dict.fromkeys(gone, str(exc)))
            log.warning("left out of a read of many: %s", exc)
            catalog_rows = {t: r for t, r in fresh.items() if t not in gone}


def _placement(rows: dict[str, dict]) -> dict:
    return {t: (r["version"], r["row_locations"], r.get("hot_signals") is not None or bool(r.get("hot_left_out")))
            for t, r in rows.items()}


def documents_from_rows(stores: Stores, catalog_rows: dict[str, dict]) -> dict[str, dict]:
    """The documents of the migrated tasks among these catalog rows (Catalog.tasks): what
    json.loads of each stored file gives."""
    return _from_rows(stores, catalog_rows, _documents)


def _from_rows(stores: Stores, catalog_rows: dict[str, dict], make, scan: bool | None = None) -> dict:
    """make({task_id: catalog row}, {task_id: signal rows}, {task_id: curve rows}) of the
    migrated tasks. Documents come from the process's read cache when it holds the version the
    catalog row names."""
    rows = {t: r for t, r in catalog_rows.items() if r["status"] == "migrated"}
    if not rows:
        return {}
    cache = stores.read_cache if make is _documents and stores.read_cache.enabled else None
    point = len(catalog_rows) <= CACHE_FILL_MAX_TASKS if scan is None else not scan
    out = {}
    if cache is not None:
        for task_id, row in rows.items():
            document = cache.get(version_key(task_id, row))
            if document is not None:
                out[task_id] = document
        rows = {t: r for t, r in rows.items() if t not in out}
    # held by the read cache when the catalog was asked, not now: their rows whole
    rows = _whole(stores, rows, {t for t, r in rows.items() if r.get("held_version")},
                  served=point and stores.serving_cache.enabled)
    made = {}
    for task_id, row in rows.items():  # the serving cache's entries (a point read's query brought them)
        raw = served_file(row)
        if raw is not None:
            made[task_id] = served_document(row, raw) if make is _documents else raw
    missed = {t: r for t, r in rows.items() if t not in made}
    # a serving-cache entry that did not give the file: the hot rows it left out
    missed = _whole(stores, missed, {t for t, r in missed.items() if r.get("hot_left_out")}, served=False)
    rows.update(missed)
    if missed:
        tables = _both_tables(stores, missed, beside=point)
        made.update(make(missed, tables[SIGNALS], tables[CURVES]))
        if point and stores.serving_cache.enabled:
            files = make is _files
            stores.serving_cache.fill_later(lambda: _files_to_keep(stores, missed, tables, made, files),
                                            after_burst=True)
    out.update(made)
    if cache is not None and point:
        for task_id in made:
            cache.put(version_key(task_id, rows[task_id]), made[task_id])
    return {task_id: out[task_id] for task_id in sorted(out)}


def _whole(stores: Stores, rows: dict[str, dict], ids: set[str], served: bool) -> dict[str, dict]:
    """rows, those of `ids` (which the catalog's query sent without some of their bytes:
    Catalog.tasks) asked for again whole; a task no longer migrated is left out."""
    if not ids:
        return rows
    fresh = stores.catalog.tasks(sorted(ids), served=served)
    rows = {t: fresh.get(t) if t in ids else r for t, r in rows.items()}
    return {t: r for t, r in rows.items() if r is not None and r["status"] == "migrated"}


def _files_to_keep(stores: Stores, rows: dict[str, dict], tables: dict, made: dict, files: bool) -> dict:
    """The files of tasks a point read took from the tables, for the serving cache (so the next
    first read of them, in any process, is served): {task_id: (SHA-256, bytes, plain numbers)},
    each kept only when it hashes to the published version's SHA-256."""
    keep = {}
    for task_id, row in rows.items():
        if (row.get("source_bytes") or 0) > LARGEST_FILE:  # not kept (its rebuild is quicker): not read again
            continue
        sha256 = row["source_sha256"]
        try:
            if files:  # the bytes the read made: written from the rows
                found = (made[task_id], None) if hashlib.sha256(made[task_id]).hexdigest() == sha256 else None
            else:
                found = _file_of(stores, row, made[task_id], tables, task_id)
        except Exception:  # noqa: BLE001 - a file that cannot be written again is only not kept
            log.debug("serving cache: %s not written again", task_id, exc_info=True)
            continue
        if found is not None:
            keep[task_id] = (sha256, *found)
    return keep


def _file_of(stores: Stores, row: dict, document, tables: dict, task_id: str) -> tuple[bytes, bool | None] | None:
    """(the task's file, whether orjson reads its numbers exactly; None: unknown), each way
    of getting it checked against the published version's SHA-256; None when none gave it. A document
    the application saved is dumps_document's text: orjson's, the rebuilt document written
    again in 0.2 ms against 4.4 ms from the columns (the app bench's 213 KB saves), or with
    bare NaN and infinities put back (2.2 ms). Another file is read from its JSON backup when
    the backups are local files (a read, not a write: a 279 KB indented legacy file's miss
    cost 7.5 ms more than a read without the cache when written from the columns); else it
    is written from the rows."""
    sha256 = row["source_sha256"]
    if _written_by_dumps_document(row.get("spelling")):
        raw = exact.orjson_text(document)
        if raw is not None and hashlib.sha256(raw).hexdigest() == sha256:
            return raw, True  # orjson reads its own numbers exactly
        raw = dumps_document(document).encode()
        if hashlib.sha256(raw).hexdigest() == sha256:
            return raw, None
    if isinstance(stores.backups, BackupStore):
        raw = stores.backups.read_version(task_id, sha256)
        if raw is not None:
            return raw, None
    raw = exact.file_bytes(row["skeleton"], tables[SIGNALS][task_id], tables[CURVES][task_id],
                           row.get("spelling"), row.get("exact_text"), sha256)
    return (raw, None) if hashlib.sha256(raw).hexdigest() == sha256 else None


def _written_by_dumps_document(spelling: str | None) -> bool:
    """The Spelling says dumps_document's style: one line, no spaces, UTF-8 as it is, or
    orjson's text (by_orjson: the same, ASCII or not)."""
    if spelling is None:
        return False
    style = exact.Spelling.from_json(spelling)
    return style.by_orjson or (style.indent is None and style.compact and not style.ensure_ascii)


def read_result(task_id: str, stores: Stores) -> dict:
    documents = rebuild_documents(stores, [task_id])
    if task_id not in documents:
        state = stores.catalog.task(task_id)
        if state is None:
            raise TaskNotMigrated(f"task {task_id!r} is not in the catalog (not migrated yet?)")
        raise TaskNotMigrated(f"task {task_id!r} is {state['status']}: {state['reason']}")
    return documents[task_id]


def _both_tables(stores: Stores, rows: dict[str, dict], beside: bool) -> dict[str, dict[str, pa.Table]]:
    """{table: read_rows(table)} of the signals and curves; with `beside` (a point read), the
    curves read on another thread meanwhile when both tables are read from files. (A bulk read's
    many row groups already decode on Arrow's threads.)"""
    from_files = {table for row in rows.values() for table in (SIGNALS, CURVES) if _from_files(row, table)}
    if not beside or len(from_files) < 2:
        return {table: read_rows(stores, table, rows) for table in (SIGNALS, CURVES)}
    curves = _beside_reads().submit(read_rows, stores, CURVES, rows)
    try:
        signals = read_rows(stores, SIGNALS, rows)
    except BaseException:
        wait([curves])  # not left running past a caller that raised
        raise
    return {SIGNALS: signals, CURVES: curves.result()}


def _from_files(row: dict, table: str) -> bool:
    """The catalog row names files holding the task's rows in `table` (not the hot tier)."""
    return row.get(f"hot_{table}") is None and bool((row.get("row_locations") or {}).get(table))


_beside_pool: ThreadPoolExecutor | None = None
_beside_lock = threading.Lock()


def _beside_reads() -> ThreadPoolExecutor:
    global _beside_pool
    with _beside_lock:
        if _beside_pool is None:
            _beside_pool = ThreadPoolExecutor(BESIDE_THREADS, thread_name_prefix="result-assets-read")
        return _beside_pool


def _forget_beside_reads_in_child() -> None:
    """A forked child has none of its parent's threads (nor a lock one of them held)."""
    global _beside_pool, _beside_lock
    _beside_pool, _beside_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_beside_reads_in_child)


def read_rows(stores: Stores, table: str, rows: dict[str, dict]) -> dict[str, pa.Table]:
    """{task_id: its rows in `table`} as each task's catalog row names them."""
    schema = SCHEMAS[table]
    out: dict[str, pa.Table] = {}
    for task_id, row in rows.items():
        if row.get(f"hot_{table}") is not None:  # saved by the application, not flushed yet
            out[task_id] = hot_rows.decode(row[f"hot_{table}"], schema)
    located = {t: r["row_locations"][table] for t, r in rows.items() if t not in out and r.get("row_locations")}
    if located:
        try:
            out.update(stores.delta.files.read(table, located, schema))
        except RowsGone as exc:
            gone = sorted(t for t, locations in located.items() if any(f == exc.relative for f, _ in locations))
            raise TaskUnreadable(f"cannot read {', '.join(map(repr, gone[:5]))} as published: {exc} "
                                 "(vacuumed past its retention?)", gone) from exc
    by_version: dict[int | None, list[str]] = {}
    for task_id, row in rows.items():
        if task_id not in located and task_id not in out:
            by_version.setdefault(row.get(f"{table}_version"), []).append(task_id)
    for version, ids in by_version.items():
        out.update(_read_at_version(stores, table, ids, version, schema))
    return out


def _read_at_version(stores: Stores, table: str, ids: list[str], version: int | None,
                     schema: pa.Schema) -> dict[str, pa.Table]:
    """Rows published before locations were recorded: Delta time travel to the named version."""
    try:
        found = stores.delta.read_tasks(table, ids, version=version)
    except (OSError, DeltaError) as exc:
        raise TaskUnreadable(f"cannot read {', '.join(map(repr, ids[:5]))} at {table} version {version}, the version "
                             f"their catalog rows name: {str(exc).splitlines()[0] if str(exc) else exc}", ids) from exc
    if found is None:
        return {t: schema.empty_table() for t in ids}
    return split_by_task(found.select(schema.names).cast(schema), ids, schema)
