"""The hostile input classes through a real `result-assets migrate` (one batch, embedded
PostgreSQL): every task is migrated exactly or quarantined with its reason, and none of
them fails the batch, a directory name that is not UTF-8 included.

Needs the catalog to write text through result_assets.store.pg_text (pg_text for text
columns, jsonb_text for jsonb ones): without it, NUL-free but escape-like params
("\\u0000" as six characters) and paths that are not UTF-8 fail the whole COPY.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from result_assets.store.backups import sha256_hex
from result_assets_tests.faults.helpers import audit, run_cli, stop_home_server, stores_for

CP949 = "백테스트_005".encode("cp949")
SIGNAL = {"timestamp": "2024-01-03 09:00:00", "type": "buy", "price": 1.5, "reason": "x"}


def doc(**fields) -> dict:
    signal = {**SIGNAL, **fields.pop("signal", {})}
    return {"strategy": "s", "params": {"n": 5}, "symbols": [{"symbol": "KRW-BTC", "signals": [signal]}], **fields}


FILES: dict[bytes, bytes] = {
    CP949: json.dumps(doc()).encode(),
    b"escape_like_params": json.dumps(doc(params={"p": "\\u0000", "q": "a\x00b", "\\": ["\\\\u0000"]})).encode(),
    b"nul_everywhere": json.dumps(doc(strategy="a\x00b", timeframe="\x00", signal={"reason": "\x00\\u0000"},
                                      symbols=[{"symbol": "K\x00", "signals": [SIGNAL]}])).encode(),
    b"lone_surrogate": json.dumps(doc(signal={"reason": "a\ud800"})).encode(),  # as a \ud800 escape
    b"week_date": json.dumps(doc(signal={"timestamp": "2011-W01-2T00:05:23"})).encode(),
    b"long_literal": json.dumps(doc(params={"x": "@"})).replace('"@"', "1.0000000000000000000001").encode(),
    b"long_numeric_string": json.dumps(doc(signal={"price": "1.0000000000000000000001"})).encode(),
}
EXPECTED_REASONS = {
    "lone_surrogate": "symbols[0] (KRW-BTC).signals[0].reason: text that is not valid Unicode (lone surrogate \\ud800)",
    "week_date": 'symbols[0] (KRW-BTC) signals[0]: timestamp "2011-W01-2T00:05:23" is not a timestamp '
                 "(ISO 8601, Seoul wall time or epoch milliseconds)",
    "long_literal": "number 1.0000000000000000000001 has more digits than a float64 (it would be read as 1.0)",
}
CP949_ID = "%bytes:%B9%E9%C5%D7%BD%BA%C6%AE_005"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    source = tmp_path_factory.mktemp("hostile") / "tasks"
    source.mkdir()
    for name, data in FILES.items():
        task = os.path.join(os.fsencode(source), name)
        os.mkdir(task)
        with open(os.path.join(task, b"result.json"), "wb") as f:
            f.write(data)
    home = tmp_path_factory.mktemp("hostile_home")
    result = run_cli(home, "migrate", "--source-dir", str(source), "--json", "--batch-size", "100")
    yield source, home, result
    stop_home_server(home)


def test_one_batch_migrates_or_quarantines_every_class(migrated):
    source, home, result = migrated
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["runs"] == 1 and report["failed_runs"] == 0
    state = audit(stores_for(home))
    assert state.problems == [] and state.at_rest == []
    reasons = {t: r["reason"] for t, r in state.catalog.items() if r["status"] == "quarantined"}
    assert reasons == EXPECTED_REASONS
    assert state.migrated == sorted([CP949_ID, "escape_like_params", "nul_everywhere", "long_numeric_string"])


def test_catalog_copies_and_kept_bytes(migrated):
    source, home, _ = migrated
    stores = stores_for(home)
    rows = stores.catalog.tasks([CP949_ID, "escape_like_params", "nul_everywhere"])
    # the jsonb query copy keeps escape-like text as it is; NUL becomes its 6-character escape
    assert rows["escape_like_params"]["params"] == {"p": "\\u0000", "q": "a\\u0000b", "\\": ["\\\\u0000"]}
    assert rows["nul_everywhere"]["strategy"] == "a\\u0000b"
    # the exact document is the skeleton text, NUL included
    assert json.loads(rows["nul_everywhere"]["skeleton"])["strategy"] == "a\x00b"
    # the task of a CP949 directory: its backup is the exact bytes of that directory's file
    assert stores.backups.read(CP949_ID) == FILES[CP949]
    assert rows[CP949_ID]["source_sha256"] == sha256_hex(FILES[CP949])
    assert Path(rows[CP949_ID]["source_path"]).parent.parent == source


def test_second_run_finds_every_task_unchanged(migrated):
    """Going from a task id back to its directory (the CP949 one included) works: a re-run
    finds every source unchanged."""
    source, home, _ = migrated
    result = run_cli(home, "migrate", "--source-dir", str(source), "--json", "--batch-size", "100")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["skipped"] == len(FILES) and report["runs"] == 0, report


def test_the_cp949_task_through_status_export_and_read_result(migrated, tmp_path):
    source, home, _ = migrated
    status = run_cli(home, "status", "--json")
    rows = {r["task_id"]: r for r in json.loads(status.stdout)["tasks"]}
    assert rows[CP949_ID]["status"] == "migrated"
    exported = run_cli(home, "export", CP949_ID)
    assert exported.returncode == 0 and json.loads(exported.stdout)["strategy"] == "s"
    from result_assets.legacy import compare_documents
    from result_assets.store.reader import read_result

    assert compare_documents(json.loads(FILES[CP949]), read_result(CP949_ID, stores_for(home))) == []


def test_a_forced_scattered_subset_runs_the_explicit_list_job_alike(migrated):
    source, home, _ = migrated
    args = ["migrate", "--source-dir", str(source), "--json", "--force"]
    for task_id in (CP949_ID, "lone_surrogate", "nul_everywhere"):
        args += ["--task", task_id]
    result = run_cli(home, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    state = audit(stores_for(home))
    assert state.problems == [] and state.at_rest == []
    assert {t: r["reason"] for t, r in state.catalog.items() if r["status"] == "quarantined"} == EXPECTED_REASONS


def test_the_application_saves_every_class_alike(migrated, monkeypatch):
    """ResultManager in postgres-only: lossless, or refused with the same reason; never a store error."""
    from result_assets import ResultManager, ResultValidationError
    from result_assets.legacy import compare_documents
    from result_assets.legacy.parse import parse_document

    source, home, _ = migrated
    monkeypatch.setenv("RESULT_ASSETS_HOME", str(home))
    manager = ResultManager("postgres-only", record_in_dagster=False)
    for name, data in FILES.items():
        if name == CP949:
            continue
        task_id = "app_" + name.decode()
        document = parse_document(data) if name != b"long_literal" else None
        if name.decode() in EXPECTED_REASONS:
            if document is None:
                continue  # a bare literal float64 cannot hold has no Python value to save
            # refused with its reason (a lone surrogate cannot even be serialized as UTF-8)
            with pytest.raises(ResultValidationError, match="not a valid result|not valid UTF-8"):
                manager.save_result(task_id, document)
            assert manager.stores.catalog.task(task_id) is None
        else:
            assert manager.save_result(task_id, document).stored == "migrated", name
            assert compare_documents(document, manager.get_result(task_id)) == [], name
    manager.close()
