"""Finding legacy tasks: <source-dir>/<task_id>/result.json, the directory name is the id."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from result_assets.legacy import partition_key_for

RESULT_FILE = "result.json"
ONE_GIB = 1 << 30
MAX_FILE_BYTES_ENV = "RESULT_MAX_FILE_BYTES"
_CHUNK = 1 << 20  # streaming copies and hashes go 1 MiB at a time


def max_file_bytes() -> int:
    """The size above which a file is quarantined, never read whole (RESULT_MAX_FILE_BYTES, default 1 GiB)."""
    text = os.environ.get(MAX_FILE_BYTES_ENV, "").strip()
    if not text:
        return ONE_GIB
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{MAX_FILE_BYTES_ENV} must be a positive whole number of bytes, not {text!r}")
    return int(text)


# Read once at import: the default of the Dagster resource `migration.max_file_bytes`.
DEFAULT_MAX_FILE_BYTES = max_file_bytes()


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
        raise SourceDirError(f"source directory not found: {root}")
    real_root = root.resolve()
    tasks: list[LegacyFile] = []
    not_tasks: list[str] = []
    with os.scandir(root) as entries:
        for entry in entries:
            if only is not None and entry.name not in only:
                continue
            if not entry.is_dir():
                not_tasks.append(entry.name)
                continue
            task = _legacy_file(root, real_root, entry)
            if task is None:
                not_tasks.append(entry.name)
            else:
                tasks.append(task)
    tasks.sort(key=lambda t: t.task_id)
    not_tasks.sort()
    return SourceScan(tasks, not_tasks)


def stat_legacy_file(source_dir: str | Path, task_id: str) -> LegacyFile | None:
    root = Path(source_dir)
    path = root / task_id
    if not path.is_dir():
        return None
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name == task_id:
                return _legacy_file(root, root.resolve(), entry)
    return None


def _legacy_file(root: Path, real_root: Path, entry: os.DirEntry) -> LegacyFile | None:
    path = Path(entry.path) / RESULT_FILE
    try:
        st = path.stat()
    except OSError:
        return None
    refused = None
    if entry.is_symlink() or path.is_symlink():
        target = path.resolve()
        if real_root not in target.parents:
            refused = f"refused: {entry.name}/{RESULT_FILE} is a link to {target}, outside the source directory"
    return LegacyFile(entry.name, str(path), st.st_size, st.st_mtime_ns, refused)


def outside_source_dir(path: str | Path) -> bool:
    """True when path (<source-dir>/<task_id>/result.json) resolves outside its source dir.

    Checked again when reading, so a link swapped in after the scan is refused too.
    """
    path = Path(path)
    real_root = path.parent.parent.resolve()
    return real_root not in path.resolve().parents


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in chunks (for files too big to hold in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def copy_into_backup(backups, task_id: str, source_path: str | Path, sha256: str) -> bool:
    """Stream a file into the backup store as <backup-dir>/<task_id>/result.json.

    The same layout and rules as BackupStore.save (an older, different backup moves to
    previous/<sha256>.json; the copy is written to a temporary file, fsynced, then
    renamed), without ever holding the file in memory. Returns whether the copy on
    disk has `sha256`.
    """
    target = backups.path(task_id)  # refuses ids that would leave the backup root
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        old_sha = file_sha256(target)
        if old_sha == sha256:
            return True
        previous = target.parent / "previous" / f"{old_sha}.json"
        previous.parent.mkdir(exist_ok=True)
        if not previous.exists():
            _stream_copy(target, previous)
    _stream_copy(source_path, target)
    return file_sha256(target) == sha256


def _stream_copy(source: str | Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(source, "rb") as src, open(tmp, "wb") as dst:
            while chunk := src.read(_CHUNK):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
