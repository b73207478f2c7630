"""Skeleton + signal/curve rows of one task -> the legacy document."""

from __future__ import annotations

from itertools import groupby

import pyarrow as pa
import pyarrow.compute as pc

from .parse import copy_json, parse_written
from .schema import CURVE_FLOAT_KEYS, SIGNAL_FLOAT_KEYS

_SIGNAL_ORDER = ("type", "price", "quantity", "exit_timestamp", "exit_price", "return_pct",
                 "pnl", "commission", "holding_bars", "reason", "indicators")


def reconstruct(skeleton: dict, signals: pa.Table, curves: pa.Table, spell=None) -> dict:
    """Rebuild one task's document. Rows may come in any order; each goes back to
    the list its (symbol_idx, seq) names. Timestamps come back as ISO 8601 UTC, or as
    `spell(field, column)` gives them ("signals.timestamp", "signals.exit_timestamp",
    "performance_curve.timestamp": the file's own spelling, exact.py)."""
    spell = spell or iso_spelling
    doc = copy_json(skeleton)
    for symbol_idx, rows in _grouped_rows(signals, lambda table: _signal_dicts(table, spell)):
        _target_list(doc, symbol_idx, "signals").extend(rows)
    for symbol_idx, rows in _grouped_rows(curves, lambda table: _curve_dicts(table, spell)):
        _target_list(doc, symbol_idx, "performance_curve").extend(rows)
    return doc


def iso_spelling(field: str, column: pa.ChunkedArray) -> list[str | None]:
    return _iso_column(column)


def _grouped_rows(table: pa.Table, to_dicts):
    if table.num_rows == 0:
        return []
    order = pc.sort_indices(table, sort_keys=[("symbol_idx", "ascending"), ("seq", "ascending")])
    table = table.take(order)
    symbol_idxs = table.column("symbol_idx").to_pylist()
    rows = to_dicts(table)
    groups = []
    start = 0
    for symbol_idx, members in groupby(symbol_idxs):
        n = sum(1 for _ in members)
        groups.append((symbol_idx, rows[start : start + n]))
        start += n
    return groups


def _target_list(doc: dict, symbol_idx: int, key: str) -> list:
    holder = doc if symbol_idx == -1 else doc["symbols"][symbol_idx]
    target = holder.get(key) if type(holder) is dict else None
    if type(target) is not list:
        raise ValueError(f"skeleton has no {key} list for symbol_idx {symbol_idx}")
    return target


def _signal_dicts(table: pa.Table, spell) -> list[dict]:
    col = table.column
    # v1 signals carried their own symbol; v2 rows take it from their parent.
    v1_symbols = [
        name if idx == -1 else None
        for idx, name in zip(col("symbol_idx").to_pylist(), col("symbol").to_pylist())
    ]
    values = {
        "symbol": v1_symbols,
        "timestamp": spell("signals.timestamp", col("ts")),
        "exit_timestamp": spell("signals.exit_timestamp", col("exit_ts")),
        "type": col("type").to_pylist(),
        **{k: col(k).to_pylist() for k in SIGNAL_FLOAT_KEYS},
        "holding_bars": col("holding_bars").to_pylist(),
        "reason": col("reason").to_pylist(),
        # a map comes back as (key, value) pairs; None for a null map
        "indicators": [None if m is None else dict(m) for m in col("indicators").to_pylist()],
    }
    keys = ("symbol", "timestamp") + _SIGNAL_ORDER
    out = [{k: v for k, v in zip(keys, row) if v is not None} for row in zip(*(values[k] for k in keys))]
    _add_extras(out, col("extras").to_pylist())
    return out


def _add_extras(rows: list[dict], extras: list[str | None]):
    for row, extra in zip(rows, extras):
        if extra is not None:
            row.update(_loads(extra))


def _curve_dicts(table: pa.Table, spell) -> list[dict]:
    col = table.column
    keys = ("timestamp",) + CURVE_FLOAT_KEYS
    columns = [spell("performance_curve.timestamp", col("ts"))] + [col(k).to_pylist() for k in CURVE_FLOAT_KEYS]
    out = [{k: v for k, v in zip(keys, row) if v is not None} for row in zip(*columns)]
    _add_extras(out, col("extras").to_pylist())
    return out


def _iso_column(column: pa.ChunkedArray) -> list[str | None]:
    """ISO 8601 UTC strings ("...Z"), formatted by Arrow; the fraction only when
    an instant has one."""
    if len(column) == 0:
        return []
    # Casting the naive instant to text is ~30x faster than strftime, same digits:
    # "YYYY-MM-DD HH:MM:SS.ffffff" (a dot appears only before the fraction).
    text = column.cast(pa.timestamp("us")).cast(pa.string())
    text = pc.replace_substring(text, " ", "T", max_replacements=1)
    text = pc.replace_substring(text, ".000000", "")
    return pc.binary_join_element_wise(text, "Z", "").to_pylist()


def _loads(text: str) -> dict:
    # extras are dumps_document's own text: orjson speed, exact for NaN/Infinity and
    # ints beyond 64 bits, without parse_document's screen for over-long numbers
    return parse_written(text.encode())


