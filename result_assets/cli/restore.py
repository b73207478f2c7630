"""`result-assets restore TASK_ID ... [--to DIR]`: the exact original bytes of a task's JSON, back on disk.

From the backup when it holds the bytes the catalog recorded, else from an archive
(the folders `archive` wrote to, or --archive DIR). Every restored file is checked
against its SHA-256 after it is written.
"""
from __future__ import annotations

import json
import lzma
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from result_assets.settings import Settings
from result_assets.store.postgres import error_line


@dataclass
class Restored:
    task_id: str
    path: str | None
    source: str | None  # "backup" or the archive's path
    error: str | None = None
    kept: str | None = None  # --overwrite: where the other bytes the file held went (no backup had them)


def restore_tasks(settings: Settings, task_ids: list[str], to_dir: Path, archive_dirs: list[Path],
                  overwrite: bool = False) -> list[Restored]:
    from result_assets.migration.sources import task_dir_path
    from result_assets.store.backups import sha256_hex
    from result_assets.store.stores import Stores

    stores = Stores(settings)
    expected = {t: s.source_sha256 for t, s in stores.catalog.states(task_ids).items()}
    manifests = _manifests(archive_dirs)
    out = []
    for task_id in task_ids:
        task_dir = task_dir_path(to_dir, task_id)  # the exact bytes of a non-UTF-8 name
        if task_dir is None:
            out.append(Restored(task_id, None, None, f"task id {task_id!r} is not a safe directory name"))
            continue
        target = task_dir / "result.json"
        raw, source = _from_backup(stores, task_id, expected.get(task_id))
        if raw is None:
            raw, source = _from_archives(manifests, task_id, expected.get(task_id))
        if raw is None:
            why = "no backup or archived copy" + (" with the catalog's SHA-256" if task_id in expected else "")
            out.append(Restored(task_id, None, None, why))
            continue
        kept = None
        if overwrite:  # bytes written over are kept when no backup has them (a version never migrated)
            try:
                held = target.read_bytes() if target.is_file() else raw
                kept = stores.backups.keep_version(task_id, held) if held != raw else None
            except OSError as exc:
                out.append(Restored(task_id, str(target), source, f"cannot keep the bytes {target} holds before "
                                                                  f"writing over them: {exc.strerror or exc}"))
                continue
        error = _write(target, raw, overwrite)
        if error:
            out.append(Restored(task_id, str(target), source, error, kept))
            continue
        if sha256_hex(target.read_bytes()) != sha256_hex(raw):
            out.append(Restored(task_id, str(target), source, "written file does not read back identical", kept))
            continue
        out.append(Restored(task_id, str(target), source, kept=kept))
    return out


def _write(target: Path, raw: bytes, overwrite: bool) -> str | None:
    """Put raw at target; why not, or None. Without --overwrite the file is only created where
    none is (a file created after any check would be written over), and one already there
    with the same bytes is left as it is."""
    from result_assets.store.backups import write_atomic

    try:
        write_atomic(target, raw, replace=overwrite)
        return None
    except FileExistsError:
        if overwrite or not target.is_file():
            return f"cannot write {target}: a file is in the way"
        try:
            same = target.read_bytes() == raw
        except OSError as exc:
            return f"cannot read {target}: {exc.strerror or exc}"
        return None if same else f"{target} exists with other bytes (use --overwrite)"
    except OSError as exc:
        return f"cannot write {target}: {exc.strerror or exc}"


def _from_backup(stores, task_id: str, sha: str | None) -> tuple[bytes | None, str | None]:
    from result_assets.store.backups import UnsafeTaskId, sha256_hex

    try:
        # The catalog's version, also when a later attempt replaced the current backup (kept under previous/)
        raw = stores.backups.read(task_id) if sha is None else stores.backups.read_version(task_id, sha)
    except (OSError, UnsafeTaskId):
        return None, None
    if raw is None or (sha is not None and sha256_hex(raw) != sha):
        return None, None  # no backup holds that version; the archive may have it
    return raw, "backup"


def _manifests(archive_dirs: list[Path]) -> list[tuple[Path, dict]]:
    found = []
    for folder in archive_dirs:
        for sidecar in sorted(folder.glob("*.tar.xz.manifest.json"), reverse=True):  # newest first
            try:
                found.append((folder / sidecar.name[:-len(".manifest.json")], json.loads(sidecar.read_text())))
            except (OSError, ValueError):
                continue
    return found


def _from_archives(manifests, task_id: str, sha: str | None) -> tuple[bytes | None, str | None]:
    from result_assets.store.backups import sha256_hex

    for archive, manifest in manifests:
        for entry in manifest.get("files", []):
            if entry["task_id"] != task_id or (sha is not None and entry["sha256"] != sha):
                continue
            try:
                with tarfile.open(archive, "r:xz") as tar:
                    raw = tar.extractfile(entry["member"]).read()
            except (tarfile.TarError, OSError, KeyError, AttributeError, EOFError, lzma.LZMAError):
                continue  # a damaged archive: an older one may hold the same bytes
            if sha256_hex(raw) == entry["sha256"]:
                return raw, str(archive)
    return None, None


# --- CLI: result-assets restore ---

def add_arguments(parser) -> None:
    parser.add_argument("task_ids", nargs="+", metavar="TASK_ID")
    parser.add_argument("--to", metavar="DIR", help="put <DIR>/<task_id>/result.json (default RESULT_SOURCE_DIR)")
    parser.add_argument("--archive", action="append", metavar="DIR",
                        help="also look in this archive folder (the ones `archive` wrote to are known)")
    parser.add_argument("--overwrite", action="store_true", help="replace a file that exists with other bytes")


def run(args) -> int:
    import psycopg2

    from result_assets.cli import existing_home
    from result_assets.cli.archive import known_archive_dirs
    from result_assets.errors import DatabaseUnavailable, UsageError

    settings = existing_home()  # a mistyped home is an error, not a new empty store
    to_dir = args.to or settings.source_dir
    if not to_dir:
        raise UsageError("give --to DIR or set RESULT_SOURCE_DIR")
    given = [Path(d).absolute() for d in args.archive or []]
    for folder in given:
        if not folder.is_dir():
            raise UsageError(f"--archive is not a folder: {folder}")
    dirs = given + known_archive_dirs(settings)
    try:
        results = restore_tasks(settings, args.task_ids, Path(to_dir).absolute(), dirs, args.overwrite)
    except psycopg2.Error as exc:
        raise DatabaseUnavailable(f"database unavailable: {error_line(exc)}") from None
    for r in results:
        if r.error:
            print(f"result-assets: {r.task_id}: {r.error}", file=sys.stderr)
        else:
            print(f"restored {r.task_id} -> {r.path} (from {r.source}, SHA-256 verified"
                  + (f"; the other bytes it held are kept at {r.kept})" if r.kept else ")"))
    return 1 if any(r.error for r in results) else 0
