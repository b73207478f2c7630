"""Hostile task ids never reach SQL unparameterized or a path outside the stores; links
out of the source dir are refused; DATABASE_URL's password never shows; and the
documented read-only role can read and cannot write.

The password tests run their own PostgreSQL on 127.0.0.1 with password (SCRAM)
authentication, so a leaked or missing password would actually matter.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

import psycopg2
import pytest

from result_assets.legacy import compare_documents, parse_document
from result_assets.store.backups import BackupStore, UnsafeTaskId
from result_assets.store.stores import Stores
from result_assets_tests.faults.helpers import (
    PG_BIN_USER,
    audit,
    home_settings,
    pg_bin,
    pg_ctl,
    run_cli,
    stop_home_server,
    stores_for,
)

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "tasks" / "bt_20250900_74cff6" / "result.json"
READER_SQL = Path(__file__).resolve().parents[2] / "result_assets" / "sql" / "reader_role.sql"

# Directory names can hold anything but "/" and NUL.
HOSTILE_IDS = [
    "it's", 'say "hi"', "x'; DROP TABLE tasks; --", "x' OR '1'='1", "50%_done", "%00", "back\\slash",
    "line\nbreak", "tab\there", "\x01ctl\x1f", "\x7fdel", "..dots..", "-rf", "~home", "$(touch pwned)",
    "`id`", "*", "[a-z]", "a,b", " lead space", "trailing space ", "名前 🚀", "\u202eevil", "e\u0301", "NUL\u2400",
]
NORMAL_ID = "bt_20250900_74cff6"
READER_PASSWORD = "reader-pw-4'x"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """The sample task under every hostile id, plus links out of the source dir, migrated by the CLI."""
    root = tmp_path_factory.mktemp("hostile")
    source, home, outside = root / "tasks", root / "home", root / "outside"
    for task_id in HOSTILE_IDS + [NORMAL_ID]:
        (source / task_id).mkdir(parents=True)
        shutil.copy(SAMPLE, source / task_id / "result.json")
    outside.mkdir()
    (outside / "result.json").write_bytes(b'{"strategy": "secret", "symbols": []}')
    (source / "link_out").symlink_to(outside, target_is_directory=True)  # a task dir that is a link out
    (source / "file_link_out").mkdir()
    (source / "file_link_out" / "result.json").symlink_to(outside / "result.json")  # a file that is a link out
    (source / "link_in").symlink_to(source / NORMAL_ID, target_is_directory=True)  # a link inside: fine
    home.mkdir()
    first = run_cli(home, "migrate", "--source-dir", str(source), "--json")
    # Forcing the id that would match every row, if it reached a predicate unquoted.
    forced = run_cli(home, "migrate", "--source-dir", str(source), "--force", "--task", "x' OR '1'='1", "--json")
    yield source, home, root, first, forced
    stop_home_server(home)


def test_hostile_ids_migrate_and_read_back(hostile):
    source, home, _, first, forced = hostile
    assert first.returncode == 0, first.stderr[-2000:]
    assert forced.returncode == 0, forced.stderr[-2000:]
    state = audit(stores_for(home), source)
    assert state.problems == [] and state.at_rest == []
    assert set(HOSTILE_IDS + [NORMAL_ID, "link_in"]) == set(state.migrated)
    original = parse_document(SAMPLE.read_bytes())
    signals = state.catalog[NORMAL_ID]["n_signals"]
    for task_id in HOSTILE_IDS:  # every id has exactly its own rows: no predicate matched another task
        assert state.delta_rows["signals"][task_id] == signals, repr(task_id)
    stores = stores_for(home)
    from result_assets.store.reader import read_result

    for task_id in HOSTILE_IDS:
        assert compare_documents(original, read_result(task_id, stores)) == [], repr(task_id)
    assert stores.catalog.task("x' OR '1'='1")["version"] == 2  # the force replaced just that task
    assert stores.catalog.task(NORMAL_ID)["version"] == 1


def test_hostile_ids_stay_inside_the_store_and_backup_roots(hostile, tmp_path):
    source, home, root, _, _ = hostile
    for folder in (home / "store", home / "backups"):
        real = folder.resolve()
        for path in folder.rglob("*"):
            assert real in path.resolve().parents, path
    assert sorted(p.name for p in root.iterdir()) == ["home", "outside", "tasks"]  # nothing written beside them
    assert not Path("pwned").exists() and not (root / "pwned").exists()
    out = tmp_path / "export"
    exported = run_cli(home, "export", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    names = {p.name for p in out.iterdir()}
    assert names == {f"{quote(t, safe='')}.json" for t in HOSTILE_IDS + [NORMAL_ID, "link_in"]}


def test_backup_paths_refuse_ids_that_leave_the_root(tmp_path):
    backups = BackupStore(tmp_path)
    for bad in ["..", ".", "", "../etc", "a/b", "/abs", "nul\x00byte"]:
        with pytest.raises(UnsafeTaskId):
            backups.path(bad)
    assert backups.path("..dots..").parent.parent == tmp_path


def test_ids_on_the_command_line_that_are_not_tasks_get_one_line(hostile):
    source, home, _, _, _ = hostile
    result = run_cli(home, "migrate", "--source-dir", str(source), "--task", "../outside")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"result-assets: error: no such task in {source}: ../outside"]


def test_links_out_of_the_source_dir_are_refused(hostile):
    source, home, root, _, _ = hostile
    stores = stores_for(home)
    for task_id in ("link_out", "file_link_out"):
        row = stores.catalog.task(task_id)
        assert row["status"] == "quarantined", task_id
        assert row["reason"].startswith(f"refused: {task_id}/result.json is a link to ") and \
            "outside the source directory" in row["reason"], row["reason"]
        assert not stores.backups.path(task_id).exists()  # the outside file was never read or copied
    assert b"secret" not in b"".join(p.read_bytes() for p in (home / "backups").rglob("*") if p.is_file())


# --- passwords and the read-only role, on a server with password authentication ---

PASSWORD = "pw-Zq7'x;@/?#%:s3cr3t"  # with characters that need quoting in a URL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def password_server():
    """A PostgreSQL on 127.0.0.1 that checks passwords (SCRAM); trust only on its private socket."""
    top = Path(tempfile.mkdtemp(prefix="ra_pwserver_"))
    top.chmod(0o755)  # the server user must reach its data directory
    pgdata = top / "data"
    pgdata.mkdir()
    if PG_BIN_USER:
        shutil.chown(pgdata, PG_BIN_USER, PG_BIN_USER)
    port = _free_port()
    subprocess.run([str(pg_bin() / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth-local=trust",
                    "--auth-host=scram-sha-256", "--encoding=utf8"], user=PG_BIN_USER, check=True,
                   capture_output=True, timeout=120)
    pg_ctl(pgdata, "start", "-w", "-l", str(pgdata / "log"),
           "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {pgdata}")
    admin = dict(host=str(pgdata), port=port, user="postgres")
    conn = psycopg2.connect(dbname="postgres", **admin)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE ROLE result_writer LOGIN CREATEROLE PASSWORD %s", (PASSWORD,))
        cur.execute("CREATE DATABASE results OWNER result_writer")
    conn.close()
    url = f"postgresql://result_writer:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/results"
    yield {"url": url, "port": port, "admin": admin, "pgdata": pgdata}
    pg_ctl(pgdata, "stop", "-m", "fast", "-w")
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def migrated_with_password(password_server, tmp_path_factory):
    home = tmp_path_factory.mktemp("pw_home")
    source = tmp_path_factory.mktemp("pw_src")
    for task_id in (NORMAL_ID, "bad_truncated"):
        shutil.copytree(SAMPLE.parent.parent / task_id, source / task_id)
    result = run_cli(home, "migrate", "--source-dir", str(source), DATABASE_URL=password_server["url"])
    return home, result


def _leaks(text: str) -> bool:
    return PASSWORD in text or quote(PASSWORD, safe="") in text or "s3cr3t" in text


def test_password_never_in_output_files_or_dagster_metadata(password_server, migrated_with_password):
    home, result = migrated_with_password
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Migration report" in result.stdout
    assert not _leaks(result.stdout + result.stderr)
    for path in home.rglob("*"):  # dagster.yaml, logs, compute logs, storage, backups
        if path.is_file():
            assert not _leaks(path.read_bytes().decode("utf-8", "replace")), path
    conn = psycopg2.connect(dbname="results", **password_server["admin"])
    try:
        with conn.cursor() as cur:  # every text the Dagster instance stored: events, runs, metadata
            cur.execute("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
                        "AND data_type IN ('text', 'character varying', 'jsonb', 'json')")
            columns = cur.fetchall()
            assert len(columns) > 10
            for table, column in columns:
                cur.execute(f'SELECT count(*) FROM "{table}" WHERE "{column}"::text LIKE %s', ("%s3cr3t%",))
                assert cur.fetchone()[0] == 0, (table, column)
    finally:
        conn.close()


@pytest.mark.parametrize("case", ["wrong password", "unreachable", "bad port"])
def test_password_never_in_connection_errors(password_server, tmp_path, case):
    url = password_server["url"]
    bad = {"wrong password": url.replace("s3cr3t", "s3cr3tX"),
           "unreachable": url.replace(str(password_server["port"]), str(_free_port())),
           "bad port": url.replace(str(password_server["port"]), "port")}[case]
    result = run_cli(tmp_path, "status", DATABASE_URL=bad, timeout=120)
    print(f"\n{case}: exit {result.returncode}, last line: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode != 0
    assert not _leaks(result.stdout + result.stderr)


def test_unreachable_database_is_one_line(password_server, tmp_path):
    url = password_server["url"].replace(str(password_server["port"]), str(_free_port()))
    result = run_cli(tmp_path, "status", DATABASE_URL=url, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("result-assets: error:"), result.stderr[-2000:]


def test_reader_role_can_read_and_cannot_write(password_server, migrated_with_password):
    home, result = migrated_with_password
    assert result.returncode == 0
    reader_password = READER_PASSWORD
    psql = subprocess.run(
        ["psql", password_server["url"], "-X", "-q", "-v", "reader=result_reader",
         "-v", f"reader_password={reader_password}", "-f", str(READER_SQL)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PGCONNECT_TIMEOUT": "10"})
    assert psql.returncode == 0, psql.stderr
    again = subprocess.run(["psql", password_server["url"], "-X", "-q", "-v", "reader=result_reader",
                            "-v", "reader_password=ignored", "-f", str(READER_SQL)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr  # idempotent
    reader = psycopg2.connect(host="127.0.0.1", port=password_server["port"], dbname="results",
                              user="result_reader", password=reader_password)
    try:
        with reader.cursor() as cur:
            cur.execute("SELECT task_id, status FROM tasks ORDER BY task_id")
            assert cur.fetchall() == [("bad_truncated", "quarantined"), (NORMAL_ID, "migrated")]
            cur.execute("SELECT count(*) FROM task_symbols")
            assert cur.fetchone()[0] >= 1
        reader.rollback()
        for statement in ["INSERT INTO tasks (task_id, partition_key, status, source_sha256, source_bytes) "
                          "VALUES ('x', 'x', 'migrated', 'x', 1)",
                          f"UPDATE tasks SET status = 'quarantined' WHERE task_id = '{NORMAL_ID}'",
                          "DELETE FROM task_symbols", "TRUNCATE tasks_history",
                          "CREATE TABLE mine (x int)", "SET default_transaction_read_only = off; "
                          "INSERT INTO task_sources VALUES ('x', 'x', 'x')"]:
            with reader.cursor() as cur, pytest.raises(psycopg2.Error) as caught:
                cur.execute(statement)
            assert caught.value.pgcode in ("42501", "25006"), (statement, caught.value.pgcode)  # denied / read-only
            reader.rollback()
    finally:
        reader.close()
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(host="127.0.0.1", port=password_server["port"], dbname="results",
                         user="result_reader", password="wrong")
    stores = stores_for(home, database_url=password_server["url"])
    assert stores.catalog.task(NORMAL_ID)["status"] == "migrated"  # nothing changed


def test_reader_role_reads_through_result_store(password_server, migrated_with_password):
    """ResultStore and read_result need no DDL: the documented read-only role can use them."""
    from result_assets import ResultStore
    from result_assets.store.cached_tables import QueryStores
    from result_assets.store.reader import read_result

    home, result = migrated_with_password
    assert result.returncode == 0
    psql = subprocess.run(["psql", password_server["url"], "-X", "-q", "-v", "reader=result_reader",
                           "-v", f"reader_password={READER_PASSWORD}", "-f", str(READER_SQL)],
                          capture_output=True, text=True, timeout=60)
    assert psql.returncode == 0, psql.stderr
    url = f"postgresql://result_reader:{quote(READER_PASSWORD, safe='')}@127.0.0.1:{password_server['port']}/results"
    settings = home_settings(home, database_url=url)
    store = ResultStore(QueryStores(settings, readonly=True))
    try:
        assert [r["task_id"] for r in store.find_tasks(limit=10)] == [NORMAL_ID]
        original = parse_document((SAMPLE.parent.parent / NORMAL_ID / "result.json").read_bytes())
        assert compare_documents(original, store.read_result(NORMAL_ID)) == []
        assert set(store.read_results([NORMAL_ID, "bad_truncated"])) == {NORMAL_ID}
        assert store.signals(task_ids=[NORMAL_ID]).num_rows > 0
    finally:
        store.close()
    assert compare_documents(original, read_result(NORMAL_ID, Stores(settings, readonly=True))) == []
