"""The application's result writer and reader, in the three phases of the switch-over.

- json-only:     `<source-dir>/<task_id>/result.json`, written atomically, and nothing else.
- dual-write:    the JSON first, then the store through the batch engine (the same
                 conversion, proof and checks as a backfill) into the hot tier. A bad document
                 or a store failure is a warning: the JSON stays and the sensor migrates
                 the task later.
- postgres-only: the store only; a bad document raises ResultValidationError, a store
                 failure ResultStoreError, and nothing is published.

A save's rows and its catalog row commit in one transaction (the hot tier): readable the
moment save_result returns; store_maintenance later moves the rows into Delta. The same
transaction queues the save's record for Dagster (its materializations and check
evaluations); the code location reports the queue (saved_results_sensor requests a
report_saves_job run; flush_records() here runs one), so a saving process never starts,
loads or waits on Dagster.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path

from result_assets.app.errors import ResultNotFound, ResultStoreError, ResultValidationError
from result_assets.app.task_ids import check_task_id
from result_assets.legacy import InvalidResult, parse_document
from result_assets.legacy.parse import NonStringKeys, dumps_read_back, with_string_keys
from result_assets.migration.batch import RawResult, ValidatedResult, in_thread
from result_assets.migration.convert import convert
from result_assets.migration.engine import BatchResult, keep_published_backup, run_batch
from result_assets.migration.sources import RESULT_FILE, LegacyFile, source_differs, task_dir_path
from result_assets.settings import Settings
from result_assets.store.backups import StagedFile, sha256_hex, write_atomic
from result_assets.store.last_write import file_older_than_store
from result_assets.store.reader import CACHE_FILL_MAX_TASKS, catalog_rows, rebuild_documents, settled_documents
from result_assets.store.stores import Stores

log = logging.getLogger("result_assets.app")

JSON_ONLY, DUAL_WRITE, POSTGRES_ONLY = "json-only", "dual-write", "postgres-only"
MODES = (JSON_ONLY, DUAL_WRITE, POSTGRES_ONLY)


@dataclass
class SaveOutcome:
    """Where a saved result went, and what did not go as planned."""

    task_id: str
    mode: str
    json_path: str | None = None  # the JSON written (json-only, dual-write)
    stored: str | None = None  # "migrated" or "quarantined" once the catalog row is committed (published)
    pending: bool = False  # dual-write: the store was not written; the sensor will migrate the JSON
    materialized: bool = False  # reported to the Dagster instance (flush_records; else the code location, later)
    corrections: list[str] = field(default_factory=list)  # what validation auto-corrected
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per engine stage

    @property
    def destinations(self) -> list[str]:
        return (["json"] if self.json_path else []) + (["store"] if self.stored else [])


class ResultManager:
    """Save and read backtest results in the current storage mode (RESULT_STORAGE_MODE)."""

    # The seed platform's names for the modes (its backend compares against these).
    MODE_JSON_ONLY, MODE_DUAL_WRITE, MODE_POSTGRES_ONLY = JSON_ONLY, DUAL_WRITE, POSTGRES_ONLY

    def __init__(self, mode: str | None = None, source_dir: str | os.PathLike | None = None, *,
                 database_url: str | None = None, store_root: str | None = None,
                 backup_dir: str | None = None, record_in_dagster: bool = True,
                 settings: Settings | None = None, storage_mode: str | None = None,
                 data_root: str | os.PathLike | None = None, storage=None):
        """`storage_mode`, `data_root` and `storage` are the seed platform's calling convention:
        the mode, the JSON folder, and the store (a database URL, or a Stores to take settings from)."""
        if mode is not None and storage_mode is not None and mode != storage_mode:
            raise ValueError(f"mode {mode!r} and storage_mode {storage_mode!r} disagree")
        mode = mode or storage_mode or JSON_ONLY
        source_dir = source_dir or data_root
        if isinstance(storage, Stores):
            settings = settings or storage.settings
        elif isinstance(storage, str):
            database_url = database_url or storage
        elif storage is not None:
            raise TypeError(f"storage must be a database URL or a Stores, not {type(storage).__name__}")
        if mode not in MODES:
            raise ValueError(f"unknown storage mode {mode!r}: use one of {', '.join(MODES)}")
        overrides = {"source_dir": str(source_dir) if source_dir else None, "database_url": database_url,
                     "store_root": store_root, "backup_dir": backup_dir}
        base = settings or Settings.from_env()
        self.settings = replace(base, storage_mode=mode, **{k: v for k, v in overrides.items() if v})
        self.mode = mode
        if mode != POSTGRES_ONLY and not self.settings.source_dir:
            raise ValueError(f"{mode} writes JSON: give source_dir or set RESULT_SOURCE_DIR")
        self.record_in_dagster = record_in_dagster
        # One catalog connection per manager: store work is serialized (async calls use threads).
        self._lock = threading.RLock()
        self._unreported: list[SaveOutcome] = []  # saves queued for Dagster, not reported by flush_records yet

    @classmethod
    def from_env(cls) -> "ResultManager":
        settings = Settings.from_env()
        return cls(settings.storage_mode, settings=settings)

    @cached_property
    def stores(self) -> Stores:
        return Stores(self.settings)

    # --- writing ---

    def save_result(self, task_id: str, result: dict) -> SaveOutcome:
        check_task_id(task_id)
        outcome = SaveOutcome(task_id, self.mode)
        if self.mode == JSON_ONLY:
            raw, _, outcome.corrections = _serialize(task_id, result)
            outcome.json_path = str(self._write_json(task_id, raw)[0])
            return outcome
        document, outcome.corrections = autocorrect(result)
        raw, parsed, keys = _serialize(task_id, document)
        outcome.corrections += keys
        if self.mode == DUAL_WRITE:
            # The file's write (mostly its fsync, a wait) runs beside the conversion (CPU); it
            # takes the JSON's name under the task's save lock, so the files' order is the store's.
            staging = in_thread(self._stage_json, task_id, raw)
            planned = LegacyFile(task_id, str(self._json_path(task_id)), len(raw), 0)
            try:
                validated = convert(RawResult(planned, raw, sha256_hex(raw)), parsed)
            except BaseException:
                staged = staging.result()
                try:
                    self._put_json(staged)  # the JSON is the record in this phase
                finally:
                    staged.discard()
                raise
            self._dual_write_store(task_id, staging.result(), raw, validated, outcome)
        else:
            self._postgres_only_store(task_id, raw, parsed, outcome)
        return outcome

    async def asave_result(self, task_id: str, result: dict) -> SaveOutcome:
        return await asyncio.to_thread(self.save_result, task_id, result)

    def _write_json(self, task_id: str, raw: bytes) -> tuple[Path, os.stat_result]:
        path = self._json_path(task_id)
        try:
            written = write_atomic(path, raw)
        except OSError as exc:
            raise ResultStoreError(f"cannot write {path}: {exc.strerror or exc}") from exc
        return path, written

    def _stage_json(self, task_id: str, raw: bytes) -> StagedFile:
        path = self._json_path(task_id)
        try:
            return StagedFile(path, raw)
        except OSError as exc:
            raise ResultStoreError(f"cannot write {path}: {exc.strerror or exc}") from exc

    def _put_json(self, staged: StagedFile) -> os.stat_result:
        try:
            return staged.put()
        except OSError as exc:
            raise ResultStoreError(f"cannot write {staged.path}: {exc.strerror or exc}") from exc

    def _dual_write_store(self, task_id: str, staged: StagedFile, raw: bytes,
                          validated: ValidatedResult, outcome: SaveOutcome) -> None:
        path = staged.path
        outcome.json_path = str(path)
        if validated.reason:
            self._warn(outcome, f"task {task_id!r} is invalid and is quarantined: {validated.reason} "
                                f"(its JSON was written)")
        try:
            with self._lock, self.stores.catalog.task_save_lock(task_id):
                # The JSON takes its name under the save lock: two saves of one task at once
                # rename their files in the order they publish, so the last file is the store's
                # save (in the other order the two could differ where size and mtime agree,
                # which no change check sees).
                written = self._put_json(staged)
                # The size and mtime of the file this save wrote, not of whatever is at `path`
                # now: the catalog must not pair this save's SHA-256 with another file's.
                source = LegacyFile(task_id, str(path), written.st_size, written.st_mtime_ns)
                validated.source = source
                catalog = self.stores.catalog
                # Registered first: if the store write fails the task shows as pending.
                catalog.register_sources({task_id: (source.partition_key, str(path))})
                batch = write_task(self.stores, RawResult(source, raw, validated.sha256), validated,
                                   records=self._records(validated))
        except Exception as exc:  # the JSON is the record in this phase: never fail the caller
            # The store (its lock) unreachable: the file all the same. A file that cannot take
            # its name fails the save, as in json-only.
            self._put_json(staged)
            log.debug("store write failed", exc_info=True)
            outcome.pending = True
            self._warn(outcome, f"task {task_id!r} not written to the store ({_one_line(exc)}); "
                                "its JSON is kept and the sensor will migrate it")
            return
        except BaseException:  # interrupted (Ctrl-C, a SIGTERM handler's exit): the JSON, as it always was
            if not staged.put_done:
                try:
                    staged.put()
                except OSError:
                    pass
            raise
        finally:
            staged.discard()
        outcome.timings = {**batch.seconds, "convert": validated.seconds}  # convert: parse, normalize, rebuild proof
        if validated.status == "failed":  # not published: the JSON is the record, the next migrate retries it
            outcome.pending = True
            self._warn(outcome, f"task {task_id!r} was not published: {validated.failure} (its JSON was written)")
        else:
            outcome.stored = validated.status
            self._serve(validated, raw)
        self._queued(outcome)

    def _postgres_only_store(self, task_id: str, raw: bytes, parsed: object, outcome: SaveOutcome) -> None:
        source = LegacyFile(task_id, "", len(raw), 0)
        validated = convert(RawResult(source, raw, sha256_hex(raw)), parsed)
        if validated.reason:
            raise ResultValidationError(f"task {task_id!r} is not a valid result: {validated.reason}")
        if validated.failure:  # never replace the last good save with a document the store cannot keep
            raise ResultStoreError(f"task {task_id!r} was not stored: {validated.failure}")
        # An older JSON of this task may be registered: the save points it at the bytes just
        # stored, in its publishing transaction, so `status` does not call the task stale
        # against a superseded file.
        sources = {task_id: (source.partition_key, str(self.stores.backups.path(task_id)))}
        try:
            with self._lock, self.stores.catalog.task_save_lock(task_id):
                try:
                    batch = write_task(self.stores, RawResult(source, raw, validated.sha256), validated,
                                       keep_source_path=False, records=self._records(validated), sources=sources)
                except Exception:
                    keep_published_backup(self.stores, task_id)
                    raise
                if validated.status == "failed":
                    keep_published_backup(self.stores, task_id)
        except Exception as exc:
            raise ResultStoreError(f"task {task_id!r} was not stored: {_one_line(exc)}") from exc
        if validated.status == "failed":
            raise ResultStoreError(f"task {task_id!r} was not published: its proof failed: {validated.failure}")
        outcome.timings = {**batch.seconds, "convert": validated.seconds}  # convert: parse, normalize, rebuild proof
        outcome.stored = validated.status
        self._serve(validated, raw)
        self._queued(outcome)

    def _serve(self, validated: ValidatedResult, raw: bytes) -> None:
        """The saved file into the serving cache: the first read of it, in any process, costs
        about what reading the JSON did (store/serving_cache.py; a failure there only costs reads)."""
        if validated.status == "migrated":  # (a file the rebuild reads faster, fill() leaves out)
            entry = {validated.task_id: (validated.sha256, raw, validated.plain_numbers)}
            self.stores.serving_cache.fill_later(lambda: entry)

    def _records(self, validated: ValidatedResult) -> dict[str, tuple[dict, str]] | None:
        """The save's record for Dagster, queued in its publishing transaction (none when
        record_in_dagster is off)."""
        if not self.record_in_dagster:
            return None
        metadata = {"status": validated.status, "source_sha256": validated.sha256,
                    "json_bytes": validated.json_bytes, "written_by": f"ResultManager ({self.mode})"}
        if validated.result is not None:
            metadata["signals"] = validated.result.n_signals
        else:
            metadata["reason"] = validated.reason
        return {validated.task_id: (metadata, f"saved by the application in {self.mode} mode")}

    def _queued(self, outcome: SaveOutcome) -> None:
        if self.record_in_dagster:
            with self._lock:
                self._unreported.append(outcome)

    def flush_records(self, timeout: float | None = 60) -> bool:
        """Report every queued save to the Dagster instance now, as a `report_saves_job` run
        (the code location's saved_results_sensor otherwise does it within a minute): the one
        call here that loads Dagster, through the reporter the code location installs (the
        `result_assets.save_reporters` entry point). Marks this manager's saves `materialized`
        once reported. `timeout` is kept for callers of earlier releases. Returns whether all
        were reported."""
        if not self.record_in_dagster:
            return True
        report_queued_saves = _save_reporter()
        with self._lock:
            report_queued_saves(self.settings)
            still_queued = self.stores.catalog.record_ids([o.task_id for o in self._unreported])
            for outcome in self._unreported:
                outcome.materialized = outcome.task_id not in still_queued
            self._unreported = [o for o in self._unreported if not o.materialized]
            return not self._unreported

    def _warn(self, outcome: SaveOutcome, message: str) -> None:
        log.warning(message)
        outcome.warnings.append(message)

    # --- reading ---

    def get_result(self, task_id: str) -> dict:
        check_task_id(task_id, as_directory=self.mode != POSTGRES_ONLY)
        return self._get(task_id, scan=False)

    def _get(self, task_id: str, scan: bool) -> dict:
        """`scan`: one of many (get_results one task at a time): the caches are read, not filled."""
        if self.mode == JSON_ONLY:
            return self._read_json(task_id)
        if self.mode == POSTGRES_ONLY:
            document = self._read_store(task_id, None, scan)
            if document is None:
                raise ResultNotFound(self._missing_reason(task_id))
            return document
        try:
            document = self._read_store(task_id, self._json_path(task_id), scan)
        except ResultStoreError as exc:
            log.warning("%s; reading the JSON", exc)
            document = None
        return document if document is not None else self._read_json(task_id)

    def get_results(self, task_ids: list[str]) -> dict[str, dict]:
        """Many documents in one pass: {task_id: document} of those found, in the order asked
        (in postgres-only, one catalog query and one read per file per 1,000 tasks). A task
        that cannot be read (its file invalid, its stored rows gone) is left out with a warning
        in the log, as a quarantined one is: it never fails the others."""
        for task_id in task_ids:
            check_task_id(task_id, as_directory=self.mode != POSTGRES_ONLY)
        if self.mode == JSON_ONLY:
            found = _found(task_ids, self._read_json)
        elif self.mode == DUAL_WRITE:
            found = self._dual_write_results(task_ids)
        else:
            try:
                with self._lock:
                    found = rebuild_documents(self.stores, list(task_ids), unreadable={})
            except Exception as exc:
                raise ResultStoreError(f"cannot read tasks from the store: {_one_line(exc)}") from exc
        return {t: found[t] for t in dict.fromkeys(task_ids) if t in found}

    def _dual_write_results(self, task_ids: list[str]) -> dict[str, dict]:
        """The store's documents where it has caught up with the JSON, read in one pass as
        postgres-only reads many (a catalog query and a read per file, not a query and a read
        per task); the JSON of the others. Should that pass fail, each task is read on its own,
        as get_result reads it (the JSON where the store cannot give it)."""
        try:
            with self._lock:  # a task whose stored rows are gone: its JSON, as get_result reads it
                stored = rebuild_documents(self.stores, list(task_ids), only=self._store_caught_up,
                                           unreadable={})
        except Exception as exc:
            log.warning("cannot read tasks from the store in one pass: %s; reading them one at a time",
                        _one_line(exc))
            scan = len(task_ids) > CACHE_FILL_MAX_TASKS  # as postgres-only's bulk read: no cache filled
            return _found(task_ids, lambda task_id: self._get(task_id, scan))
        rest = _found([t for t in task_ids if t not in stored], self._read_json)
        return {t: stored[t] if t in stored else rest[t] for t in task_ids if t in stored or t in rest}

    async def aget_result(self, task_id: str) -> dict:
        return await asyncio.to_thread(self.get_result, task_id)

    def _read_store(self, task_id: str, json_path: Path | None, scan: bool = False) -> dict | None:
        """The stored document; None if not migrated, or (dual-write) if the JSON is newer."""
        try:
            with self._lock:
                rows = catalog_rows(self.stores, [task_id])  # one query: the catalog row, hot rows, served file
                row = rows.get(task_id)
                if row is None or row["status"] != "migrated":
                    return None
                if json_path is not None and not self._store_caught_up(row, json_path):
                    return None  # a newer JSON the store has not caught up with yet
                return settled_documents(self.stores, rows, scan=scan).get(task_id)
        except Exception as exc:
            raise ResultStoreError(f"cannot read task {task_id!r} from the store: {_one_line(exc)}") from exc

    def _store_caught_up(self, row: dict, path: Path | None = None) -> bool:
        """dual-write: the store's version is the one to read: its JSON (`path`, else the task's)
        holds the same bytes, is gone, or is older than a postgres-only save (not a newer write
        the store lacks)."""
        path = self._json_path(row["task_id"]) if path is None else path
        return not source_differs(path, row["source_bytes"], row["source_mtime_ns"], row["source_sha256"]) \
            or _json_older_than_store(path, row, self.stores.catalog)

    def _missing_reason(self, task_id: str) -> str:
        try:
            with self._lock:
                row = self.stores.catalog.task(task_id)
        except Exception:
            row = None
        if row is not None and row["status"] in ("quarantined", "failed"):
            return f"task {task_id!r} is {row['status']}: {row['reason']}"
        return f"no result for task {task_id!r} in the store"

    def _read_json(self, task_id: str) -> dict:
        path = self._json_path(task_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ResultNotFound(f"no result for task {task_id!r} at {path}") from None
        except OSError as exc:
            if exc.errno in _BAD_FILE:  # this file's fault: invalid, as migrate quarantines it alone
                raise ResultValidationError(f"cannot read {path}: {exc.strerror}") from None
            raise ResultStoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
        try:
            return parse_document(raw)
        except InvalidResult as exc:
            raise ResultValidationError(f"{path}: {exc.reason}") from None

    def _json_path(self, task_id: str) -> Path:
        task_dir = task_dir_path(self.settings.source_dir, task_id)  # the exact bytes of a non-UTF-8 name
        if task_dir is None:  # the caller's error, as every mode reports a task id it cannot use
            raise ResultValidationError(f"task id {task_id!r} is not a safe directory name")
        return task_dir / RESULT_FILE

    def close(self) -> None:
        stores = self.__dict__.get("stores")
        if stores is not None and "catalog" in stores.__dict__:
            stores.catalog.close()


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _json_older_than_store(path: Path, row: dict, catalog) -> bool:
    """A JSON the store's version supersedes (last_write.older_than_store: a postgres-only save
    made after it): dual-write reads the store, not that older file."""
    published = row.get("migrated_at")
    published_ns = None if published is None else (published - _EPOCH) // timedelta(microseconds=1) * 1000
    return file_older_than_store(catalog, row["task_id"], path, row.get("source_path"), published_ns)


def write_task(stores: Stores, raw: RawResult, validated: ValidatedResult, keep_source_path: bool = True,
               records: dict[str, tuple[dict, str]] | None = None,
               sources: dict[str, tuple[str, str]] | None = None) -> BatchResult:
    """One converted task through the batch engine into the hot tier: backup, proof, rows,
    catalog row (and the save's queued Dagster record and registered source) in one
    transaction, durable and readable when this returns."""
    return run_batch(stores, raws=[raw], converted=[validated], keep_source_path=keep_source_path, tier="hot",
                     records=records, sources=sources)


# A file that cannot be read for reasons of its own (not a file, no permission, a link loop, a
# name too long): one task's problem. Any other error (EIO, ESTALE, ...) is the share's.
_BAD_FILE = {errno.EISDIR, errno.EACCES, errno.EPERM, errno.ELOOP, errno.ENAMETOOLONG, errno.ENOTDIR}


def _found(task_ids: list[str], read) -> dict[str, dict]:
    """{task_id: read(task_id)} of the tasks `read` finds (the others raise ResultNotFound);
    one whose file is invalid (truncated, not a file) is left out with a warning, as the store
    leaves out a quarantined task."""
    out = {}
    for task_id in task_ids:
        try:
            out[task_id] = read(task_id)
        except ResultNotFound:
            pass
        except ResultValidationError as exc:  # an error of the share (EIO, ESTALE) raises
            log.warning("task %r left out of a read of many: %s", task_id, exc)
    return out


def autocorrect(result: object) -> tuple[object, list[str]]:
    """What the legacy platform tolerated, made regular: a symbol given as a bare string
    becomes {"symbol": name} (legacy-format.md allows it back in that form)."""
    if type(result) is not dict or type(result.get("symbols")) is not list:
        return result, []
    symbols = result["symbols"]
    named = sum(1 for s in symbols if type(s) is str)
    if not named:
        return result, []
    fixed = dict(result)
    fixed["symbols"] = [{"symbol": s} if type(s) is str else s for s in symbols]
    return fixed, [f"{named} symbol(s) given as strings stored as objects"]


def _serialize(task_id: str, result: object) -> tuple[bytes, object | None, list[str]]:
    """(the file's bytes; those bytes parsed when writing them parsed them, else None; the
    corrections made to write them). Keys that are not strings are written as JSON writes
    them ("1", "true", "null"), said in the corrections; two that become one key are refused."""
    corrections = []
    try:
        try:
            text, parsed = dumps_read_back(result)
        except NonStringKeys:  # only where orjson refused the document: a walk is rare
            result, changed = with_string_keys(result)
            corrections.append(f"{len(changed)} object key(s) that were not strings written as JSON strings "
                               f"({', '.join(changed[:5])}{', ...' if len(changed) > 5 else ''})")
            text, parsed = dumps_read_back(result)
        return text.encode(), parsed, corrections
    except RecursionError:
        raise ResultValidationError(f"task {task_id!r}: result is nested too deeply to write as JSON") from None
    except (TypeError, ValueError) as exc:
        raise ResultValidationError(f"task {task_id!r}: result is not JSON: {exc}") from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


SAVE_REPORTERS = "result_assets.save_reporters"  # the entry-point group of save reporters


def _save_reporter():
    """The code location's reporter of queued saves: a plugin, so that this module never
    imports the layer above it (nor Dagster)."""
    from importlib.metadata import entry_points

    found = sorted(entry_points(group=SAVE_REPORTERS), key=lambda e: e.name)
    if not found:
        raise ResultStoreError(f"no reporter of saves is installed (entry point group {SAVE_REPORTERS}): "
                               "install result-assets with its code location")
    return found[0].load()
