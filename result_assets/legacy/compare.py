"""Independent check that a restored document equals its legacy original.

Implements legacy-format.md "What nothing lost means" and nothing more. It
shares no code with normalize/reconstruct on purpose: it is their oracle.
"""

from __future__ import annotations

import math
import re
import struct
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

_PLATFORM_TZ = ZoneInfo("Asia/Seoul")
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TIMESTAMP_KEYS_OF_SIGNAL = {"timestamp", "exit_timestamp"}
_NUMBER_KEYS_OF_SIGNAL = {"price", "quantity", "pnl", "commission", "exit_price", "return_pct", "holding_bars"}
_NUMBER_KEYS_OF_POINT = {"equity", "drawdown"}
_METRIC_KEYS = {"total_return", "win_rate", "max_drawdown", "sharpe_ratio", "profit_factor", "num_trades"}
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.ASCII | re.I)
_WALL_TIME_SHAPE = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d", re.ASCII)


def compare_documents(original: object, restored: object, max_differences: int = 20) -> list[str]:
    """Differences between `original` and `restored` (empty: nothing lost)."""
    diffs = _Differences(max_differences)
    if type(original) is dict and type(restored) is dict:
        _compare_document(_canonical(original), _canonical(restored), diffs)
    else:
        _compare_plain(original, restored, "$", diffs)
    return diffs.items


class _Differences:
    def __init__(self, limit: int):
        self.items: list[str] = []
        self.limit = limit

    def add(self, path: str, message: str):
        if len(self.items) < self.limit:
            self.items.append(f"{path}: {message}")

    @property
    def full(self) -> bool:
        return len(self.items) >= self.limit


# --- canonical form: every document as layout v2 ----------------------------------------


def _canonical(doc: dict) -> dict:
    """Symbols as objects; v1 top-level signals moved under their symbol (in order,
    their "symbol" field dropped). Signals naming no listed symbol stay top level."""
    out = dict(doc)
    symbols = doc.get("symbols")
    if type(symbols) is not list:
        return out
    canon_symbols = [{"symbol": s} if type(s) is str else (dict(s) if type(s) is dict else s) for s in symbols]
    out["symbols"] = canon_symbols
    top_signals = doc.get("signals")
    if type(top_signals) is list:
        first_by_name = {}
        for i, s in enumerate(canon_symbols):
            if type(s) is dict and type(s.get("symbol")) is str:
                first_by_name.setdefault(s["symbol"], i)
        for s, original in zip(canon_symbols, symbols):
            if type(original) is str:
                s["signals"] = []
            elif type(s) is dict and type(s.get("signals")) is list:
                s["signals"] = list(s["signals"])
        remainder = []
        for sig in top_signals:
            name = sig.get("symbol") if type(sig) is dict else None
            target = canon_symbols[first_by_name[name]] if type(name) is str and name in first_by_name else None
            if target is not None and type(target.get("signals", [])) is list:
                target.setdefault("signals", []).append({k: v for k, v in sig.items() if k != "symbol"})
            else:
                remainder.append(sig)
        if remainder:
            out["signals"] = remainder
        else:
            del out["signals"]
    return out


# --- comparison -----------------------------------------------------------------------


def _compare_document(a: dict, b: dict, diffs: _Differences):
    def compare_value(key, va, vb, path):
        if key == "symbols":
            _compare_list(va, vb, path, diffs, _compare_symbol)
        elif key == "signals":
            _compare_list(va, vb, path, diffs, _compare_signal)
        elif key == "performance_curve":
            _compare_list(va, vb, path, diffs, _compare_point)
        elif key == "summary":
            _compare_metrics(va, vb, path, diffs)
        else:
            _compare_plain(va, vb, path, diffs)

    _compare_dict(a, b, "", diffs, compare_value)


def _compare_symbol(a: object, b: object, path: str, diffs: _Differences):
    def compare_value(key, va, vb, p):
        if key == "signals":
            _compare_list(va, vb, p, diffs, _compare_signal)
        elif key == "performance_curve":
            _compare_list(va, vb, p, diffs, _compare_point)
        elif key == "performance":
            _compare_metrics(va, vb, p, diffs)
        else:
            _compare_plain(va, vb, p, diffs)

    _compare_dict(a, b, path, diffs, compare_value)


def _compare_signal(a: object, b: object, path: str, diffs: _Differences):
    def compare_value(key, va, vb, p):
        if key in _TIMESTAMP_KEYS_OF_SIGNAL:
            _compare_timestamp(va, vb, p, diffs)
        elif key in _NUMBER_KEYS_OF_SIGNAL:
            _compare_number(va, vb, p, diffs)
        elif key == "type" and type(va) is str and type(vb) is str:
            if va.casefold() != vb.casefold():
                diffs.add(p, f"{va!r} != {vb!r}")
        else:
            _compare_plain(va, vb, p, diffs)

    _compare_dict(a, b, path, diffs, compare_value)


def _compare_point(a: object, b: object, path: str, diffs: _Differences):
    def compare_value(key, va, vb, p):
        if key == "timestamp":
            _compare_timestamp(va, vb, p, diffs)
        elif key in _NUMBER_KEYS_OF_POINT:
            _compare_number(va, vb, p, diffs)
        else:
            _compare_plain(va, vb, p, diffs)

    _compare_dict(a, b, path, diffs, compare_value)


def _compare_metrics(a: object, b: object, path: str, diffs: _Differences):
    def compare_value(key, va, vb, p):
        if key in _METRIC_KEYS:
            _compare_number(va, vb, p, diffs)
        else:
            _compare_plain(va, vb, p, diffs)

    _compare_dict(a, b, path, diffs, compare_value)


def _compare_dict(a: object, b: object, path: str, diffs: _Differences, compare_value):
    if type(a) is not dict or type(b) is not dict:
        _compare_plain(a, b, path or "$", diffs)
        return
    for key, va in a.items():
        if diffs.full:
            return
        p = _key_path(path, key)
        if key not in b:
            if va is not None:  # an explicit null may come back absent
                diffs.add(p, f"missing (was {_show(va)})")
        else:
            compare_value(key, va, b[key], p)
    for key in b:
        if key not in a:
            diffs.add(_key_path(path, key), f"unexpected key (value {_show(b[key])})")


def _compare_list(a: object, b: object, path: str, diffs: _Differences, compare_item):
    if type(a) is not list or type(b) is not list:
        _compare_plain(a, b, path, diffs)
        return
    if len(a) != len(b):
        diffs.add(path, f"{len(a)} items != {len(b)} items")
    for i, (va, vb) in enumerate(zip(a, b)):
        if diffs.full:
            return
        compare_item(va, vb, f"{path}[{i}]", diffs)


def _compare_plain(a: object, b: object, path: str, diffs: _Differences):
    """Exact JSON equality: same types (bool, int and float distinct), floats bit for
    bit except that NaN equals NaN; explicit null in `a` may be absent in `b`."""
    if type(a) is dict and type(b) is dict:
        _compare_dict(a, b, path, diffs, lambda key, va, vb, p: _compare_plain(va, vb, p, diffs))
    elif type(a) is list and type(b) is list:
        _compare_list(a, b, path, diffs, _compare_plain)
    elif type(a) is float and type(b) is float:
        if not _same_float(a, b):
            diffs.add(path, f"{a!r} != {b!r}")
    elif type(a) is not type(b) or a != b:
        diffs.add(path, f"{_show(a)} != {_show(b)}")


def _compare_number(a: object, b: object, path: str, diffs: _Differences):
    """A numeric string equals the number it spells."""
    na, nb = _as_number(a), _as_number(b)
    if na is None or nb is None or (type(a) is not str and type(b) is not str) or type(a) is type(b):
        _compare_plain(a, b, path, diffs)
        return
    if type(na) is int and type(nb) is int:
        same = na == nb
    else:
        same = _same_float(float(na), float(nb))
    if not same:
        diffs.add(path, f"{_show(a)} != {_show(b)}")


def _as_number(value: object) -> int | float | None:
    if type(value) in (int, float):
        return value
    if type(value) is str and _DECIMAL.fullmatch(value.strip()):
        text = value.strip()
        return int(text) if text.lstrip("+-").isdigit() else float(text)
    return None


def _same_float(a: float, b: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    return struct.pack("<d", a) == struct.pack("<d", b)  # -0.0 != 0.0


def _compare_timestamp(a: object, b: object, path: str, diffs: _Differences):
    ia, ib = _instant(a), _instant(b)
    if ia is None or ib is None:
        _compare_plain(a, b, path, diffs)  # not timestamps: plain values
    elif ia != ib:
        diffs.add(path, f"{_show(a)} ({ia.isoformat()}) != {_show(b)} ({ib.isoformat()})")


def _instant(value: object) -> datetime | None:
    """The instant a legacy timestamp names; naive wall time is Asia/Seoul."""
    try:
        if type(value) is int:
            return _UNIX_EPOCH + timedelta(milliseconds=value)
        if type(value) is not str:
            return None
        if value.isascii() and value.isdigit():
            return _UNIX_EPOCH + timedelta(milliseconds=int(value))
        if not _WALL_TIME_SHAPE.match(value):
            return None
        moment = datetime.fromisoformat(value)
    except (ValueError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_PLATFORM_TZ)
    return moment


def _key_path(path: str, key: str) -> str:
    part = key if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else repr(key)
    return f"{path}.{part}" if path else part


def _show(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
