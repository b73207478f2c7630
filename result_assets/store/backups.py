"""Byte-exact backups of the legacy files: <backup-dir>/<task_id>/result.json.

A backup that would change (a forced re-migration of edited source) first moves the
old bytes to <task_id>/previous/<sha256>.json, so every version stays recoverable.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class UnsafeTaskId(ValueError):
    pass


def safe_child(root: Path, name: str) -> Path:
    """root/name, refusing names that would leave root ("..", "/", NUL, ...)."""
    if not name or name in (".", "..") or "/" in name or "\x00" in name or os.sep in name:
        raise UnsafeTaskId(f"task id {name!r} is not a safe directory name")
    return root / name


@dataclass(frozen=True)
class BackupRecord:
    task_id: str
    path: str
    sha256: str
    bytes: int
    verified: bool  # the file read back from disk has the source's sha256


class BackupStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, task_id: str) -> Path:
        return safe_child(self.root, task_id) / "result.json"

    def save(self, task_id: str, raw: bytes, sha256: str | None = None) -> BackupRecord:
        sha256 = sha256 or sha256_hex(raw)
        target = self.path(task_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            old = target.read_bytes()
            old_sha = sha256_hex(old)
            if old_sha == sha256:
                return BackupRecord(task_id, str(target), sha256, len(raw), True)
            previous = target.parent / "previous" / f"{old_sha}.json"
            previous.parent.mkdir(exist_ok=True)
            if not previous.exists():
                _atomic_write(previous, old)
        _atomic_write(target, raw)
        return BackupRecord(task_id, str(target), sha256, len(raw), self.verify(task_id, sha256))

    def verify(self, task_id: str, sha256: str) -> bool:
        try:
            return sha256_hex(self.path(task_id).read_bytes()) == sha256
        except OSError:
            return False

    def read(self, task_id: str) -> bytes:
        return self.path(task_id).read_bytes()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
