"""Independent check that a restored document equals its legacy original.

Implements legacy-format.md "What nothing lost means" and nothing more. It
shares no code with normalize/reconstruct on purpose: it is their oracle.
"""

from __future__ import annotations

import math
import re
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
        _compare_dict(_canonical(original), _canonical(restored), "", diffs, _DOCUMENT_RULES)
    else:
        _compare_plain(original, restored, "$", diffs)
    return diffs.items


class _Differences:
    def __init__(self, limit: int):
        self.items: list[str] = []
        self.limit = limit

    def add(self, path, message: str):
        if len(self.items) < self.limit:
            self.items.append(f"{_render_path(path)}: {message}")

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


def _compare_dict(a: object, b: object, path, diffs: _Differences, rules: dict):
    """Key by key; `rules` names the comparator of a key (default: plain equality)."""
    if type(a) is not dict or type(b) is not dict:
        _compare_plain(a, b, path or "$", diffs)
        return
    rule = rules.get
    for key, va in a.items():
        if key in b:
            vb = b[key]
            kind = type(va)
            # Fast path: identical scalars are equal under every rule.
            if kind is type(vb) and (kind in _SCALARS or (kind is float and va != 0.0)) and va == vb:
                continue
            rule(key, _compare_plain)(va, vb, (path, key), diffs)
            if diffs.full:
                return
        elif va is not None:  # an explicit null may come back absent
            diffs.add((path, key), f"missing (was {_show(va)})")
    if len(b) > len(a) or b.keys() - a.keys():
        for key in b.keys() - a.keys():
            diffs.add((path, key), f"unexpected key (value {_show(b[key])})")


_SCALARS = (str, int, bool, type(None))


def _dict_of(rules: dict):
    def compare(a, b, path, diffs):
        _compare_dict(a, b, path, diffs, rules)
    return compare


def _list_of(compare_item):
    def compare(a, b, path, diffs):
        if type(a) is not list or type(b) is not list:
            _compare_plain(a, b, path, diffs)
            return
        if len(a) != len(b):
            diffs.add(path, f"{len(a)} items != {len(b)} items")
        for i, (va, vb) in enumerate(zip(a, b)):
            compare_item(va, vb, (path, i), diffs)
            if diffs.full:
                return
    return compare


def _compare_plain(a: object, b: object, path, diffs: _Differences):
    """Exact JSON equality: same types (bool, int and float distinct), floats bit for
    bit except that NaN equals NaN; explicit null in `a` may be absent in `b`."""
    if type(a) is dict and type(b) is dict:
        _compare_dict(a, b, path, diffs, _NO_RULES)
    elif type(a) is list and type(b) is list:
        _PLAIN_LIST(a, b, path, diffs)
    elif type(a) is float and type(b) is float:
        if not _same_float(a, b):
            diffs.add(path, f"{a!r} != {b!r}")
    elif type(a) is not type(b) or a != b:
        diffs.add(path, f"{_show(a)} != {_show(b)}")


def _compare_type(a: object, b: object, path, diffs: _Differences):
    """A signal's `type` may come back in another case."""
    if type(a) is str and type(b) is str:
        if a.casefold() != b.casefold():
            diffs.add(path, f"{a!r} != {b!r}")
    else:
        _compare_plain(a, b, path, diffs)


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
    """Bit for bit, except that every NaN equals every NaN."""
    if a == b:  # equal non-zero floats have equal bits; zeros must agree in sign
        return a != 0.0 or math.copysign(1.0, a) == math.copysign(1.0, b)
    return a != a and b != b


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


def _render_path(path) -> str:
    """Paths are built lazily as nested (parent, key-or-index) tuples; text only for a difference."""
    parts = []
    while isinstance(path, tuple):
        path, key = path
        if type(key) is int:
            parts.append(f"[{key}]")
        else:
            parts.append(("." if path or parts else "") + (key if _NAME.fullmatch(key) else repr(key)))
    parts.append(path)
    text = "".join(reversed(parts))
    return text.lstrip(".") or "$"


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _show(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- which comparator each key gets, by where it stands in a (canonical v2) document ---
_NO_RULES: dict = {}
_PLAIN_LIST = _list_of(_compare_plain)
_METRICS = _dict_of({k: _compare_number for k in _METRIC_KEYS})
_SIGNAL = _dict_of({**{k: _compare_timestamp for k in _TIMESTAMP_KEYS_OF_SIGNAL},
                    **{k: _compare_number for k in _NUMBER_KEYS_OF_SIGNAL}, "type": _compare_type})
_POINT = _dict_of({"timestamp": _compare_timestamp, **{k: _compare_number for k in _NUMBER_KEYS_OF_POINT}})
_SYMBOL = _dict_of({"signals": _list_of(_SIGNAL), "performance_curve": _list_of(_POINT), "performance": _METRICS})
_DOCUMENT_RULES = {"symbols": _list_of(_SYMBOL), "signals": _list_of(_SIGNAL),
                   "performance_curve": _list_of(_POINT), "summary": _METRICS}
