"""The CLI end to end on the sample corpus: real Dagster instance, real Postgres, real Delta."""
from __future__ import annotations

import hashlib
import re
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from dagster import AssetCheckKey, AssetKey

from result_assets import read_result
from result_assets.cli import main
from result_assets.legacy import compare_documents, parse_document, partition_key_for
from result_assets_tests.app.helpers import SAMPLES


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def migrated(project_home, sample_source):
    """The first migration of the samples, as a user would run it."""
    code = main(["migrate", "--source-dir", str(sample_source), "--batch-size", "50", "--json"])
    assert code == 0
    return project_home


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def valid_ids(expect):
    return sorted(t for t, e in expect.items() if e["valid"])


def test_report_counts(migrated, sample_source, sample_expectations, capsys):
    code, out, _ = run_cli(capsys, "status", "--json")
    assert code == 0
    rows = {r["task_id"]: r for r in json.loads(out)["tasks"]}
    assert set(rows) == set(sample_expectations)
    for task_id, expect in sample_expectations.items():
        if expect["valid"]:
            assert rows[task_id]["status"] == "migrated", task_id
            assert rows[task_id]["reason"] is None
        else:
            assert rows[task_id]["status"] == "quarantined", task_id
            assert rows[task_id]["reason"], task_id


def test_stored_bytes_count_everything_needed_to_rebuild(migrated, sample_source, sample_expectations, capsys):
    """Delta data files of the current snapshot, the Delta logs, and each migrated task's whole
    catalog row (its skeleton text, what writes its file's exact bytes again, and the query
    columns) with its symbols' rows: everything the store keeps of the tasks."""
    from result_assets.migration.summary import store_report
    from result_assets.store.stores import Stores

    code, out, _ = run_cli(capsys, "migrate", "--source-dir", str(sample_source), "--json")
    report = json.loads(out)
    stores = Stores.from_env()
    data = sum(stores.delta.total_bytes(t)[0] for t in ("signals", "curves"))
    logs = sum(p.stat().st_size for t in ("signals", "curves")
               for p in (Path(stores.settings.store_root) / t / "_delta_log").rglob("*") if p.is_file())
    conn = stores.catalog.connect()
    with conn, conn.cursor() as cur:
        cur.execute("SELECT sum(pg_column_size(skeleton) + coalesce(pg_column_size(spelling), 0) "
                    "+ coalesce(pg_column_size(exact_text), 0)) FROM tasks WHERE status = 'migrated'")
        skeletons = cur.fetchone()[0]
        # the rows built whole (the report sums each column's stored size instead: no value fetched)
        cur.execute("SELECT (SELECT sum(pg_column_size(t.*)) FROM tasks t WHERE status = 'migrated') + "
                    "(SELECT sum(pg_column_size(s.*)) FROM task_symbols s JOIN tasks t USING (task_id) "
                    "WHERE t.status = 'migrated')")
        catalog_rows = cur.fetchone()[0]
    summary = store_report(stores)
    assert logs > 0 and summary["catalog_bytes"] > summary["skeleton_bytes"] == skeletons > 0
    assert abs(summary["catalog_bytes"] - catalog_rows) < 0.02 * catalog_rows, (summary["catalog_bytes"], catalog_rows)
    assert report["stored_bytes"] == data + logs + summary["catalog_bytes"]
    valid_bytes = sum((sample_source / t / "result.json").stat().st_size for t in valid_ids(sample_expectations))
    assert report["json_bytes"] == valid_bytes
    code, out, _ = run_cli(capsys, "migrate", "--source-dir", str(sample_source), "--dry-run", "--json")
    assert json.loads(out)["json_bytes"] == valid_bytes  # the dry run counts on the same basis


def test_the_samples_store_within_6_percent_of_zstd_19_of_each_file(migrated, sample_source, sample_expectations,
                                                                   capsys):
    """Everything stored (the report's stored_bytes) against each valid sample compressed alone
    by zstd -19, issue 19's bound. stored_bytes counts each migrated task's whole catalog row
    and its symbols' rows (until 2026-12-08 only the skeleton and Spelling columns: 204,114
    bytes, below zstd's 206,619; whole rows add about 10,400). Counted so, these 14 small files
    miss the bound by about 4% (the catalog's fixed cost per task is a tenth of what zstd
    makes of a sample); the bench corpus meets it. The bound here keeps that from growing."""
    import zstandard

    code, out, _ = run_cli(capsys, "migrate", "--source-dir", str(sample_source), "--json")
    assert code == 0
    stored = json.loads(out)["stored_bytes"]  # as test_stored_bytes_count_everything_needed_to_rebuild counts it
    compressor = zstandard.ZstdCompressor(level=19)
    zstd_19 = sum(len(compressor.compress((sample_source / t / "result.json").read_bytes()))
                  for t in valid_ids(sample_expectations))
    assert stored < 1.06 * zstd_19, (stored, zstd_19)


def test_every_valid_task_reads_back_lossless(migrated, sample_source, sample_expectations):
    for task_id in valid_ids(sample_expectations):
        original = parse_document((sample_source / task_id / "result.json").read_bytes())
        restored = read_result(task_id)
        assert compare_documents(original, restored) == [], task_id
        signals = sum(len(s.get("signals", [])) for s in restored["symbols"] if isinstance(s, dict))
        signals += len(restored.get("signals", []))
        assert signals == sample_expectations[task_id]["signals"], task_id


def test_export_writes_every_task_lossless(migrated, sample_source, sample_expectations, tmp_path, capsys):
    out_dir = tmp_path / "export"
    code, _, _ = run_cli(capsys, "export", "--out", str(out_dir))
    assert code == 0
    exported = {p.name for p in out_dir.iterdir()}
    assert exported == {f"{quote(t, safe='')}.json" for t in valid_ids(sample_expectations)}
    for task_id in valid_ids(sample_expectations):
        original = parse_document((sample_source / task_id / "result.json").read_bytes())
        text = (out_dir / f"{quote(task_id, safe='')}.json").read_bytes()
        assert compare_documents(original, parse_document(text)) == [], task_id


def test_export_one_task_to_stdout_keeps_nan_literals(migrated, capsys):
    code, out, _ = run_cli(capsys, "export", "bt_20250900_74cff6")
    assert code == 0
    assert re.search(r'"profit_factor": ?NaN', out)


def test_export_one_task_to_stdout_is_the_file_itself(migrated, sample_source, tmp_path, capsys):
    task = "bt_20250901_14ceeb"
    code, out, _ = run_cli(capsys, "export", task)
    assert code == 0 and out.encode() == (sample_source / task / "result.json").read_bytes()  # no newline added
    (tmp_path / "a_file").write_text("")
    proc = subprocess.run([sys.executable, "-m", "result_assets.cli", "export", task, "--out", str(tmp_path / "a_file")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"result-assets: error: --out is not a directory: {tmp_path / 'a_file'}"]


def test_backups_are_byte_exact(migrated, sample_source, sample_expectations):
    for task_id in sample_expectations:
        backup = migrated / "backups" / task_id / "result.json"
        assert sha(backup) == sha(sample_source / task_id / "result.json"), task_id


def test_checks_recorded_per_partition(migrated, sample_expectations):
    from result_assets.assets.instance import get_instance

    instance = get_instance()
    key = AssetCheckKey(AssetKey("catalog_entry"), "lossless_round_trip")
    records = instance.event_log_storage.get_asset_check_execution_history(key, limit=100)
    by_partition = {r.event.dagster_event.event_specific_data.partition: r for r in records if r.event}
    for task_id in sample_expectations:
        data = by_partition[partition_key_for(task_id)].event.dagster_event.event_specific_data
        assert data.passed, (task_id, data.description)
    quarantine = AssetCheckKey(AssetKey("validated_result"), "quarantine")
    records = instance.event_log_storage.get_asset_check_execution_history(quarantine, limit=100)
    verdicts = [r.event.dagster_event.event_specific_data for r in records if r.event]
    bad = {t for t, e in sample_expectations.items() if not e["valid"]}
    assert verdicts and all(d.partition is None for d in verdicts)  # the run's verdict, not per partition
    failed = [d for d in verdicts if not d.passed]
    assert failed and all(d.severity.value == "WARN" and d.description for d in failed)
    listed = {line.split("`")[1] for d in failed for line in d.metadata["failed_tasks"].value.splitlines()}
    assert listed == bad
    materialized = instance.get_materialized_partitions(AssetKey("signal_table"))
    assert materialized == {partition_key_for(t) for t in sample_expectations}


def test_second_migrate_skips_everything(migrated, sample_source, sample_expectations, capsys):
    code, out, _ = run_cli(capsys, "migrate", "--source-dir", str(sample_source), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["skipped"] == len(sample_expectations)
    assert report["migrated"] == 0 and report["runs"] == 0


def test_a_migrate_with_nothing_to_do_loads_no_dagster(migrated, sample_source):
    """An unchanged re-run is a catalog query: importing Dagster alone would triple its time
    (docs/benchmarks.md "Measured: the quickstart corpus")."""
    code = ("import sys; from result_assets.cli import main; "
            f"assert main(['migrate', '--source-dir', {str(sample_source)!r}]) == 0; "
            "print('dagster loaded' if 'dagster' in sys.modules else 'no dagster')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "0 runs" in out or "skipped" in out, out
    assert out.strip().splitlines()[-1] == "no dagster", out


def test_changed_source_is_stale_then_remigrated(migrated, sample_source, capsys):
    path = sample_source / "bt_no_trades" / "result.json"
    doc = parse_document(path.read_bytes())
    doc["strategy"] = "sma_cross_v2"
    path.write_text(json.dumps(doc))
    code, out, _ = run_cli(capsys, "status", "--json")
    status = {r["task_id"]: r["status"] for r in json.loads(out)["tasks"]}
    assert status["bt_no_trades"] == "stale"
    code, out, _ = run_cli(capsys, "migrate", "--source-dir", str(sample_source), "--json")
    report = json.loads(out)
    assert code == 0 and report["migrated"] == 1
    assert read_result("bt_no_trades")["strategy"] == "sma_cross_v2"
    previous = list((migrated / "backups" / "bt_no_trades" / "previous").iterdir())
    assert len(previous) == 1  # the old bytes stay recoverable


def test_force_rewrites_and_stays_lossless(migrated, sample_source, sample_expectations, capsys):
    from result_assets.store.stores import Stores

    before = Stores.from_env().delta.open("signals").version()
    code, out, _ = run_cli(capsys, "migrate", "--source-dir", str(sample_source), "--force", "--json")
    report = json.loads(out)
    assert code == 0
    assert report["skipped"] == 0 and report["migrated"] == len(valid_ids(sample_expectations))
    assert Stores.from_env().delta.open("signals").version() > before
    for task_id in valid_ids(sample_expectations):
        original = parse_document((sample_source / task_id / "result.json").read_bytes())
        assert compare_documents(original, read_result(task_id)) == [], task_id


def test_forced_subset_runs_the_explicit_list_job(migrated, sample_source, capsys):
    from result_assets.assets.instance import get_instance

    ids = ["grid...42", "bt_20250900_74cff6", "bad_truncated"]
    args = ["migrate", "--source-dir", str(sample_source), "--force", "--json", "--task", ids[0], "--task", *ids[1:]]
    code, out, _ = run_cli(capsys, *args)
    report = json.loads(out)
    assert code == 0 and report["tasks"] == 3 and report["migrated"] == 2 and report["quarantined"] == 1
    # scattered partitions: one explicit-list run (then the report's run)
    assert [r.job_name for r in get_instance().get_runs(limit=2)] == ["__ephemeral_asset_job__",
                                                                       "migrate_task_list_job"]
    assert compare_documents(parse_document((sample_source / "grid...42" / "result.json").read_bytes()),
                             read_result("grid...42")) == []


def test_bad_flags_and_missing_dir_are_one_line_errors(project_home, tmp_path):
    (tmp_path / "a_file").write_text("")
    for args in (["migrate", "--source-dir", str(tmp_path / "nope")],
                 ["migrate", "--source-dir", str(tmp_path / "a_file")],
                 ["migrate", "--source-dir", str(tmp_path), "--batch-size", "zero"],
                 ["migrate", "--bogus"]):
        proc = subprocess.run([sys.executable, "-m", "result_assets.cli", *args], capture_output=True, text=True)
        assert proc.returncode == 2, args
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("result-assets: error:"), proc.stderr
        assert "Traceback" not in proc.stderr
        if any("a_file" in a for a in args):
            assert "is not a directory" in lines[0], lines


def test_the_console_script_exits_fast_with_all_its_output(project_home, sample_source):
    """The process ends with os._exit once the exit handlers ran: what it printed must all arrive."""
    proc = subprocess.run([sys.executable, "-m", "result_assets.cli", "migrate", "--source-dir", str(sample_source),
                           "--dry-run", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["dry_run"] is True and report["tasks"] == 22


@pytest.mark.parametrize("command", [["status"], ["phase"], ["rollback", "some_task"],
                                     ["restore", "some_task", "--to", "restored"], ["archive", "--to", "archives"]])
def test_unreachable_database_is_a_one_line_error_without_the_password(tmp_path, command):
    """Exit 1 from every command (phase, rollback, restore and archive said "catalog
    unreachable" with a usage error's 2)."""
    import os

    env = {**os.environ, "RESULT_ASSETS_HOME": str(tmp_path / "home"), "RESULT_SOURCE_DIR": str(tmp_path),
           "RESULT_STORAGE_MODE": "postgres-only", "DATABASE_URL": "postgresql://reader:s3cr3t-pw@127.0.0.1:1/catalog"}
    proc = subprocess.run([sys.executable, "-m", "result_assets.cli", *command], capture_output=True, text=True,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("result-assets: error: database unavailable:"), proc.stderr
    assert "s3cr3t-pw" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("command", [["status"], ["restore", "some_task", "--to", "restored"], ["phase"],
                                     ["rollback", "some_task"], ["export", "some_task"]])
@pytest.mark.parametrize("url", ["pg://reader:s3cr3t-pw@db.example/catalog", "reader:s3cr3t-pw@db.example/catalog"])
def test_a_malformed_database_url_is_one_line_without_the_password(tmp_path, command, url):
    """psycopg2 quotes a DSN it cannot parse whole, password and all: some commands printed it
    in their one line, others in a traceback."""
    import os

    env = {**os.environ, "RESULT_ASSETS_HOME": str(tmp_path / "home"), "RESULT_SOURCE_DIR": str(tmp_path),
           "DATABASE_URL": url}
    proc = subprocess.run([sys.executable, "-m", "result_assets.cli", *command], capture_output=True, text=True,
                          env=env, cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "s3cr3t-pw" not in proc.stderr + proc.stdout
    assert len((proc.stderr + proc.stdout).strip().splitlines()) == 1, proc.stderr + proc.stdout


def test_a_folder_that_cannot_be_made_or_read_is_a_one_line_error(project_home, tmp_path, capsys):
    """An output under a file, a DAGSTER_HOME that is a file: one line naming the path, exit 1."""
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert main(["export", "--out", str(a_file / "sub")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(a_file) in err, err


def test_a_task_folder_that_cannot_be_entered_is_quarantined_not_the_whole_scan(tmp_path, monkeypatch):
    from result_assets.migration.sources import scan_source_dir

    for name in ("locked", "open"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "result.json").write_text("{}")
    stat, lstat = Path.stat, Path.lstat

    def denied(real):
        def check(self, *args, **kwargs):
            if self.parent.name == "locked":  # as a folder without the x bit is to anyone but root
                raise PermissionError(13, "Permission denied", str(self))
            return real(self, *args, **kwargs)
        return check

    monkeypatch.setattr(Path, "stat", denied(stat))
    monkeypatch.setattr(Path, "lstat", denied(lstat))
    scan = scan_source_dir(tmp_path)
    assert [t.task_id for t in scan.tasks] == ["locked", "open"]
    assert scan.tasks[0].refused == "refused: locked/ cannot be read (Permission denied)" and not scan.tasks[1].refused


def test_settings_make_folders_absolute_and_refuse_a_mistyped_mode(tmp_path, monkeypatch):
    """A relative RESULT_STORE_ROOT was read against each command's working folder: `export`
    from another folder said the files were gone. A mode spelled dual_write ran as nothing."""
    from result_assets.settings import Settings, SettingsError

    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"RESULT_STORE_ROOT": "rel_store", "RESULT_BACKUP_DIR": "s3://bucket/backups",
                                  "RESULT_SOURCE_DIR": "src"})
    assert settings.store_root == str(tmp_path / "rel_store") and settings.source_dir == str(tmp_path / "src")
    assert settings.backup_dir == "s3://bucket/backups"
    typo = Settings.from_env({"RESULT_STORAGE_MODE": "dual_write"})  # a reader or a code location goes on
    with pytest.raises(SettingsError, match="RESULT_STORAGE_MODE is 'dual_write': use one of json-only, dual-write, postgres-only"):
        typo.check_storage_mode()
    monkeypatch.setenv("RESULT_STORAGE_MODE", "dual_write")
    from result_assets.cli import main as cli

    assert cli(["status"]) == 2  # every command, as phase did alone


def maintain_with_dagster_yaml(tmp_path, text: bytes) -> subprocess.CompletedProcess:
    """`result-assets maintain --json` in a new home whose instance has this dagster.yaml (its
    embedded server stopped afterwards)."""
    import os

    from result_assets.settings import Settings
    from result_assets.store.postgres import stop_embedded

    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_bytes(text)
    env = {**os.environ, "RESULT_ASSETS_HOME": str(home)}
    env.pop("DATABASE_URL", None)
    env.pop("DAGSTER_HOME", None)
    try:
        return subprocess.run([sys.executable, "-m", "result_assets.cli", "maintain", "--json"], capture_output=True,
                              text=True, env=env, timeout=300)
    finally:
        stop_embedded(Settings.from_env({"RESULT_ASSETS_HOME": str(home)}))


def test_a_broken_dagster_yaml_is_one_line_naming_it(tmp_path):
    proc = maintain_with_dagster_yaml(tmp_path, b"storage: [\n")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "dagster.yaml" in lines[0], proc.stderr


def test_backup_dir_flag_travels_to_the_runs_not_the_environment(migrated, sample_source, tmp_path, capsys):
    import os

    from result_assets.assets.instance import get_instance

    task = "bt_20250901_14ceeb"
    backups = tmp_path / "elsewhere"
    code, out, err = run_cli(capsys, "migrate", "--source-dir", str(sample_source), "--backup-dir", str(backups),
                             "--force", "--task", task, "--json")
    assert code == 0, err
    assert "RESULT_BACKUP_DIR" not in os.environ
    assert sha(backups / task / "result.json") == sha(sample_source / task / "result.json")
    from dagster import RunsFilter

    run = get_instance().get_runs(RunsFilter(job_name="migrate_task_list_job"), limit=1)[0]  # the run that wrote it
    assert run.run_config["resources"]["stores"]["config"] == {"backup_dir": str(backups)}


def test_a_failed_run_is_reported_and_its_task_keeps_its_published_version(migrated, sample_source, tmp_path,
                                                                             capsys):
    """A forced task whose run fails (where its backup goes, a file is in the way; a backup
    folder that is a file is refused before any run) keeps its earlier state, which the counts
    show; the report says a run failed, and stderr why."""
    task = "bt_20250901_14ceeb"
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / task).write_text("")
    args = ["migrate", "--source-dir", str(sample_source), "--backup-dir", str(tmp_path / "backups"),
            "--force", "--task", task]
    code, out, err = run_cli(capsys, *args, "--json")
    report = json.loads(out)
    assert code == 1 and report["failed_runs"] == report["runs"] == 1 and report["migrated"] == 1, report
    assert "failed:" in err and "File exists" in err  # the run's root cause, on its line
    code, out, _ = run_cli(capsys, *args)
    assert code == 1 and re.search(r"failed runs +1", out), out
    assert compare_documents(parse_document((sample_source / task / "result.json").read_bytes()),
                             read_result(task)) == []  # its published version stays readable


def test_a_result_json_that_is_no_regular_file_is_quarantined_and_the_run_completes(project_home, sample_source,
                                                                                     tmp_path, capsys):
    """A FIFO named result.json blocked the batch's read for ever (and `--dry-run` too); a
    directory of that name was quarantined, but its missing backup failed the run's blocking
    backup_checksum check."""
    import os

    source = tmp_path / "src"
    (source / "fifo_task").mkdir(parents=True)
    os.mkfifo(source / "fifo_task" / "result.json")
    (source / "dir_task" / "result.json").mkdir(parents=True)
    (source / "dangling_task").mkdir()
    (source / "dangling_task" / "result.json").symlink_to(tmp_path / "gone.json")
    (source / "its_batch_mate").mkdir()  # a good task of its own id: the module's other tests migrated the samples
    (source / "its_batch_mate" / "result.json").write_bytes((sample_source / "bt_no_trades" / "result.json").read_bytes())
    code, out, err = run_cli(capsys, "migrate", "--source-dir", str(source), "--dry-run", "--json")
    assert code == 0 and json.loads(out)["quarantined"] == 3
    code, out, err = run_cli(capsys, "migrate", "--source-dir", str(source), "--json")
    report = json.loads(out)
    assert code == 0 and report["failed_runs"] == 0 and report["migrated"] == 1 and report["quarantined"] == 3, err
    code, out, _ = run_cli(capsys, "status", "--json")
    reasons = {r["task_id"]: r["reason"] for r in json.loads(out)["tasks"]}
    assert "is not a regular file (a FIFO)" in reasons["fifo_task"]
    assert "is not a regular file (a directory)" in reasons["dir_task"]
    assert reasons["dangling_task"].endswith("gone.json, which cannot be read")  # not left out as "not a task"


def test_a_file_that_cannot_be_read_passes_the_backup_check_as_not_copied(project_home, tmp_path):
    """Nothing could be read, so nothing can be copied: the task is quarantined with why, and
    its batch's blocking backup_checksum check does not fail the run over it."""
    from result_assets.migration.engine import run_batch
    from result_assets.migration.sources import LegacyFile
    from result_assets.migration.verify import BACKUP_CHECKSUM
    from result_assets.store.stores import Stores

    gone = LegacyFile("vanished_task", str(tmp_path / "vanished_task" / "result.json"), 120, 0)
    batch = run_batch(Stores.from_env(), [gone])
    assert batch.validated[0].status == "quarantined" and "cannot read" in batch.validated[0].reason
    [check] = [c for c in batch.checks if c.check == BACKUP_CHECKSUM]
    assert check.passed and check.description.startswith("not copied: cannot read")


@pytest.mark.parametrize("how", ["vanished", "registered file gone"])
def test_a_file_gone_when_read_never_replaces_the_published_version(project_home, tmp_path, how):
    """A published task's file that is gone (archived, or an I/O error) when a re-run reads it
    says nothing of the task's data: the attempt is kept beside the published version, which
    stays readable, and the next run tries the file again."""
    from result_assets import ResultManager
    from result_assets.migration.engine import run_batch
    from result_assets.migration.plan import plan_migration
    from result_assets.migration.sources import SOURCE_NOT_FOUND, LegacyFile, stat_legacy_file
    from result_assets.store.stores import Stores

    task_id = f"gone_{how.split()[0]}"
    document = {"strategy": "s", "symbols": [{"symbol": "A", "signals": [{"timestamp": 1704240000000, "price": 1.5}]}]}
    path = tmp_path / task_id / "result.json"
    path.parent.mkdir()
    path.write_text(json.dumps(document))
    stores, found = Stores.from_env(), stat_legacy_file(tmp_path, task_id)
    assert run_batch(stores, [found]).validated[0].status == "migrated"
    raw = path.read_bytes()
    path.unlink()
    gone = found if how == "vanished" else LegacyFile(task_id, str(path), 0, 0, refused=SOURCE_NOT_FOUND)

    attempt = run_batch(stores, [gone]).validated[0]
    assert "the published version stays" in attempt.failure
    state = stores.catalog.states([task_id])[task_id]
    assert state.status == "migrated" and state.source_sha256 == hashlib.sha256(raw).hexdigest()
    assert state.failed_attempt and state.source_mtime_ns == found.mtime_ns
    assert ResultManager("postgres-only").get_result(task_id) == document
    path.write_bytes(raw)  # back, as it was: tried again, not judged unchanged
    assert [t.task_id for t in plan_migration(stores.catalog, [stat_legacy_file(tmp_path, task_id)], False).to_migrate] == [task_id]


def test_a_batch_whose_store_write_lock_was_lost_does_not_publish(project_home, tmp_path, monkeypatch):
    """The shared store write lock lives as long as its connection, idle while the batch writes
    and reads back; when that connection is cut (an idle timeout, a proxy), maintenance may have
    compacted or vacuumed the batch's files: the batch fails before its catalog rows name them,
    and the published version stays."""
    import psycopg2

    from result_assets import ResultManager
    from result_assets.migration import engine
    from result_assets.migration.sources import stat_legacy_file
    from result_assets.store.catalog import STORE_WRITE_LOCK, StoreLockLost
    from result_assets.store.stores import Stores

    def document(price):
        return {"strategy": "s", "symbols": [{"symbol": "A", "signals": [{"timestamp": 1704240000000, "price": price}]}]}

    path = tmp_path / "lock_lost" / "result.json"
    path.parent.mkdir()
    path.write_text(json.dumps(document(1.5)))
    stores = Stores.from_env()
    engine.run_batch(stores, [stat_legacy_file(tmp_path, "lock_lost")])
    path.write_text(json.dumps(document(2.5)))
    read_back = engine.read_back

    def cut_the_lock_then_read_back(*args):
        conn = psycopg2.connect(stores.catalog.url)
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                            "AND classid = 0 AND objid = %s AND objsubid = 1", (STORE_WRITE_LOCK,))
                assert cur.fetchall() == [(True,)]
        finally:
            conn.close()
        return read_back(*args)

    monkeypatch.setattr(engine, "read_back", cut_the_lock_then_read_back)
    with pytest.raises(StoreLockLost):
        engine.run_batch(stores, [stat_legacy_file(tmp_path, "lock_lost")])
    assert ResultManager("postgres-only").get_result("lock_lost") == document(1.5)


def test_a_source_registered_where_this_process_sees_no_file_is_read_from_its_source_dir(project_home, tmp_path):
    """`migrate` ran on a host that mounts the task tree elsewhere than the run pods: the path
    it registered names nothing in a pod, whose RESULT_SOURCE_DIR holds the file. A re-run of
    the partition there read "source file not found"."""
    from dataclasses import replace

    from result_assets.migration.sources import task_source_file
    from result_assets.settings import Settings
    from result_assets.store.stores import Stores

    (tmp_path / "pod" / "mounted_task").mkdir(parents=True)
    (tmp_path / "pod" / "mounted_task" / "result.json").write_text("{}")
    stores = Stores(replace(Settings.from_env(), source_dir=str(tmp_path / "pod")))
    elsewhere = str(tmp_path / "host" / "mounted_task" / "result.json")
    assert task_source_file(stores, "mounted_task", elsewhere) == str(tmp_path / "pod" / "mounted_task" / "result.json")
    (tmp_path / "host" / "mounted_task").mkdir(parents=True)
    (tmp_path / "host" / "mounted_task" / "result.json").write_text("{}")
    assert task_source_file(stores, "mounted_task", elsewhere) == elsewhere  # where it was registered, when there


def test_ctrl_c_during_migrate_stops_it_at_once_and_a_re_run_finishes(project_home, tmp_path, capsys, monkeypatch):
    """Dagster ends a run on KeyboardInterrupt and returns: migrate went on with every batch after
    it and exited 1. It stops there now (exit 130, "interrupted"), and the next run finishes."""
    from result_assets.assets import migration as migration_assets

    for i in range(6):
        (tmp_path / f"ctrl_c_{i}").mkdir()
        (tmp_path / f"ctrl_c_{i}" / "result.json").write_text(json.dumps(
            {"strategy": "s", "symbols": [{"symbol": "A", "signals": [{"timestamp": 1704240000000, "price": i}]}]}))
    run_batch, calls = migration_assets.run_batch, []

    def interrupted_in_the_second_run(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return run_batch(*args, **kwargs)

    monkeypatch.setattr(migration_assets, "run_batch", interrupted_in_the_second_run)
    assert main(["migrate", "--source-dir", str(tmp_path), "--batch-size", "2"]) == 130
    assert "result-assets: interrupted" in capsys.readouterr().err and len(calls) == 2
    monkeypatch.undo()
    assert main(["migrate", "--source-dir", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["migrated"] + report["skipped"] == 6 and report["failed_checks"] == 0
    assert read_result("ctrl_c_5")["symbols"][0]["signals"][0]["price"] == 5


def test_a_run_stopped_between_its_publish_and_its_events_is_done_again_by_the_next_migrate(
        project_home, tmp_path, capsys, monkeypatch):
    """A Ctrl-C after a batch's publish, while Dagster stored its events, left its tasks
    published with no materialization and no check; the next migrate skipped them as
    unchanged, so Dagster never learnt of them. They are now marked, and the next migrate
    publishes and reports them."""
    import os
    import signal

    from dagster import AssetKey

    from result_assets.assets import migration as migration_assets
    from result_assets.assets.instance import get_instance

    tasks = [f"after_publish_{i}" for i in range(3)]
    for i, task in enumerate(tasks):
        (tmp_path / task).mkdir()
        (tmp_path / task / "result.json").write_text(json.dumps(
            {"strategy": "s", "symbols": [{"symbol": "A", "signals": [{"timestamp": 1704240000000, "price": i}]}]}))
    events = migration_assets.backfill_events

    def ctrl_c_after_the_first_event(*args):
        for n, event in enumerate(events(*args)):
            yield event
            if n == 0:  # Dagster has stored one event of the batch
                os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(migration_assets, "backfill_events", ctrl_c_after_the_first_event)
    assert main(["migrate", "--source-dir", str(tmp_path)]) == 130
    assert "result-assets: interrupted" in capsys.readouterr().err
    instance = get_instance()
    keys = {partition_key_for(t) for t in tasks}
    assert not keys <= instance.get_materialized_partitions(AssetKey("catalog_entry"))  # what was left
    assert {read_result(t)["symbols"][0]["signals"][0]["price"] for t in tasks} == {0, 1, 2}  # published
    monkeypatch.undo()
    assert main(["migrate", "--source-dir", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["migrated"], report["skipped"]) == (3, 0)
    for asset in ("result_backup", "validated_result", "signal_table", "curve_table", "catalog_entry"):
        assert keys <= instance.get_materialized_partitions(AssetKey(asset)), asset


def test_a_stopped_runs_mark_takes_its_quarantines_and_never_another_writers_version(
        project_home, tmp_path, capsys, monkeypatch):
    """The mark left out the run's quarantines (Dagster never learnt of them either), and it
    landed on whatever version the task had when the run stopped: an application's save in
    between got it, and kept it for good (migrate then skipped the older JSON as superseded)."""
    import os
    import signal

    from dagster import AssetKey

    from result_assets import ResultManager
    from result_assets.assets import migration as migration_assets
    from result_assets.assets.instance import get_instance
    from result_assets.store.stores import Stores

    document = {"strategy": "s", "symbols": [{"symbol": "A", "signals": [{"timestamp": 1704240000000, "price": 1}]}]}
    for task in ("mark_saved", "mark_kept"):
        (tmp_path / task).mkdir()
        (tmp_path / task / "result.json").write_text(json.dumps(document))
    (tmp_path / "mark_broken").mkdir()
    (tmp_path / "mark_broken" / "result.json").write_text('{"strategy": "s", "symbols": [')
    events = migration_assets.backfill_events

    def saved_then_ctrl_c(*args):
        for n, event in enumerate(events(*args)):
            yield event
            if n == 0:
                ResultManager("postgres-only", record_in_dagster=False).save_result(
                    "mark_saved", {**document, "strategy": "saved meanwhile"})
                os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(migration_assets, "backfill_events", saved_then_ctrl_c)
    assert main(["migrate", "--source-dir", str(tmp_path)]) == 130
    capsys.readouterr()
    marked = Stores.from_env().catalog.failed_attempts(["mark_saved", "mark_kept", "mark_broken"])
    assert sorted(marked) == ["mark_broken", "mark_kept"]  # not the save that came after the run's publish
    monkeypatch.undo()
    main(["migrate", "--source-dir", str(tmp_path), "--json"])
    capsys.readouterr()
    assert partition_key_for("mark_broken") in get_instance().get_materialized_partitions(AssetKey("catalog_entry"))
    assert Stores.from_env().catalog.failed_attempts(["mark_saved", "mark_kept", "mark_broken"]) == {}
    assert read_result("mark_saved")["strategy"] == "saved meanwhile"


@pytest.mark.parametrize("command", [["status"], ["export", "some_task"], ["db", "version"],
                                     ["maintain"], ["rollback", "some_task"], ["restore", "some_task", "--to", "x"],
                                     ["archive", "--to", "x", "--source-dir", "."]])
def test_a_read_of_a_home_that_is_not_there_makes_none(tmp_path, command, capsys, monkeypatch):
    """A typo in RESULT_ASSETS_HOME: status said "no tasks" (and export "not migrated") after
    making a new store there, its server left running."""
    monkeypatch.setenv("RESULT_ASSETS_HOME", str(tmp_path / "typo"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(command) == 2
    assert "no store at" in capsys.readouterr().err and not (tmp_path / "typo").exists()


def test_a_reader_that_goes_away_does_not_stop_the_migration(project_home, tmp_path):
    """`migrate | head -1`: the progress line after the first raised BrokenPipeError, and only
    the first batch was migrated (exit 1, "BrokenPipeError: Broken pipe")."""
    import os

    from result_assets.store.stores import Stores

    source = tmp_path / "src"
    for i in range(4):
        (source / f"piped_{i}").mkdir(parents=True)
        (source / f"piped_{i}" / "result.json").write_bytes((SAMPLES / "grid...42" / "result.json").read_bytes())
    proc = subprocess.Popen([sys.executable, "-m", "result_assets.cli", "migrate", "--source-dir", str(source),
                             "--batch-size", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    os.close(proc.stdout.fileno())  # `head -1` has its line and exits
    proc.stdout = None
    _, err = proc.communicate(timeout=300)
    assert first and proc.returncode == 0 and b"Traceback" not in err and not err, err
    states = Stores.from_env().catalog.states([f"piped_{i}" for i in range(4)])
    assert {t: s.status for t, s in states.items()} == {f"piped_{i}": "migrated" for i in range(4)}


def test_a_closed_standard_output_is_no_traceback(migrated):
    """`status >&-` did its work, then failed flushing a stream that is None (exit 1, a
    traceback); `export TASK >&-` had nowhere to write the file."""
    import os

    def closed_stdout():
        os.close(1)

    status = subprocess.run([sys.executable, "-m", "result_assets.cli", "status"], capture_output=False,
                            stderr=subprocess.PIPE, text=True, preexec_fn=closed_stdout)
    assert status.returncode == 0 and not status.stderr, status.stderr
    export = subprocess.run([sys.executable, "-m", "result_assets.cli", "export", "grid...42"],
                            stderr=subprocess.PIPE, text=True, preexec_fn=closed_stdout)
    assert export.returncode == 2 and export.stderr.strip() == (
        "result-assets: error: standard output is closed: give --out DIR"), export.stderr


def test_maintain_refuses_a_retention_delta_cannot_take_and_says_a_failure_on_stderr(migrated, capsys, monkeypatch):
    """A retention of 10**13 hours made Delta's vacuum panic: a 90-line dump, and the failure
    line went to stdout, breaking --json."""
    from result_assets.assets import report

    assert main(["maintain", "--json", "--retention-hours", str(10 ** 13)]) == 2
    assert "--retention-hours: must be at most 1,000,000" in capsys.readouterr().err

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report, "maintain", disk_full)
    assert main(["maintain", "--json"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "failed:" in err and "No space left on device" in err, err


def test_an_embedded_server_that_cannot_start_is_one_line_naming_its_log(tmp_path):
    """A home whose pg/ another PostgreSQL version made (a fake PG_VERSION here): a 37-line
    RuntimeError traceback."""
    import os

    home = tmp_path / "home"
    (home / "pg").mkdir(parents=True)
    (home / "pg" / "PG_VERSION").write_text("99\n")
    env = {**os.environ, "RESULT_ASSETS_HOME": str(home)}
    env.pop("DATABASE_URL", None)
    proc = subprocess.run([sys.executable, "-m", "result_assets.cli", "status"], capture_output=True, text=True,
                          env=env, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"result-assets: error: the embedded PostgreSQL in {home / 'pg'} did not start:")
    assert f"its log: {home / 'pg' / 'log'}" in lines[0]


def test_a_dagster_yaml_without_a_driver_is_one_line_saying_which_to_name(tmp_path):
    """A stock dagster-postgres config names no scheme; SQLAlchemy 2.1 then wants psycopg 3,
    which is not installed: a ModuleNotFoundError traceback."""
    proc = maintain_with_dagster_yaml(
        tmp_path, b"storage:\n  postgres:\n    postgres_url: postgresql://dagster@127.0.0.1:1/dagster\n")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "dagster.yaml: its storage names no database driver" in lines[0]
    assert "scheme: postgresql+psycopg2" in lines[0]


def test_archive_of_an_unknown_task_and_a_bench_baseline_that_is_no_file_are_errors_at_once(migrated, sample_source,
                                                                                             tmp_path, capsys,
                                                                                             monkeypatch):
    monkeypatch.setenv("RESULT_STORAGE_MODE", "postgres-only")
    assert main(["archive", "--to", str(tmp_path / "a"), "--source-dir", str(sample_source), "--task", "nope"]) == 2
    assert f"no such task in {sample_source} or the store: nope" in capsys.readouterr().err
    proc = subprocess.run([sys.executable, "-m", "result_assets.cli", "bench", "--baseline", str(tmp_path / "none.json"),
                           "--workdir", str(tmp_path / "bench")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("result-assets: error: --baseline"), proc.stderr
    assert not (tmp_path / "bench").exists()  # refused before any corpus was made


def test_export_of_a_task_whose_name_is_too_long_for_a_file_exports_every_task(project_home, tmp_path, capsys):
    """A 40-syllable Korean task id is 120 bytes as a folder and 360 once percent-encoded:
    `export --out` stopped at it ("File name too long") and the tasks after it were never written."""
    from urllib.parse import unquote

    from result_assets.cli import export_file_name

    source = tmp_path / "src"
    long_id = "백테스트" * 10
    raw = (SAMPLES / "grid...42" / "result.json").read_bytes()
    for task_id in ("export_long_a", long_id, "export_long_z"):
        (source / task_id).mkdir(parents=True)
        (source / task_id / "result.json").write_bytes(raw)
    assert main(["migrate", "--source-dir", str(source), "--json"]) == 0
    capsys.readouterr()
    out = tmp_path / "out"
    (out / export_file_name("export_long_z")).mkdir(parents=True)  # in the way of one file: that task alone
    assert main(["export", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    name = export_file_name(long_id)
    assert len(name.encode()) <= 255 and name.endswith(".json") and "~" in name
    assert unquote(name.rpartition("~")[0]) == long_id[:len(unquote(name.rpartition("~")[0]))]
    assert (out / name).read_bytes() == raw and (out / "export_long_a.json").read_bytes() == raw
    assert f"{long_id}: its name is too long for a file: exported as {name}" in err
    assert "export_long_z: cannot write" in err


def test_a_backup_folder_that_cannot_be_written_is_one_line_before_any_run(project_home, tmp_path, capsys):
    """A read-only --backup-dir failed every run, each after converting its batch, while the
    progress line said all its tasks were done."""
    from result_assets.store.stores import Stores

    (tmp_path / "a_file").write_text("")
    source = tmp_path / "src"
    (source / "backup_dir_refused").mkdir(parents=True)
    (source / "backup_dir_refused" / "result.json").write_bytes((SAMPLES / "grid...42" / "result.json").read_bytes())
    assert main(["migrate", "--source-dir", str(source), "--backup-dir", str(tmp_path / "a_file")]) == 2
    err = capsys.readouterr().err
    assert err == f"result-assets: error: the backup folder is a file: {tmp_path / 'a_file'}\n"
    assert Stores.from_env().catalog.states(["backup_dir_refused"]) == {}  # nothing migrated, nothing registered


def test_phase_on_a_home_not_made_yet_is_the_first_step_in_json_only_and_an_error_after(tmp_path, capsys,
                                                                                       monkeypatch):
    """The runbook's phase 1 starts with `result-assets phase`, before any migrate made the
    store; in dual-write or postgres-only a home that is not there is a typo, and said READY."""
    from result_assets.settings import Settings
    from result_assets.store.postgres import stop_embedded

    monkeypatch.setenv("RESULT_ASSETS_HOME", str(tmp_path / "new"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("RESULT_SOURCE_DIR", str(tmp_path))
    for mode in ("dual-write", "postgres-only"):
        monkeypatch.setenv("RESULT_STORAGE_MODE", mode)
        assert main(["phase"]) == 2
        assert "no store at" in capsys.readouterr().err and not (tmp_path / "new").exists()
    monkeypatch.setenv("RESULT_STORAGE_MODE", "json-only")
    try:
        assert main(["phase"]) == 0
    finally:
        stop_embedded(Settings.from_env())
    assert "mode: json-only" in capsys.readouterr().out


def test_maintain_json_says_when_vacuum_was_held(migrated, capsys, monkeypatch):
    """The console logger no longer prints Dagster's warnings: --json carries the reason."""
    from result_assets.assets import report
    from result_assets.store.maintenance import MaintenanceReport

    def held(*args, **kwargs):
        return MaintenanceReport(vacuum_held="2 row(s) published before locations were recorded could not be located")

    monkeypatch.setattr(report, "maintain", held)
    assert main(["maintain", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["vacuum_held"].startswith("2 row(s) published before locations")


def test_a_store_that_cannot_be_sized_after_its_runs_still_reports_them(migrated, sample_source, capsys, monkeypatch):
    """The tables' storage unreachable after the runs (an S3 outage): the store's size could not
    be read, and migrate ended on one vague line ("Generic S3 error"), its runs' outcomes and
    report lost. The report now comes, its sizes n/a, and stderr says why, cause included."""
    from result_assets.assets import launch
    from result_assets.store.delta_tables import DeltaStore

    report_run = launch.materialize_report

    def outage_after_the_runs(*args, **kwargs):
        done = report_run(*args, **kwargs)

        def unreachable(self, table):
            raise OSError("Kernel error -> Generic S3 error: error sending request\n"
                          "  ↳ tcp connect error: Connection refused (os error 111)")

        monkeypatch.setattr(DeltaStore, "total_bytes", unreachable)
        return done

    monkeypatch.setattr(launch, "materialize_report", outage_after_the_runs)
    assert main(["migrate", "--source-dir", str(sample_source), "--force", "--task", "grid...42", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert (report["migrated"], report["runs"], report["failed_runs"], report["stored_bytes"]) == (1, 1, 0, None)
    assert report["json_bytes"] > 0  # the catalog's, which answered
    assert ("the store's size could not be read: Kernel error -> Generic S3 error: error sending request "
            "(tcp connect error: Connection refused (os error 111))") in captured.err
    monkeypatch.undo()
    monkeypatch.setattr(launch, "materialize_report", outage_after_the_runs)
    assert main(["migrate", "--source-dir", str(sample_source), "--force", "--task", "grid...42"]) == 0
    text = capsys.readouterr().out
    assert "  stored bytes       n/a" in text and "  compression        n/a" in text


def test_a_source_folder_given_as_a_file_uri_on_the_command_line_is_that_folder(project_home, sample_source,
                                                                               tmp_path, capsys):
    """`migrate --source-dir file:///…` looked for a folder named "file:" under the current one,
    where RESULT_SOURCE_DIR of the same value is the folder; another scheme is one line."""
    assert main(["migrate", "--source-dir", f"file://{sample_source}", "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tasks"] == 22
    assert main(["migrate", "--source-dir", "s3://bucket/tasks"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["result-assets: error: --source-dir must be a folder or a file: URI, not 's3://bucket/tasks'"]


def test_status_gives_every_row_its_keys_and_never_reads_a_fifo(tmp_path, monkeypatch):
    """status --json: a pending task's row lacked `failed_attempt` (the README gives every row
    it); and a quarantined empty file replaced by a FIFO made status wait on it for ever
    (same size, a new mtime: it was hashed). migrate refuses a FIFO unread; status now too."""
    import os

    from result_assets.settings import Settings
    from result_assets.store.postgres import stop_embedded
    from result_assets.store.stores import Stores

    source = tmp_path / "source"
    (source / "empty_then_fifo").mkdir(parents=True)
    (source / "empty_then_fifo" / "result.json").write_bytes(b"")
    monkeypatch.setenv("RESULT_ASSETS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    try:
        assert main(["migrate", "--source-dir", str(source), "--json"]) == 0
        os.remove(source / "empty_then_fifo" / "result.json")
        os.mkfifo(source / "empty_then_fifo" / "result.json")
        Stores.from_env().catalog.register_sources(
            {"registered_only": (partition_key_for("registered_only"), str(source / "registered_only" / "result.json"))})
        done = subprocess.run([sys.executable, "-m", "result_assets.cli", "status", "--json"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        rows = {r["task_id"]: r for r in json.loads(done.stdout)["tasks"]}
        assert rows["registered_only"]["status"] == "pending"
        assert rows["empty_then_fifo"]["status"] == "stale"  # not the bytes that were quarantined
        assert all(set(r) == {"task_id", "status", "reason", "failed_attempt"} for r in rows.values()), rows
    finally:
        stop_embedded(Settings.from_env())


def test_no_hash_of_a_file_waits_on_a_fifo_in_its_place(tmp_path):
    """status and dual-write reads ask whether a file newer than the store's version is one the
    store replaced, by its SHA-256: a FIFO there made that wait for ever. Every hash of a local
    file refuses a path that is not a regular file, unread."""
    import os

    fifo = tmp_path / "result.json"
    os.mkfifo(fifo)
    program = ("from result_assets.store.last_write import older_than_store\n"
               "from result_assets.store.backups import file_sha256\n"
               f"print(older_than_store({str(fifo)!r}, 2 * 10**18, None, 1, lambda: {{'0' * 64}}))\n"
               "try:\n"
               f"    file_sha256({str(fifo)!r})\n"
               "except OSError as exc:\n"
               "    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines() == ["False", f"[Errno 22] not a regular file: {fifo}"], done.stderr


def test_the_ui_command_migrate_prints_finds_this_store_from_any_folder(migrated, sample_source, tmp_path, capsys):
    """The printed command named the instance (DAGSTER_HOME) only: run from another folder, the
    code location took that folder's ./.result_assets, a second and empty store whose backfill
    quarantined every task as "source file not found" in the real instance's UI."""
    import os
    import shlex

    from result_assets.settings import Settings

    code, out, _ = run_cli(capsys, "migrate", "--source-dir", str(sample_source))
    line = next(line for line in out.splitlines() if line.startswith("Open the UI: "))
    command = line.removeprefix("Open the UI: ").split("  (then")[0]
    words = shlex.split(command.split("<the instance's URL> ")[-1])  # with DATABASE_URL: that URL's placeholder first
    assignments = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
    assert words[-3:] == ["dev", "-m", "result_assets.definitions"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESULT_", "DAGSTER_"))}
    seen = subprocess.run(
        [sys.executable, "-c", "from result_assets.settings import Settings; s = Settings.from_env(); "
                               "print(s.home, s.dagster_home, s.source_dir, s.backup_dir, sep='\\n')"],
        cwd=tmp_path, env={**env, **assignments}, capture_output=True, text=True, check=True).stdout.splitlines()
    here = Settings.from_env()
    assert seen == [str(here.home), str(here.dagster_home), str(sample_source.absolute()), here.backup_dir]
    assert not (tmp_path / ".result_assets").exists()
