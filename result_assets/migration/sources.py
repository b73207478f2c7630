"""Finding legacy tasks: <source-dir>/<dir>/result.json, the directory name is the id.

Directory names are bytes: task_id_for_dir_name gives each one its id (a name that is
not UTF-8 gets a "%bytes:"-encoded one) and dir_name_for_task_id maps it back, so every
step from a task id to a path goes through dir_name_for_task_id (task_dir_path).
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from result_assets.legacy import dir_name_for_task_id, partition_key_for, task_id_for_dir_name
from result_assets.store.last_write import same_file
from result_assets.store.backups import file_sha256

RESULT_FILE = "result.json"
# The refusal of a task whose registered file is gone and that has no backup to read instead.
SOURCE_NOT_FOUND = "source file not found"
# A re-run that takes the store's version from its backup, which could not be read (an object
# store's error): like a file not found, it says nothing of the task's data.
BACKUP_UNREADABLE = "its backup could not be read"


def unread_refusal(reason: str | None) -> bool:
    """Whether a refusal left the task's bytes unread (SOURCE_NOT_FOUND, BACKUP_UNREADABLE): the
    attempt is kept beside a published version, never a quarantine over it."""
    return reason is not None and (reason == SOURCE_NOT_FOUND or reason.startswith(BACKUP_UNREADABLE))


@dataclass(frozen=True)
class LegacyFile:
    task_id: str
    path: str
    size: int
    mtime_ns: int
    refused: str | None = None  # why this task must not be read (quarantined with the reason)

    @property
    def partition_key(self) -> str:
        return partition_key_for(self.task_id)


@dataclass(frozen=True)
class SourceScan:
    tasks: list[LegacyFile]
    not_tasks: list[str]  # directories (or files) without a result.json


class SourceDirError(ValueError):
    pass


def scan_source_dir(source_dir: str | Path, only: set[str] | None = None) -> SourceScan:
    """Every task under source_dir, sorted by task id; `only` limits it to those ids."""
    root = Path(source_dir)
    if not root.is_dir():
        raise SourceDirError(f"source directory {'is not a directory' if root.exists() else 'not found'}: {root}")
    real_root = root.resolve()
    tasks: list[LegacyFile] = []
    not_tasks: list[str] = []
    with os.scandir(root) as entries:
        for entry in entries:
            task_id = task_id_for_dir_name(entry.name)
            if only is not None and task_id not in only:
                continue
            if not entry.is_dir():
                not_tasks.append(task_id)
                continue
            task = _legacy_file(real_root, Path(entry.path))
            if task is None:
                not_tasks.append(task_id)
            else:
                tasks.append(task)
    tasks.sort(key=lambda t: t.task_id)
    not_tasks.sort()
    return SourceScan(tasks, not_tasks)


def stat_legacy_file(source_dir: str | Path, task_id: str) -> LegacyFile | None:
    task_dir = task_dir_path(source_dir, task_id)
    if task_dir is None or not task_dir.is_dir():
        return None
    return _legacy_file(Path(source_dir).resolve(), task_dir)


def task_dir_path(source_dir: str | Path, task_id: str) -> Path | None:
    """<source_dir>/<the directory of task_id> (its exact bytes), None for an id that
    names no single directory inside source_dir."""
    try:
        name = dir_name_for_task_id(task_id)
    except ValueError:
        return None
    if not name or name in (b".", b"..") or b"/" in name or b"\0" in name:
        return None
    return Path(source_dir) / os.fsdecode(name)


def _legacy_file(real_root: Path, task_dir: Path) -> LegacyFile | None:
    path = task_dir / RESULT_FILE
    task_id = task_id_for_dir_name(task_dir.name)
    try:
        st = path.stat()
    except OSError as exc:
        try:
            link = path.is_symlink()
        except OSError:  # its folder cannot be entered (permissions): a task that cannot be read
            return LegacyFile(task_id, str(path), 0, task_dir.lstat().st_mtime_ns,
                              f"refused: {task_id}/ cannot be read ({exc.strerror})")
        if not link:
            return None  # no result.json: not a task
        # a link to nothing (gone, or a loop): a task whose file cannot be read, quarantined with why
        return LegacyFile(task_id, str(path), 0, path.lstat().st_mtime_ns,
                          f"refused: {task_id}/{RESULT_FILE} is a link to {display_path(os.readlink(path))}, "
                          "which cannot be read")
    refused = None
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block the read for ever; a directory cannot be read
        refused = f"refused: {task_id}/{RESULT_FILE} is not a regular file ({_kind(st.st_mode)})"
    elif task_dir.is_symlink() or path.is_symlink():
        target = path.resolve()
        if real_root not in target.parents:
            refused = (f"refused: {task_id}/{RESULT_FILE} is a link to {display_path(target)}, "
                       "outside the source directory")
    return LegacyFile(task_id, str(path), st.st_size, st.st_mtime_ns, refused)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a file"


def registered_source_file(task_id: str, registered: str | None) -> str | None:
    """The task's file under the directory it was registered in (the stored path of a
    non-UTF-8 directory name is escaped text, so the path is rebuilt from the id)."""
    if not registered:
        return None
    task_dir = task_dir_path(Path(registered).parent.parent, task_id)
    return str(task_dir / RESULT_FILE) if task_dir else registered


def task_source_file(stores, task_id: str, registered: str | None) -> str | None:
    """The task's JSON in its source directory: where it was registered, or in
    RESULT_SOURCE_DIR when it was registered nowhere, at its backup (a postgres-only save
    points the registration there) or where this process finds no file. The file may be
    missing (archived) or older than the store's version (store/last_write.py): callers ask."""
    task_dir = task_dir_path(stores.settings.source_dir, task_id) if stores.settings.source_dir else None
    configured = str(task_dir / RESULT_FILE) if task_dir else None
    # A relative path (a migrate run from another working directory) names nothing here.
    if registered and os.path.isabs(registered) and not same_file(registered, stores.backups.uri(task_id)):
        found = registered_source_file(task_id, registered)
        # Registered where this process does not see the tree (a host that mounts it elsewhere
        # than the run pods do): RESULT_SOURCE_DIR's file, when that one is there.
        if configured and not os.path.exists(found) and os.path.exists(configured):
            return configured
        return found
    return configured


def source_differs(path: str | Path, size: int, mtime_ns: int | None, sha256: str) -> bool:
    """Whether the file holds other bytes than those recorded: a different size says so at
    once, the same mtime says it did not change, else its SHA-256 decides. A file that is
    gone does not differ (archived or moved: the store is now the record); one that cannot
    be read does."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    if st.st_size != size or not stat.S_ISREG(st.st_mode):  # a FIFO put there would block a read
        return True
    if st.st_mtime_ns == mtime_ns:
        return False
    try:
        return file_sha256(path) != sha256
    except OSError:  # there but unreadable: not the bytes recorded, as far as anyone can tell
        return True


def display_path(path: str | Path) -> str:
    """path as valid text for a reason or a log: bytes that are not UTF-8 as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def outside_source_dir(path: str | Path) -> bool:
    """True when path (<source-dir>/<task_id>/result.json) resolves outside its source dir.

    Checked again when reading, so a link swapped in after the scan is refused too.
    """
    path = Path(path)
    real_root = path.parent.parent.resolve()
    return real_root not in path.resolve().parents
