"""Which is newer, a task's file or the store's version of it: the last write wins.

In postgres-only the application saves to the store and writes no JSON, so a task's JSON
may be older than the store's version (superseded) or written after it (an instance still
writing JSON). The migration plan, statuses, phase, archive, rollback, the dual-write read
and the catalog's publish all ask this one rule.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from result_assets.store.backups import file_sha256


def older_than_store(path: str | Path, mtime_ns: int, store_source: str | None, published_at_ns: int | None,
                     replaced: Callable[[], set[str]] | None = None) -> bool:
    """Whether a file that differs from the store's version of its task is an earlier one:
    that version did not come from this file (an application save in postgres-only has no
    file; a re-run from the backups names the backup) and was published after the file was
    last written, or the file's bytes are a version the store already had and replaced
    (`replaced`: those versions' SHA-256s, asked only when the mtime says newer: a copy or a
    `touch` renews an old file's mtime, its bytes still say which version it is). Such a
    file is superseded: neither migrated nor read over the store. Any other file written
    after the store's version is newer (the last write wins: an instance still writing JSON)."""
    if published_at_ns is None or same_file(store_source, path):
        return False
    if mtime_ns <= published_at_ns:
        return True
    if replaced is None:
        return False
    earlier = replaced()
    if not earlier:
        return False
    try:
        return file_sha256(path) in earlier
    except OSError:
        return False


def file_older_than_store(catalog, task_id: str, path: str | Path | None, store_source: str | None,
                          published_at_ns: int | None, mtime_ns: int | None = None) -> bool:
    """older_than_store of a task's file on disk: its mtime read when not given (False for no
    file), the versions its store replaced asked of the catalog only when the mtime says newer."""
    if mtime_ns is None:
        try:
            mtime_ns = os.stat(path).st_mtime_ns
        except (OSError, TypeError):
            return False
    return older_than_store(path, mtime_ns, store_source, published_at_ns,
                            lambda: catalog.earlier_sources([task_id]).get(task_id, set()))


def same_file(a: str | Path | None, b: str | Path) -> bool:
    """Whether two paths name one file (the store's version came from this file)."""
    if a is None:
        return False
    if str(a) == str(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
