"""rows_digest: equal exactly when the rows are equal bit for bit, however Arrow holds them."""
from __future__ import annotations

import math
import struct

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from result_assets.legacy.schema import SIGNAL_SCHEMA
from result_assets.store.row_digest import rows_digest

TYPES = [pa.float64(), pa.int64(), pa.int32(), pa.timestamp("us", tz="UTC"), pa.string()]


def table(values: list, type_: pa.DataType) -> pa.Table:
    return pa.table({"v": pa.array(values, type_)})


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_the_digest_is_the_rows_not_how_arrow_holds_them(data):
    type_ = data.draw(st.sampled_from(TYPES))
    value = {pa.types.is_floating(type_): st.floats(allow_nan=False), pa.types.is_string(type_): st.text(max_size=5)}
    scalar = value.get(True, st.integers(-(2**31), 2**31 - 1))
    values = data.draw(st.lists(st.one_of(st.none(), scalar), max_size=30))
    whole = table(values, type_)
    digest = rows_digest(whole)
    cut = data.draw(st.integers(0, len(values)))
    chunked = pa.Table.from_batches([*whole.slice(0, cut).to_batches(), *whole.slice(cut).to_batches()], whole.schema)
    assert rows_digest(chunked) == digest
    # sliced out of a longer array (an offset into its buffers), and with a bitmap of all-valid bits
    padded = pa.array([values[0] if values else None, *values, None], type_)
    assert rows_digest(pa.table({"v": padded.slice(1, len(values))})) == digest
    if values and None not in values:
        with_bitmap = pa.Array.from_buffers(type_, len(values), [pa.py_buffer(b"\xff" * 8), *whole.column(0).chunk(0).buffers()[1:]]) \
            if not pa.types.is_string(type_) else pa.array(values + [None], type_).slice(0, len(values))
        assert rows_digest(pa.table({"v": with_bitmap})) == digest
    if values:
        changed = list(values)
        changed[-1] = None if changed[-1] is not None else data.draw(scalar)
        assert rows_digest(table(changed, type_)) != digest


def test_floats_count_their_bits_and_nulls_their_place():
    bits = struct.unpack("<d", struct.pack("<q", 0x7FF8000000000001))[0]  # a NaN with a payload
    assert rows_digest(table([0.0], pa.float64())) != rows_digest(table([-0.0], pa.float64()))
    assert rows_digest(table([math.nan], pa.float64())) != rows_digest(table([bits], pa.float64()))
    assert rows_digest(table([None, 0.0], pa.float64())) != rows_digest(table([0.0, None], pa.float64()))
    assert rows_digest(table([0], pa.int64())) != rows_digest(table([None], pa.int64()))
    assert rows_digest(table([1], pa.int64())) != rows_digest(table([1], pa.int32()))


def test_a_signal_table_digest_sees_each_column():
    rows = SIGNAL_SCHEMA.empty_table()
    assert rows_digest(rows) == rows_digest(SIGNAL_SCHEMA.empty_table())
    assert rows_digest(rows) != rows_digest(rows.rename_columns([*rows.column_names[:-1], "other"]))
