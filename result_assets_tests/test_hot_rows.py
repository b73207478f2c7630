"""The hot tier's streams (store/hot_rows.py): exact both ways, whichever thread compresses them,
and the same bytes as the stores written before hold."""
from __future__ import annotations

import math

import pyarrow as pa
import pytest

from result_assets.legacy.schema import SIGNAL_SCHEMA
from result_assets.store import hot_rows


def signals(n: int) -> pa.Table:
    """n signal rows with the values a stream must keep: NaN, -0.0, nulls, a map, extras."""
    prices = [math.nan if i % 7 == 0 else -0.0 if i % 11 == 0 else i * 1.000000001 for i in range(n)]
    columns = {
        "task_id": ["bt_hot"] * n, "symbol_idx": [i // 1000 for i in range(n)], "seq": [i % 1000 for i in range(n)],
        "symbol": [None] * n, "ts": [1_700_000_000_000_000 + i * 60_000_000 for i in range(n)],
        "exit_ts": [None if i % 3 else 1_700_000_000_000_000 for i in range(n)], "type": ["BUY", "SELL"] * (n // 2),
        "price": prices, "quantity": [0.5] * n, "exit_price": [None] * n, "return_pct": prices, "pnl": prices,
        "commission": [0.0] * n, "holding_bars": [i for i in range(n)], "reason": ["tp"] * n,
        "indicators": [[("rsi", 30.5), ("atr", math.inf)]] * n, "extras": [None if i % 5 else '{"k": 1}' for i in range(n)],
    }
    return pa.table(columns, schema=SIGNAL_SCHEMA)


def identical(a: pa.Table, b: pa.Table) -> bool:
    """Equal as stored: schema, nulls and every float's bits (Table.equals calls NaN unequal)."""
    return a.schema == b.schema and all(
        repr(x.to_pylist()) == repr(y.to_pylist()) for x, y in zip(a.columns, b.columns))


@pytest.mark.parametrize("rows", [100, 40_000])  # a save's size, and one past THREADED_MIN_BYTES
def test_a_stream_gives_back_its_rows_bit_for_bit(rows):
    table = signals(rows)
    assert (table.nbytes >= hot_rows.THREADED_MIN_BYTES) == (rows > 1000)
    assert identical(hot_rows.decode(hot_rows.encode(table), SIGNAL_SCHEMA), table)


@pytest.mark.parametrize("rows", [100, 40_000])
def test_the_bytes_are_those_the_pool_writes_and_the_pool_reads_them(rows):
    """Compressing on the calling thread changes no byte: streams written before read the same."""
    table = signals(rows)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as writer:
        writer.write_table(table)  # the pool's writer, as hot_rows wrote every stream before
    assert hot_rows.encode(table) == sink.getvalue().to_pybytes()
    assert identical(pa.ipc.open_stream(pa.py_buffer(hot_rows.encode(table))).read_all(), table)


def test_an_uncompressed_stream_reads_the_same():
    table = signals(100)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    assert identical(hot_rows.decode(sink.getvalue().to_pybytes(), SIGNAL_SCHEMA), table)
