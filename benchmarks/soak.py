"""`result-assets bench --soak`: the application, migrate and maintain on one store at once, for a while.

In a fresh temporary home (its own embedded Postgres; with DATABASE_URL set, a fresh
database on that server instead, dropped at the end):

- N application processes (`python -m benchmarks.soak worker ...`), each a
  postgres-only ResultManager (records for Dagster queued, as by default) saving new tasks of its own, re-saving some of its earlier
  ones with new content, and reading random earlier ones back: its own (each read must be
  exactly the last successful save of that task) and, a share of them, another worker's
  (at least as new as that worker's last published list of its saves says, and exactly
  that version's document);
- one `result-assets migrate --source-dir` of a small generated legacy corpus, then
  `--force` again, in a loop;
- `result-assets maintain --retention-hours 0` in a loop (a "another maintenance run is in
  progress" exit is counted as busy, not failed);

until --soak-seconds have passed. Then, with everything stopped and one last maintain run,
every task a worker saved successfully is read through a fresh ResultManager (lost:
missing, or not its last successful save), and a scan of the signals and curves tables
(ResultStore) counts the rows of each task that read back right against its document
(shown twice: more rows than the document has; short in scan: fewer). The migrated legacy
tasks are checked the same way when a migrate run succeeded.

"Exactly" is the document's JSON text (dumps_document: key order, int or float, NaN), not
the migration's rules comparison, which forgives spellings. Rows in the scan under a task id
nobody saved or migrated count as foreign.

Prints a markdown table, the first error of each kind below it, writes <workdir>/soak.json.
Exit 1 if a save or a read failed, a task was lost, shown twice or short in the scan, rows
were foreign, a migrate or maintain run failed (a busy maintain aside) or none succeeded, a
worker died or was left running, or the run did nothing to judge (no save, re-save, read or
task checked); 0 otherwise. The workers save as the application does: each save also
queues its record for Dagster in its own transaction.

Kept import-light at the top: the workers import the application themselves.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks import child_env

PROGRESS_EVERY = 30.0  # seconds between progress lines on stderr
STATUS_EVERY = 2.0  # seconds between a worker's status files
BASE_SIGNALS = (40, 100, 100, 250, 100, 600)  # the documents' shapes: one base per entry
READ_SHARE, RESAVE_SHARE = 0.35, 0.15  # of a worker's operations; the rest are saves of new tasks
CROSS_READ_SHARE = 0.3  # of a worker's reads: another worker's task (a stale read across processes shows)
# Each worker's first few tasks are contended: half of its re-saves and half of the others' reads
# of its tasks go to them, so a process reads a task again after another one saved it anew.
CONTENDED_TASKS, CONTENDED_SHARE = 8, 0.5
WORKER_GRACE = 120.0  # seconds a worker may run past the end before it is stopped
MIN_WORK_SECONDS = 3.0  # a worker works this long once ready, however short the soak (its start-up counts none)
RUN_TIMEOUT = 900.0  # seconds one migrate/maintain run may take before it is stopped
BUSY = "another maintenance run is in progress"


@dataclass
class SoakParams:
    processes: int = 4
    seconds: int = 600
    legacy_tasks: int = 20
    seed: int = 7


# --- documents: (task, version) -> a document, the same in every process ----------------------

class Documents:
    """Documents of the platform's shape (corpus generator, v2: symbols as objects, so nothing
    to autocorrect), cheap to make: a few generated bases, each copy marked in every signal
    and in its metadata with its task and version (a stale or foreign row cannot pass)."""

    def __init__(self, seed: int):
        from benchmarks.app_life import make_document
        from result_assets.legacy import dumps_document

        self.bases = [dumps_document(make_document(seed, f"soak_base_{k}", n)).encode()
                      for k, n in enumerate(BASE_SIGNALS)]
        self.base_counts = [self._counts(self._parse(b)) for b in self.bases]

    @staticmethod
    def _parse(raw: bytes) -> dict:
        from result_assets.legacy import parse_document

        return parse_document(raw)

    @staticmethod
    def _counts(doc: dict) -> tuple[int, int]:
        """(signals, curve points) of a v2 document: its rows in the signals and curves tables."""
        symbols = [s for s in doc.get("symbols") or [] if isinstance(s, dict)]
        signals = sum(len(s.get("signals") or []) for s in symbols)
        curves = sum(len(s.get("performance_curve") or []) for s in symbols) + len(doc.get("performance_curve") or [])
        return signals, curves

    def base_of(self, task_id: str, version: int) -> int:
        return zlib.crc32(f"{task_id}#{version}".encode()) % len(self.bases)

    def make(self, task_id: str, version: int) -> dict:
        doc = self._parse(self.bases[self.base_of(task_id, version)])
        mark = f"{task_id}#{version}"
        doc["task_id"] = task_id
        doc.setdefault("metadata", {})["soak"] = mark
        for symbol in doc["symbols"]:
            for sig in symbol.get("signals") or []:
                sig["soak"] = mark
        return doc

    def counts(self, task_id: str, version: int) -> tuple[int, int]:
        return self.base_counts[self.base_of(task_id, version)]


def task_name(worker: int, i: int) -> str:
    return f"soak_w{worker}_{i:06d}"


def difference(expected: object, got: object) -> str | None:
    """None when got is exactly expected (the same JSON text); else the first difference."""
    from result_assets.legacy import compare_documents, dumps_document

    if dumps_document(got) == dumps_document(expected):
        return None
    diffs = compare_documents(expected, got)
    return diffs[0] if diffs else "the same values, spelled otherwise (key order, int or float, a string)"


def marked_version(document: object, task: str) -> int | None:
    """The version a soak document says it is of `task` (its metadata's mark), or None."""
    mark = (document.get("metadata") or {}).get("soak") if isinstance(document, dict) else None
    head, _, version = str(mark).rpartition("#")
    return int(version) if head == task and version.isdigit() else None


# --- errors, grouped by kind --------------------------------------------------------------------

def error_kind(message: str) -> str:
    """A message with its particulars (quoted names, numbers) blanked: one kind per cause."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", message)
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27,}", "…", text)
    return re.sub(r"\d+", "N", text)[:160]


def note_error(errors: dict, message: str) -> None:
    kind = error_kind(message)
    entry = errors.setdefault(kind, {"count": 0, "first": message})
    entry["count"] += 1


def merge_errors(into: dict, errors: dict) -> None:
    for kind, entry in errors.items():
        mine = into.setdefault(kind, {"count": 0, "first": entry["first"]})
        mine["count"] += entry["count"]


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


# --- one application process ---------------------------------------------------------------------

def worker_main(config: dict) -> int:
    """Save, re-save and read back until the deadline (or SIGTERM); the figures to config['out']."""
    import random
    import warnings

    warnings.simplefilter("ignore")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    k, deadline = config["worker"], config["deadline"]
    out, status_path = Path(config["out"]), Path(config["status"])
    state = {"worker": k, "saves": 0, "new": 0, "resaves": 0, "failed_saves": 0, "reads": 0, "failed_reads": 0,
             "read_mismatches": 0, "cross_reads": 0, "save_ms": [], "read_ms": [], "save_errors": {}, "read_errors": {},
             "ok": {}, "failed_after": {}, "never_ok": [], "crash": None}
    ok: dict[str, int] = state["ok"]  # task -> version of its last successful save
    failed_after: dict[str, list[int]] = {}  # task -> versions whose save failed after its last success
    versions: dict[str, int] = {}  # task -> last version tried
    attempted: list[str] = []
    readable: list[str] = []
    manager = None
    others: dict[str, int] = {}  # another worker's task -> its last save that worker listed
    pools: tuple[list[str], list[str]] = ([], [])  # others' tasks: all, and their contended ones
    others_read_at = 0.0
    try:
        from result_assets.app.manager import ResultManager

        docs = Documents(config["seed"])
        rng = random.Random(f"soak:{config['seed']}:{k}")
        # As the application runs it: each save also queues its record for Dagster.
        manager = ResultManager(mode="postgres-only")
        deadline = max(deadline, time.time() + MIN_WORK_SECONDS)  # a very short soak still has work to judge
        last_status = 0.0
        while time.time() < deadline and not stopping.is_set():
            roll = rng.random()
            if time.time() - others_read_at >= STATUS_EVERY:
                others, others_read_at = others_saves(status_path.parent, k), time.time()
                pools = (list(others), [t for t in others if int(t.rsplit("_", 1)[1]) < CONTENDED_TASKS])
            cross = others and rng.random() < CROSS_READ_SHARE
            if (readable or cross) and roll < READ_SHARE:
                # Its own task: exactly its last save. Another worker's: a save at least as new as
                # the one that worker listed (it may have saved again since), exactly that version.
                if cross:
                    everyone, contended = pools
                    task = rng.choice(contended if contended and rng.random() < CONTENDED_SHARE else everyone)
                else:
                    task = rng.choice(readable)
                least = others[task] if cross else ok[task]
                started = time.perf_counter()
                try:
                    got = manager.get_result(task)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    state["reads"] += 1
                    state["failed_reads"] += 1
                    note_error(state["read_errors"], one_line(exc))
                else:
                    elapsed = time.perf_counter() - started
                    state["reads"] += 1
                    state["cross_reads"] += bool(cross)
                    seen = marked_version(got, task)
                    if cross and seen is not None and seen >= least:
                        wrong = difference(docs.make(task, seen), got)
                    else:
                        wrong = difference(docs.make(task, least), got)
                    if wrong:
                        state["failed_reads"] += 1
                        state["read_mismatches"] += 1
                        whose = "another worker's task" if cross else "its own task"
                        note_error(state["read_errors"], f"read of {task!r} ({whose}, saved as {task}#{least}"
                                                         f"{' or later' if cross else ''}) differs: marked "
                                                         f"{seen!r}; {wrong}")
                    else:
                        state["read_ms"].append(elapsed * 1000)
            else:
                if attempted and roll < READ_SHARE + RESAVE_SHARE:
                    contended = rng.random() < CONTENDED_SHARE
                    task = rng.choice(attempted[:CONTENDED_TASKS] if contended else attempted)
                    state["resaves"] += 1
                else:
                    task = task_name(k, len(attempted))
                    attempted.append(task)
                    state["new"] += 1
                version = versions.get(task, -1) + 1
                versions[task] = version
                document = docs.make(task, version)
                started = time.perf_counter()
                try:
                    manager.save_result(task, document)
                except Exception as exc:  # noqa: BLE001 - a failed save is a figure, not the end
                    state["saves"] += 1
                    state["failed_saves"] += 1
                    note_error(state["save_errors"], one_line(exc))
                    failed_after.setdefault(task, []).append(version)
                else:
                    state["save_ms"].append((time.perf_counter() - started) * 1000)
                    state["saves"] += 1
                    if task not in ok:
                        readable.append(task)
                    ok[task] = version
                    failed_after.pop(task, None)
            now = time.time()
            if now - last_status >= STATUS_EVERY:
                last_status = now
                write_json(status_path, {key: state[key] for key in
                                         ("saves", "failed_saves", "reads", "failed_reads")})
                write_json(status_path.with_name(f"saves_{k}.json"), ok)  # for the others' reads
    except BaseException as exc:  # noqa: BLE001 - the parent reports it; the figures so far still count
        import traceback

        state["crash"] = one_line(exc)
        traceback.print_exc()
    finally:
        if manager is not None:
            try:
                manager.close()
            except Exception as exc:  # noqa: BLE001
                print(f"soak worker {k}: close failed: {one_line(exc)}", file=sys.stderr)
        state["failed_after"] = failed_after
        state["never_ok"] = [t for t in attempted if t not in ok]
        state["versions"] = versions
        write_json(status_path, {key: state[key] for key in ("saves", "failed_saves", "reads", "failed_reads")})
        write_json(out, state)
    return 1 if state["crash"] else 0


def others_saves(logs: Path, me: int) -> dict[str, int]:
    """{task: version} of the other workers' successful saves, as they last listed them."""
    found: dict[str, int] = {}
    for path in logs.glob("saves_*.json"):
        if path.name != f"saves_{me}.json":
            try:
                found.update(json.loads(path.read_text()))
            except (OSError, ValueError):  # being replaced: the next look reads it
                continue
    return found


def write_json(path: Path, value) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


# --- the processes the soak starts ---------------------------------------------------------------

class Children:
    """Every process the soak starts, each leader of a process group of its own, so that
    whatever it started in turn (a worker pool) can be stopped with it."""

    def __init__(self):
        self._lock = threading.Lock()
        self.running: dict[int, subprocess.Popen] = {}

    def start(self, argv: list[str], env: dict, log_path: Path) -> subprocess.Popen:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, env=child_env(env), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        with self._lock:
            self.running[proc.pid] = proc
        return proc

    def wait(self, proc: subprocess.Popen, timeout: float | None) -> int:
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = self.stop(proc)
        self.reap_group(proc.pid)
        with self._lock:
            self.running.pop(proc.pid, None)
        return rc

    def stop(self, proc: subprocess.Popen) -> int:
        """SIGTERM to the process's group, SIGKILL 15 s later if it is still there."""
        for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                return proc.wait(grace)
            except subprocess.TimeoutExpired:
                continue
        return proc.wait()

    @staticmethod
    def reap_group(pgid: int) -> None:
        """Anything left in the group of a child that exited (an orphaned pool worker) is stopped."""
        if group_members(pgid):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop_all(self) -> None:
        with self._lock:
            procs = list(self.running.values())
        for proc in procs:
            if proc.poll() is None:
                self.stop(proc)
            self.reap_group(proc.pid)
        with self._lock:
            self.running.clear()


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def processes_of(home: Path) -> list[str]:
    """Processes whose command line names the home or whose environment is set to it."""
    marks = (str(home).encode(),)
    env_mark = f"RESULT_ASSETS_HOME={home}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        try:
            environ = Path(entry.path, "environ").read_bytes()
        except OSError:
            environ = b""
        if any(m in cmdline for m in marks) or env_mark in environ.split(b"\0"):
            command = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
            found.append(f"{entry.name} {command[:200]}")
    return found


# --- the soak -----------------------------------------------------------------------------------

class Soak:
    def __init__(self, workdir: Path, params: SoakParams, err):
        self.workdir, self.p, self.err = workdir, params, err
        self.logs = workdir / "soak_logs"
        self.corpus = workdir / "soak_corpus"
        self.children = Children()
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.migrate_runs: list[dict] = []
        self.maintain_runs: list[dict] = []
        self.loop_errors: list[str] = []  # a migrate or maintain loop that died
        self.base: Path | None = None
        self.home: Path | None = None
        self.external_db: tuple[str, str] | None = None  # (admin URL, database name) with DATABASE_URL
        self.env: dict = {}

    def say(self, line: str) -> None:
        self.err.write(f"soak: {line}\n")
        self.err.flush()

    # --- home ---

    def make_home(self) -> None:
        from benchmarks.measure import fresh_home, home_env

        self.base = Path(tempfile.mkdtemp(prefix="soak_"))  # short: the embedded server's socket lives here
        self.home = self.base / "home"
        server = os.environ.get("DATABASE_URL")
        if server:
            import uuid

            from benchmarks.measure import fresh_database

            name = f"soak_{uuid.uuid4().hex[:12]}"
            admin = server.replace("postgresql+psycopg2://", "postgresql://", 1)
            url = fresh_database(admin, name)
            self.external_db = (admin, name)
            self.home.mkdir(parents=True)
            self.env = {**home_env(self.home), "DATABASE_URL": url}
            self.say(f"home {self.home}, database {name} on DATABASE_URL's server")
        else:
            fresh_home(self.home)
            self.env = home_env(self.home)
            self.say(f"home {self.home}, embedded Postgres")
        for key in ("RESULT_STORAGE_MODE", "RESULT_WORKERS"):
            self.env.pop(key, None)

    def drop_home(self) -> list[str]:
        """Stop the home's server (or drop its database), remove it; the processes still there."""
        from benchmarks.measure import stop_home

        if self.home is None:
            return []
        if self.external_db:
            import psycopg2
            from psycopg2 import sql

            admin, name = self.external_db
            try:
                conn = psycopg2.connect(admin)
                try:
                    conn.autocommit = True
                    with conn.cursor() as cur:
                        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                finally:
                    conn.close()
            except Exception as exc:  # noqa: BLE001 - reported; the rest still stops
                self.say(f"could not drop database {name}: {one_line(exc)}")
        stop_home(self.home)
        left = []
        for _ in range(20):  # the server's processes take a moment to go
            left = processes_of(self.home)
            if not left:
                break
            time.sleep(0.5)
        shutil.rmtree(self.base, ignore_errors=True)
        return left

    # --- the CLI loops ---

    def cli(self, *argv: str) -> list[str]:
        return [sys.executable, "-m", "result_assets.cli", *argv]

    def run_cli(self, name: str, argv: list[str]) -> tuple[int, str]:
        log = self.logs / f"{name}.log"
        proc = self.children.start(argv, self.env, log)
        rc = self.children.wait(proc, RUN_TIMEOUT)
        return rc, log.read_text(errors="replace")

    def loop(self, body, deadline: float) -> None:
        """body(deadline) on a thread; an exception that ends it is a failure of the soak's own."""
        try:
            body(deadline)
        except Exception as exc:  # noqa: BLE001 - judged at the end
            import traceback

            traceback.print_exc(file=self.err)
            with self.lock:
                self.loop_errors.append(f"{body.__name__}: {one_line(exc)}")

    def migrate_loop(self, deadline: float) -> None:
        n = 0
        while not self.stop_event.is_set() and time.time() < deadline:
            force = ["--force"] if n else []
            started = time.perf_counter()
            rc, text = self.run_cli(f"migrate_{n:03d}", self.cli("migrate", "--source-dir", str(self.corpus),
                                                               "--json", *force))
            run = {"rc": rc, "force": bool(force), "seconds": round(time.perf_counter() - started, 2)}
            if rc != 0:
                run["error"] = failure_line(text)
            else:
                from benchmarks.measure import last_json

                report = last_json(text)
                run.update({k: report.get(k) for k in ("migrated", "skipped", "quarantined", "failed_runs")})
            with self.lock:
                self.migrate_runs.append(run)
            n += 1

    def maintain_once(self, name: str) -> dict:
        started = time.perf_counter()
        rc, text = self.run_cli(name, self.cli("maintain", "--retention-hours", "0", "--json"))
        run = {"rc": rc, "seconds": round(time.perf_counter() - started, 2)}
        if rc != 0:
            run["error"] = failure_line(text)
            run["busy"] = BUSY in text
        return run

    def maintain_loop(self, deadline: float) -> None:
        n = 0
        while not self.stop_event.is_set() and time.time() < deadline:
            run = self.maintain_once(f"maintain_{n:03d}")
            with self.lock:
                self.maintain_runs.append(run)
            n += 1
            self.stop_event.wait(1.0)

    # --- the whole run ---

    def run(self) -> dict:
        from benchmarks.corpus import generate_corpus

        self.workdir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.logs, ignore_errors=True)
        self.logs.mkdir(parents=True)
        shutil.rmtree(self.corpus, ignore_errors=True)
        legacy = generate_corpus(self.corpus, self.p.legacy_tasks, seed=self.p.seed)
        self.say(f"legacy corpus: {len(legacy)} tasks in {self.corpus}")
        result: dict = {"params": asdict(self.p)}
        workers: list[subprocess.Popen] = []
        threads: list[threading.Thread] = []
        try:
            self.make_home()
            result["home"] = str(self.home)
            result["database"] = "DATABASE_URL" if self.external_db else "embedded"
            started = time.time()
            deadline = started + self.p.seconds
            for k in range(self.p.processes):
                config = {"worker": k, "seed": self.p.seed, "deadline": deadline,
                          "out": str(self.logs / f"worker_{k}.json"), "status": str(self.logs / f"status_{k}.json")}
                argv = [sys.executable, "-m", "benchmarks.soak", "worker", json.dumps(config)]
                workers.append(self.children.start(argv, self.env, self.logs / f"worker_{k}.log"))
            for body in (self.migrate_loop, self.maintain_loop):
                thread = threading.Thread(target=self.loop, args=(body, deadline), daemon=True)
                thread.start()
                threads.append(thread)
            self.say(f"{self.p.processes} application processes, migrate and maintain loops: {self.p.seconds}s")
            self.watch(workers, started, deadline)
            self.say("time is up: waiting for the runs under way")
            for thread in threads:
                thread.join()
            result["ran_seconds"] = round(time.time() - started, 1)
            self.say("final maintain")
            final = {}
            for attempt in range(10):
                final = self.maintain_once(f"maintain_final_{attempt}")
                if not final.get("busy"):
                    break
                time.sleep(3)
            result["final_maintain"] = final
            result["workers"] = self.collect(workers)
            self.say("verifying")
            result["verify"] = self.verify(result["workers"], legacy)
        finally:  # also after an interruption: nothing started here outlives the soak
            self.stop_event.set()
            self.children.stop_all()  # a no-op after a normal end: every run has been waited for
            for thread in threads:
                thread.join(RUN_TIMEOUT + 60)
            self.children.stop_all()  # one a loop had started meanwhile
            result["left_running"] = self.drop_home()
        result["migrate_runs"] = self.migrate_runs
        result["maintain_runs"] = self.maintain_runs
        result["loop_errors"] = self.loop_errors
        return result

    def watch(self, workers: list[subprocess.Popen], started: float, deadline: float) -> None:
        """Until every worker has exited (stopped if it overruns the end); a progress line every 30 s."""
        next_progress = started + PROGRESS_EVERY
        while any(w.poll() is None for w in workers):
            now = time.time()
            if now > deadline + WORKER_GRACE:
                self.say(f"workers still running {WORKER_GRACE:.0f}s after the end: stopping them")
                for w in workers:
                    if w.poll() is None:
                        self.children.stop(w)
                break
            if now >= next_progress:
                next_progress += PROGRESS_EVERY
                self.say(self.progress(now - started))
            time.sleep(0.5)
        for w in workers:
            self.children.wait(w, 30)

    def progress(self, elapsed: float) -> str:
        totals = Counter()
        for path in self.logs.glob("status_*.json"):
            try:
                totals.update(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        with self.lock:
            migrates, maintains = list(self.migrate_runs), list(self.maintain_runs)
        busy = sum(1 for r in maintains if r.get("busy"))
        return (f"{elapsed:.0f}s of {self.p.seconds}s: {totals['saves']} saves ({totals['failed_saves']} failed), "
                f"{totals['reads']} reads ({totals['failed_reads']} failed), "
                f"migrate runs {len(migrates)} ({sum(1 for r in migrates if r['rc'])} failed), "
                f"maintain runs {len(maintains)} ({busy} busy, "
                f"{sum(1 for r in maintains if r['rc'] and not r.get('busy'))} failed)")

    def collect(self, workers: list[subprocess.Popen]) -> list[dict]:
        out = []
        for k, proc in enumerate(workers):
            path = self.logs / f"worker_{k}.json"
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                state = {"worker": k, "crash": f"no figures (exit {proc.returncode}); see {self.logs}/worker_{k}.log",
                         "saves": 0, "failed_saves": 0, "reads": 0, "failed_reads": 0, "ok": {}}
            state["returncode"] = proc.returncode
            if proc.returncode and not state.get("crash"):
                state["crash"] = f"exit {proc.returncode}; see {self.logs}/worker_{k}.log"
            out.append(state)
        return out

    # --- the end state ---

    def verify(self, workers: list[dict], legacy: dict) -> dict:
        """Read every task back through a fresh manager; count each task's rows in a scan."""
        saved = verify_env(self.env)
        try:
            return self._verify(workers, legacy)
        except Exception as exc:  # noqa: BLE001 - reported as such; the soak's figures still print
            import traceback

            traceback.print_exc(file=self.err)
            return {"error": one_line(exc)}
        finally:
            restore_env(saved)
            from result_assets.store import postgres

            postgres._embedded_server_url.cache_clear()  # noqa: SLF001 - this process is done with the home
            postgres._ensure_database.cache_clear()  # noqa: SLF001

    def _verify(self, workers: list[dict], legacy: dict) -> dict:
        from result_assets.app.manager import ResultManager
        from result_assets.app.query import ResultStore
        from result_assets.store.delta_tables import CURVES, SIGNALS

        docs = Documents(self.p.seed)
        expected: dict[str, tuple[int, int]] = {}  # task read back right -> (signals, curve points) of it
        errors: dict = {}
        out = {"tasks": 0, "lost": 0, "missing": 0, "different": 0, "failed_save_kept": 0,
               "shown_twice": 0, "short_in_scan": 0, "foreign_in_scan": 0, "lost_tasks": [], "twice_tasks": [],
               "short_tasks": [], "migrated": None}
        manager = ResultManager(mode="postgres-only", record_in_dagster=False)
        store = ResultStore.from_env()
        try:
            signal_counts = row_counts(store.signals(columns=["task_id"]))
            curve_counts = row_counts(store.curves(columns=["task_id"]))
            app_tasks: list[tuple[str, int, list[int]]] = []
            for w in workers:
                failed_after = w.get("failed_after") or {}
                for task, version in (w.get("ok") or {}).items():
                    app_tasks.append((task, version, failed_after.get(task, [])))
                for task in w.get("never_ok") or []:
                    app_tasks.append((task, None, failed_after.get(task, [])))
            out["tasks"] = sum(1 for _, v, _ in app_tasks if v is not None)
            for start in range(0, len(app_tasks), 200):
                chunk = app_tasks[start:start + 200]
                got = manager.get_results([t for t, _, _ in chunk])
                for task, version, failed in chunk:
                    document = got.get(task)
                    if version is None:  # every save of it failed: it must not be there
                        if document is not None:
                            out["failed_save_kept"] += 1
                            note_error(errors, f"task {task!r}: every save failed, yet it is stored "
                                               f"(marked {(document.get('metadata') or {}).get('soak')!r})")
                        continue
                    if document is None:
                        out["missing"] += 1
                        out["lost_tasks"].append(task)
                        note_error(errors, f"task {task!r} (saved as {task}#{version}) is missing")
                        continue
                    wrong = difference(docs.make(task, version), document)
                    if wrong:
                        out["different"] += 1
                        out["lost_tasks"].append(task)
                        mark = (document.get("metadata") or {}).get("soak")
                        if any(mark == f"{task}#{v}" for v in failed):
                            out["failed_save_kept"] += 1
                        note_error(errors, f"task {task!r} (saved as {task}#{version}) differs: marked {mark!r}; "
                                           f"{wrong}")
                        continue
                    expected[task] = docs.counts(task, version)  # read back right: now its rows in a scan
            out["lost"] = out["missing"] + out["different"]
            self._count_rows(expected, signal_counts, curve_counts, out, errors)
            out["migrated"] = self._verify_legacy(manager, legacy, signal_counts, curve_counts, errors)
            known = {task for task, _, _ in app_tasks} | set(legacy)
            for task in sorted((set(signal_counts) | set(curve_counts)) - known):
                out["foreign_in_scan"] += 1
                note_error(errors, f"rows of task {task!r}, which nobody saved or migrated, are in a scan: "
                                   f"{signal_counts.get(task, 0)} signal rows, {curve_counts.get(task, 0)} curve rows")
            out["scan"] = {SIGNALS: sum(signal_counts.values()), CURVES: sum(curve_counts.values())}
        finally:
            manager.close()
            store.close()
        for key in ("lost_tasks", "twice_tasks", "short_tasks"):
            out[key] = out[key][:50]
        out["errors"] = errors
        return out

    @staticmethod
    def _count_rows(expected: dict, signal_counts: Counter, curve_counts: Counter, out: dict, errors: dict,
                    prefix: str = "") -> None:
        for task, counts in expected.items():
            have = (signal_counts.get(task, 0), curve_counts.get(task, 0))
            if have == tuple(counts):
                continue
            if any(h > c for h, c in zip(have, counts)):
                out[prefix + "shown_twice"] += 1
                out[prefix + "twice_tasks"].append(task)
                note_error(errors, f"task {task!r}: {have[0]} signal rows, {have[1]} curve rows in a scan; "
                                   f"its document has {counts[0]} and {counts[1]}")
            else:
                out[prefix + "short_in_scan"] += 1
                out[prefix + "short_tasks"].append(task)
                note_error(errors, f"task {task!r}: only {have[0]} signal rows, {have[1]} curve rows in a scan; "
                                   f"its document has {counts[0]} and {counts[1]}")

    def _verify_legacy(self, manager, legacy: dict, signal_counts, curve_counts, errors) -> dict | None:
        """The corpus's valid tasks, once a migrate run succeeded: readable, exactly what json.loads
        of their file gives, rows once."""
        from result_assets.legacy import parse_document

        if not any(r["rc"] == 0 for r in self.migrate_runs):
            return None
        valid = sorted(t for t, e in legacy.items() if e["valid"])
        out = {"tasks": len(valid), "lost": 0, "shown_twice": 0, "short_in_scan": 0,
               "lost_tasks": [], "twice_tasks": [], "short_tasks": []}
        got = manager.get_results(valid)
        expected = {}
        for task in valid:
            original = parse_document((self.corpus / task / "result.json").read_bytes())
            document = got.get(task)
            wrong = "missing" if document is None else difference(original, document)
            if wrong:
                out["lost"] += 1
                out["lost_tasks"].append(task)
                note_error(errors, f"migrated task {task!r} is "
                                   + (wrong if document is None else f"different: {wrong}"))
                continue
            row = manager.stores.catalog.task(task)
            expected[task] = (legacy[task]["signals"], row["n_curve_points"] if row else 0)
        self._count_rows(expected, signal_counts, curve_counts, out, errors)
        return out


def row_counts(table) -> Counter:
    import pyarrow.compute as pc

    counts = pc.value_counts(table.column("task_id"))
    return Counter({v["values"].as_py(): v["counts"].as_py() for v in counts})


def verify_env(env: dict) -> dict:
    """Point this process at the soak's home (as its children are); what it replaced."""
    from benchmarks.app_life import HOME_VARS

    saved = {k: os.environ.get(k) for k in HOME_VARS}
    for key in HOME_VARS:
        os.environ.pop(key, None)
    for key in ("RESULT_ASSETS_HOME", "DATABASE_URL"):
        if env.get(key):
            os.environ[key] = env[key]
    return saved


def restore_env(saved: dict) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def failure_line(text: str) -> str:
    """The line of a CLI's output that says why it failed."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("result-assets:"):
            return line[:400]
    return (lines[-1] if lines else "no output")[:400]


# --- the report --------------------------------------------------------------------------------

def pct(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def summarize(result: dict) -> dict:
    workers = result.get("workers") or []
    verify = result.get("verify") or {}
    save_ms = [x for w in workers for x in w.get("save_ms", [])]
    read_ms = [x for w in workers for x in w.get("read_ms", [])]
    save_errors, read_errors = {}, {}
    for w in workers:
        merge_errors(save_errors, w.get("save_errors") or {})
        merge_errors(read_errors, w.get("read_errors") or {})
    migrated = verify.get("migrated") or {}
    s = {
        "processes": result["params"]["processes"],
        "seconds": result["params"]["seconds"],
        "ran_seconds": result.get("ran_seconds"),
        "saves": sum(w.get("saves", 0) for w in workers),
        "new_tasks": sum(w.get("new", 0) for w in workers),
        "resaves": sum(w.get("resaves", 0) for w in workers),
        "failed_saves": sum(w.get("failed_saves", 0) for w in workers),
        "reads": sum(w.get("reads", 0) for w in workers),
        "failed_reads": sum(w.get("failed_reads", 0) for w in workers),
        "read_mismatches": sum(w.get("read_mismatches", 0) for w in workers),
        "tasks_checked": verify.get("tasks", 0),
        "lost": verify.get("lost", 0),
        "failed_save_kept": verify.get("failed_save_kept", 0),
        "shown_twice": verify.get("shown_twice", 0),
        "short_in_scan": verify.get("short_in_scan", 0),
        "foreign_in_scan": verify.get("foreign_in_scan", 0),
        "cross_reads": sum(w.get("cross_reads", 0) for w in workers),
        "loop_errors": result.get("loop_errors", []),
        "migrated_checked": migrated.get("tasks"),
        "migrated_lost": migrated.get("lost", 0),
        "migrated_shown_twice": migrated.get("shown_twice", 0),
        "migrated_short_in_scan": migrated.get("short_in_scan", 0),
        "save_ms": {"p50": pct(save_ms, 0.5), "p99": pct(save_ms, 0.99)},
        "read_ms": {"p50": pct(read_ms, 0.5), "p99": pct(read_ms, 0.99)},
        "migrate_rc": [r["rc"] for r in result.get("migrate_runs", [])],
        "maintain_rc": ["busy" if r.get("busy") else r["rc"] for r in result.get("maintain_runs", [])],
        "final_maintain_rc": (result.get("final_maintain") or {}).get("rc"),
        "worker_crashes": [f"worker {w.get('worker')}: {w['crash']}" for w in workers if w.get("crash")],
        "verify_error": verify.get("error"),
        "left_running": result.get("left_running", []),
        "errors": {"saves": save_errors, "reads": read_errors, "end state": verify.get("errors") or {},
                   "migrate": runs_errors(result.get("migrate_runs", [])),
                   "maintain": runs_errors([r for r in result.get("maintain_runs", []) if not r.get("busy")]
                                           + ([result["final_maintain"]] if result.get("final_maintain") else []))},
    }
    runs = {"migrate": s["migrate_rc"], "maintain": s["maintain_rc"]}
    problems = {"failed saves": s["failed_saves"], "failed reads": s["failed_reads"], "lost": s["lost"] + s["migrated_lost"],
                "shown twice": s["shown_twice"] + s["migrated_shown_twice"],
                "short in scan": s["short_in_scan"] + s["migrated_short_in_scan"],
                "foreign rows in scan": s["foreign_in_scan"],
                "failed migrate runs": sum(1 for rc in runs["migrate"] if rc != 0),
                "failed maintain runs": sum(1 for rc in runs["maintain"] if rc not in (0, "busy"))
                + int(s["final_maintain_rc"] != 0),
                "loops that died": len(s["loop_errors"]),
                "worker crashes": len(s["worker_crashes"]), "verification errors": int(bool(s["verify_error"])),
                "processes left running": len(s["left_running"])}
    # A run with nothing to judge passes nothing: each kind of work must have happened.
    for kind, done in (("saves", s["saves"]), ("re-saves", s["resaves"]), ("reads", s["reads"]),
                       ("tasks checked", s["tasks_checked"]),
                       ("successful migrate runs", sum(1 for rc in runs["migrate"] if rc == 0)),
                       ("successful maintain runs", sum(1 for rc in runs["maintain"] if rc == 0))):
        if not done:
            problems[f"no {kind}"] = 1
    s["problems"] = {k: v for k, v in problems.items() if v}
    s["exit_code"] = 1 if s["problems"] else 0
    return s


def runs_errors(runs: list[dict]) -> dict:
    errors: dict = {}
    for r in runs:
        if r.get("rc"):
            note_error(errors, f"exit {r['rc']}: {r.get('error', '')}")
    return errors


def codes(values: list) -> str:
    if not values:
        return "0"
    counted = Counter(values)
    order = sorted(counted, key=lambda v: (isinstance(v, str), str(v)))
    return f"{len(values)} (" + ", ".join(f"{'exit ' + str(v) if not isinstance(v, str) else v}: {counted[v]}"
                                          for v in order) + ")"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(s: dict) -> list[str]:
    checked = s["tasks_checked"]
    migrated = "not checked (no migrate run succeeded)" if s["migrated_checked"] is None else \
        f"{s['migrated_lost']} of {s['migrated_checked']}"
    lost_note = f"{s['lost']} of {checked} tasks saved (missing or not their last save); migrated: {migrated}"
    if s["failed_save_kept"]:
        lost_note += f"; {s['failed_save_kept']} hold the content of a save that failed"
    if s["verify_error"]:
        lost_note = f"not verified: {s['verify_error']}"
    ran = f" (ran {s['ran_seconds']:.0f})" if s["ran_seconds"] is not None else ""
    rows = [
        ("processes", f"{s['processes']}"),
        ("seconds", f"{s['seconds']}{ran}"),
        ("saves", f"{s['saves']} ({s['new_tasks']} new tasks, {s['resaves']} re-saves)"),
        ("failed saves", f"{s['failed_saves']}"),
        ("reads", f"{s['reads']}"),
        ("failed reads", f"{s['failed_reads']} ({s['read_mismatches']} not the last save; "
                         f"{s['cross_reads']} reads of another process's tasks)"),
        ("lost", lost_note),
        ("shown twice", f"{s['shown_twice']} (migrated: {s['migrated_shown_twice']}); "
                        f"short in scan: {s['short_in_scan']} (migrated: {s['migrated_short_in_scan']}); "
                        f"foreign: {s['foreign_in_scan']}"),
        ("save p50 / p99 ms", f"{ms(s['save_ms']['p50'])} / {ms(s['save_ms']['p99'])}"),
        ("read p50 / p99 ms", f"{ms(s['read_ms']['p50'])} / {ms(s['read_ms']['p99'])}"),
        ("migrate runs", codes(s["migrate_rc"])),
        ("maintain runs", codes(s["maintain_rc"]) + f"; final: exit {s['final_maintain_rc']}"),
    ]
    return ["| figure | value |", "|---|---|"] + [f"| {name} | {value} |" for name, value in rows]


def error_lines(s: dict) -> list[str]:
    lines = []
    for crash in s["worker_crashes"]:
        lines.append(f"- crashed: {crash}")
    for died in s["loop_errors"]:
        lines.append(f"- loop died: {died}")
    for section, errors in s["errors"].items():
        for entry in sorted(errors.values(), key=lambda e: -e["count"]):
            lines.append(f"- {section} ({entry['count']}x): {entry['first']}")
    for proc in s["left_running"]:
        lines.append(f"- left running: {proc}")
    return (["", "First error of each kind:"] + lines) if lines else []


def run_soak(workdir: Path, params: SoakParams, out=None, err=None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    workdir = Path(workdir).absolute()
    result = Soak(workdir, params, err).run()
    s = summarize(result)
    lines = table(s) + error_lines(s)
    verdict = ("FAIL: " + ", ".join(f"{k} {v}" for k, v in s["problems"].items())) if s["problems"] else "PASS"
    lines += ["", f"{verdict} (exit {s['exit_code']}); figures in {workdir / 'soak.json'}, logs in "
                  f"{workdir / 'soak_logs'}"]
    out.write("\n".join(lines) + "\n")
    out.flush()
    report = {**s, "table": table(s), "runs": {"migrate": result.get("migrate_runs"),
                                              "maintain": result.get("maintain_runs"),
                                              "final_maintain": result.get("final_maintain")},
              "verify": {k: v for k, v in (result.get("verify") or {}).items() if k != "errors"},
              "home": result.get("home"), "database": result.get("database"),
              "workers": [{k: v for k, v in w.items() if k not in ("save_ms", "read_ms", "ok", "failed_after",
                                                                    "never_ok", "versions")}
                          for w in result.get("workers") or []]}
    (workdir / "soak.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    return s["exit_code"]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "worker":
        sys.exit(worker_main(json.loads(sys.argv[2])))
    print("usage: python -m benchmarks.soak worker '<json config>' (started by `result-assets bench --soak`)",
          file=sys.stderr)
    sys.exit(2)
