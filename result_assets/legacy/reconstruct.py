"""Skeleton + signal/curve rows of one task -> the legacy document."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .parse import copy_json, parse_written
from .schema import CURVE_FLOAT_KEYS, SIGNAL_FLOAT_KEYS
from .spelled import spelled_column

# The keys of a rebuilt row, in the order they are written (a v1 signal's symbol first).
SIGNAL_KEYS = ("symbol", "timestamp", "type", "price", "quantity", "exit_timestamp", "exit_price", "return_pct",
               "pnl", "commission", "holding_bars", "reason", "indicators")
CURVE_KEYS = ("timestamp",) + CURVE_FLOAT_KEYS


def reconstruct(skeleton: dict, signals: pa.Table, curves: pa.Table, spell=None,
                null_keys: frozenset[str] = frozenset()) -> dict:
    """Rebuild one task's document. Rows may come in any order; each goes back to
    the list its (symbol_idx, seq) names. Timestamps come back as ISO 8601 UTC, or as
    `spell(field, column)` gives them ("signals.timestamp", "signals.exit_timestamp",
    "performance_curve.timestamp": the file's own spelling, exact.py). A null value leaves
    its key out of the row, except in the fields `null_keys` names ("signals.exit_timestamp":
    the file writes those nulls, e.g. an open position's exit)."""
    spell = spell or iso_spelling
    doc = copy_json(skeleton)
    signal_nulls = frozenset(k.split(".", 1)[1] for k in null_keys if k.startswith("signals."))
    curve_nulls = frozenset(k.split(".", 1)[1] for k in null_keys if k.startswith("performance_curve."))
    for symbol_idx, rows in _grouped_rows(signals, lambda table: _signal_dicts(table, spell, signal_nulls)):
        _target_list(doc, symbol_idx, "signals").extend(rows)
    for symbol_idx, rows in _grouped_rows(curves, lambda table: _curve_dicts(table, spell, curve_nulls)):
        _target_list(doc, symbol_idx, "performance_curve").extend(rows)
    return doc


def iso_spelling(field: str, column: pa.ChunkedArray) -> list[str | None]:
    return _iso_column(column)


def key_ordered(table: pa.Table) -> pa.Table:
    """table in (symbol_idx, seq) order, the order rows go back to their lists in; sorted only
    when it is not already (the store reads a task's rows in that order)."""
    if in_key_order(table):
        return table
    return table.take(pc.sort_indices(table, sort_keys=[("symbol_idx", "ascending"), ("seq", "ascending")]))


def in_key_order(table: pa.Table) -> bool:
    """Whether table's rows are in (symbol_idx, seq) order already, ties as a stable sort keeps
    them (numpy on the two int columns, never null)."""
    if table.num_rows < 2:
        return True
    symbol_idx, seq = (table.column(name).to_numpy() for name in ("symbol_idx", "seq"))
    a, b = symbol_idx[:-1], symbol_idx[1:]
    return bool(np.all((a < b) | ((a == b) & (seq[:-1] <= seq[1:]))))


def _grouped_rows(table: pa.Table, to_dicts):
    """[(symbol_idx, its rows as dicts in seq order)]."""
    if table.num_rows == 0:
        return []
    table = key_ordered(table)
    bounds, symbols = symbol_groups(table)
    rows = to_dicts(table)
    return [(symbol_idx, rows[a:b]) for symbol_idx, a, b in zip(symbols, bounds, bounds[1:])]


def symbol_groups(table: pa.Table) -> tuple[list[int], list[int]]:
    """Of a key-ordered table: the row numbers where each symbol_idx's rows start, then the
    end; and those symbol_idx (the groups found by numpy)."""
    if table.num_rows == 0:
        return [0], []
    symbol_idx = table.column("symbol_idx").to_numpy()
    starts = [0, *(np.flatnonzero(symbol_idx[1:] != symbol_idx[:-1]) + 1).tolist()]
    return starts + [len(symbol_idx)], [int(symbol_idx[s]) for s in starts]


def _target_list(doc: dict, symbol_idx: int, key: str) -> list:
    holder = doc if symbol_idx == -1 else doc["symbols"][symbol_idx]
    target = holder.get(key) if type(holder) is dict else None
    if type(target) is not list:
        raise ValueError(f"skeleton has no {key} list for symbol_idx {symbol_idx}")
    return target


def _signal_dicts(table: pa.Table, spell, nulls: frozenset[str] = frozenset()) -> list[dict]:
    col = table.column
    # v1 signals carried their own symbol; v2 rows take it from their parent.
    v1_symbols = [
        name if idx == -1 else None
        for idx, name in zip(col("symbol_idx").to_pylist(), col("symbol").to_pylist())
    ]
    # (values, the Arrow column whose nulls are theirs): a spelled timestamp is null where its instant is
    values = {
        "symbol": (v1_symbols, None),
        "timestamp": (spell("signals.timestamp", col("ts")), col("ts")),
        "exit_timestamp": (spell("signals.exit_timestamp", col("exit_ts")), col("exit_ts")),
        "type": (col("type").to_pylist(), col("type")),
        **{k: (_floats(col(k)), col(k)) for k in SIGNAL_FLOAT_KEYS},
        "holding_bars": (col("holding_bars").to_pylist(), col("holding_bars")),
        "reason": (col("reason").to_pylist(), col("reason")),
        "indicators": (_map_dicts(col("indicators")), col("indicators")),
    }
    out = _row_dicts(SIGNAL_KEYS, [values[k][0] for k in SIGNAL_KEYS], nulls,
                     [None if values[k][1] is None else _null_rows(values[k][1]) for k in SIGNAL_KEYS])
    _add_extras(out, col("extras"))
    return out


def _floats(column: pa.ChunkedArray) -> list:
    """A float64 column's values (numpy's tolist builds them faster than Arrow's to_pylist, and
    keeps NaN and -0.0 as they are); nulls through Arrow."""
    if column.null_count:
        return column.to_pylist()
    return column.to_numpy().tolist()


def _null_rows(column: pa.ChunkedArray) -> np.ndarray:
    """The rows where column is null, from its validity bitmap (no walk over Python values)."""
    if not column.null_count:
        return _NO_ROWS
    return np.flatnonzero(pc.is_null(column).to_numpy(zero_copy_only=False))


_NO_ROWS = np.empty(0, np.int64)


def _map_dicts(column: pa.ChunkedArray) -> list[dict | None]:
    """A map column as dicts (None for a null map). When every row holds the same keys in
    the same order (indicators usually do), the values are taken by position and the dicts
    built by one compiled comprehension: about 3x faster than a dict of each row's pairs."""
    maps = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    n = len(maps)
    if n and maps.null_count == 0 and maps.offset == 0:
        offsets = maps.offsets.to_numpy()
        width = int(offsets[1] - offsets[0])
        if 0 < width <= 16 and offsets[0] == 0 and (offsets[-1] - offsets[0]) == width * n \
                and (offsets[1:] - offsets[:-1] == width).all():
            keys = maps.keys.to_pylist()
            first = keys[:width]
            if keys == first * n:
                values = maps.items.to_pylist()
                return _dict_builder(tuple(first))(*(values[i::width] for i in range(width)))
    # a map comes back as (key, value) pairs; None for a null map
    return [None if m is None else dict(m) for m in maps.to_pylist()]


def _add_extras(rows: list[dict], extras: pa.ChunkedArray):
    """Each row's extras (keys kept as the file had them) added to its dict; the rows that have
    some found by Arrow (most have none)."""
    if extras.null_count == len(extras):
        return
    at = np.flatnonzero(pc.is_valid(extras).to_numpy(zero_copy_only=False))
    texts = extras.take(pa.array(at)).to_pylist()
    # one parse of them all: each is a JSON object dumps_document wrote, so "[a,b,...]" is
    # a JSON array of them (thousands of small parses cost several times one large one)
    parsed = _loads("[" + ",".join(texts) + "]")
    for i, extra in zip(at.tolist(), parsed):
        rows[i].update(extra)


def _curve_dicts(table: pa.Table, spell, nulls: frozenset[str] = frozenset()) -> list[dict]:
    col = table.column
    columns = [spell("performance_curve.timestamp", col("ts"))] + [_floats(col(k)) for k in CURVE_FLOAT_KEYS]
    out = _row_dicts(CURVE_KEYS, columns, nulls, [_null_rows(col(name)) for name in ("ts",) + CURVE_FLOAT_KEYS])
    _add_extras(out, col("extras"))
    return out


def _row_dicts(keys: tuple[str, ...], columns: list[list], nulls: frozenset[str] = frozenset(),
               null_rows: list[np.ndarray | None] | None = None) -> list[dict]:
    """One dict per row, keys in `keys` order, a null value left out (the file had no such
    key) unless its key is in `nulls` (the file wrote null). Built by a comprehension with a
    dict display for the columns that hold values (about 4x faster per row than filtering
    each row's pairs); rows with a null to leave out are then built pair by pair.
    `null_rows`: per column, the rows where it is None when known (_null_rows), else found here."""
    n = len(columns[0]) if columns else 0
    found = [where if where is not None else np.flatnonzero([v is None for v in c])
             for c, where in zip(columns, null_rows or [None] * len(columns))]
    kept = [(k, c, where) for k, c, where in zip(keys, columns, found) if k in nulls or len(where) != n]
    if not kept:
        return [{} for _ in range(n)]
    names, kept_columns = tuple(k for k, _, _ in kept), [c for _, c, _ in kept]
    rows = _dict_builder(names)(*kept_columns)
    holes = [where for k, _, where in kept if k not in nulls and len(where)]
    for i in np.unique(np.concatenate(holes)).tolist() if holes else ():
        rows[i] = {k: c[i] for k, c, _ in kept if c[i] is not None or k in nulls}
    return rows


@lru_cache(maxsize=64)
def _dict_builder(names: tuple[str, ...]):
    """lambda c0, c1, ...: [{names[0]: v0, names[1]: v1, ...} for (v0, v1, ...) in zip(c0, c1, ...)],
    compiled once per key set (names are the schema's own keys, quoted by repr)."""
    columns = ", ".join(f"c{i}" for i in range(len(names)))
    values = ", ".join(f"v{i}" for i in range(len(names)))
    display = ", ".join(f"{name!r}: v{i}" for i, name in enumerate(names))
    return eval(f"lambda {columns}: [{{{display}}} for ({values},) in zip({columns})]")  # noqa: S307


def _iso_column(column: pa.ChunkedArray) -> list[str | None]:
    """ISO 8601 UTC strings ("...Z"), formatted by Arrow; the fraction only when
    an instant has one."""
    return spelled_column(column, "TZ")


def _loads(text: str) -> object:
    # extras are dumps_document's own text: orjson speed, exact for NaN/Infinity and
    # ints beyond 64 bits, without parse_document's screen for over-long numbers
    return parse_written(text.encode())


