"""The three everyday tasks, clicked through in headless Chromium against a real webserver and daemon.

1. backfill the missing task partitions from the asset graph's own dialog and watch it complete;
2. read catalog_entry's round-trip proof partition by partition;
3. open one partition and materialize just it.

A screenshot of each step goes to test-artifacts/ui/; docs/images/ holds copies for docs/ui.md.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect, sync_playwright

from result_assets.legacy import partition_key_for
from result_assets_tests.ui.conftest import TASK_ASSETS, register_partitions_with_sensor, wait_for
from result_assets_tests.ui.test_graphql import (
    BACKFILL_STATUS,
    check_partition_statuses,
    partition_statuses,
    wait_for_run,
)

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
UI_TIMEOUT_MS = 60_000  # a first page load compiles the UI's bundle on a slow machine
BACKFILL_TIMEOUT = 240
ONE_TASK = "bt_20250901_14ceeb"


@pytest.fixture(scope="module")
def page(dagster_ui, sample_expectations):
    register_partitions_with_sensor(dagster_ui, expected=len(sample_expectations))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=dagster_ui.url)
            context.set_default_timeout(UI_TIMEOUT_MS)
            yield context.new_page()
        finally:
            browser.close()


def shot(page, artifacts_dir, name: str) -> None:
    page.screenshot(path=str(artifacts_dir / f"{name}.png"))


def test_backfill_missing_partitions_from_the_asset_graph(page, dagster_ui, artifacts_dir, sample_expectations):
    page.goto("/asset-groups/migration")
    expect(page.get_by_role("button", name=re.compile(r"Materialize all"))).to_be_visible()
    shot(page, artifacts_dir, "01_asset_graph")
    # Selecting one task asset: the UI adds the rest of the multi-asset and says so.
    page.get_by_text("signal_table", exact=True).last.click()
    page.get_by_role("button", name=re.compile(r"Materialize selected")).click()
    expect(page.get_by_text("Additional assets will be materialized")).to_be_visible()
    page.get_by_role("button", name="Confirm").click()
    # The launch dialog by its title: the "Additional assets" confirmation may still be closing.
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
    expect(dialog.get_by_text(f"Launch runs to materialize {len(TASK_ASSETS)} assets")).to_be_visible()
    dialog.get_by_role("button", name="Missing", exact=True).click()
    total = len(sample_expectations)
    expect(dialog.get_by_text(f"{total} partitions selected")).to_be_visible()
    shot(page, artifacts_dir, "02_backfill_dialog")
    dialog.get_by_role("button", name="Launch backfill").click()

    toast = page.get_by_text(re.compile(r"Created backfill \w+"))
    expect(toast).to_be_visible()
    backfill_id = re.search(r"Created backfill (\w+)", toast.inner_text()).group(1)
    page.get_by_role("button", name="View").or_(page.get_by_role("link", name="View")).first.click()
    expect(page).to_have_url(re.compile(f"/runs/b/{backfill_id}"))
    expect(page.get_by_text(f"{total} partitions", exact=True)).to_be_visible()

    def finished():
        status = dagster_ui.graphql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]["status"]
        return status if status not in ("REQUESTED", "CANCELING", "FAILING") else None

    assert wait_for(finished, BACKFILL_TIMEOUT, interval=3, what=f"backfill {backfill_id}") == "COMPLETED_SUCCESS"
    # The page polls: it shows every asset complete without a reload.
    expect(page.get_by_text("100% completed")).to_have_count(len(TASK_ASSETS), timeout=UI_TIMEOUT_MS)
    shot(page, artifacts_dir, "03_backfill_completed")
    for asset in TASK_ASSETS:
        assert len(partition_statuses(dagster_ui, asset)["materializedPartitions"]) == total, asset


def test_round_trip_check_per_partition(page, dagster_ui, artifacts_dir, sample_expectations):
    total = len(sample_expectations)
    page.goto("/assets/catalog_entry?view=checks")
    page.get_by_text("lossless_round_trip", exact=True).first.click()
    page.get_by_text("Partitions", exact=True).last.click()
    # The check's partition view: every task judged, every one passed.
    expect(page.get_by_text(f"Passed ({total})")).to_be_visible()
    expect(page.get_by_text("Missing (0)")).to_be_visible()
    shot(page, artifacts_dir, "04_checks_partitions")
    page.get_by_text("Execution history", exact=True).click()
    big = "bt_20250900_600020"  # the largest sample task: its proof is in its row
    expect(page.get_by_text(big, exact=True).first).to_be_visible()
    expect(page.get_by_text("the file's exact bytes come back from").first).to_be_visible()
    shot(page, artifacts_dir, "05_checks_history")
    statuses = check_partition_statuses(dagster_ui, "catalog_entry")["lossless_round_trip"]
    assert len(statuses["succeededPartitions"]) == total


def test_materialize_one_partition(page, dagster_ui, artifacts_dir, sample_expectations):
    key = partition_key_for(ONE_TASK)
    page.goto(f"/assets/signal_table?view=partitions&partition={key}")
    expect(page.get_by_text("Latest materialization")).to_be_visible()
    page.get_by_role("button", name="Materialize…").click()
    page.get_by_role("button", name="Confirm").click()  # the rest of the multi-asset comes along
    # The launch dialog by its title: the "Additional assets" confirmation may still be closing.
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    expect(dialog).to_contain_text(key)  # the partition this page shows is preselected
    expect(dialog.get_by_role("button", name="Launch 1 run")).to_be_visible()
    shot(page, artifacts_dir, "06_one_partition_dialog")
    dialog.get_by_role("button", name="Launch 1 run").click()

    toast = page.get_by_text(re.compile(r"Launched run \w+"))
    expect(toast).to_be_visible()
    short_id = re.search(r"Launched run (\w+)", toast.inner_text()).group(1)
    page.get_by_role("button", name="View").or_(page.get_by_role("link", name="View")).first.click()
    expect(page).to_have_url(re.compile(f"/runs/{short_id}"))
    run_id = page.url.rstrip("/").split("/runs/")[1].split("?")[0]
    run = wait_for_run(dagster_ui, run_id)
    assert run["status"] == "SUCCESS", run
    assert {m["partition"] for m in run["assetMaterializations"]} == {key}
    assert {m["assetKey"]["path"][0] for m in run["assetMaterializations"]} == set(TASK_ASSETS)

    page.goto(f"/assets/signal_table?view=partitions&partition={key}")
    expect(page.get_by_text(short_id, exact=True).first).to_be_visible()  # latest materialization: the new run
    expect(page.get_by_text(f"Materialized ({len(sample_expectations)})")).to_be_visible()
    shot(page, artifacts_dir, "07_one_partition_materialized")
