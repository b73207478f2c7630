"""ResultStore over the migrated sample corpus plus a few documents saved in postgres-only."""
from __future__ import annotations

import json
import math
import threading
from datetime import date, datetime, timezone

import pyarrow.compute as pc
import pytest

from result_assets import ResultManager, ResultStore
from result_assets.app import ResultNotFound, ResultStoreError, ResultValidationError
from result_assets.cli import main
from result_assets.legacy import compare_documents, parse_document
from result_assets_tests.app.helpers import SAMPLES, small_document

EXTRA = {  # task id -> (strategy, symbol, start, end, total_return)
    "q_2022": ("q_strategy", "KRW-QQQ", "2022-01-03", "2022-06-30", 10.0),
    "q_2023": ("q_strategy", "KRW-QQQ", "2023/02/01", "2023/08/30", 30.0),
    "q_2024": ("q_strategy", "KRW-ZZZ", "2024-01-02", "2024-03-01", 20.0),
    "q_none": ("q_strategy", "KRW-QQQ", "2024-01-02", "2024-03-01", None),
}


@pytest.fixture(scope="module")
def store(project_home, sample_source):
    assert main(["migrate", "--source-dir", str(sample_source), "--json"]) == 0
    writer = ResultManager("postgres-only", record_in_dagster=False)
    for task_id, (strategy, symbol, start, end, ret) in EXTRA.items():
        writer.save_result(task_id, small_document(strategy, symbol, start, end, ret, n=4))
    store = ResultStore.from_env()
    yield store
    store.close()


def expect() -> dict:
    return json.loads((SAMPLES.parent / "expect.json").read_text())


def test_find_tasks_orders_by_a_metric_with_missing_values_last(store):
    rows = store.find_tasks(strategy="q_strategy", limit=10)
    assert [r["task_id"] for r in rows] == ["q_2023", "q_2024", "q_2022", "q_none"]
    assert [r["task_id"] for r in store.find_tasks(strategy="q_strategy", descending=False)] == \
        ["q_2022", "q_2024", "q_2023", "q_none"]
    assert rows[0]["symbols"] == ["KRW-QQQ"] and "skeleton" not in rows[0]
    assert rows[0]["n_signals"] == 4 and rows[0]["strategy"] == "q_strategy"
    assert len(store.find_tasks(limit=3)) == 3


def test_find_tasks_over_the_sample_corpus(store):
    valid = {t: e for t, e in expect().items() if e["valid"]}
    everything = store.find_tasks(limit=1000)
    assert {r["task_id"] for r in everything} == set(valid) | set(EXTRA)  # quarantined never listed
    returns = [r["total_return"] for r in everything if r["total_return"] is not None]
    assert returns == sorted(returns, reverse=True)
    for symbol in ("KRW-BTC", "KRW-DOGE"):
        found = {r["task_id"] for r in store.find_tasks(symbol=symbol, limit=1000)}
        assert found == {t for t, e in valid.items() if symbol in e["symbols"]}, symbol
    by_sharpe = store.find_tasks(strategy=["sma_cross", "rsi_reversion"], order_by="sharpe_ratio", limit=1000)
    assert {r["strategy"] for r in by_sharpe} == {"sma_cross", "rsi_reversion"}
    with pytest.raises(ValueError, match="cannot order by 'skeleton'"):
        store.find_tasks(order_by="skeleton")


def test_find_tasks_by_backtest_period(store):
    def ids(**kw):
        return [r["task_id"] for r in store.find_tasks(strategy="q_strategy", order_by="task_id",
                                                        descending=False, **kw)]
    assert ids(since="2023-01-01") == ["q_2023", "q_2024", "q_none"]
    assert ids(until=date(2023, 1, 1)) == ["q_2022"]
    assert ids(since="2023-03-01", until="2023-03-31") == ["q_2023"]  # 2023/02/01..2023/08/30 overlaps


def test_signals_filters(store):
    valid = {t: e for t, e in expect().items() if e["valid"]}
    task = "bt_20250900_600020"
    one = store.signals(task_ids=[task])
    assert one.num_rows == valid[task]["signals"]
    btc = store.signals(symbols=["KRW-BTC"], columns=["task_id", "symbol", "pnl"])
    assert btc.column_names == ["task_id", "symbol", "pnl"]
    assert set(btc.column("symbol").to_pylist()) == {"KRW-BTC"}
    assert set(btc.column("task_id").to_pylist()) <= {t for t, e in valid.items() if "KRW-BTC" in e["symbols"]} | {"q_2022"}
    start, end = datetime(2024, 1, 3, tzinfo=timezone.utc), "2024-01-05 09:00:00"  # naive: Seoul
    window = store.signals(task_ids=["q_2024"], start=start, end=end)
    # signals at 09:00 Seoul = 00:00 UTC on 01-02..01-05: start is inclusive, end exclusive
    assert window.num_rows == 2 and window.column("seq").to_pylist() == [1, 2]
    assert store.signals(task_ids=[]).num_rows == 0
    total = pc.sum(store.signals(task_ids=["q_2024"], columns=["pnl"]).column("pnl")).as_py()
    assert total == sum(float(i) - 1.0 for i in range(4))


def test_read_result(store, sample_source):
    for task in ("bt_20250900_600020", "grid...42", "백테스트_005"):
        original = parse_document((sample_source / task / "result.json").read_bytes())
        assert compare_documents(original, store.read_result(task)) == [], task
    assert compare_documents(small_document(*EXTRA["q_2023"], n=4), store.read_result("q_2023")) == []
    with pytest.raises(ResultNotFound, match="quarantined"):
        store.read_result("bad_truncated")
    with pytest.raises(ResultNotFound, match="not in the catalog"):
        store.read_result("no_such_task")


def test_find_tasks_puts_nan_metrics_last_either_way(store):
    """A Sharpe ratio without trades is NaN in the legacy files; Postgres sorts NaN above every
    number, so "best by Sharpe" listed the tasks without trades first."""
    for descending in (True, False):
        rows = store.find_tasks(order_by="sharpe_ratio", descending=descending, limit=1000)
        values = [r["sharpe_ratio"] for r in rows]
        unvalued = [v is None or math.isnan(v) for v in values]
        assert any(v is not None and math.isnan(v) for v in values), values  # the samples hold some
        assert unvalued == sorted(unvalued), values  # every number before every NaN and NULL
        numbers = [v for v, missing in zip(values, unvalued) if not missing]
        assert numbers == sorted(numbers, reverse=descending)


def test_one_store_shared_by_threads(store):
    """A web application's thread pool shares one ResultStore: its calls take turns on its one
    catalog connection (they raised "the connection cannot be re-entered recursively")."""
    errors = []

    def reads():
        try:
            for _ in range(25):
                assert store.find_tasks(limit=3)
                assert store.read_result("q_2024")["strategy"] == "q_strategy"
                assert store.signals(task_ids=["q_2024"]).num_rows == 4
                assert set(store.read_results(["q_2022", "q_2023"])) == {"q_2022", "q_2023"}
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=reads) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []


def test_a_lost_catalog_connection_is_a_store_error_and_the_next_call_reconnects(store):
    """find_tasks let psycopg2's own error through when the catalog went away (every other
    read said ResultStoreError)."""
    import psycopg2

    from result_assets.settings import Settings
    from result_assets.store.postgres import catalog_url

    other = ResultStore.from_env()
    try:
        assert other.find_tasks(limit=1)
        pid = other.stores.catalog.connect().get_backend_pid()
        admin = psycopg2.connect(catalog_url(Settings.from_env()))
        try:
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        finally:
            admin.close()
        with pytest.raises(ResultStoreError, match="catalog unreachable"):
            other.find_tasks(limit=1)
        assert other.find_tasks(limit=1)
    finally:
        other.close()


def test_ids_no_task_can_have_and_a_home_that_is_not_there(store, tmp_path, monkeypatch):
    """The read API's errors are its own: a bare ValueError (NUL), UnicodeEncodeError (a lone
    surrogate) or psycopg2 error (not a string) came through, read_result of the package raised
    the reader's internal TaskNotMigrated, and a mistyped home started a new, empty server."""
    import result_assets

    for bad in ("a\x00b", "\udcff", 123):
        with pytest.raises(ResultValidationError):
            store.read_result(bad)
        with pytest.raises(ResultValidationError):
            store.read_results([bad])
        with pytest.raises(ResultValidationError):
            store.signals(task_ids=[bad])
    with pytest.raises(ResultValidationError, match="a list of task ids"):
        store.read_results("q_2022")
    assert result_assets.ResultNotFound is ResultNotFound
    with pytest.raises(ResultNotFound):
        result_assets.read_result("no_such_task")
    assert result_assets.read_result("q_2022")["strategy"] == "q_strategy"

    monkeypatch.setenv("RESULT_ASSETS_HOME", str(tmp_path / "typo"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for read in (ResultStore.from_env, ResultStore, lambda: result_assets.read_result("q_2022")):
        with pytest.raises(ResultStoreError, match="no store at"):
            read()
    assert not (tmp_path / "typo").exists()


def test_export_takes_a_task_folders_own_name_that_is_not_utf8(tmp_path, monkeypatch, capsys):
    """The shell hands export a folder's name that is not UTF-8 as it is on disk: it is the
    task migrated from that folder (a UnicodeEncodeError traceback before)."""
    import os
    import shutil

    from result_assets.settings import Settings
    from result_assets.store.postgres import stop_embedded

    source = tmp_path / "source"
    folder = os.fsdecode(b"cp949_\xb9\xe9")
    shutil.copytree(SAMPLES / "bt_20250900_600020", source / folder)
    monkeypatch.setenv("RESULT_ASSETS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    try:
        assert main(["migrate", "--source-dir", str(source), "--json"]) == 0
        capsys.readouterr()
        assert main(["export", folder, folder, "--out", str(tmp_path / "out")]) == 0
        exported = list((tmp_path / "out").iterdir())
        assert len(exported) == 1 and "exported 1 tasks" in capsys.readouterr().err
        assert exported[0].read_bytes() == (source / folder / "result.json").read_bytes()
    finally:
        stop_embedded(Settings.from_env())
