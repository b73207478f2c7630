"""Running one contender in a child process: wall seconds, peak RSS, and its result."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import child_env

RESULT_PREFIX = "BENCH_RESULT "
# Environment that would point a child at someone else's stores; each child gets a home of its own.
FOREIGN_ENV = ("DATABASE_URL", "DAGSTER_HOME", "RESULT_STORE_ROOT", "RESULT_BACKUP_DIR", "RESULT_SOURCE_DIR",
               "RESULT_BATCH_SIZE")


@dataclass
class Measured:
    seconds: float
    peak_rss_mb: float  # ru_maxrss of the largest process in the child's tree that was waited for
    returncode: int
    result: dict = field(default_factory=dict)  # the child's last `BENCH_RESULT {...}` line
    log: str = ""
    stdout: str = ""
    cpu_seconds: float = 0.0  # user + system CPU of the child and every process below it (sampled)
    machine_busy: float | None = None  # share of all cores' time not idle meanwhile (/proc/stat), servers included
    started_at: float = 0.0  # time.time() when the child was started (to place its runs' records in its span)

    @property
    def cpu_utilisation(self) -> float:
        """The child tree's CPU time / (wall x cores)."""
        return self.cpu_seconds / (self.seconds * (os.cpu_count() or 1)) if self.seconds else 0.0


def run_measured(argv: list[str], log_path: Path, env: dict | None = None, stdout_path: Path | None = None) -> Measured:
    """Run argv to completion; wait4 gives this child's own rusage, not the whole bench's."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log, open(stdout_path or log_path.with_suffix(".out"), "wb") as out:
        started, started_at, busy_before = time.perf_counter(), time.time(), _cpu_ticks()
        proc = subprocess.Popen(argv, stdout=out, stderr=log, env=child_env(env))
        tree = _TreeCpu(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds, busy_after = time.perf_counter() - started, _cpu_ticks()
        tree.stop()
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = (stdout_path or log_path.with_suffix(".out")).read_text(errors="replace")
    result = {}
    for line in text.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
    busy = None
    if busy_before and busy_after and busy_after[1] > busy_before[1]:
        busy = (busy_after[0] - busy_before[0]) / (busy_after[1] - busy_before[1])
    return Measured(seconds, usage.ru_maxrss / 1024, proc.returncode, result,
                    log_path.read_text(errors="replace"), text,
                    max(usage.ru_utime + usage.ru_stime, tree.seconds), busy, started_at)


class _TreeCpu:
    """CPU seconds of a process and all below it. Workers started by a forkserver are not
    the child's own children (wait4 never counts them), so the tree is walked in /proc
    every 0.1 s and each process's last user + system time kept."""

    def __init__(self, root: int):
        import threading

        self.root, self.last = root, {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    @property
    def seconds(self) -> float:
        return sum(self.last.values()) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._done.wait(0.1):
            parents, ticks = {}, {}
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                parents[int(entry.name)] = int(fields[1])
                ticks[int(entry.name)] = int(fields[11]) + int(fields[12])  # utime + stime
            for pid, tick in ticks.items():
                up = pid
                while up in parents and up != self.root:
                    up = parents[up]
                if up == self.root:
                    self.last[pid] = max(self.last.get(pid, 0), tick)


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of all cores since boot, from /proc/stat (None off Linux)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


# --- the homes the contenders run in ---

def home_settings(home: Path):
    """Settings of a bench home: everything under it, the embedded server, whatever the environment says."""
    from result_assets.settings import Settings

    return Settings(home=home, database_url=None, store_root=str(home / "store"), backup_dir=str(home / "backups"),
                    source_dir=None, storage_mode="json-only", dagster_home=home / "dagster")


def fresh_home(home: Path) -> Path:
    """An empty RESULT_ASSETS_HOME whose embedded Postgres is already running (start-up is not timed)."""
    from result_assets.store.postgres import catalog_url, dagster_url, stop_embedded

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
        stop_embedded(home_settings(home))  # a server left by an interrupted bench
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        catalog_url(home_settings(home))
        dagster_url(home_settings(home))
    return home


def stop_home(home: Path) -> None:
    """Stop the home's embedded server; a failure is reported, not raised (the next home goes on)."""
    from result_assets.store.postgres import stop_embedded

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stop_embedded(home_settings(home))
    except Exception as exc:  # noqa: BLE001 - report, keep stopping the others
        print(f"result-assets bench: could not stop the server of {home}: {exc}", file=sys.stderr)


def write_stock_dagster_yaml(home: Path) -> None:
    """The home's instance on stock dagster-postgres storage, as an existing deployment's is
    (result-assets writes its own dagster.yaml only where none is)."""
    from result_assets.store.postgres import dagster_url

    settings = home_settings(home)
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    (settings.dagster_home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: {json.dumps(dagster_url(settings))}\n")


def create_instance(home: Path) -> float:
    """Create the home's Dagster instance and its storage's tables, in a child process, as an
    existing deployment's instance already has them; the seconds it took (once per deployment,
    not part of a migration's time)."""
    done = subprocess.run([sys.executable, "-c", "import time; from result_assets.assets.instance import "
                           "get_instance; t = time.perf_counter(); get_instance().dispose(); "
                           "print(time.perf_counter() - t)"], env=home_env(home), check=True, capture_output=True,
                          text=True)
    return float(done.stdout.split()[-1])


def write_tuned_dagster_yaml(home: Path) -> None:
    """The home's instance on the project's opt-in tuned storage (a dagster.yaml of its own,
    which result-assets leaves alone)."""
    from result_assets.assets.instance import TUNED_STORAGE_YAML

    dagster_home = home_settings(home).dagster_home
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(TUNED_STORAGE_YAML)


def home_env(home: Path) -> dict:
    """The environment of a child that works in `home` and nowhere else."""
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
    env["RESULT_ASSETS_HOME"] = str(home)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def last_json(text: str) -> dict:
    """The last line of text that is a JSON object (a CLI's `--json` report), else {}."""
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}


def worker_argv(contender: str, config: dict) -> list[str]:
    return [sys.executable, "-m", "benchmarks.worker", contender, json.dumps(config)]


def emit(result: dict) -> None:
    """The child's answer to the parent, as the last line of stdout."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# --- the corpus ---

def corpus_files(corpus: Path) -> list[tuple[str, Path]]:
    """(task_id, path of result.json), sorted by task id."""
    out = []
    for entry in sorted(os.scandir(corpus), key=lambda e: e.name):
        path = Path(entry.path) / "result.json"
        if entry.is_dir() and path.exists():
            out.append((entry.name, path))
    return out


def corpus_bytes(corpus: Path) -> int:
    return sum(p.stat().st_size for _, p in corpus_files(corpus))


def tree_bytes(root: Path) -> tuple[int, int]:
    """(bytes, files) of every file under root."""
    total = files = 0
    for folder, _, names in os.walk(root):
        for name in names:
            total += os.path.getsize(os.path.join(folder, name))
            files += 1
    return total, files


# --- Postgres of the bench home (for (a) and (b)) ---

def fresh_database(server_url: str, name: str) -> str:
    """Drop and create database `name` on the server; its libpq URL."""
    import psycopg2
    from psycopg2 import sql

    from result_assets.store.postgres import _with_database

    conn = psycopg2.connect(server_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()
    return _with_database(server_url, name)


def relation_bytes(url: str, schemas: list[str] | None = None, tables: list[str] | None = None) -> int:
    """Bytes of the named tables (or all tables of the schemas), indexes and TOAST included."""
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
                "AND (%(schemas)s::text[] IS NULL OR n.nspname = ANY(%(schemas)s)) "
                "AND (%(tables)s::text[] IS NULL OR (n.nspname = 'public' AND c.relname = ANY(%(tables)s)))",
                {"schemas": schemas, "tables": tables})
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def table_rows(url: str, schema: str) -> dict[str, int]:
    """{table: row count} of every table in schema."""
    import psycopg2
    from psycopg2 import sql

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (schema,))
            names = [r[0] for r in cur.fetchall()]
            counts = {}
            for name in names:
                cur.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(name)))
                counts[name] = cur.fetchone()[0]
            return counts
    finally:
        conn.close()
