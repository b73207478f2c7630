"""A task's JSON against the store's version across the switch-over: the last write wins.

In postgres-only the application saves to the store and writes no JSON, so a JSON left in
the source directory is either older than the store's version (superseded: never migrated
or read over it) or was written after it (an instance still writing JSON: newer, taken).
"""
from __future__ import annotations

import json
import os
import time

import pyarrow as pa
import pytest

from result_assets import ResultManager
from result_assets.cli import main
from result_assets.migration import engine


@pytest.fixture(scope="module")
def source(project_home, tmp_path_factory):
    path = tmp_path_factory.mktemp("superseded_source")
    os.environ["RESULT_SOURCE_DIR"] = str(path)
    yield path
    os.environ.pop("RESULT_SOURCE_DIR", None)
    os.environ.pop("RESULT_STORAGE_MODE", None)


def doc(price: float) -> dict:
    return {"strategy": "s", "symbols": [{"symbol": "A", "signals": [{"timestamp": 1704240000000, "price": price}]}]}


def price(task_id: str, mode: str = "postgres-only") -> float:
    return ResultManager(mode).get_result(task_id)["symbols"][0]["signals"][0]["price"]


def migrate(source, capsys, *flags) -> dict:
    assert main(["migrate", "--source-dir", str(source), "--json", *flags]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def phase(capsys, mode) -> tuple[int, dict]:
    mode("postgres-only")
    code = main(["phase", "--json", "--check"])
    return code, json.loads(capsys.readouterr().out)


def test_a_json_older_than_a_postgres_only_save_is_read_and_migrated_as_the_older_one(source, capsys, mode):
    ResultManager("dual-write").save_result("sup_dual", doc(1.5))  # JSON and store, before the switch
    ResultManager("json-only").save_result("sup_lagging", doc(1.5))  # an instance not switched yet
    for task_id in ("sup_dual", "sup_lagging"):
        ResultManager("postgres-only").save_result(task_id, doc(2.5))

    # A dual-write instance (switched back, or not switched yet) reads the newer save.
    assert price("sup_dual", "dual-write") == price("sup_lagging", "dual-write") == 2.5
    assert {t: d["symbols"][0]["signals"][0]["price"] for t, d in
            ResultManager("dual-write").get_results(["sup_dual", "sup_lagging"]).items()} == {
        "sup_dual": 2.5, "sup_lagging": 2.5}
    for flags in ([], ["--force"]):
        assert migrate(source, capsys, *flags)["superseded"] == 2
        assert price("sup_dual") == price("sup_lagging") == 2.5
    code, report = phase(capsys, mode)
    assert code == 0 and report["tasks"]["superseded"] == 2 and report["blockers"] == []


def test_a_json_written_after_the_save_is_newer_unless_its_bytes_are_a_replaced_version(source, capsys, mode):
    """The last write wins, but an old file copied or touched after the save (its mtime
    renewed) is still the version it holds: one the store already replaced."""
    for task_id in ("sup_newer", "sup_touched"):
        ResultManager("dual-write").save_result(task_id, doc(1.5))
        ResultManager("postgres-only").save_result(task_id, doc(2.5))
    time.sleep(0.01)
    ResultManager("json-only").save_result("sup_newer", doc(3.5))  # an instance still writing JSON
    os.utime(source / "sup_touched" / "result.json")  # `touch`, or a copy that does not keep mtimes
    code, report = phase(capsys, mode)
    assert code == 1 and report["blockers"][0]["tasks"] == ["sup_newer (its JSON is newer than the store's save)"]
    report = migrate(source, capsys, "--task", "sup_newer", "--task", "sup_touched")
    assert report["superseded"] == 1
    assert price("sup_newer") == 3.5 and price("sup_touched") == 2.5
    assert price("sup_touched", "dual-write") == 2.5


def test_a_partition_re_run_from_the_backup_keeps_the_older_json_superseded(source, capsys):
    """Re-running a saved task's partition republishes its backup, whose path the catalog row then
    names: the older JSON is still older than that version."""
    from result_assets.assets.instance import get_instance
    from result_assets.assets.jobs import MIGRATE_JOB
    from result_assets.assets.partitions import register_partitions
    from result_assets.definitions import build_definitions
    from result_assets.settings import Settings

    ResultManager("dual-write").save_result("sup_rerun", doc(1.5))
    ResultManager("postgres-only").save_result("sup_rerun", doc(2.5))
    instance = get_instance(Settings.from_env())
    register_partitions(instance, ["sup_rerun"])
    run = build_definitions().resolve_job_def(MIGRATE_JOB).execute_in_process(
        instance=instance, partition_key="sup_rerun", raise_on_error=False)
    assert run.success and price("sup_rerun") == 2.5
    assert migrate(source, capsys, "--task", "sup_rerun")["superseded"] == 1
    assert price("sup_rerun") == 2.5


def test_a_failed_re_migration_of_an_unchanged_json_is_no_newer_json(source, capsys, mode, monkeypatch):
    """A forced re-migration whose proof failed keeps the published version and is retried; its
    JSON is the published version's file, not one newer than the store."""
    ResultManager("json-only").save_result("sup_failed", doc(1.5))
    migrate(source, capsys, "--task", "sup_failed")
    proven_rows = engine.signal_rows

    def corrupted(validated):
        rows = proven_rows(validated)
        price_at = rows.table.schema.get_field_index("price")
        rows.table = rows.table.set_column(price_at, "price", pa.array([9.5] * rows.table.num_rows, pa.float64()))
        return rows

    monkeypatch.setattr(engine, "signal_rows", corrupted)
    assert main(["migrate", "--source-dir", str(source), "--json", "--force", "--task", "sup_failed"]) == 1
    capsys.readouterr()
    monkeypatch.undo()
    code, report = phase(capsys, mode)
    assert not any("sup_failed" in task for blocker in report["blockers"] for task in blocker["tasks"])
    assert price("sup_failed") == 1.5


def test_after_a_rollback_to_a_save_the_newer_json_is_older_than_the_rollback(source, capsys, mode):
    """Rolled back to an application save, the JSON migrate had taken is older than the
    rollback: every command says so alike, and nothing puts it back."""
    ResultManager("postgres-only").save_result("sup_rollback", doc(1.5))
    time.sleep(0.01)
    ResultManager("json-only").save_result("sup_rollback", doc(2.5))
    migrate(source, capsys, "--task", "sup_rollback")
    assert price("sup_rollback") == 2.5
    assert main(["rollback", "sup_rollback"]) == 0
    assert "it stays superseded (migrate leaves it alone)" in capsys.readouterr().out
    assert price("sup_rollback") == 1.5
    assert migrate(source, capsys, "--task", "sup_rollback")["superseded"] == 1 and price("sup_rollback") == 1.5
    assert main(["status", "--json"]) == 0
    statuses = {r["task_id"]: r["status"] for r in json.loads(capsys.readouterr().out)["tasks"]}
    assert statuses["sup_rollback"] == "migrated"
    code, report = phase(capsys, mode)
    assert not any("sup_rollback" in task for blocker in report["blockers"] for task in blocker["tasks"])


def test_a_save_that_lands_while_migrate_converts_the_older_json_stays(source, capsys, monkeypatch):
    """migrate plans a newer JSON (a lagging instance's); the application saves again while the
    run converts it: the publish finds that save under the row lock and does not go over it."""
    import result_assets.assets.launch as launch

    ResultManager("postgres-only").save_result("sup_race", doc(1.5))
    time.sleep(0.01)
    ResultManager("json-only").save_result("sup_race", doc(2.5))
    planned_run = launch.run_migration

    def save_meanwhile(*args, **kwargs):
        ResultManager("postgres-only").save_result("sup_race", doc(3.5))
        return planned_run(*args, **kwargs)

    monkeypatch.setattr(launch, "run_migration", save_meanwhile)
    assert main(["migrate", "--source-dir", str(source), "--json", "--task", "sup_race"]) == 1
    assert "older, not published over it" in capsys.readouterr().err
    monkeypatch.undo()
    assert price("sup_race") == 3.5
    assert migrate(source, capsys, "--task", "sup_race")["superseded"] == 1 and price("sup_race") == 3.5
