"""Finding legacy tasks: <source-dir>/<task_id>/result.json, the directory name is the id."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from result_assets.legacy import partition_key_for

RESULT_FILE = "result.json"
DEFAULT_MAX_FILE_BYTES = 1 << 30  # a larger file is quarantined, never read whole


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
