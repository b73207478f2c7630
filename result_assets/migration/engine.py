"""The batch engine: the one place a batch of tasks is backed up, converted, proven and published.

Every writer of task documents calls it: the backfill's multi-asset, the explicit-list
job, the application's saves, the hot-tier flush (migration/maintenance.py), rollback
(migration/rollback.py) and the benchmarks. It knows no Dagster: it returns what it
wrote, and each check's outcome by check id (verify.py); the code location names them.
Per batch:

1. read the sources and back up their exact bytes (an application's save, converted
   already, writes its backup beside step 4 and waits for it before its checks and step 5);
   each backup is read back before anything of its task is published: a task whose bytes
   are not kept is not published;
2. convert and prove each task in the workers: the bytes written again from exactly the
   rows, skeleton text and Spelling to be stored hash to the source's SHA-256; a task
   whose data cannot be read, parsed or converted is quarantined alone, with a reason;
3. commit the proven tasks' rows to Delta (one commit per table);
4. read them back the way readers will (file and row groups) and prove they are the
   rows the conversion proof saw (digests); a task that differs is taken out again;
5. publish the catalog rows in one transaction: only proven tasks as 'migrated', a
   task whose proof failed as 'failed' with its first difference (never visible to
   readers; beside its last good version, which stays readable, when it has one), a bad
   file as 'quarantined'. The skeleton text is read back inside that transaction, before
   it commits. Steps 3-5 hold the store write lock (shared): maintenance never compacts
   or vacuums a file committed here before it is published.

It returns what it wrote, the versions, the check outcomes and per-stage timings.
"""
from __future__ import annotations

import atexit
import functools
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import Future, wait
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa

from result_assets.legacy.schema import CURVE_SCHEMA, SIGNAL_SCHEMA
from result_assets.migration.batch import (
    CatalogBatch,
    RawResult,
    TaskRows,
    ValidatedResult,
    catalog_batch,
    curve_rows,
    in_thread,
    read_source,
    save_backups,
    signal_rows,
)
from result_assets.migration.convert import Prefetch, convert_batch
from result_assets.migration.sources import LegacyFile
from result_assets.migration.summary import recent_store_report
from result_assets.migration.verify import DEFAULT_COMPRESSION_GOAL, CheckOutcome, judge
from result_assets.store import hot_rows
from result_assets.store.delta_tables import CURVES, SCHEMAS, SIGNALS
from result_assets.store.row_digest import rows_digest

log = logging.getLogger(__name__)


@dataclass
class BackupFact:
    """What the backup step did with one task's bytes (for the result_backup metadata)."""

    task_id: str
    partition_key: str
    sha256: str
    bytes: int
    copied: bool
    reason: str | None = None


@dataclass
class BatchResult:
    validated: list[ValidatedResult]
    backups: list[BackupFact]
    signals: TaskRows
    curves: TaskRows
    catalog: CatalogBatch
    stored_rows: dict[str, dict[str, int]]  # {table: {task_id: rows read back}}
    checks: list[CheckOutcome] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # per stage


class _Clock:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


def run_batch(stores, files: Iterable[LegacyFile] = (), *, max_file_bytes: int | None = None,
              compression_goal: float = DEFAULT_COMPRESSION_GOAL, keep_source_path: bool = True,
              raws: list[RawResult] | None = None, converted: list[ValidatedResult] | None = None,
              tier: str = "delta", records: dict[str, tuple[dict, str]] | None = None,
              sources: dict[str, tuple[str, str]] | None = None, ahead: Prefetch | None = None,
              on_published: Callable[[dict[str, str]], None] | None = None) -> BatchResult:
    """Back up, convert, prove and publish one batch. The application's save passes the
    bytes it holds (`raws`), already converted (`converted`) when it had to judge them first,
    `records` ({task_id: (metadata, description)}) to queue for the Dagster instance, and
    `sources` ({task_id: (partition_key, path)}) to register, all in the publishing transaction.
    `ahead`: conversions a launcher started before this batch (convert.Prefetch).
    `on_published`: called with {task_id: SHA-256} of the tasks published or quarantined as soon
    as the publishing transaction has committed (a run's op marks them if it is stopped before
    reporting them)."""
    clock = _Clock()
    limit = max_file_bytes or stores.settings.max_file_bytes
    read_versions = None
    with clock.stage("read"):
        if raws is None:
            files = list(files)
            # the versions these reads come after: another run's publish of a newer read of
            # the same file, landing before this batch's, is not published over (Catalog.upsert)
            read_versions = stores.catalog.versions([f.task_id for f in files])
            raws = [read_source(f, limit) for f in files]
    # An application's save comes converted, its bytes in memory: they are backed up (mostly a
    # wait on the disk's flush, or on S3) while its rows are read back, which is CPU.
    beside = converted is not None and not any(r.backup_from_file for r in raws)
    backing_up: Future | None = None
    try:
        with clock.stage("backup"):
            if beside:
                backing_up = in_thread(save_backups, stores, raws)
            else:  # each under its task's save lock: never inside an application save of it
                save_backups(stores, raws, lock=stores.catalog.task_save_locks)
            backups = [_backup_fact(stores, r) for r in raws]
        with clock.stage("convert"):
            validated = converted if converted is not None else convert_batch(raws, stores.settings.conversion_workers, ahead)
        del raws  # the largest thing held: the rows take over
        # A migration publishes a file only over an older version: an application save published
        # while this batch converted stays (store.last_write). An application's own save always wins.
        return publish_batch(stores, validated, backups, compression_goal=compression_goal,
                             keep_source_path=keep_source_path, tier=tier, clock=clock, records=records,
                             sources=sources, newer_only=tier != "hot", backing_up=backing_up,
                             read_versions=read_versions, on_published=on_published)
    except BaseException as failure:
        # Whatever failed, nothing writes the backup once this returns (publish_batch waits for
        # it on success). Its own error, when another came first, is logged, not lost.
        if backing_up is not None:
            wait([backing_up])
            also = backing_up.exception()
            if also is not None and also is not failure:
                log.warning("the backup of %s failed as well: %s: %s",
                            ", ".join(r.task_id for r in converted or []), type(also).__name__, also)
        raise


def publish_batch(stores, validated: list[ValidatedResult], backups: list[BackupFact], *,
                  compression_goal: float = DEFAULT_COMPRESSION_GOAL, keep_source_path: bool = True,
                  tier: str = "delta", clock: _Clock | None = None,
                  records: dict[str, tuple[dict, str]] | None = None,
                  sources: dict[str, tuple[str, str]] | None = None, newer_only: bool = False,
                  backing_up: Future | None = None, expected_versions: dict[str, int] | None = None,
                  read_versions: dict[str, int] | None = None,
                  on_published: Callable[[dict[str, str]], None] | None = None) -> BatchResult:
    """Steps 3-5 for converted, conversion-proven tasks. tier="hot": the rows go to the hot
    tier in the catalog's own transaction instead of a Delta commit (application saves).
    A Delta batch holds the store write lock (shared) from its commit to its publication.
    `newer_only`: Catalog.upsert's (migrations; not a rollback, which restores on purpose, and
    passes `expected_versions`, Catalog.upsert's too: the version it decided to replace);
    `read_versions`, Catalog.upsert's too: the tasks' versions before their files were read.
    `on_published`: run_batch's.
    `backing_up`: the backups still being written, waited for (their error raised) after the
    read-back and before the checks, which read them, and the publication."""
    clock = clock or _Clock()
    lock = nullcontext() if tier == "hot" else stores.catalog.store_write_lock(exclusive=False)
    with lock as held:
        ids = [v.task_id for v in validated]
        # Proven before published: a task whose backup does not read back with the source's
        # SHA-256 is not published (its backup_checksum check fails on it). A backup already
        # written (a migration's) is read back before anything is committed.
        verified = _verify_backups(stores, validated, backups, clock) if backing_up is None else {}
        signals, curves = signal_rows(validated), curve_rows(validated)
        located = {SIGNALS: {}, CURVES: {}}
        hot: dict[str, tuple[bytes, bytes]] = {}
        if tier == "hot":
            with clock.stage("read_back"):
                hot = {v.task_id: (hot_rows.encode(v.result.signals), hot_rows.encode(v.result.curves))
                       for v in validated if v.proven}
                # What readers will decode: the catalog checks the bytes come back as written.
                stored = {table: {t: hot_rows.decode(hot[t][i], SCHEMAS[table]) if t in hot else SCHEMAS[table].empty_table()
                                  for t in ids} for i, table in enumerate((SIGNALS, CURVES))}
                taken_out = _prove_read_back(validated, stored)
                for task_id in taken_out:
                    hot.pop(task_id)
        else:
            with clock.stage("write"):
                signals.commit, curves.commit = commit_rows(stores, ids, signals.table, curves.table)
            with clock.stage("read_back"):
                located, stored = read_back(stores, ids, signals.commit, curves.commit)
                taken_out = _prove_read_back(validated, stored)
                take_out_rows(stores, taken_out)
        if backing_up is not None:
            with clock.stage("backup"):
                backing_up.result()
            verified = _verify_backups(stores, validated, backups, clock)
            for task_id, good in verified.items():
                if not good:
                    hot.pop(task_id, None)
        catalog = catalog_batch(validated)
        for row in catalog.tasks:
            if row.status == "migrated" and tier != "hot":
                row.signals_version = signals.commit.version if signals.commit else None
                row.curves_version = curves.commit.version if curves.commit else None
                row.row_locations = {SIGNALS: located[SIGNALS][row.task_id], CURVES: located[CURVES][row.task_id]}
            if not keep_source_path:  # the application's save: there is no source file
                row.source_path, row.source_mtime_ns = None, None
        stored_rows = {t: {task_id: rows.num_rows for task_id, rows in stored[t].items()} for t in stored}
        for task_id in taken_out:
            for table in stored_rows:
                stored_rows[table][task_id] = 0
        result = BatchResult(validated, backups, signals, curves, catalog, stored_rows)
        # A save judges the compression goal against a report at most a minute old (listing
        # the whole store on every save would cost more than the save).
        report = recent_store_report(stores) if tier == "hot" else None
        if records:
            # The queued save records carry the checks the UI will show, judged before they are
            # written: the same transaction, not a second one (an UPDATE and a commit, about 1 ms).
            with clock.stage("checks"):
                result.checks = judge(stores, result, compression_goal, report, verified)
                checks = _checks_by_task(result.checks, records)
                records = {t: (*record, checks[t]) for t, record in records.items()}
        with clock.stage("publish"):
            if held is not None:  # never publish rows whose files maintenance may have taken
                held.confirm()
            published = stores.catalog.upsert(catalog.tasks, catalog.symbols, hot=hot, records=records,
                                              sources=sources, newer_only=newer_only,
                                              expected_versions=expected_versions, read_versions=read_versions)
            if on_published is not None:  # what Dagster is now to be told of: published, or quarantined
                on_published({t.task_id: t.source_sha256 for t in catalog.tasks
                               if t.status in ("migrated", "quarantined") and t.task_id not in published.demoted})
        for v in validated:
            if v.task_id in published.demoted:
                v.failure = published.demoted[v.task_id]
        if not records or published.demoted:
            with clock.stage("checks"):
                result.checks = judge(stores, result, compression_goal, report, verified)
                demoted = {t: r for t, r in published.record_ids.items() if t in published.demoted}
                if demoted:  # a record queued with checks judged before its task was demoted
                    stores.catalog.attach_checks(demoted, _checks_by_task(result.checks, demoted))
    # After the store write lock is let go: a rollback holds a task's save lock and then asks for
    # that lock, so asking for the save lock while holding it could wait for good (maintenance
    # queued for the exclusive lock between them; three connections, no cycle Postgres sees).
    if tier != "hot":  # an application's save puts its own back (ResultManager, under its lock)
        for task_id in published.demoted:
            with stores.catalog.task_save_lock(task_id):  # not while a save of it backs up
                keep_published_backup(stores, task_id)
    result.seconds = clock.seconds
    return result


def _verify_backups(stores, validated: list[ValidatedResult], backups: list[BackupFact],
                    clock: _Clock) -> dict[str, bool]:
    """{task_id: its backup reads back with the source's SHA-256} of the tasks backed up (as the
    current backup, or under previous/ when a newer version, an application save say, replaced
    it meanwhile); a proven task whose backup does not is failed, never published (the last
    good version stays). The backup_checksum check takes these outcomes instead of reading again."""
    copied = {b.task_id for b in backups if b.copied}
    with clock.stage("backup_verify"):
        verified = {v.task_id: stores.backups.holds(v.task_id, v.sha256) for v in validated if v.task_id in copied}
    for v in validated:
        if v.proven and not verified.get(v.task_id, True):
            v.failure = "its backup does not read back with the source's SHA-256: not published"
    return verified


def _checks_by_task(checks: list, task_ids) -> dict[str, list[dict]]:
    """{task_id: its check outcomes as a save record holds them} of task_ids."""
    return {t: [asdict(o) for o in checks if o.task_id == t] for t in task_ids}


def commit_rows(stores, task_ids: list[str], signals, curves):
    """One Delta commit per table making these rows the whole content of task_ids."""
    return (stores.delta.replace_tasks(SIGNALS, signals, task_ids),
            stores.delta.replace_tasks(CURVES, curves, task_ids))


def take_out_rows(stores, task_ids: list[str]) -> None:
    """One commit per table leaving no rows of task_ids: rows that did not read back as proven
    must not stay in the tables under a name readers could find."""
    if task_ids:
        commit_rows(stores, task_ids, SIGNAL_SCHEMA.empty_table(), CURVE_SCHEMA.empty_table())


def read_back(stores, task_ids: list[str], signals_commit, curves_commit):
    """({table: {task_id: locations}}, {table: {task_id: rows}}): the rows of task_ids that
    these commits wrote, located and read exactly as readers will read them."""
    located = {SIGNALS: stores.delta.locate(signals_commit, task_ids),
               CURVES: stores.delta.locate(curves_commit, task_ids)}
    stored = {t: stores.delta.files.read(t, located[t], SCHEMAS[t]) for t in (SIGNALS, CURVES)}
    return located, stored


def _prove_read_back(validated: list[ValidatedResult], stored: dict) -> list[str]:
    """Mark proven tasks whose rows do not read back as proven; return their ids."""
    taken_out = []
    for v in validated:
        if not v.proven:
            continue
        wrong = [table for table, digest in ((SIGNALS, v.proof.signals_digest), (CURVES, v.proof.curves_digest))
                 if rows_digest(stored[table][v.task_id]) != digest]
        if wrong:
            v.failure = ("the store gives back rows that differ from those proven equal to the source "
                         f"({', '.join(wrong)})")
            taken_out.append(v.task_id)
    return taken_out


def _backup_fact(stores, raw: RawResult) -> BackupFact:
    source = raw.source
    if raw.unreadable and not raw.backup_from_file:
        return BackupFact(source.task_id, source.partition_key, raw.sha256, 0, False, raw.unreadable)
    size = source.size if raw.backup_from_file else len(raw.raw)
    return BackupFact(source.task_id, source.partition_key, raw.sha256, size, True)


def registered_sources(stores, task_ids: list[str]) -> list[LegacyFile]:
    """The newest version of each task as a file to migrate: its JSON, found where it was
    registered (sources.task_source_file); or, when the store's version is newer than that
    JSON or the JSON is gone (archived), the store's version from its backup, so a partition
    re-run republishes what the store serves instead of an older file or a quarantine. A
    task with neither (or whose backup cannot be read) is refused with that reason: beside a
    published version, an attempt kept next to it."""
    from result_assets.migration.plan import superseded
    from result_assets.migration.sources import (
        BACKUP_UNREADABLE,
        SOURCE_NOT_FOUND,
        stat_legacy_file,
        task_source_file,
    )

    registered = stores.catalog.sources(task_ids)
    states = stores.catalog.states(task_ids)
    replaced = stores.catalog.earlier_sources([t for t in task_ids if t in states])
    files = []
    for task_id in task_ids:
        path = task_source_file(stores, task_id, registered.get(task_id))
        found = stat_legacy_file(Path(path).parent.parent, task_id) if path else None
        state = states.get(task_id)
        published = state is not None and state.status == "migrated"
        refused = SOURCE_NOT_FOUND
        if published and (found is None or superseded(found, state, replaced.get(task_id, set()))):
            try:
                found = _backup_file(stores, task_id, state.source_sha256) or found
            except OSError as exc:  # the store's version cannot be had: this task alone is refused
                log.warning("the backup of %r could not be read: %s", task_id, exc)
                found, refused = None, f"{BACKUP_UNREADABLE}: {exc}"
        files.append(found or LegacyFile(task_id, path or "", 0, 0, refused=refused))
    return files


@functools.cache
def _restored_dir() -> Path:
    """This process's folder of local copies of backups kept in an object store (a run worker's
    temporary space: the home may not be writable there), removed when the process ends."""
    path = Path(tempfile.mkdtemp(prefix="result-assets-restored-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _backup_file(stores, task_id: str, sha256: str) -> LegacyFile | None:
    """Version `sha256` of the task as a file to migrate, made its current backup first
    (_backup_holds); None when the backups hold no such version. The backup folder's own file,
    or, for backups in an object store, a local copy of the bytes in a temporary folder of
    this process, written again by each re-run that needs it (one download, not a check and
    then a read)."""
    from result_assets.migration.sources import stat_legacy_file
    from result_assets.store.backups import BackupStore, write_atomic

    with stores.catalog.task_save_lock(task_id):  # making a version current: never inside a save's backup
        if isinstance(stores.backups, BackupStore):
            return stat_legacy_file(stores.backups.root, task_id) if _backup_holds(stores, task_id, sha256) else None
        raw = stores.backups.current_version(task_id, sha256)
    if raw is None:
        return None
    restored = BackupStore(_restored_dir())
    path = restored.path(task_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, raw)
    return stat_legacy_file(restored.root, task_id)


def keep_published_backup(stores, task_id: str) -> None:
    """After an attempt that was not published (a failed proof, a file older than a save that
    landed meanwhile): its bytes, backed up first, must not stay the task's current backup over
    the version still published. That file is the registered source of a task an application
    saved, which `status` checks and a re-run of its partition would publish. The published
    version's bytes (kept under previous/) become current again. For a caller that holds the
    task's save lock."""
    try:
        row = stores.catalog.task(task_id)
        if row is not None and row["status"] == "migrated":
            _backup_holds(stores, task_id, row["source_sha256"])
    except Exception:  # noqa: BLE001 - the attempt is refused either way; a re-run's registered_sources heals it
        log.warning("the backup of %r may hold an attempt that was not published", task_id, exc_info=True)


def _backup_holds(stores, task_id: str, sha256: str) -> bool:
    """Whether the task's current backup is the store's version; made so from previous/ when an
    attempt the publish refused left its own bytes there."""
    if stores.backups.verify(task_id, sha256):  # streamed: a backup may be over the size limit
        return True
    return stores.backups.current_version(task_id, sha256) is not None


@dataclass
class FlushResult:
    moved: list[str]  # task ids now read from Delta (the others listed stay in the hot tier)
    seconds: dict[str, float]
    commits: dict[str, int | None]  # Delta version written per table
    # the hot tasks this flush took up (`limit` of them when there may be more)
    listed: list[str] = field(default_factory=list)
    unproven: list[str] = field(default_factory=list)  # of those, the ones whose rows did not read back


def flush_hot_tier(stores, limit: int = 1000, skip: Collection[str] = ()) -> FlushResult:
    """Move the oldest `limit` hot-tier tasks (but those in `skip`) into the Delta tables: one
    commit per table, read back and proven like any batch, then re-pointed in one catalog
    transaction that also takes them out of the hot tier. A task saved again meanwhile stays
    hot (its catalog version moved on); a crash anywhere leaves every task readable where it was."""
    clock = _Clock()
    with clock.stage("read_hot"):
        # Only tasks still hot at the version read: one published from its file meanwhile
        # must not have its rows replaced by its older hot copy.
        hot = stores.catalog.hot_tasks(limit, skip)
        listed = [h["task_id"] for h in hot]
        hot = stores.catalog.still_hot(hot) if hot else []
    if not hot:
        return FlushResult([], clock.seconds, {SIGNALS: None, CURVES: None}, listed)
    ids = [h["task_id"] for h in hot]
    tables = {t: {h["task_id"]: hot_rows.decode(h[t], SCHEMAS[t]) for h in hot} for t in (SIGNALS, CURVES)}
    with clock.stage("write"):
        commits = commit_rows(stores, ids, *(pa.concat_tables(list(tables[t].values())) for t in (SIGNALS, CURVES)))
    versions = {table: commit.version if commit else None for table, commit in zip((SIGNALS, CURVES), commits)}
    with clock.stage("read_back"):
        located, stored = read_back(stores, ids, *commits)
        proven = [t for t in ids if all(rows_digest(stored[table][t]) == rows_digest(tables[table][t])
                                        for table in (SIGNALS, CURVES))]
        unproven = sorted(set(ids) - set(proven))
        take_out_rows(stores, unproven)
    with clock.stage("publish"):
        moves = {t: {"row_locations": {table: located[table][t] for table in (SIGNALS, CURVES)},
                     "signals_version": versions[SIGNALS], "curves_version": versions[CURVES]} for t in proven}
        moved = stores.catalog.repoint(moves, expected_versions={h["task_id"]: h["version"] for h in hot})
    return FlushResult(moved, clock.seconds, versions, listed, unproven)
