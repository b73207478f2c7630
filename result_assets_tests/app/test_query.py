"""ResultStore over the migrated sample corpus plus a few documents saved in postgres-only."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pyarrow.compute as pc
import pytest

from result_assets import ResultManager, ResultStore
from result_assets.app import ResultNotFound
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
