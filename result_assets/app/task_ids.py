"""The task ids the application API takes: one rule for saves and reads in every mode."""
from __future__ import annotations

import os
from pathlib import Path

from result_assets.app.errors import ResultValidationError
from result_assets.migration.sources import task_dir_path
from result_assets.store.backups import UnsafeTaskId, safe_child


def check_task_id(task_id: str, as_directory: bool = True) -> None:
    """A save takes the same ids in every mode: one that names a directory of its own, which
    json-only and dual-write write and read (and which Postgres can hold as text: a lone
    surrogate names none). postgres-only reads (as_directory=False) any id it once saved."""
    if not isinstance(task_id, str):
        raise ResultValidationError(f"task id must be a string, not {type(task_id).__name__}")
    try:
        safe_child(Path("."), task_id)
    except UnsafeTaskId as exc:
        raise ResultValidationError(str(exc)) from None
    if as_directory:
        folder = task_dir_path(".", task_id)
        if folder is None:
            raise ResultValidationError(f"task id {task_id!r} is not a safe directory name")
        # its JSON's folder (the name it encodes) and its backup's (the id itself, `%bytes:` and all)
        longest = max(len(os.fsencode(folder.name)), len(task_id.encode("utf-8", "surrogateescape")))
        if longest > 255:  # no filesystem takes it
            raise ResultValidationError(f"task id {task_id[:40]!r}... is longer than a folder name can be "
                                        f"({longest} bytes; at most 255)")
    if not as_directory and not task_id.isascii():
        try:
            task_id.encode("utf-8")
        except UnicodeEncodeError:
            raise ResultValidationError(f"task id {task_id!r} is not valid Unicode text (a lone surrogate)") from None
