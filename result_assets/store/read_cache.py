"""The documents this process read most recently, kept marshalled: a bounded, evictable read cache.

A document rebuilt from the Delta tables costs two Parquet point reads and a rebuild (a few
times json.loads of its file); a cached one costs marshal.loads, about a fifth of json.loads
of the same file (measured: docs/performance.md "The read cache"). marshal, not pickle: a
document holds only JSON's types, which marshal writes in half pickle's time (a put is on a
first read's path: 0.34 against 0.67 ms for a 279 KB file's document) and reads 15% faster.
Its format changes between Python versions, which a cache inside one process never sees.

Every read still asks the catalog first, and an entry is keyed by what that row says of the
published version (task, catalog version, publication time, the source's SHA-256), so a new
save, a re-migration or a rollback is never answered from the cache, whichever process wrote it.
Maintenance moves rows without changing a document, so cached entries outlive it.

Bounded by RESULT_READ_CACHE_MB (marshalled bytes, per process; 0 turns it off), least
recently used out first: every ResultManager and ResultStore of one catalog in a process shares
one (process_cache), so a manager made per request still finds what the last one read. It
holds nothing the store does not: it is never written back, and each get returns a fresh
object (the caller may change it).
"""
from __future__ import annotations

import marshal
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

from result_assets.legacy.acyclic import cyclic_gc_paused

# An entry over this share of the bound is not kept: one huge task must not evict the rest.
LARGEST_SHARE = 8


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    entries: int = 0
    bytes: int = 0
    max_bytes: int = 0


def version_key(task_id: str, catalog_row: dict) -> tuple:
    """What names one published version of a task (its catalog row says it)."""
    return (task_id, catalog_row["version"], str(catalog_row["migrated_at"]), catalog_row["source_sha256"])


class ReadCache:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        # {task_id: (version key, marshalled document)}: one version per task, the newest asked for
        self._entries: OrderedDict[str, tuple[tuple, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self._stats = CacheStats(max_bytes=max_bytes)

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def get(self, key: tuple) -> dict | None:
        """A fresh copy of the cached document, or None."""
        if not self.enabled:
            return None
        with self._lock:
            entry = self._entries.get(key[0])
            if entry is None or entry[0] != key:
                self._stats.misses += 1
                return None
            self._entries.move_to_end(key[0])
            self._stats.hits += 1
        with cyclic_gc_paused():  # measured with pickle.loads: a 3 MB document 10.4 -> 8.8 ms
            return marshal.loads(entry[1])  # noqa: S302 - marshalled by this process, never read from outside

    def held(self, task_ids: list[str]) -> dict[str, tuple[int, str]]:
        """{task_id: (catalog version, source SHA-256)} of the versions held of these tasks (what
        the catalog's query needs to leave their bytes out: Catalog.tasks)."""
        if not self.enabled:
            return {}
        with self._lock:
            keys = [entry[0] for entry in map(self._entries.get, task_ids) if entry is not None]
        return {task_id: (version, sha256) for task_id, version, _, sha256 in keys}

    def put(self, key: tuple, document: dict) -> None:
        if not self.enabled:
            return
        try:
            data = marshal.dumps(document)
        except ValueError:  # nested past marshal's depth (or not JSON's types): read, not kept
            return
        if len(data) > self.max_bytes // LARGEST_SHARE:
            return
        with self._lock:
            old = self._entries.pop(key[0], None)  # any other version of the task: replaced
            if old is not None:
                self._stats.bytes -= len(old[1])
            self._entries[key[0]] = (key, data)
            self._stats.bytes += len(data)
            while self._stats.bytes > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._stats.bytes -= len(evicted)
                self._stats.evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._stats.bytes = 0

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(**{**self._stats.__dict__, "entries": len(self._entries)})


_shared: dict[tuple[str, int], ReadCache] = {}  # by (catalog URL, bound)
_shared_lock = threading.Lock()


def process_cache(catalog_url: str, max_bytes: int) -> ReadCache:
    """This process's read cache of the catalog at catalog_url."""
    with _shared_lock:
        cache = _shared.get((catalog_url, max_bytes))
        if cache is None:
            cache = _shared[(catalog_url, max_bytes)] = ReadCache(max_bytes)
        return cache


def _fresh_locks_in_child() -> None:
    """A forked child may have copied a lock another thread held: its entries stay (a copy of
    what the parent read, still keyed by version), its locks start free."""
    global _shared_lock
    _shared_lock = threading.Lock()
    for cache in _shared.values():
        cache._lock = threading.Lock()  # noqa: SLF001 - this module's own class


os.register_at_fork(after_in_child=_fresh_locks_in_child)
