"""Byte-exact backups of the legacy files: <backup-dir>/<task_id>/result.json.

A backup that would change (a forced re-migration of edited source) first moves the
old bytes to <task_id>/previous/<sha256>.json, so every version stays recoverable.
The backup dir is a local folder or an s3:// URI (S3BackupStore, same methods).
"""
from __future__ import annotations

import errno
import hashlib
import itertools
import os
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pyarrow import fs as pafs


_CHUNK = 1 << 20  # streamed copies and hashes go 1 MiB at a time


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a local file, read in chunks (for files too big to hold in memory). A path
    that is not a regular file (a FIFO put in a file's place) raises OSError unread: its read
    would wait for ever (opened without waiting for a writer, and looked at first)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, f"not a regular file: {path}")
        stream = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return _stream_sha256(stream)


def _stream_sha256(stream) -> str:
    digest = hashlib.sha256()
    with stream as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class UnsafeTaskId(ValueError):
    pass


def safe_name(name: str) -> str:
    """name, refusing names that would leave their parent ("..", "/", NUL, ...)."""
    if not name or name in (".", "..") or "/" in name or "\x00" in name or os.sep in name:
        raise UnsafeTaskId(f"task id {name!r} is not a safe directory name")
    return name


def safe_child(root: Path, name: str) -> Path:
    """root/name, refusing names that would leave root ("..", "/", NUL, ...)."""
    return root / safe_name(name)


@dataclass(frozen=True)
class BackupRecord:
    task_id: str
    path: str
    sha256: str
    bytes: int
    verified: bool | None  # the file read back has the source's sha256 (None: not read back here)


class _KeptVersions:
    """A task's versions as both backup stores keep them: the current backup, and each earlier
    one under previous/<sha256>.json (from their own path, previous, save and _get)."""

    def read_version(self, task_id: str, sha256: str) -> bytes | None:
        """The backup with these bytes: the task's current one, or an earlier one kept under
        previous/ when a later attempt replaced it; None when neither holds them."""
        return self._version(task_id, sha256)[0]

    def current_version(self, task_id: str, sha256: str) -> bytes | None:
        """The bytes of version `sha256`, made the task's current backup first when only
        previous/ holds them (an attempt that was not published left its own bytes as the
        current one); None when neither holds them. One read when the current one does."""
        raw, current = self._version(task_id, sha256)
        if raw is not None and not current:
            self.save(task_id, raw, sha256)
        return raw

    def _version(self, task_id: str, sha256: str) -> tuple[bytes | None, bool]:
        for current, where in ((True, self.path(task_id)), (False, self.previous(task_id, sha256))):
            raw = self._get(where)
            if raw is not None and sha256_hex(raw) == sha256:
                return raw, current
        return None, False


class BackupStore(_KeptVersions):
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, task_id: str) -> Path:
        return safe_child(self.root, task_id) / "result.json"

    def uri(self, task_id: str) -> str:
        return str(self.path(task_id))

    def previous(self, task_id: str, sha256: str) -> Path:
        """Where an earlier backup of the task with these bytes is kept once replaced."""
        return self.path(task_id).parent / "previous" / f"{sha256}.json"

    def save(self, task_id: str, raw: bytes, sha256: str | None = None, verify: bool = True) -> BackupRecord:
        """Keep raw as the task's backup (an earlier, different one moves to previous/). With
        verify=False the caller reads it back itself (the engine: its backup_checksum check)."""
        sha256 = sha256 or sha256_hex(raw)
        target = self.path(task_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            old = target.read_bytes()
            old_sha = sha256_hex(old)
            if old_sha == sha256:
                return BackupRecord(task_id, str(target), sha256, len(raw), True)
            previous = self.previous(task_id, old_sha)
            previous.parent.mkdir(exist_ok=True)
            if not previous.exists():
                write_atomic(previous, old)
        write_atomic(target, raw)
        return BackupRecord(task_id, str(target), sha256, len(raw), self.verify(task_id, sha256) if verify else None)

    def save_file(self, task_id: str, source_path: str | Path, sha256: str) -> bool:
        """As save, streaming a local file (one over the size limit) instead of holding its bytes;
        returns whether the backup then has `sha256`."""
        target = self.path(task_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            old_sha = file_sha256(target)
            if old_sha == sha256:
                return True
            previous = self.previous(task_id, old_sha)
            previous.parent.mkdir(exist_ok=True)
            if not previous.exists():
                _atomic_copy(target, previous)
        _atomic_copy(source_path, target)
        return self.verify(task_id, sha256)

    def verify(self, task_id: str, sha256: str) -> bool:
        """The backup has these bytes; read in chunks (a backup may be over the size limit)."""
        try:
            return file_sha256(self.path(task_id)) == sha256
        except OSError:
            return False

    def holds(self, task_id: str, sha256: str) -> bool:
        """These bytes are kept: as the task's backup, or under previous/ (a later version, an
        application save, say, replaced it meanwhile)."""
        if self.verify(task_id, sha256):
            return True
        try:
            return file_sha256(self.previous(task_id, sha256)) == sha256
        except OSError:
            return False

    def read(self, task_id: str) -> bytes:
        return self.path(task_id).read_bytes()

    def keep_version(self, task_id: str, raw: bytes) -> str | None:
        """Keep bytes about to be written over (a source file holding a version nothing else
        does) under previous/; where they went, or None when the backups already hold them."""
        sha256 = sha256_hex(raw)
        if self.holds(task_id, sha256):
            return None
        previous = self.previous(task_id, sha256)
        previous.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(previous, raw)
        return str(previous)

    def _get(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except OSError:
            return None


_STAGED = itertools.count()
STALE_STAGED_SECONDS = 3600  # a staged file lives for one write; one this old was left by a killed writer


def sweep_stale_staged(path: Path) -> list[Path]:
    """Remove the staged files of `path` that writers killed between writing and renaming them
    (SIGKILL, a power cut) left beside it; only those older than STALE_STAGED_SECONDS, never a
    live writer's. Their bytes were no one's record: the write they belonged to never returned."""
    prefix, removed = f".{path.name}.", []
    cutoff = time.time() - STALE_STAGED_SECONDS
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(prefix) and ".staged-" in entry.name and entry.name.endswith(".tmp"):
            try:
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
            except OSError:  # gone meanwhile, or not ours to remove
                pass
    return removed


class StagedFile:
    """A file written and flushed under a temporary name beside `path`, not there yet: `put()`
    renames it into place. Written on one thread (beside CPU work), put on another at the
    moment its order matters; a name of its own, never another staged file's."""

    def __init__(self, path: Path, data: bytes):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_staged(path)
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.staged-{next(_STAGED)}.tmp")
        self.put_done = False
        try:
            with open(self.tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
                self.stat = os.fstat(f.fileno())  # the rename keeps size and mtime
        except BaseException:
            self.discard()
            raise

    def put(self) -> os.stat_result:
        """Rename into place (once); the written file's stat."""
        if not self.put_done:
            os.replace(self.tmp, self.path)
            self.put_done = True
        return self.stat

    def discard(self) -> None:
        if self.put_done:
            return
        try:
            self.tmp.unlink()
        except FileNotFoundError:
            pass


def write_atomic(path: Path, data: bytes, replace: bool = True) -> os.stat_result:
    """Write then rename, so a reader never sees half a file (a crash leaves the old one).
    Returns the written file's stat, taken before the rename (which keeps size and mtime): a
    stat of `path` afterwards may see another writer's file that replaced it meanwhile.
    replace=False: never over a file, FileExistsError when `path` exists, also when another
    writer creates it meanwhile (a hard link of the written file, which fails then; on a
    filesystem without hard links the file is written in place, a reader may see it partly)."""
    staged = StagedFile(path, data)
    try:
        if replace:
            staged.put()
        else:
            _create(staged.tmp, path, data)
        return staged.stat
    finally:
        staged.discard()  # the temporary name, unless the rename took it


def _create(tmp: Path, path: Path, data: bytes) -> None:
    """The written file `tmp` at `path`, never over a file there (FileExistsError): a hard link,
    or on a filesystem without them (some SMB and FUSE mounts) an exclusive create written in
    place, which a reader may see half written for that moment."""
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
    try:
        with open(path, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except FileExistsError:
        raise
    except OSError:
        path.unlink(missing_ok=True)  # created here, half written (a full disk): not left as a file
        raise


def _atomic_copy(source: str | Path, path: Path) -> None:
    """write_atomic of a file's bytes, streamed (under a staged file's name: a killed copy's is swept)."""
    sweep_stale_staged(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.staged-{next(_STAGED)}.tmp")
    try:
        with open(source, "rb") as src, open(tmp, "wb") as dst:
            while chunk := src.read(_CHUNK):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def open_backup_store(root: str, storage_options: Mapping[str, str] | None = None) -> BackupStore | S3BackupStore:
    """The backup store of a local folder or an s3:// URI (storage options as for DeltaStore)."""
    if root.startswith("s3://"):
        return S3BackupStore(root, storage_options or {})
    return BackupStore(root)


class S3BackupStore(_KeptVersions):
    """BackupStore's layout and guarantees on S3.

    A PUT is atomic (the object appears whole or not at all), so no temp-file rename is needed;
    `previous/<sha>.json` is written before the new bytes replace result.json, and every save is
    verified by reading the object back.
    """

    def __init__(self, root: str, storage_options: Mapping[str, str]):
        self.root = root.rstrip("/")
        self._fs = s3_filesystem(storage_options)

    def path(self, task_id: str) -> str:
        return f"{self.root}/{safe_name(task_id)}/result.json"

    uri = path

    def previous(self, task_id: str, sha256: str) -> str:
        """As BackupStore.previous."""
        return f"{self.root}/{safe_name(task_id)}/previous/{sha256}.json"

    def save(self, task_id: str, raw: bytes, sha256: str | None = None, verify: bool = True) -> BackupRecord:
        sha256 = sha256 or sha256_hex(raw)
        target = self.path(task_id)
        old = self._get(target)
        if old is not None:
            old_sha = sha256_hex(old)
            if old_sha == sha256:
                return BackupRecord(task_id, target, sha256, len(raw), True)
            previous = self.previous(task_id, old_sha)
            if not self._exists(previous):
                self._put(previous, old)
        self._put(target, raw)
        return BackupRecord(task_id, target, sha256, len(raw), self.verify(task_id, sha256) if verify else None)

    def save_file(self, task_id: str, source_path: str | Path, sha256: str) -> bool:
        """As save, streaming a local file (one over the size limit) instead of holding its bytes."""
        target = self.path(task_id)
        old_sha = self._sha256(target)
        if old_sha == sha256:
            return True
        if old_sha is not None:
            previous = self.previous(task_id, old_sha)
            if not self._exists(previous):
                self._fs.copy_file(_key(target), _key(previous))
        with open(source_path, "rb") as src, self._fs.open_output_stream(_key(target)) as dst:
            while chunk := src.read(_CHUNK):
                dst.write(chunk)
        return self.verify(task_id, sha256)

    def verify(self, task_id: str, sha256: str) -> bool:
        return self._sha256(self.path(task_id)) == sha256

    def holds(self, task_id: str, sha256: str) -> bool:
        """As BackupStore.holds."""
        return self.verify(task_id, sha256) or self._sha256(self.previous(task_id, sha256)) == sha256

    def _sha256(self, uri: str) -> str | None:
        try:
            return _stream_sha256(self._fs.open_input_stream(_key(uri)))
        except FileNotFoundError:
            return None

    def read(self, task_id: str) -> bytes:
        data = self._get(self.path(task_id))
        if data is None:
            raise FileNotFoundError(f"no backup of task {task_id!r} at {self.path(task_id)}")
        return data

    def keep_version(self, task_id: str, raw: bytes) -> str | None:
        """As BackupStore.keep_version."""
        sha256 = sha256_hex(raw)
        if self.holds(task_id, sha256):
            return None
        self._put(self.previous(task_id, sha256), raw)
        return self.previous(task_id, sha256)

    def _exists(self, uri: str) -> bool:
        return self._fs.get_file_info(_key(uri)).type != pafs.FileType.NotFound

    def _get(self, uri: str) -> bytes | None:
        try:
            with self._fs.open_input_stream(_key(uri)) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def _put(self, uri: str, data: bytes) -> None:
        with self._fs.open_output_stream(_key(uri)) as f:
            f.write(data)


def _key(uri: str) -> str:
    """bucket/key, the path form pyarrow's S3FileSystem takes."""
    return uri.split("://", 1)[1]


def s3_filesystem(options: Mapping[str, str]) -> pafs.S3FileSystem:
    """pyarrow's S3FileSystem configured like delta-rs from the same options (AWS_* names)."""
    kwargs = {}
    endpoint = options.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs["endpoint_override"] = parts.netloc
        kwargs["scheme"] = parts.scheme
    if options.get("AWS_REGION"):
        kwargs["region"] = options["AWS_REGION"]
    if options.get("AWS_ACCESS_KEY_ID"):
        kwargs["access_key"] = options["AWS_ACCESS_KEY_ID"]
        kwargs["secret_key"] = options.get("AWS_SECRET_ACCESS_KEY", "")
        kwargs["session_token"] = options.get("AWS_SESSION_TOKEN")
    # Without keys, the AWS default chain applies (profile, web identity on Kubernetes, instance role).
    return pafs.S3FileSystem(**kwargs)
