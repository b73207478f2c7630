"""store_maintenance compacts many small batch commits into few files, losing nothing."""
from __future__ import annotations

import json

from dagster import materialize

from result_assets import read_result
from result_assets.cli import main
from result_assets.legacy import compare_documents, parse_document
from result_assets.store.delta_tables import SIGNALS


def test_compaction_after_small_batches(project_home, sample_source, sample_expectations, capsys):
    assert main(["migrate", "--source-dir", str(sample_source), "--batch-size", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["runs"] >= 7  # 22 tasks in batches of 3

    from result_assets.assets.report import store_maintenance
    from result_assets.definitions import build_definitions
    from result_assets.assets.instance import get_instance
    from result_assets.store.stores import Stores

    stores = Stores.from_env()
    bytes_before, files_before = stores.delta.total_bytes(SIGNALS)
    assert files_before >= 4  # batches holding only quarantined tasks add no signal file
    defs = build_definitions()
    result = materialize([store_maintenance], instance=get_instance(), resources={"stores": defs.resources["stores"]})
    assert result.success
    bytes_after, files_after = stores.delta.total_bytes(SIGNALS)
    assert files_after == 1
    assert bytes_after < bytes_before
    for task_id, expect in sample_expectations.items():
        if expect["valid"]:
            original = parse_document((sample_source / task_id / "result.json").read_bytes())
            assert compare_documents(original, read_result(task_id)) == [], task_id


def test_maintain_command_runs_the_job_in_the_instance(project_home, sample_source, capsys):
    from dagster import RunsFilter

    from result_assets.assets.instance import get_instance

    capsys.readouterr()
    assert main(["maintain", "--json", "--retention-hours", "0"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert {"flushed_tasks", "still_hot", "repointed", "located", "unreadable", "vacuumed_files"} <= set(figures)
    assert figures["unreadable"] == 0
    run = get_instance().get_run_by_id(figures["run_id"])
    assert run.job_name == "store_maintenance_job" and run.is_success
    assert get_instance().get_runs(RunsFilter(job_name="store_maintenance_job"))
    assert main(["maintain", "--retention-hours", "-1"]) == 2  # a bad flag is one line


def test_a_flush_is_reported_on_the_maintenance_materialization_not_per_partition(project_home, capsys):
    """A flush moves saved rows into Delta without changing a document: the maintenance run's
    own materialization names the tasks, and no task partition gets an event from it (on stock
    Dagster storage each would be a write of its own)."""
    from result_assets.app.manager import ResultManager
    from result_assets.assets.instance import get_instance
    from result_assets_tests.app.helpers import small_document

    manager = ResultManager("postgres-only")
    for task_id in ("flush_a", "flush_b"):
        manager.save_result(task_id, small_document())
    capsys.readouterr()
    assert main(["maintain", "--json", "--retention-hours", "0"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["flushed_tasks"] == 2
    run_events = get_instance().all_logs(figures["run_id"])
    materialized = {e.dagster_event.asset_key.to_user_string() for e in run_events
                    if e.is_dagster_event and e.dagster_event.is_step_materialization}
    assert materialized == {"store_maintenance"}
    [event] = [e for e in run_events if e.is_dagster_event and e.dagster_event.is_step_materialization]
    report = event.dagster_event.event_specific_data.materialization.metadata["report"].value
    assert "Flushed: `flush_a`, `flush_b`" in report
    assert manager.get_result("flush_a") == small_document()
