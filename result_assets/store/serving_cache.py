"""The serving cache: recently saved or read files, shared by every process, bounded and evictable.

A first read of a task from the Delta tables costs two Parquet point reads and a rebuild,
several times reading its JSON file (docs/performance.md "The serving cache"). Here a task's
file is kept as its exact bytes, zstd-compressed, in the catalog's database (`served_files`,
an UNLOGGED table: no WAL, emptied by a crash). A point read asks for it in the catalog query
it makes anyway; a hit costs that query, a decompression and the parse a JSON read costs.

- Faithful by hash: an entry is taken only when its bytes hash to the SHA-256 the catalog row
  names for the published version. A newer save, a re-migration or a rollback names another
  hash, so an older entry is never served; a damaged one is not either.
- Filled by the application's saves (the bytes are in hand) and by point reads that missed
  (the file written again from the rebuilt document, read from its local JSON backup, or
  written from the rows; kept only when its hash is the source's: store/reader.py), on a
  thread of the process's own (fill_later), so neither waits for it; a read's fill waits
  for a burst of reads to pause (QUIET_SECONDS). Migrations and bulk
  reads do not fill it: years of files nobody asked for would push out what the application reads.
- Bounded by RESULT_SERVING_CACHE_MB of stored (compressed) bytes across all processes, the
  oldest fills out first: trimmed after one fill in TRIM_EVERY, whichever process made it,
  and by each maintenance run. 0 turns it off. It is a copy, not the record: stored bytes are
  reported without it, and beside it.
"""
from __future__ import annotations

import hashlib
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2
import psycopg2.extras
import pyarrow as pa

from result_assets.legacy.parse import may_lose_digits, parse_document, parse_unscreened
from result_assets.store.catalog import Catalog
from result_assets.store.postgres import error_line

log = logging.getLogger(__name__)

_CODEC = pa.Codec("zstd", compression_level=1)  # measured: level 1 both smaller and faster than 3 here
# A fill trims the cache with a chance of one in this many (per entry filled; maintenance trims
# it too). A chance, not a count: many short-lived processes (a manager per request, run
# workers, CLI calls) fill it, and a count kept per process never reached its mark in them.
# The bound then holds but for the fills since the last trim: more than 10 x TRIM_EVERY of
# them without a trim has a chance of e^-10.
TRIM_EVERY = 64
_chance = random.Random()
# An advisory lock key: one trim at a time (two trims would only repeat each other's work).
# Its own key: the others are 7201-7205 (catalog.py, schema.py, maintenance.py, events.py, instance.py)
# and the two-key locks of one task's saves (7207, catalog.py).
_TRIM_LOCK = 7206
# A file over this share of the bound is not kept: one huge task must not push out the rest.
LARGEST_SHARE = 8
# Nor a file over this size: its first read is quicker rebuilt from its rows than parsed from
# its text (measured, docs/performance.md "The serving cache: only files a rebuild is slower
# for": at 1.8 MB a hit costs 0.77-1.03x the rebuild, at 7.3 MB 1.24-1.54x, at 29 MB 1.54-1.97x).
LARGEST_FILE = 2 << 20
# Fills queued for the process's filler thread, at most (fill_later): one past them is dropped,
# as a cache may (the next miss fills it again), so a burst of saves or reads holds little.
PENDING_FILLS = 64
# A filler idle this long closes its connection (the next fill opens one).
IDLE_SECONDS = 30.0
# A read's fill that starts a batch waits until no fill was queued for this long (at most
# FILL_DELAY_MAX), then the filler takes every fill queued: the file's hashing, compression
# and INSERT (for a migrated file, its backup read and screen too) share the two cores and the
# GIL with the reads of a burst, each of which queues one; after the burst they cost those
# nothing (docs/performance.md "A point read's two tables at once; fills after the burst; a
# save's checks in its record").
QUIET_SECONDS = 0.02
FILL_DELAY_MAX = 2.0


# A trim deletes only the chosen rows no fill holds, locking them in one order without waiting:
# a fill upserting several tasks holds some rows while it waits for the next, and a DELETE
# taking rows in its scan's order then deadlocked with it (a rare miss for the fill, but a
# failed maintenance run). A row a fill holds is fresh anyway.
_DELETE_UNLOCKED = ("DELETE FROM served_files WHERE task_id IN (SELECT task_id FROM served_files WHERE task_id IN "
                    "({}) ORDER BY task_id FOR UPDATE SKIP LOCKED)")


def _published(alias: str) -> str:
    """SQL: the entry (or fill row) `alias` is the file the catalog publishes for its task now."""
    return (f"EXISTS (SELECT 1 FROM tasks t WHERE t.task_id = {alias}.task_id AND "
            f"t.source_sha256 = {alias}.source_sha256 AND t.status = 'migrated')")


@dataclass
class ServingStats:
    entries: int = 0
    stored_bytes: int = 0  # compressed, as kept
    file_bytes: int = 0  # the files' own size
    max_bytes: int = 0
    evicted: int = 0  # by this trim


def served_document(row: dict, raw: bytes) -> object:
    """What parse_document(raw) gives, without its screen for long numbers when the fill found
    none the plain parse would round (a fifth of a small read)."""
    return parse_unscreened(raw) if row.get("served_plain") else parse_document(raw)


def served_file(row: dict) -> bytes | None:
    """The file's bytes from a catalog row that carries its serving-cache entry (Catalog.tasks
    with served=True), or None when there is none or it is not the published version's."""
    body = row.get("served_body")
    # the entry's size is the published file's, or the entry is not its (and a forged size
    # must not make the decompression reserve it)
    if body is None or row.get("served_size") != row.get("source_bytes"):
        return None
    try:
        raw = _CODEC.decompress(bytes(body), decompressed_size=row["served_size"], asbytes=True)
    except (pa.ArrowException, ValueError, OSError):  # a damaged entry is a miss
        return None
    return raw if hashlib.sha256(raw).hexdigest() == row["source_sha256"] else None


class ServingCache:
    def __init__(self, catalog, max_bytes: int, readonly: bool = False):
        self.catalog, self.max_bytes, self.readonly = catalog, max_bytes, readonly

    @property
    def enabled(self) -> bool:
        """On, and on a catalog that serves it (a hot standby refuses its table)."""
        return self.max_bytes > 0 and not self.catalog.serving_refused

    def fill(self, files: dict[str, tuple[str, bytes, bool | None]], published_only: bool = True) -> int:
        """Keep these files ({task_id: (source SHA-256, bytes, plain numbers)}), replacing any
        older entry of the same task; returns how many were kept. Plain numbers: every number
        reads exactly without the parse's screen (None: find out). `published_only`: only a
        file whose task the catalog publishes with that SHA-256 when it lands (a fill may land
        after a newer version's, and must not replace that one's entry; False: any, for
        tests of the cache's own workings). Never raises: a cache that cannot be written only
        costs later reads."""
        if not self.enabled or self.readonly or not files:
            return 0
        rows = []
        for task_id, (sha256, raw, plain_numbers) in files.items():
            if len(raw) > LARGEST_FILE:
                continue
            body = _CODEC.compress(raw, asbytes=True)
            if len(body) <= self.max_bytes // LARGEST_SHARE:
                plain = not may_lose_digits(raw) if plain_numbers is None else plain_numbers
                rows.append((task_id, sha256, len(raw), len(body), plain, psycopg2.Binary(body)))
        if not rows:
            return 0
        try:
            with self.catalog.one_statement() as cur:  # one round trip, not three (BEGIN, COMMIT)
                psycopg2.extras.execute_values(
                    cur, "INSERT INTO served_files (task_id, source_sha256, file_bytes, stored_bytes, plain_numbers, "
                    "body) SELECT v.* FROM (VALUES %s) AS v(task_id, source_sha256, file_bytes, stored_bytes, "
                    "plain_numbers, body)" + (" WHERE " + _published("v") if published_only else "") +
                    " ORDER BY v.task_id ON CONFLICT (task_id) DO UPDATE SET "
                    "source_sha256 = EXCLUDED.source_sha256, file_bytes = EXCLUDED.file_bytes, "
                    "stored_bytes = EXCLUDED.stored_bytes, plain_numbers = EXCLUDED.plain_numbers, "
                    "body = EXCLUDED.body, filled_at = clock_timestamp()",
                    sorted(rows), page_size=len(rows))  # one order: two fills of the same tasks wait, never deadlock
                kept = cur.rowcount  # one statement (page_size): every row it inserted or updated
        except psycopg2.Error as exc:  # e.g. a role that may only read: the reads still work
            log.debug("serving cache not filled: %s", error_line(exc))
            return 0
        if _chance.random() < kept / TRIM_EVERY:
            try:
                self.trim()
            except psycopg2.Error as exc:  # the next trim holds the bound
                log.debug("serving cache not trimmed: %s", error_line(exc))
        return kept

    def fill_later(self, files: Callable[[], dict[str, tuple[str, bytes, bool | None]]],
                   after_burst: bool = False, published_only: bool = True) -> None:
        """fill(files()) on the process's filler thread, on a connection of its own: a save or
        a read that missed does not wait for the files' hashing, compression and INSERT (1.5-2.5
        ms of a 90-280 KB file's miss, docs/performance.md "Reads and saves"). `after_burst` (a
        read's miss, whose fill writes or reads the file again): the fill waits for the burst
        of reads to pause (QUIET_SECONDS); a save's, with its bytes in hand, goes at once, so
        other processes are served the save as soon as may be.
        `published_only`: as fill's. A fill is dropped when PENDING_FILLS wait already. Never raises."""
        if not self.enabled or self.readonly:
            return
        max_bytes = self.max_bytes
        try:
            filler = _filler(self.catalog.url)
            filler.queued_at = time.monotonic()
            filler.pending.put_nowait((after_burst, lambda catalog: ServingCache(catalog, max_bytes).fill(
                files(), published_only)))
        except queue.Full:
            log.debug("serving cache: %d fills pending, one dropped", PENDING_FILLS)
        except Exception as exc:  # noqa: BLE001 - no filler thread (a process limit): a cache may skip a fill
            log.debug("serving cache: a fill dropped: %s", error_line(exc))

    def settle(self) -> None:
        """Wait until the fills this process queued have landed (or failed)."""
        filler = _fillers.get(self.catalog.url)
        if filler is not None:
            filler.pending.join()

    def trim(self, drop_superseded: bool = False) -> ServingStats:
        """Hold the bound: the oldest fills out first until the rest fits. `drop_superseded`
        (maintenance) also drops entries no published version names, and waits for a trim
        under way; a fill's trim is skipped while another process trims (returning the size)."""
        if not self.enabled or self.readonly:
            return self.stats()
        conn = self.catalog.connect()
        evicted = 0
        with conn, conn.cursor() as cur:
            if drop_superseded:
                cur.execute("SELECT pg_advisory_xact_lock(%s), true", (_TRIM_LOCK,))
            else:
                cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (_TRIM_LOCK,))
            if cur.fetchone()[-1]:
                if drop_superseded:
                    cur.execute(_DELETE_UNLOCKED.format(
                        f"SELECT task_id FROM served_files s WHERE NOT {_published('s')}"))
                    evicted += cur.rowcount
                cur.execute(_DELETE_UNLOCKED.format("SELECT task_id FROM (SELECT task_id, sum(stored_bytes) OVER ("
                            "ORDER BY filled_at DESC, task_id) AS kept FROM served_files) newest_first "
                            "WHERE kept > %s"), (self.max_bytes,))
                evicted += cur.rowcount
        stats = self.stats()
        stats.evicted = evicted
        return stats

    def stats(self) -> ServingStats:
        conn = self.catalog.connect()
        with conn, conn.cursor() as cur:
            cur.execute("SELECT count(*), coalesce(sum(stored_bytes), 0), coalesce(sum(file_bytes), 0) FROM served_files")
            entries, stored, files = cur.fetchone()
        return ServingStats(entries, int(stored), int(files), self.max_bytes)

    def empty_when_off(self) -> ServingStats | None:
        """Maintenance with the cache turned off (RESULT_SERVING_CACHE_MB=0): its entries are
        dropped, which no read asks for any more (they stayed, up to the old bound, for good)."""
        if self.max_bytes > 0 or self.readonly or self.catalog.serving_refused:
            return None
        conn = self.catalog.connect()
        with conn, conn.cursor() as cur:
            cur.execute("DELETE FROM served_files")
        return self.stats()

    def forget(self, task_ids: list[str]) -> None:
        """Drop these tasks' entries, fills this process queued included (a benchmark times
        the reads that miss)."""
        self.settle()
        conn = self.catalog.connect()
        with conn, conn.cursor() as cur:
            cur.execute("DELETE FROM served_files WHERE task_id = ANY(%s)", (list(task_ids),))


class _Filler:
    """A daemon thread filling one catalog's serving cache, in the order fills were queued, on
    a connection of its own (a catalog's connection serves one thread)."""

    def __init__(self, url: str):
        self.url = url
        self.pending: queue.Queue = queue.Queue(PENDING_FILLS)
        self.queued_at = 0.0  # time.monotonic() of the last fill queued
        threading.Thread(target=self._run, name="serving-cache-filler", daemon=True).start()

    def _wait_for_quiet(self) -> None:
        """Until no fill was queued for QUIET_SECONDS, or FILL_DELAY_MAX has passed."""
        deadline = time.monotonic() + FILL_DELAY_MAX
        while (now := time.monotonic()) < deadline and (left := self.queued_at + QUIET_SECONDS - now) > 0:
            time.sleep(min(left, deadline - now))

    def _run(self) -> None:
        catalog = Catalog(self.url)
        caught_up = True  # the next fill starts a batch: it waits for quiet first
        while True:
            try:
                after_burst, work = self.pending.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                catalog.close()
                continue
            try:
                if after_burst and caught_up:  # the fills queued meanwhile follow without waiting
                    self._wait_for_quiet()
                work(catalog)
            except Exception:  # noqa: BLE001 - a fill that fails only costs later reads
                log.debug("serving cache: a fill failed", exc_info=True)
            finally:
                caught_up = self.pending.empty()
                self.pending.task_done()


_fillers: dict[str, _Filler] = {}  # by catalog URL
_fillers_lock = threading.Lock()


def _filler(url: str) -> _Filler:
    """This process's filler of the catalog at url, started on its first fill."""
    with _fillers_lock:
        filler = _fillers.get(url)
        if filler is None:
            filler = _fillers[url] = _Filler(url)
        return filler


def _forget_fillers_in_child() -> None:
    """A forked child has none of its parent's threads, and may have copied the lock held: it
    starts afresh (its first fill starts its own filler). It draws its own trim chances too:
    children of one parent drawing the same ones would all skip their trims together."""
    global _fillers_lock
    _fillers_lock = threading.Lock()
    _fillers.clear()
    _chance.seed()


os.register_at_fork(after_in_child=_forget_fillers_in_child)
