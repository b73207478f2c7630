"""Archive -> restore byte-exact (from the backups and from the archive); rollback after a force."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from result_assets import ResultManager, read_result
from result_assets.cli import main
from result_assets.legacy import compare_documents, parse_document
from result_assets_tests.app.helpers import SAMPLES, save_lock_free

TASKS = ["bt_20250900_600020", "bt_20250901_14ceeb", "grid...42", "백테스트_005", "bad_truncated"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def archived_files(to_dir: Path) -> dict[str, bytes]:
    """{task_id: its bytes} in the finished archives of a folder (a .partial file is not one)."""
    kept = {}
    for path in to_dir.glob("*.tar.xz"):
        with tarfile.open(path, "r:xz") as tar:
            for info in tar:
                if info.name.endswith("/result.json"):
                    kept[info.name.split("/")[0]] = tar.extractfile(info).read()
    return kept


@pytest.fixture(scope="module")
def source(project_home, tmp_path_factory):
    path = tmp_path_factory.mktemp("archive_source")
    for task in TASKS:
        shutil.copytree(SAMPLES / task, path / task)
    os.environ["RESULT_SOURCE_DIR"] = str(path)
    assert main(["migrate", "--source-dir", str(path), "--json"]) == 0
    yield path
    os.environ.pop("RESULT_SOURCE_DIR", None)
    os.environ.pop("RESULT_STORAGE_MODE", None)


def test_rollback_after_a_force_restores_the_old_rows(source, capsys):
    task = "bt_20250901_14ceeb"
    path = source / task / "result.json"
    original_bytes = path.read_bytes()
    original = parse_document(original_bytes)
    edited = parse_document(original_bytes)
    edited["symbols"][0]["signals"] = edited["symbols"][0]["signals"][:3]
    edited["strategy"] = "edited"
    path.write_text(json.dumps(edited))
    assert main(["migrate", "--source-dir", str(source), "--task", task, "--force", "--json"]) == 0
    assert read_result(task)["strategy"] == "edited"
    capsys.readouterr()

    assert main(["rollback", task, "--restore-source"]) == 0
    out = capsys.readouterr().out
    assert f"rolled back {task}: migrated" in out and "source file restored" in out
    assert compare_documents(original, read_result(task)) == []
    assert path.read_bytes() == original_bytes
    from result_assets.migration.status import task_statuses
    from result_assets.store.stores import Stores

    assert {r["task_id"]: r["status"] for r in task_statuses(Stores.from_env())}[task] == "migrated"
    assert Stores.from_env().backups.read(task) == original_bytes

    # The rollback is itself a version: rolling back again brings the edit back.
    assert main(["rollback", task]) == 0
    assert "source file differs from the restored version" in capsys.readouterr().out
    assert compare_documents(edited, read_result(task)) == []
    assert main(["rollback", task, "--restore-source"]) == 0
    assert compare_documents(original, read_result(task)) == []
    capsys.readouterr()
    assert main(["rollback", "grid...42"]) == 1
    assert "no earlier version" in capsys.readouterr().err  # an error: on stderr


def test_archive_then_restore_byte_exact(source, tmp_path, capsys, monkeypatch):
    originals = {t: (source / t / "result.json").read_bytes() for t in TASKS}
    archive_dir = tmp_path / "archives"
    assert main(["archive", "--to", str(archive_dir)]) == 2
    assert "switch to postgres-only first" in capsys.readouterr().err

    monkeypatch.setenv("RESULT_STORAGE_MODE", "postgres-only")
    assert main(["archive", "--to", str(archive_dir), "--max-tasks", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    migrated = [t for t in TASKS if t != "bad_truncated"]
    assert sorted(report["archived"]) == sorted(migrated) and len(report["archives"]) == 2
    assert "bad_truncated" in report["skipped"]
    assert (source / "bad_truncated" / "result.json").exists()
    for task in migrated:
        assert not (source / task / "result.json").exists(), task
    manifests = {}
    for archive in report["archives"]:
        with tarfile.open(archive, "r:xz") as tar:
            manifest = json.loads(tar.extractfile("MANIFEST.json").read())
            assert manifest == json.loads(Path(archive + ".manifest.json").read_text())
            for entry in manifest["files"]:
                assert sha(tar.extractfile(entry["member"]).read()) == entry["sha256"] == sha(originals[entry["task_id"]])
                manifests[entry["task_id"]] = archive
    assert sorted(manifests) == sorted(migrated)
    # The store still serves every archived task.
    reader = ResultManager.from_env()
    for task in migrated:
        assert compare_documents(parse_document(originals[task]), reader.get_result(task)) == [], task

    # Restore from the backups.
    assert main(["restore", migrated[0], migrated[1]]) == 0
    assert "from backup, SHA-256 verified" in capsys.readouterr().out
    for task in migrated[:2]:
        assert (source / task / "result.json").read_bytes() == originals[task]

    # Without the backups: from the archive, into another folder.
    shutil.rmtree(Path(os.environ["RESULT_ASSETS_HOME"]) / "backups")
    elsewhere = tmp_path / "restored"
    assert main(["restore", *migrated, "--to", str(elsewhere)]) == 0
    out = capsys.readouterr().out
    assert out.count(".tar.xz, SHA-256 verified") == len(migrated)
    for task in migrated:
        assert (elsewhere / task / "result.json").read_bytes() == originals[task], task

    (elsewhere / migrated[0] / "result.json").write_bytes(b"{}")
    assert main(["restore", migrated[0], "--to", str(elsewhere)]) == 1
    assert "exists with other bytes" in capsys.readouterr().err
    assert main(["restore", "no_such_task", "--to", str(elsewhere)]) == 1
    assert main(["restore", migrated[0], "--to", str(elsewhere), "--archive", str(tmp_path / "nowhere")]) == 2
    assert f"--archive is not a folder: {tmp_path / 'nowhere'}" in capsys.readouterr().err  # was ignored


def test_a_file_given_as_the_folder_is_a_one_line_error(source, tmp_path, capsys, monkeypatch):
    """`archive --to` or `restore --to` naming a file, not a folder: one line and a non-zero
    exit, nothing removed or written (it was a FileExistsError / NotADirectoryError traceback)."""
    monkeypatch.setenv("RESULT_STORAGE_MODE", "postgres-only")
    a_file = tmp_path / "not_a_folder"
    a_file.write_text("x")
    before = {t: (source / t / "result.json").exists() for t in TASKS}
    assert main(["archive", "--to", str(a_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot use" in err and len(err.splitlines()) == 1
    assert {t: (source / t / "result.json").exists() for t in TASKS} == before
    assert main(["restore", "bt_20250901_14ceeb", "--to", str(a_file)]) == 1
    err = capsys.readouterr().err.strip()
    assert "cannot write" in err and len(err.splitlines()) == 1 and a_file.read_text() == "x"


def test_an_original_changed_since_it_was_archived_stays(tmp_path):
    """The file is taken aside before it is hashed and removed: one written since the archive
    was made (another version) is put back, never removed; the archived bytes are removed."""
    from result_assets.cli.archive import _remove_original

    path = tmp_path / "task" / "result.json"
    path.parent.mkdir()
    path.write_bytes(b"newer")
    assert _remove_original({"source_path": str(path), "sha256": sha(b"archived")}) is False
    assert path.read_bytes() == b"newer" and [p.name for p in path.parent.iterdir()] == ["result.json"]
    path.write_bytes(b"archived")
    assert _remove_original({"source_path": str(path), "sha256": sha(b"archived")}) is True
    assert not path.parent.exists()


def test_a_file_is_created_only_where_none_is_also_without_hard_links(tmp_path, monkeypatch):
    """restore without --overwrite creates the file only where none is; on a filesystem
    without hard links (some SMB and FUSE mounts) by an exclusive create instead."""
    import errno

    from result_assets.store.backups import write_atomic

    first = tmp_path / "a" / "result.json"
    write_atomic(first, b"one", replace=False)
    with pytest.raises(FileExistsError):
        write_atomic(first, b"two", replace=False)

    def no_hard_links(*args):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_hard_links)
    second = tmp_path / "b" / "result.json"
    write_atomic(second, b"three", replace=False)
    with pytest.raises(FileExistsError):
        write_atomic(second, b"four", replace=False)
    assert first.read_bytes() == b"one" and second.read_bytes() == b"three"
    assert [p.name for p in second.parent.iterdir()] == ["result.json"]  # no temporary file left


def test_two_archive_runs_into_one_folder_keep_both_archives(project_home, tmp_path, monkeypatch):
    """Two runs started in the same second named their archives alike: one replaced the
    other's verified archive after that one had removed its originals."""
    import threading

    from result_assets.cli.archive import archive_tasks
    from result_assets.settings import Settings

    source = tmp_path / "src"
    ids = ["archive_race_a", "archive_race_b"]
    for task_id, sample in zip(ids, ["bt_20250900_600020", "bt_20250901_14ceeb"]):
        (source / task_id).mkdir(parents=True)
        (source / task_id / "result.json").write_bytes((SAMPLES / sample / "result.json").read_bytes())
    assert main(["migrate", "--source-dir", str(source), "--json"]) == 0
    originals = {t: (source / t / "result.json").read_bytes() for t in ids}
    settings, to_dir = Settings.from_env(source_dir=str(source)), tmp_path / "archives"
    reports, start = {}, threading.Barrier(2)

    def archive(task_id: str) -> None:
        start.wait()  # the same second
        reports[task_id] = archive_tasks(settings, to_dir, only={task_id})

    threads = [threading.Thread(target=archive, args=(t,)) for t in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(reports[t].archived == [t] for t in ids), reports
    assert archived_files(to_dir) == originals  # each removed original is in an archive, byte for byte


def test_rollback_after_a_vacuum_takes_the_earlier_bytes_from_the_backups(project_home, tmp_path, capsys):
    """`maintain --retention-hours 0` vacuums the files the earlier version's rows were in;
    its exact bytes are still in the backups (previous/), and a rollback proves them anew."""
    source = tmp_path / "src"
    task = "rollback_after_vacuum"
    (source / task).mkdir(parents=True)
    path = source / task / "result.json"
    original = (SAMPLES / "bt_20250901_14ceeb" / "result.json").read_bytes()
    path.write_bytes(original)
    assert main(["migrate", "--source-dir", str(source), "--json"]) == 0
    edited = parse_document(original)
    edited["strategy"] = "edited"
    path.write_text(json.dumps(edited))
    assert main(["migrate", "--source-dir", str(source), "--json"]) == 0
    assert main(["maintain", "--retention-hours", "0", "--json"]) == 0
    capsys.readouterr()
    assert main(["rollback", task]) == 0
    out = capsys.readouterr().out
    assert "read at its backup (its rows are gone from the tables)" in out, out
    assert compare_documents(parse_document(original), read_result(task)) == []


def three_versions(root: Path, task: str) -> tuple[Path, list[bytes]]:
    """A task migrated as A, then B (--force of an edit): its file and [A, B]."""
    path = root / task / "result.json"
    path.parent.mkdir(parents=True)
    versions = [(SAMPLES / "bt_20250901_14ceeb" / "result.json").read_bytes()]
    edited = parse_document(versions[0])
    edited["strategy"] = "edited"
    versions.append(json.dumps(edited).encode())
    for raw in versions:
        path.write_bytes(raw)
        assert main(["migrate", "--source-dir", str(root), "--task", task, "--force", "--json"]) == 0
    return path, versions


def test_a_rollback_after_the_same_bytes_were_published_again_goes_back_a_version(project_home, tmp_path, capsys):
    """A, then B, then B again (a partition re-run, a --force, a retried save): the version
    before is A, not B; every rollback had republished B."""
    path, (a, b) = three_versions(tmp_path, "rollback_same_again")
    assert main(["migrate", "--source-dir", str(tmp_path), "--task", "rollback_same_again", "--force", "--json"]) == 0
    assert main(["rollback", "rollback_same_again"]) == 0
    capsys.readouterr()
    assert read_result("rollback_same_again") == parse_document(a)


def test_a_rollback_is_refused_over_a_version_published_meanwhile(project_home, tmp_path, capsys, monkeypatch):
    """A migration publishes the task while a rollback converts the earlier version: the
    rollback publishes only over the version it read, so the migration's stays. It held the
    task's save lock throughout: no application save of the task runs inside it."""
    from result_assets.migration import rollback
    from result_assets.migration.engine import run_batch
    from result_assets.migration.sources import stat_legacy_file

    task = "rollback_overtaken"
    path, (a, b) = three_versions(tmp_path, task)
    newer = parse_document(b)
    newer["strategy"] = "newer"
    path.write_text(json.dumps(newer))
    publish, lock_free = rollback.publish_batch, []

    def migrate_meanwhile(stores, *args, **kwargs):
        lock_free.append(save_lock_free(stores.catalog.url, task))
        assert run_batch(stores, [stat_legacy_file(tmp_path, task)]).validated[0].status == "migrated"
        return publish(stores, *args, **kwargs)

    monkeypatch.setattr(rollback, "publish_batch", migrate_meanwhile)
    assert main(["rollback", task]) == 1
    assert "published again meanwhile" in capsys.readouterr().err
    assert lock_free == [False]
    assert read_result(task) == newer
    from result_assets.store.stores import Stores

    assert Stores.from_env().catalog.failed_attempts([task]) == {}  # nothing failed: nothing for migrate to retry


def test_a_rollback_to_a_quarantine_is_refused_over_a_version_published_meanwhile(project_home, tmp_path, capsys,
                                                                                 monkeypatch):
    """The earlier version is a quarantine record (a bad file, then a good one): a rollback to it
    that a migration overtakes is refused like any other, not reported done while nothing was
    published (the turned-away quarantine has no proof to fail, so its status never said
    "failed"), and the backup keeps the published version's bytes."""
    from result_assets.migration import rollback
    from result_assets.migration.engine import run_batch
    from result_assets.migration.sources import stat_legacy_file
    from result_assets.store.stores import Stores

    task = "rollback_to_quarantine"
    path = tmp_path / task / "result.json"
    path.parent.mkdir(parents=True)
    for sample in ("bad_truncated", "bt_20250901_14ceeb"):
        path.write_bytes((SAMPLES / sample / "result.json").read_bytes())
        assert main(["migrate", "--source-dir", str(tmp_path), "--task", task, "--force", "--json"]) == 0
    newer = parse_document(path.read_bytes())
    newer["strategy"] = "newer"
    path.write_text(json.dumps(newer))
    publish = rollback.publish_batch

    def migrate_meanwhile(stores, *args, **kwargs):
        assert run_batch(stores, [stat_legacy_file(tmp_path, task)]).validated[0].status == "migrated"
        return publish(stores, *args, **kwargs)

    monkeypatch.setattr(rollback, "publish_batch", migrate_meanwhile)
    assert main(["rollback", task]) == 1
    assert "published again meanwhile" in capsys.readouterr().err
    assert read_result(task) == newer
    stores = Stores.from_env()
    assert stores.backups.verify(task, stores.catalog.task(task)["source_sha256"])


def test_a_rollback_rebuilt_from_its_rows_leaves_its_bytes_as_the_backup(project_home, tmp_path, capsys):
    """The earlier bytes are gone from the backups; the rollback writes them again from the
    rows (proven by their SHA-256) and keeps them as the task's backup, which `archive`
    checks against the store and a re-run reads when the JSON is gone."""
    from result_assets.store.stores import Stores

    task = "rollback_rebuilt"
    path, (a, b) = three_versions(tmp_path, task)
    stores = Stores.from_env()
    for kept in (stores.backups.root / task / "previous").glob("*.json"):
        kept.unlink()
    assert stores.backups.read_version(task, sha(a)) is None
    assert main(["rollback", task, "--restore-source"]) == 0
    capsys.readouterr()
    assert read_result(task) == parse_document(a)
    assert stores.backups.read(task) == a and path.read_bytes() == a


KILL_POINTS = {  # where the archiving process is killed (SIGKILL: no cleanup runs)
    "while packing": "archive._add_bytes",  # the second file of the first archive
    "before verifying": "archive._verify_archive",  # the archive renamed into place, not yet read back
    "between removals": "archive._remove_original",  # one original removed, the others not
}


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_an_archive_killed_at_any_step_loses_nothing(project_home, tmp_path, monkeypatch, point):
    """kill -9 of `archive` mid-way: every file is still in the source directory or in an
    archive that reads back with its SHA-256; a second run finishes the work, and then each
    file is in an archive, byte for byte, and no original is left."""
    import subprocess
    import sys

    from result_assets.settings import Settings

    source, to_dir = tmp_path / "src", tmp_path / "archives"
    samples = ["bt_20250900_600020", "bt_20250901_14ceeb", "grid...42", "백테스트_005"]
    ids = [f"archive_kill_{point.replace(' ', '_')}_{n}" for n in range(len(samples))]
    for task_id, sample in zip(ids, samples):
        (source / task_id).mkdir(parents=True)
        (source / task_id / "result.json").write_bytes((SAMPLES / sample / "result.json").read_bytes())
    assert main(["migrate", "--source-dir", str(source), "--json"]) == 0
    originals = {t: (source / t / "result.json").read_bytes() for t in ids}
    monkeypatch.setenv("RESULT_STORAGE_MODE", "postgres-only")

    module, name = KILL_POINTS[point].split(".")
    script = f"""
import os, signal, sys
from pathlib import Path
from result_assets.cli import {module}
from result_assets.settings import Settings
real, calls = {module}.{name}, []
def killed(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2 or {name!r} == "_verify_archive":
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
{module}.{name} = killed
{module}.archive_tasks(Settings.from_env(source_dir=sys.argv[1]), Path(sys.argv[2]), max_tasks=2)
"""
    run = subprocess.run([sys.executable, "-c", script, str(source), str(to_dir)], env=os.environ.copy())
    assert run.returncode == -9  # killed where the test said, not finished or failed

    for task_id in ids:
        present = source / task_id / "result.json"
        kept = present.read_bytes() if present.exists() else archived_files(to_dir).get(task_id)
        assert kept == originals[task_id], (point, task_id)

    from result_assets.cli.archive import archive_tasks

    report = archive_tasks(Settings.from_env(source_dir=str(source)), to_dir, max_tasks=2)
    assert report.skipped == {}
    assert archived_files(to_dir) == originals
    assert not any((source / t / "result.json").exists() for t in ids)


def test_rollback_restore_source_keeps_a_file_version_no_backup_has(project_home, tmp_path, capsys):
    """A, then B migrated, then C written and never migrated: `rollback --restore-source` wrote A
    over C, whose bytes were nowhere else. They now go to the backups' previous/ first."""
    from result_assets.store.stores import Stores

    task = "rollback_keeps_unmigrated"
    path, (a, b) = three_versions(tmp_path, task)
    c = b.replace(b'"edited"', b'"written, never migrated"')
    path.write_bytes(c)
    capsys.readouterr()
    assert main(["rollback", task, "--restore-source"]) == 0
    out = capsys.readouterr().out
    assert path.read_bytes() == a and read_result(task) == parse_document(a)
    kept = Stores.from_env().backups.previous(task, sha(c))
    assert f"the source file held bytes no backup had: they are kept at {kept}" in out, out
    assert kept.read_bytes() == c
    # A file holding a version the backups have is simply written over, nothing kept again.
    path.write_bytes(b)
    assert main(["rollback", task, "--restore-source"]) == 0
    assert "kept at" not in capsys.readouterr().out and path.read_bytes() == b


def test_restore_overwrite_keeps_the_bytes_it_writes_over(source, tmp_path, capsys):
    from result_assets.store.stores import Stores

    task = "grid...42"
    target = tmp_path / "to" / task / "result.json"
    target.parent.mkdir(parents=True)
    target.write_bytes(b'{"hand": "edited"}')
    assert main(["restore", task, "--to", str(tmp_path / "to"), "--overwrite"]) == 0
    kept = Stores.from_env().backups.previous(task, sha(b'{"hand": "edited"}'))
    assert f"the other bytes it held are kept at {kept}" in capsys.readouterr().out
    assert kept.read_bytes() == b'{"hand": "edited"}'
    assert target.read_bytes() == (SAMPLES / task / "result.json").read_bytes()


def test_restore_goes_past_a_damaged_archive_to_an_older_one(tmp_path):
    """A truncated .tar.xz raised EOFError out of `restore` (no file restored, a traceback)."""
    from result_assets.cli.restore import _from_archives

    raw = (SAMPLES / "grid...42" / "result.json").read_bytes()
    entry = {"task_id": "grid...42", "member": "grid...42/result.json", "sha256": sha(raw)}
    archives = []
    for name in ("old", "new"):
        path = tmp_path / f"results-{name}.tar.xz"
        with tarfile.open(path, "w:xz") as tar:
            info = tarfile.TarInfo(entry["member"])
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
        archives.append((path, {"files": [entry]}))
    newest = archives[1][0]
    newest.write_bytes(newest.read_bytes()[:len(newest.read_bytes()) // 2])
    assert _from_archives(archives[::-1], "grid...42", sha(raw)) == (raw, str(archives[0][0]))


def test_archive_of_a_folder_name_that_is_not_utf8_and_of_a_file_gone_since_the_scan(project_home, tmp_path,
                                                                                     monkeypatch):
    """A folder name that is not UTF-8 failed the manifest's encoding: a traceback, nothing
    archived, a .partial left. A file gone between the scan and its read ended the run."""
    from result_assets.cli import archive as archive_cli
    from result_assets.settings import Settings

    source = tmp_path / "src"
    names = [b"caf\xe9_archive", b"archive_vanishing"]
    for name, sample in zip(names, ["bt_20250900_600020", "bt_20250901_14ceeb"]):
        folder = os.fsdecode(bytes(source) + b"/" + name)
        os.makedirs(folder)
        shutil.copy(SAMPLES / sample / "result.json", folder)
    assert main(["migrate", "--source-dir", str(source), "--json"]) == 0
    original = (SAMPLES / "bt_20250900_600020" / "result.json").read_bytes()
    vanishing = source / "archive_vanishing" / "result.json"
    from result_assets.migration import sources

    real_scan = sources.scan_source_dir

    def scan_then_lose_one(*args, **kwargs):
        found = real_scan(*args, **kwargs)
        vanishing.unlink()  # another archive run took it between the scan and the read
        return found

    monkeypatch.setattr(sources, "scan_source_dir", scan_then_lose_one)
    report = archive_cli.archive_tasks(Settings.from_env(source_dir=str(source)), tmp_path / "archives")
    assert report.skipped == {"archive_vanishing": "cannot read its file: No such file or directory"}, report.skipped
    assert len(report.archived) == 1 and report.verified == 1
    assert list(archived_files(tmp_path / "archives").values()) == [original]
    [manifest] = (tmp_path / "archives").glob("*.manifest.json")
    assert "caf\\\\xe9_archive" in manifest.read_text()
    assert not list((tmp_path / "archives").glob(".*.partial"))


def test_a_file_a_killed_archive_run_took_aside_is_put_back(project_home, tmp_path, capsys, monkeypatch):
    """Killed between its rename and its unlink, a run left `.result.json.archiving-<pid>`,
    which nothing looked at again: with a writer's newer bytes in it, they were only there,
    and `phase` said the store was the only record."""
    import subprocess
    import sys

    from result_assets.cli.archive import TAKEN_ASIDE, archive_tasks
    from result_assets.settings import Settings

    source = tmp_path / "src"
    ids = ["aside_put_back", "aside_beside_newer", "aside_live_run"]
    for task_id in ids:
        (source / task_id).mkdir(parents=True)
        (source / task_id / "result.json").write_bytes((SAMPLES / "bt_20250901_14ceeb" / "result.json").read_bytes())
    (source / "aside_quarantined").mkdir()
    (source / "aside_quarantined" / "result.json").write_bytes(b'{"truncated": ')
    assert main(["migrate", "--source-dir", str(source), "--json"]) == 0
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    newer = b'{"written": "just before the rename"}'
    put_back = source / ids[0] / f"{TAKEN_ASIDE}{dead}"
    os.rename(source / ids[0] / "result.json", put_back)
    put_back.write_bytes(newer)
    beside = source / ids[1] / f"{TAKEN_ASIDE}{dead}"
    beside.write_bytes(newer)
    live = source / ids[2] / f"{TAKEN_ASIDE}{os.getppid()}"  # a run still going: its own to finish
    live.write_bytes(newer)
    monkeypatch.setenv("RESULT_SOURCE_DIR", str(source))
    monkeypatch.setenv("RESULT_STORAGE_MODE", "postgres-only")
    capsys.readouterr()
    main(["phase"])
    out = capsys.readouterr().out
    assert "2 JSON files an interrupted archive run took aside" in out
    assert "packs the 2 JSON files" in out  # not the quarantined one, which archive keeps
    report = archive_tasks(Settings.from_env(), tmp_path / "archives")
    assert (source / ids[0] / "result.json").read_bytes() == newer and not put_back.exists()
    assert report.skipped[ids[0]] == "the file differs from the migrated version (stale)"
    assert beside.read_bytes() == newer and live.read_bytes() == newer
    assert report.put_back == [f"{beside}: left beside a newer result.json by an interrupted archive run; check it, "
                               "then remove it",
                               f"{source / ids[0] / 'result.json'}: put back (an interrupted archive run had taken "
                               "it aside)"]
    assert sorted(report.archived) == ids[1:]


def test_archive_again_of_tasks_one_of_which_is_archived_already(project_home, tmp_path, capsys, monkeypatch):
    """Re-run to finish (as the runbook says) with the same --task list: the task archived by
    the first run was "no such task" and the whole run stopped, leaving the other in place."""
    from result_assets.cli.archive import archive_tasks
    from result_assets.settings import Settings

    source = tmp_path / "src"
    for task_id in ("again_a", "again_b"):
        (source / task_id).mkdir(parents=True)
        (source / task_id / "result.json").write_bytes((SAMPLES / "grid...42" / "result.json").read_bytes())
    assert main(["migrate", "--source-dir", str(source), "--json"]) == 0
    settings = Settings.from_env(source_dir=str(source))
    assert archive_tasks(settings, tmp_path / "archives", only={"again_a"}).archived == ["again_a"]
    report = archive_tasks(settings, tmp_path / "archives", only={"again_a", "again_b"})
    assert report.archived == ["again_b"]
    assert report.skipped == {"again_a": "no JSON in the source folder (archived already?)"}
    monkeypatch.setenv("RESULT_STORAGE_MODE", "postgres-only")
    capsys.readouterr()
    assert main(["archive", "--to", str(tmp_path / "archives"), "--source-dir", str(source), "--task", "nope"]) == 2
    assert "no such task in" in capsys.readouterr().err


def test_a_file_taken_aside_under_this_processs_own_pid_is_a_run_before_it(tmp_path):
    """In a container the CLI is pid 1 on every run: a file a killed run left under that pid was
    taken for a live run's, never put back, and the next rename went over it."""
    from result_assets.cli.archive import TAKEN_ASIDE, put_back_taken_aside

    (tmp_path / "t").mkdir()
    left = tmp_path / "t" / f"{TAKEN_ASIDE}{os.getpid()}"
    left.write_bytes(b"a writer's newer bytes")
    assert put_back_taken_aside(tmp_path) == [f"{tmp_path / 't' / 'result.json'}: put back (an interrupted archive "
                                              "run had taken it aside)"]
    assert (tmp_path / "t" / "result.json").read_bytes() == b"a writer's newer bytes"


def test_archive_removes_a_folder_a_killed_save_left_a_staged_file_in(project_home, tmp_path, monkeypatch):
    """A dual-write save killed between writing its staged file and renaming it left
    `.result.json.<pid>.staged-N.tmp`: no one removed it, and the archived task's folder stayed.
    An hour old, it is no live writer's; a younger one is left alone."""
    from result_assets.cli.archive import archive_tasks
    from result_assets.settings import Settings

    source = tmp_path / "src"
    for task_id in ("killed_save", "live_save"):
        (source / task_id).mkdir(parents=True)
        (source / task_id / "result.json").write_bytes((SAMPLES / "grid...42" / "result.json").read_bytes())
    stale = source / "killed_save" / ".result.json.4242.staged-7.tmp"
    stale.write_bytes(b'{"half": ')
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    live = source / "live_save" / ".result.json.4243.staged-8.tmp"
    live.write_bytes(b'{"being": "written"}')
    assert main(["migrate", "--source-dir", str(source), "--json"]) == 0
    settings = Settings.from_env(source_dir=str(source))
    assert sorted(archive_tasks(settings, tmp_path / "archives").archived) == ["killed_save", "live_save"]
    assert not (source / "killed_save").exists()
    assert [p.name for p in (source / "live_save").iterdir()] == [live.name]
