"""The phase walk: json-only -> dual-write -> postgres-only, writes at each step, every result read back."""
from __future__ import annotations

import json
import os

import pytest

from result_assets import ResultManager
from result_assets.assets.sensors import migration_requests
from result_assets.cli import main
from result_assets.cli.archive import archive_tasks
from result_assets.migration.sources import scan_source_dir
from result_assets.settings import Settings
from result_assets.store.stores import Stores
from result_assets.legacy import compare_documents
from result_assets_tests.app.helpers import V1_TASK, V2_TASK, sample_document, small_document


@pytest.fixture(scope="module")
def source(project_home, tmp_path_factory):
    path = tmp_path_factory.mktemp("walk_source")
    os.environ["RESULT_SOURCE_DIR"] = str(path)
    yield path
    os.environ.pop("RESULT_SOURCE_DIR", None)
    os.environ.pop("RESULT_STORAGE_MODE", None)


def phase(capsys, *flags) -> tuple[int, dict, str]:
    code = main(["phase", "--json", *flags])
    report = json.loads(capsys.readouterr().out)
    main(["phase"])
    return code, report, capsys.readouterr().out


def test_walk_json_only_to_postgres_only(source, capsys, mode):
    written = {}

    def save(task_id, document):
        written[task_id] = document
        outcome = ResultManager.from_env().save_result(task_id, document)
        assert not outcome.warnings, outcome.warnings
        return outcome

    # Phase 1: json-only. The store is empty; the JSON is the record.
    mode("json-only")
    save("walk_a", sample_document(V2_TASK))
    save("walk_b", sample_document(V1_TASK))
    code, report, text = phase(capsys)
    assert code == 0 and report["mode"] == "json-only" and report["next"] == "dual-write"
    assert report["tasks"]["pending"] == 2 and report["ready"]
    assert "result-assets migrate --source-dir" in text and "READY for dual-write" in text

    # Initial load, then dual-write.
    assert main(["migrate", "--source-dir", str(source), "--json"]) == 0
    capsys.readouterr()
    mode("dual-write")
    save("walk_c", small_document(strategy="walk", n=4))
    assert save("walk_a", small_document(strategy="walk_a_v2", n=2)).stored == "migrated"  # an update
    # An application instance not switched yet still writes JSON only: a straggler.
    ResultManager("json-only", source_dir=source).save_result("walk_d", small_document(strategy="late", n=6))
    written["walk_d"] = small_document(strategy="late", n=6)
    code, report, text = phase(capsys, "--check")
    assert code == 1 and not report["ready"] and report["next"] == "postgres-only"
    assert report["blockers"][0]["tasks"] == ["walk_d"]
    assert "NOT READY: do not switch to postgres-only" in text and "walk_d" in text

    # The sensor's job (here: a migrate) catches up; then the phase is clear.
    assert main(["migrate", "--source-dir", str(source), "--json"]) == 0
    capsys.readouterr()
    code, report, text = phase(capsys, "--check")
    assert code == 0 and report["ready"] and report["tasks"] == {"migrated": 4, "quarantined": 0, "pending": 0, "stale": 0}
    assert "READY for postgres-only" in text

    # Phase 3: postgres-only.
    mode("postgres-only")
    save("walk_e", small_document(strategy="pg", n=3))
    save("walk_b", sample_document(V1_TASK) | {"note": "updated in postgres-only"})
    assert not (source / "walk_e").exists()
    code, report, text = phase(capsys)
    assert report["mode"] == "postgres-only" and report["next"] == "archive" and report["ready"]
    assert report["tasks"]["stale"] == 0  # walk_b's old JSON is superseded, not stale
    assert report["tasks"]["superseded"] == 1 and "older versions" in text and "(walk_b)" in text
    assert "packs the 3 JSON files" in text  # walk_a, walk_c, walk_d: not walk_b's

    # walk_b's JSON is the version the save replaced: neither migrate (even --force) nor the
    # sensor puts it back over the application's save.
    stores = Stores(Settings.from_env())
    runs, _ = migration_requests(stores, scan_source_dir(str(source)).tasks)
    assert runs == []
    for flags in ([], ["--force"]):
        assert main(["migrate", "--source-dir", str(source), "--json", *flags]) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["superseded"] == 1
        assert compare_documents(written["walk_b"], ResultManager.from_env().get_result("walk_b")) == []
    archived = archive_tasks(Settings.from_env(), source.parent / "walk_archive", only={"walk_b"})
    assert archived.skipped["walk_b"].startswith("superseded: the application saved a newer version")

    # A JSON the store never had (an instance still writing JSON after the switch) is newer:
    # migrate takes it.
    straggler = small_document(strategy="written_after_the_switch", n=2)
    ResultManager("json-only", source_dir=source).save_result("walk_b", straggler)
    written["walk_b"] = straggler
    code, report, text = phase(capsys, "--check")
    assert code == 1 and report["blockers"][0]["tasks"] == ["walk_b"]  # stale: its JSON is newer than the save
    assert main(["migrate", "--source-dir", str(source), "--json"]) == 0
    assert "superseded" not in json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    reader = ResultManager.from_env()
    for task_id, document in written.items():
        assert compare_documents(document, reader.get_result(task_id)) == [], task_id


def test_phase_refuses_an_unknown_mode(source, capsys, mode):
    mode("postgres")
    assert main(["phase"]) == 2
    assert "RESULT_STORAGE_MODE is 'postgres'" in capsys.readouterr().err


def test_a_store_root_under_a_file_blocks_the_first_phase(tmp_path):
    """phase said READY for dual-write with RESULT_STORE_ROOT under a regular file (the file was
    writable), and migrate then failed with NotADirectoryError."""
    from result_assets.cli.phases import _store_root_problem

    (tmp_path / "a_file").write_text("x")
    assert _store_root_problem(str(tmp_path / "a_file" / "store")) == \
        f"RESULT_STORE_ROOT {tmp_path / 'a_file' / 'store'} cannot be made: {tmp_path / 'a_file'} is a file"
    assert _store_root_problem(str(tmp_path / "new" / "store")) is None
