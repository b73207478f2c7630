"""The rebuild's compiled fast paths give exactly what the plain, pair-by-pair code gives:
the same keys in the same order, the same values, nulls left out."""
from __future__ import annotations

import gc
import threading

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from result_assets.legacy.acyclic import cyclic_gc_paused
from result_assets.legacy.reconstruct import _map_dicts, _null_rows, _row_dicts

KEYS = ("symbol", "timestamp", "type", "price", "it's \"quoted\"", "λ")


def plain_rows(keys, columns):
    return [{k: v for k, v in zip(keys, row) if v is not None} for row in zip(*columns)]


def same(a: list, b: list) -> bool:
    return a == b and [list(x) if isinstance(x, dict) else x for x in a] == \
        [list(x) if isinstance(x, dict) else x for x in b]


values = st.one_of(st.none(), st.floats(allow_nan=False), st.text(max_size=5), st.integers())


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 30).flatmap(lambda n: st.lists(st.lists(values, min_size=n, max_size=n),
                                                   min_size=len(KEYS), max_size=len(KEYS))))
def test_row_dicts_equal_the_plain_rows(columns):
    assert same(_row_dicts(KEYS, columns), plain_rows(KEYS, columns))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 30).flatmap(lambda n: st.lists(st.lists(st.one_of(st.none(), st.floats()), min_size=n, max_size=n),
                                                   min_size=len(KEYS), max_size=len(KEYS))))
def test_row_dicts_with_arrow_null_rows_equal_the_plain_rows(columns):
    """The rows where each column is null, taken from Arrow's validity bitmap (as the reader
    passes them), give the same rows as finding the Nones in the lists."""
    null_rows = [_null_rows(pa.chunked_array([pa.array(c, pa.float64())])) for c in columns]
    assert same(_row_dicts(KEYS, columns, null_rows=null_rows), plain_rows(KEYS, columns))


def test_cyclic_gc_paused_restores_what_it_found():
    assert gc.isenabled()
    with cyclic_gc_paused():
        assert not gc.isenabled()
        with cyclic_gc_paused():  # nested: the inner pause must not turn it back on
            pass
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with cyclic_gc_paused():
            pass
        assert not gc.isenabled()  # it was off: it stays off
    finally:
        gc.enable()


def test_cyclic_gc_pauses_of_two_threads_end_with_the_gc_on():
    """A thread that starts pausing after another began, and ends after it ended, must not
    leave the GC off for good (each pause reading gc.isenabled() on its own would)."""
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen_inside_second = []

    def first():
        with cyclic_gc_paused():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second():
        first_in.wait(10)
        with cyclic_gc_paused():
            second_in.set()
            first_out.wait(10)
            seen_inside_second.append(gc.isenabled())  # the first thread's end must not resume it here

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert first_out.is_set() and seen_inside_second == [False]
    assert gc.isenabled()


def test_row_dicts_edge_cases():
    assert _row_dicts(("a", "b"), [[None, None], [None, None]]) == [{}, {}]
    assert same(_row_dicts(("a", "b"), [[1, None], [None, 2]]), [{"a": 1}, {"b": 2}])
    assert _row_dicts(("a",), [[]]) == []


MAP = pa.map_(pa.string(), pa.float64())
maps = st.one_of(st.none(), st.lists(st.tuples(st.sampled_from(["SMA_C_20", "λ", "x", "\"q\""]),
                                               st.floats(allow_nan=False)), max_size=3))


@settings(max_examples=200, deadline=None)
@given(st.lists(maps, max_size=20), st.booleans())
def test_map_dicts_equal_the_plain_maps(rows, uniform):
    if uniform and rows:  # the fast path: the same keys in the same order in every row
        rows = [[("SMA_C_20", float(i)), ("λ", -float(i))] for i in range(len(rows))]
    column = pa.chunked_array([pa.array(rows, MAP)], type=MAP)
    want = [None if m is None else dict(m) for m in column.to_pylist()]
    assert same(_map_dicts(column), want)
    assert same(_map_dicts(pa.chunked_array([pa.array(rows, MAP)] * 2, type=MAP)), want * 2)  # chunks joined
