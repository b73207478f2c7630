"""The pieces of a batch as plain functions over plain data: reading a source, validating
it, the rows and catalog rows of a batch, its backups. The engine (engine.py) runs them
in order for every writer."""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import dataclass, replace

import pyarrow as pa

from result_assets.legacy import InvalidResult, NormalizedResult, dumps_document, normalize, parse_document
from result_assets.legacy.normalize import nesting_depth
from result_assets.legacy.schema import CURVE_SCHEMA, SIGNAL_SCHEMA
from result_assets.migration.sources import LegacyFile, display_path, outside_source_dir, unread_refusal
from result_assets.store.backups import file_sha256, sha256_hex
from result_assets.store.catalog import METRICS, SymbolRow, TaskRow
from result_assets.store.delta_tables import CommitInfo


@dataclass
class RawResult:
    """A legacy file's exact bytes, or why they could not be read."""

    source: LegacyFile
    raw: bytes
    sha256: str
    unreadable: str | None = None
    backup_from_file: bool = False  # too big to hold: the backup is streamed from the source file
    unread: bool = False  # not read at all (gone, an I/O error): says nothing of the task's data


@dataclass
class ValidatedResult:
    source: LegacyFile
    sha256: str
    json_bytes: int
    result: NormalizedResult | None
    document: object | None  # the parsed source, kept for the round-trip check
    reason: str | None  # the quarantine reason
    seconds: float
    # Differences between the source and the document rebuilt from `result` (None: not checked yet)
    conversion_differences: list[str] | None = None
    proof: TaskProof | None = None  # what the conversion proof saw, for the read-back proof
    failure: str | None = None  # why a proof failed: the task is then not published
    # Every number of the file reads exactly without parse_document's screen for long ones
    # (parse_unscreened gives what parse_document does): what the serving cache remembers.
    plain_numbers: bool = False
    unread: bool = False  # RawResult.unread: quarantined, but never over a published version

    @property
    def task_id(self) -> str:
        return self.source.task_id

    @property
    def status(self) -> str:
        if self.result is None:
            return "quarantined"
        return "failed" if self.failure else "migrated"

    @property
    def proven(self) -> bool:
        """Valid, and its rebuild from its own rows equals the source."""
        return self.result is not None and self.failure is None and self.proof is not None


@dataclass(frozen=True)
class TaskProof:
    """What was proven to write the source file's exact bytes again: digests of the rows,
    the exact skeleton text, and the Spelling (or, when none reproduces the file, its text)."""

    signals_digest: str
    curves_digest: str
    skeleton_text: str
    spelling: str | None = None  # legacy/exact.py Spelling as JSON
    exact_text: str | None = None  # the file's text, when no Spelling reproduces it
    regenerated_sha256: str | None = None  # the SHA-256 of the bytes written again: the source's


@dataclass
class TaskRows:
    """Rows bound for one Delta table, and every task whose rows they replace."""

    table: pa.Table
    task_ids: list[str]
    commit: CommitInfo | None = None  # set once written


@dataclass
class CatalogBatch:
    tasks: list[TaskRow]
    symbols: list[SymbolRow]


# Deeper documents are quarantined before any recursive step sees them: how deep the
# parser, normalizer, JSON writer and comparison can go depends on the caller's stack
# (a Dagster step is already ~200 frames deep), so the limit is explicit and far below it.
# Real results are under 10 levels deep.
MAX_NESTING = 100
_TOO_DEEP = f"nested more than {MAX_NESTING} levels deep (the limit)"


def read_source(source: LegacyFile, limit: int) -> RawResult:
    """The file's bytes, or why not: refused (a link out of the source dir), over the size
    limit (hashed and later backed up by streaming, never held whole), or unreadable."""
    if source.refused:
        return RawResult(source, b"", sha256_hex(b""), source.refused, unread=unread_refusal(source.refused))
    try:
        if outside_source_dir(source.path):
            return RawResult(source, b"", sha256_hex(b""),
                             f"refused: {display_path(source.path)} now resolves outside the source directory")
        if source.size > limit:
            return _oversized(source, source.size, limit)
        with open(source.path, "rb") as f:
            raw = f.read(limit + 1)  # the file may have grown since it was listed
            read = os.fstat(f.fileno())
        if len(raw) > limit:
            del raw
            return _oversized(source, os.stat(source.path).st_size, limit)
    except OSError as exc:
        return RawResult(source, b"", sha256_hex(b""), f"cannot read {display_path(source.path)}: {exc.strerror}",
                         unread=True)
    if (read.st_size, read.st_mtime_ns) != (source.size, source.mtime_ns) and read.st_size == len(raw):
        # written again since it was listed: these bytes are of the file's state now (what the
        # catalog records, and what a run that published meanwhile is judged against)
        source = replace(source, size=read.st_size, mtime_ns=read.st_mtime_ns)
    return RawResult(source, raw, sha256_hex(raw))


def _oversized(source: LegacyFile, size: int, limit: int) -> RawResult:
    reason = f"file is {size} bytes, over the {limit}-byte limit (RESULT_MAX_FILE_BYTES)"
    return RawResult(source, b"", file_sha256(source.path), reason, backup_from_file=True)


def validate(raw: RawResult, parse=parse_document) -> ValidatedResult:
    """Parse and normalize one task (`parse`: parse_document, or the conversion's unscreened
    parse, which it proves afterwards); a document that cannot be migrated gets its reason."""
    started = time.perf_counter()
    result = document = reason = None
    if raw.unreadable:
        reason = raw.unreadable
    else:
        try:
            document = parse(raw.raw)
            # The depth is checked after normalize, from the small skeleton and what the rows
            # add (walking every row again was 5% of a conversion); a document that normalize
            # refuses is still refused for its depth first, as the limit comes first.
            try:
                result = normalize(raw.source.task_id, document)
            except Exception:
                if nesting_depth(document, MAX_NESTING) > MAX_NESTING:
                    raise InvalidResult(_TOO_DEEP) from None
                raise
            if max(nesting_depth(result.skeleton, MAX_NESTING), result.rows_depth) > MAX_NESTING:
                raise InvalidResult(_TOO_DEEP)
        except InvalidResult as exc:
            result, reason, document = None, exc.reason, None
        except RecursionError:
            result, reason, document = None, _TOO_DEEP, None
    size = len(raw.raw) if not raw.unreadable else raw.source.size
    return ValidatedResult(raw.source, raw.sha256, size, result, document, reason,
                           time.perf_counter() - started, unread=raw.unread)


def signal_rows(validated: list[ValidatedResult]) -> TaskRows:
    """The proven tasks' signal rows, replacing the rows of every task of the batch."""
    tables = [v.result.signals for v in validated if v.proven and v.result.signals.num_rows]
    table = pa.concat_tables(tables) if tables else SIGNAL_SCHEMA.empty_table()
    return TaskRows(table, [v.task_id for v in validated])


def curve_rows(validated: list[ValidatedResult]) -> TaskRows:
    tables = [v.result.curves for v in validated if v.proven and v.result.curves.num_rows]
    table = pa.concat_tables(tables) if tables else CURVE_SCHEMA.empty_table()
    return TaskRows(table, [v.task_id for v in validated])


def catalog_batch(validated: list[ValidatedResult]) -> CatalogBatch:
    tasks, symbols = [], []
    for v in validated:
        row = TaskRow(
            task_id=v.task_id,
            partition_key=v.source.partition_key,
            status=v.status,
            reason=v.reason or v.failure,
            source_path=v.source.path,
            source_sha256=v.sha256,
            source_bytes=v.json_bytes,
            source_mtime_ns=None if v.unread else v.source.mtime_ns,  # unread: the next run tries again
            convert_seconds=round(v.seconds, 6),
            unread=v.unread,
        )
        r = v.result
        if r is not None:
            row.layout = r.layout
            row.strategy = r.strategy
            row.timeframe = r.timeframe
            row.start_date = r.start_date
            row.end_date = r.end_date
            row.params = r.params
            row.n_symbols = len(r.symbols)
            row.n_signals = r.n_signals
            row.n_curve_points = r.n_curve_points
            row.skeleton = v.proof.skeleton_text if v.proof else dumps_document(r.skeleton)
            if v.proof:
                row.spelling, row.exact_text = v.proof.spelling, v.proof.exact_text
            row.warnings = list(r.warnings)
            for name in METRICS:
                setattr(row, name, _float(r.metrics.get(name)))
            for s in r.symbols:
                symbols.append(SymbolRow(
                    v.task_id, s.symbol_idx, s.symbol, s.n_signals,
                    *(_float(getattr(s, name)) for name in METRICS)))
        tasks.append(row)
    return CatalogBatch(tasks, symbols)


def _float(value) -> float | None:
    """A metric as the catalog's double precision column holds it; an integer past float64's
    range (10**400) has no such value: None there (the document keeps it exactly)."""
    try:
        return None if value is None else float(value)
    except OverflowError:
        return None


# A migration's backups take their tasks' save locks at most this many tasks and bytes at a
# time (a file streamed from its source, over the size limit, alone): two round trips a chunk,
# not a task, and an application save of one of them waits for no more than a chunk's writes.
BACKUP_LOCK_TASKS = 16
BACKUP_LOCK_BYTES = 16 << 20


def save_backups(stores, raws: list[RawResult], lock=None) -> None:
    """Each task's exact bytes into the backups. `lock`: a migration's task_save_locks, held
    around its tasks' writes so that none lands between an application save's own backup and
    the checks that read that backup back (the save holds its task's lock throughout)."""
    copied = [raw for raw in raws if raw.backup_from_file or not raw.unreadable]  # else nothing was read
    for chunk in _lock_chunks(copied):
        with lock([raw.source.task_id for raw in chunk]) if lock else nullcontext():
            for raw in chunk:
                _save_backup(stores, raw)


def _lock_chunks(raws: list[RawResult]):
    chunk, size = [], 0
    for raw in raws:
        if raw.backup_from_file:
            yield [raw]
            continue
        if chunk and (len(chunk) == BACKUP_LOCK_TASKS or size + len(raw.raw) > BACKUP_LOCK_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(raw)
        size += len(raw.raw)
    if chunk:
        yield chunk


def _save_backup(stores, raw: RawResult) -> None:
    if raw.backup_from_file:  # over the size limit: streamed, never held whole
        try:
            stores.backups.save_file(raw.source.task_id, raw.source.path, raw.sha256)
        except FileNotFoundError as exc:
            if exc.filename != raw.source.path:
                raise  # the backup store's own problem: the batch's
            # This task's source vanished after it was hashed: quarantined alone.
            raw.unreadable = f"cannot read {display_path(raw.source.path)}: it vanished while being backed up"
            raw.backup_from_file, raw.unread = False, True
        return
    # Read back once, before the publish (engine._verify_backups), not here too.
    stores.backups.save(raw.source.task_id, raw.raw, raw.sha256, verify=False)


def in_thread(work, *args) -> Future:
    """work(*args) on a thread of its own (a thread per call: nothing to restart in a forked
    child); its result or exception through the Future. For a write (mostly a wait on the
    disk or the network) beside CPU work."""
    future: Future = Future()

    def run():
        try:
            future.set_result(work(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who raises it
            future.set_exception(exc)

    try:
        threading.Thread(target=run, name="result-assets-write", daemon=True).start()
    except RuntimeError:  # no new thread now (the interpreter is shutting down): written here
        run()
    return future
