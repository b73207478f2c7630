"""legacy/column_writer.py: a file's bytes written straight from the columns are the bytes
the document path writes (exact.write of the rebuilt, patched document), and the readers
trust them only when they hash to the source's."""
from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from result_assets.legacy import dumps_document, exact, normalize, parse_document
from result_assets.legacy.column_writer import Unwritable

STYLES = [dict(indent=indent, ensure_ascii=ascii_only) for indent in (None, 2) for ascii_only in (True, False)] + [
    dict(separators=(",", ":"), ensure_ascii=False)]


def stored(raw: bytes) -> tuple:
    result = normalize("t", parse_document(raw))
    return dumps_document(result.skeleton), result.signals, result.curves


def learned(raw: bytes) -> exact.Spelling:
    found = exact.learn(raw, parse_document(raw), *stored(raw))
    assert found is not None and found[1] == raw
    return exact.Spelling.from_json(found[0].to_json())  # as readers get it


def by_document_path(raw: bytes, spelling: exact.Spelling) -> bytes:
    return exact.file_bytes(*stored(raw), spelling.to_json(), None)


def signal(i: int, **values) -> dict:
    row = {"timestamp": f"2024-03-0{1 + i % 9}T0{i % 10}:00:00+09:00", "type": "buy", "price": 100.5 + i,
           "quantity": 0.25}
    row.update(values)
    return row


# Where orjson's, Arrow's and repr's float texts part: below 1e-4, at and past 1e16, integral.
EDGE_FLOATS = [1e-05, 5.9664421070415585e-05, 1.5e-07, 9.99e-05, 0.0001, 1e16, 1.2e17, 9007199254740993.0,
               123456789012345.6, 2.7309973233714935e+15, 5e-324, -0.0, 3.0, float("inf"), float("-inf")]


@settings(max_examples=60, deadline=None)
@given(style=st.sampled_from(STYLES), prices=st.lists(
    st.one_of(st.floats(width=64), st.none()), min_size=1, max_size=8))
def test_every_float_is_written_as_json_dumps_writes_it(style, prices):
    """Any float64 (subnormal, -0.0, 1e16 and past it, below 1e-4, NaN, Infinity) and nulls,
    in every style: the column writer's number text is repr's, where orjson's and Arrow's differ."""
    assert_prices_written_as_the_document_path_writes_them(style, prices)


@pytest.mark.parametrize("style", STYLES)
def test_floats_where_the_number_writers_part_are_written_as_repr(style):
    assert_prices_written_as_the_document_path_writes_them(style, EDGE_FLOATS)


def assert_prices_written_as_the_document_path_writes_them(style: dict, prices: list) -> None:
    signals = [signal(i, price=p, pnl=-p if p is not None else 0.0) for i, p in enumerate(prices)]
    doc = {"strategy": "s", "symbols": [{"symbol": "KRW-BTC", "signals": signals}],
           "performance_curve": [{"timestamp": 1_709_251_200_000 + i, "equity": p} for i, p in enumerate(prices)]}
    raw = json.dumps(doc, allow_nan=True, **style).encode()
    spelling = learned(raw)
    assert exact.written_from_columns(*stored(raw), spelling) == by_document_path(raw, spelling) == raw


@pytest.mark.parametrize("style", STYLES)
def test_a_raw_value_of_a_field_written_with_explicit_nulls_stays_in_place(style):
    """pnl is written `"pnl": null` where it is null, so the rebuilt row holds the key; a row
    whose pnl is an int (kept in extras) sets it where it stands, not after the other keys."""
    signals = [signal(0, pnl=None, reason="a"), signal(1, pnl=5, reason="b"), signal(2, pnl=1.5, reason="c")]
    raw = json.dumps({"strategy": "s", "symbols": [{"symbol": "A", "signals": signals}]}, **style).encode()
    spelling = learned(raw)
    assert "signals.pnl" in spelling.null_keys
    assert exact.written_from_columns(*stored(raw), spelling) == by_document_path(raw, spelling) == raw


@pytest.mark.parametrize("style", STYLES)
def test_odd_rows_are_written_as_the_document_path_writes_them(style):
    """v1 signals carrying their symbol, a value kept in extras that re-sets a typed key (an int
    price, a number as a type), a numeric string (a row patch), unknown keys nested and flat,
    empty and null indicators, an explicit null among absent ones, an empty row and a curve
    point without a timestamp: each written from the columns as the document path writes it."""
    signals = [
        signal(0, symbol="KRW-BTC", indicators={"rsi": 55.5, "λ": 1e-7}),
        signal(1, symbol="KRW-ETH", price=100, indicators={}),
        signal(2, symbol=None, type=7, indicators=None),
        signal(3, symbol="비트", price="101.25", fill={"venue": "upbit", "slices": [1, 2.5, None]}),
        signal(4, symbol="KRW-BTC", exit_timestamp=None, tag="A"),
        signal(5, symbol="KRW-BTC", holding_bars=2**40, reason="stop \"loss\"\n"),
    ]
    doc = {"strategy": "v1", "symbols": ["KRW-BTC", "KRW-ETH"], "signals": signals, "metadata": {"note": "ünïcode", "n": [1, 2.0, -0.0]},
           "performance_curve": [{"timestamp": "2024-03-01 09:00:00", "equity": 1.0}, {}, {"equity": 2.0},
                                 {"timestamp": "2024-03-01 11:00:00", "equity": float("nan"), "note": "x"}]}
    raw = json.dumps(doc, allow_nan=True, **style).encode()
    spelling = learned(raw)
    assert spelling.rows  # the patches are written by the column writer too
    assert exact.written_from_columns(*stored(raw), spelling) == by_document_path(raw, spelling) == raw


def test_bytes_are_trusted_only_when_they_hash_to_the_source():
    raw = json.dumps({"strategy": "s", "symbols": [{"symbol": "A", "signals": [signal(0), signal(1)]}]},
                     indent=2).encode()
    spelling = learned(raw)
    skeleton, signals, curves = stored(raw)
    right = hashlib.sha256(raw).hexdigest()
    assert exact.file_bytes(skeleton, signals, curves, spelling.to_json(), None, right) == raw
    # a hash the columns do not give: the document path writes the file (the same bytes here)
    assert exact.file_bytes(skeleton, signals, curves, spelling.to_json(), None, "0" * 64) == raw
    wrong = exact.Spelling.from_json(spelling.to_json())
    wrong.indent = None  # a Spelling that writes other bytes than the file's
    assert exact.written_from_columns(skeleton, signals, curves, wrong) != raw


def test_a_skeleton_that_holds_the_placeholder_is_written_the_document_way():
    doc = {"strategy": "@@result-assets-rows:0", "symbols": [{"symbol": "A", "signals": [signal(0)]}]}
    raw = json.dumps(doc).encode()
    spelling = learned(raw)
    with pytest.raises(Unwritable):
        exact.written_from_columns(*stored(raw), spelling)
    assert exact.file_bytes(*stored(raw), spelling.to_json(), None, hashlib.sha256(raw).hexdigest()) == raw
