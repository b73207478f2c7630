"""Skeleton + signal/curve rows of one task -> the legacy document."""

from __future__ import annotations

import json
from itertools import groupby

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .schema import CURVE_FLOAT_KEYS, SIGNAL_FLOAT_KEYS

_SIGNAL_ORDER = ("type", "price", "quantity", "exit_timestamp", "exit_price", "return_pct",
                 "pnl", "commission", "holding_bars", "reason", "indicators")


def reconstruct(skeleton: dict, signals: pa.Table, curves: pa.Table) -> dict:
    """Rebuild one task's document. Rows may come in any order; each goes back to
    the list its (symbol_idx, seq) names. Timestamps come back as ISO 8601 UTC."""
    doc = _copy_json(skeleton)
    for symbol_idx, rows in _grouped_rows(signals, _signal_dicts):
        _target_list(doc, symbol_idx, "signals").extend(rows)
    for symbol_idx, rows in _grouped_rows(curves, _curve_dicts):
        _target_list(doc, symbol_idx, "performance_curve").extend(rows)
    return doc


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


def _signal_dicts(table: pa.Table) -> list[dict]:
    col = table.column
    symbol_idxs = col("symbol_idx").to_pylist()
    symbols = col("symbol").to_pylist()
    extras = col("extras").to_pylist()
    values = {
        "timestamp": _iso_column(col("ts")),
        "exit_timestamp": _iso_column(col("exit_ts")),
        "type": col("type").to_pylist(),
        **{k: col(k).to_pylist() for k in SIGNAL_FLOAT_KEYS},
        "holding_bars": col("holding_bars").to_pylist(),
        "reason": col("reason").to_pylist(),
        # map -> list of (key, value) pairs; None for a null map
        "indicators": col("indicators").to_pylist(),
    }
    keys = ("timestamp",) + _SIGNAL_ORDER
    columns = [values[k] for k in keys]
    out = []
    for i, row in enumerate(zip(*columns)):
        sig = {}
        if symbol_idxs[i] == -1 and symbols[i] is not None:
            sig["symbol"] = symbols[i]  # v1 signals carried their own symbol
        for key, value in zip(keys, row):
            if value is not None:
                sig[key] = dict(value) if key == "indicators" else value
        if extras[i] is not None:
            sig.update(_loads(extras[i]))
        out.append(sig)
    return out


def _curve_dicts(table: pa.Table) -> list[dict]:
    col = table.column
    keys = ("timestamp",) + CURVE_FLOAT_KEYS
    columns = [_iso_column(col("ts"))] + [col(k).to_pylist() for k in CURVE_FLOAT_KEYS]
    extras = col("extras").to_pylist()
    out = []
    for row, extra in zip(zip(*columns), extras):
        point = {k: v for k, v in zip(keys, row) if v is not None}
        if extra is not None:
            point.update(_loads(extra))
        out.append(point)
    return out


def _iso_column(column: pa.ChunkedArray) -> list[str | None]:
    """ISO 8601 UTC strings ("...Z"), computed by Arrow; the fraction only when
    an instant has one."""
    if len(column) == 0:
        return []
    # The column's type is UTC; %S prints seconds with 6 decimals for
    # microsecond timestamps, and ".000000" is dropped.
    text = pc.strftime(column, format="%Y-%m-%dT%H:%M:%SZ")
    return pc.replace_substring_regex(text, pattern=r"\.000000Z$", replacement="Z").to_pylist()


def _loads(text: str) -> dict:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # NaN/Infinity or big ints: the stdlib reads them
        return json.loads(text)


def _copy_json(value: object) -> object:
    if type(value) is dict:
        return {k: _copy_json(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy_json(v) for v in value]
    return value
