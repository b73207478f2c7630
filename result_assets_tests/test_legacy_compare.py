"""compare_documents: finds real losses, accepts exactly the allowed differences."""

import copy
import math

from result_assets.legacy import compare_documents

V2 = {
    "task_id": "t1",
    "strategy": "sma_cross",
    "params": {"n1": 5},
    "symbols": [
        {
            "symbol": "KRW-BTC",
            "signals": [
                {"timestamp": "2024-01-03T09:00:00+09:00", "type": "buy", "price": 1.0, "quantity": 2.5,
                 "exit_timestamp": None, "indicators": {"a": 1.5}, "tag": "A"},
                {"timestamp": 1704240000000, "type": "sell", "price": 2.0, "sl": {"x": [1, 2]}},
            ],
            "performance": {"sharpe_ratio": math.nan, "profit_factor": math.inf, "num_trades": 2},
            "performance_curve": [{"timestamp": "2024-01-03 09:00:00", "equity": 1.0, "drawdown": -0.0}],
        }
    ],
    "summary": {"sharpe_ratio": math.nan},
    "metadata": {"created_at": "2025-10-02 00:17:00"},
}


def changed(fn):
    doc = copy.deepcopy(V2)
    fn(doc)
    return compare_documents(V2, doc)


def sig(doc, i=0):
    return doc["symbols"][0]["signals"][i]


def test_identical_is_lossless():
    assert compare_documents(V2, copy.deepcopy(V2)) == []


def test_detects_float_bit_change():
    diffs = changed(lambda d: sig(d).update(price=1.0000000000000002))
    assert diffs == ["symbols[0].signals[0].price: 1.0 != 1.0000000000000002"]


def test_detects_negative_zero():
    assert changed(lambda d: d["symbols"][0]["performance_curve"][0].update(drawdown=0.0))


def test_detects_dropped_and_added_keys():
    assert changed(lambda d: sig(d).pop("tag"))
    assert changed(lambda d: sig(d, 1)["sl"]["x"].append(3))
    assert changed(lambda d: d["metadata"].update(extra=1))
    assert changed(lambda d: d.pop("params"))


def test_detects_different_instant():
    assert changed(lambda d: sig(d).update(timestamp="2024-01-03T09:00:00Z"))
    assert changed(lambda d: sig(d, 1).update(timestamp=1704240000001))


def test_detects_missing_signal_and_int_vs_float():
    assert changed(lambda d: d["symbols"][0]["signals"].pop())
    assert changed(lambda d: sig(d).update(quantity=2))
    assert changed(lambda d: d["symbols"][0]["performance"].update(num_trades=2.0))
    assert changed(lambda d: d["metadata"].update(created_at="2025-10-01T15:17:00Z"))  # not a timestamp field


def test_accepts_allowed_differences():
    assert changed(lambda d: sig(d).update(timestamp="2024-01-03T00:00:00Z", type="BUY")) == []
    assert changed(lambda d: sig(d).pop("exit_timestamp")) == []  # explicit null may be absent
    assert changed(lambda d: sig(d, 1).update(timestamp="2024-01-03T00:00:00.000000Z")) == []
    assert changed(lambda d: d["summary"].update(sharpe_ratio=float("nan"))) == []
    assert changed(lambda d: d["symbols"][0]["performance_curve"][0].update(timestamp=1704240000000)) == []


def test_numeric_string_equals_its_number():
    original = copy.deepcopy(V2)
    sig(original)["price"] = "1.0"
    assert compare_documents(original, V2) == []
    sig(original)["price"] = "1.00000000000000002"  # the same float64
    assert compare_documents(original, V2) == []
    sig(original)["price"] = "1.0001"
    assert compare_documents(original, V2)


def test_v1_may_come_back_as_v2():
    v1 = {
        "strategy": "s",
        "symbols": ["KRW-BTC", "KRW-ETH"],
        "signals": [
            {"symbol": "KRW-ETH", "timestamp": "2024-01-03 09:00:00", "type": "BUY", "price": "1.5"},
            {"symbol": "KRW-BTC", "timestamp": "2024-01-03 10:00:00", "type": "SELL", "price": 2.0},
            {"symbol": "KRW-ETH", "timestamp": "2024-01-03 11:00:00", "type": "SELL", "price": 3.0},
        ],
    }
    v2 = {
        "strategy": "s",
        "symbols": [
            {"symbol": "KRW-BTC", "signals": [{"timestamp": "2024-01-03T01:00:00Z", "type": "sell", "price": 2.0}]},
            {"symbol": "KRW-ETH", "signals": [
                {"timestamp": "2024-01-03T00:00:00Z", "type": "buy", "price": 1.5},
                {"timestamp": "2024-01-03T02:00:00Z", "type": "sell", "price": 3.0}]},
        ],
    }
    assert compare_documents(v1, v2) == []
    v2["symbols"][1]["signals"].reverse()  # order within a symbol matters
    assert compare_documents(v1, v2)


def test_symbol_string_may_come_back_as_object():
    a = {"strategy": "s", "symbols": ["KRW-BTC"]}
    assert compare_documents(a, {"strategy": "s", "symbols": [{"symbol": "KRW-BTC"}]}) == []
    assert compare_documents(a, {"strategy": "s", "symbols": [{"symbol": "KRW-ETH"}]})


def test_max_differences():
    doc = copy.deepcopy(V2)
    doc["symbols"][0]["signals"] = [dict(sig(V2), price=float(i)) for i in range(50)]
    assert len(compare_documents(doc, V2, max_differences=5)) == 5


def test_seoul_dst_1987():
    # 1987-05-10 .. 1987-10-11 Seoul was +10:00.
    a = {"strategy": "s", "symbols": [{"symbol": "X", "signals": [{"timestamp": "1987-07-01 09:00:00"}]}]}
    b = copy.deepcopy(a)
    b["symbols"][0]["signals"][0]["timestamp"] = "1987-06-30T23:00:00Z"
    assert compare_documents(a, b) == []


# --- the column screen over long lists of records (compare.py _records_to_judge) ---------

def _signals(n):
    return [{"timestamp": f"2024-01-{1 + i % 28:02d} {i % 24:02d}:00:00", "type": "buy", "price": 1.0 + i,
             "exit_timestamp": None if i % 7 == 0 else f"2024-02-{1 + i % 28:02d} 0{i % 10}:30:00.25",
             "indicators": {"a": i / 3}} for i in range(n)]


def _as_restored(signals):
    """What the store gives back: timestamps in UTC "Z" with 6 fraction digits, explicit nulls dropped."""
    from datetime import datetime, timedelta

    def utc(text):
        moment = datetime.fromisoformat(text) - timedelta(hours=9)
        return moment.isoformat().replace("+00:00", "") + "Z"

    out = []
    for s in copy.deepcopy(signals):
        r = {k: v for k, v in s.items() if v is not None}
        r["timestamp"] = utc(s["timestamp"])
        if s["exit_timestamp"] is not None:
            r["exit_timestamp"] = utc(s["exit_timestamp"])
        out.append(r)
    return out


def _doc(signals):
    return {"strategy": "s", "symbols": [{"symbol": "KRW-BTC", "signals": signals}]}


def test_screen_accepts_respelled_instants_and_dropped_nulls():
    original = _signals(500)
    assert compare_documents(_doc(original), _doc(_as_restored(original))) == []


def test_screen_still_finds_each_kind_of_loss_among_many_records():
    original = _signals(500)
    cases = {
        "int for float": lambda r: r[100].__setitem__("price", 101),  # 101 == 101.0 in Python
        "negative zero": lambda r: (original[200].__setitem__("price", 0.0), r[200].__setitem__("price", -0.0)),
        "NaN for null": lambda r: (original[300].__setitem__("pnl", None), r[300].__setitem__("pnl", math.nan)),
        "an hour off": lambda r: r[400].__setitem__("timestamp", "2024-01-17T08:00:00Z"),
        "a microsecond off": lambda r: r[8].__setitem__("exit_timestamp", "2024-02-08T23:30:00.250001Z"),
        "indicator bits": lambda r: r[5]["indicators"].__setitem__("a", math.nextafter(5 / 3, 2)),
    }
    for name, spoil in cases.items():
        restored = _as_restored(original)
        spoil(restored)
        assert compare_documents(_doc(original), _doc(restored)), name
        original = _signals(500)


def test_screen_reads_only_real_dates():
    """A date that does not exist is no instant (the rules then compare the two texts), and
    wall time before 1989 is left to the rules: Seoul kept daylight saving time in 1987, so
    a fixed +09:00 would wrongly take 18:00Z for 03:00 on 1987-05-10 (it was 17:00Z)."""
    original = [{"timestamp": "2023-02-29 09:00:00"}, {"timestamp": "1987-05-10 03:00:00"}] * 50
    restored = [{"timestamp": "2023-03-01T00:00:00Z"}, {"timestamp": "1987-05-09T18:00:00Z"}] * 50
    differences = compare_documents(_doc(original), _doc(restored), max_differences=200)
    assert len(differences) == 100
    assert sum("2023-02-29" in d for d in differences) == 50
    right = [{"timestamp": "1987-05-09T17:00:00Z"}] * 100
    assert compare_documents(_doc([{"timestamp": "1987-05-10 03:00:00"}] * 100), _doc(right)) == []
