"""Independent check that a restored document equals its legacy original.

Implements legacy-format.md "What nothing lost means" and nothing more. It
shares no code with normalize/reconstruct on purpose: it is their oracle.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from itertools import repeat
from zoneinfo import ZoneInfo

import numpy as np
import orjson

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
    if _identical(original, restored):
        return diffs.items
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


def _list_of(compare_item, timestamp_keys: frozenset | None = None):
    """A list item by item. For lists of records (signals, curve points: `timestamp_keys`
    given), a column-at-a-time screen first clears the items that are exactly equal, or
    equal but for timestamps naming the same instants; the item rules judge the rest."""
    def compare(a, b, path, diffs):
        if type(a) is not list or type(b) is not list:
            _compare_plain(a, b, path, diffs)
            return
        if _identical(a, b):
            return
        if len(a) != len(b):
            diffs.add(path, f"{len(a)} items != {len(b)} items")
        n = min(len(a), len(b))
        todo = range(n) if timestamp_keys is None else _records_to_judge(a[:n], b[:n], timestamp_keys)
        for i in todo:
            compare_item(a[i], b[i], (path, i), diffs)
            if diffs.full:
                return
    return compare


def _records_to_judge(a: list, b: list, timestamp_keys: frozenset) -> list[int]:
    """Indexes of the records that the screen cannot clear (in order)."""
    n = len(a)
    if not (all(type(x) is dict for x in a) and all(type(y) is dict for y in b)):
        return list(range(n))
    # b's records (copies) take a's spelling of each timestamp naming the same instant, and
    # a's explicit null where b has none; what is then exactly equal is equal under the rules.
    b = list(map(dict.copy, b))
    for key in timestamp_keys:
        column_a, column_b = list(map(dict.get, a, repeat(key))), list(map(dict.get, b, repeat(key)))
        if column_a == column_b and None not in column_a:
            continue
        for i in _same_instants(column_a, column_b):
            b[i][key] = column_a[i]
        for i in [i for i, value in enumerate(column_a) if value is None]:
            if column_b[i] is None and key in a[i] and key not in b[i]:
                b[i][key] = None
    if _identical(a, b):
        return []
    judge = [i for i in range(n) if a[i] != b[i]]
    if not judge:
        return [i for i in range(n) if not _identical(a[i], b[i])]
    # The rest are equal under ==; one exact test over all of them, record by record only if it fails.
    others = sorted(set(range(n)).difference(judge))
    if not _identical([a[i] for i in others], [b[i] for i in others]):
        judge += [i for i in others if not _identical(a[i], b[i])]
    return sorted(judge)


def _same_instants(column_a: list, column_b: list) -> list[int]:
    """Indexes whose values name the same instant, in the two spellings that fill real
    files: naive wall time from 1989 on (Asia/Seoul has kept +09:00 since) or UTC with a
    "Z", "T" or space between date and time, whole seconds or a fraction of 1-6 digits.
    Vectorized over the text's bytes; any other spelling is left to the item rules."""
    at_a, valid_a = _instants(column_a)
    at_b, valid_b = _instants(column_b)
    return np.flatnonzero(valid_a & valid_b & (at_a == at_b)).tolist()


_SEOUL_FIXED_FROM_DAY = 6940  # 1989-01-01 as days since 1970-01-01
_DIGITS = (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18)


def _instants(column: list) -> tuple[np.ndarray, np.ndarray]:
    """(UTC microseconds, valid) per value; invalid where the spelling is not one of the two."""
    import pyarrow as pa

    n = len(column)
    at, valid = np.zeros(n, np.int64), np.zeros(n, np.bool_)
    try:
        text = pa.array(column, pa.string())
    except (pa.ArrowException, TypeError, ValueError):  # not all strings: the item rules decide
        return at, valid
    _, offsets_buffer, data_buffer = text.buffers()
    if data_buffer is None:
        return at, valid
    offsets = np.frombuffer(offsets_buffer, np.int32)[:n + 1].astype(np.int64)
    data = np.frombuffer(data_buffer, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    present = ~np.asarray(text.is_null().to_numpy(zero_copy_only=False), np.bool_)
    for length in np.unique(lengths[present]):
        if not 19 <= length <= 27:
            continue
        rows = np.flatnonzero(present & (lengths == length))
        us, ok = _parse_fixed(data[starts[rows][:, None] + np.arange(length)])
        at[rows], valid[rows] = us, ok
    return at, valid


def _parse_fixed(chars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One length of text (rows of bytes) -> (UTC microseconds, valid)."""
    width = chars.shape[1]
    zulu = chars[:, -1] == ord("Z")
    body = width - zulu.astype(np.int64)  # characters before any Z
    ok = (chars[:, 4] == ord("-")) & (chars[:, 7] == ord("-")) & (chars[:, 13] == ord(":")) & (chars[:, 16] == ord(":"))
    ok &= (chars[:, 10] == ord("T")) | (chars[:, 10] == ord(" "))
    digit = chars.astype(np.int64) - ord("0")
    ok &= ((digit[:, list(_DIGITS)] >= 0) & (digit[:, list(_DIGITS)] <= 9)).all(axis=1)

    def number(first, count):
        return sum(digit[:, first + k] * 10 ** (count - 1 - k) for k in range(count))

    year, month, day = number(0, 4), number(5, 2), number(8, 2)
    hour, minute, second = number(11, 2), number(14, 2), number(17, 2)
    micro = np.zeros(len(chars), np.int64)
    if width > 20 or (width == 20 and not zulu.all()):
        # a fraction: "." then 1-6 digits up to the body's end
        ok &= (body == 19) | ((chars[:, 19] == ord(".")) & (body >= 21) & (body <= 26))
        for k in range(20, min(width, 26)):
            inside = k < body
            d = digit[:, k]
            ok &= ~inside | ((d >= 0) & (d <= 9))
            micro += np.where(inside, d, 0) * 10 ** (25 - k)
    else:
        ok &= body == 19
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[np.clip(month, 0, 12)]
    month_days = month_days + ((month == 2) & leap)
    ok &= (month >= 1) & (month <= 12) & (day >= 1) & (day <= month_days) & (hour <= 23) & (minute <= 59) & (second <= 59)
    days = _days_from_civil(year, month, day)
    ok &= zulu | (days >= _SEOUL_FIXED_FROM_DAY)
    seconds = days * 86400 + hour * 3600 + minute * 60 + second - np.where(zulu, 0, 9 * 3600)
    return seconds * 1_000_000 + micro, ok


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _identical(a: object, b: object) -> bool:
    """True only when a and b are the same JSON value exactly: then every rule below holds,
    since each rule only loosens exact equality. C speed, so the rules' walk is left for
    what differs (another timestamp spelling, a numeric string, a dropped null...).

    Python's == alone is too loose (1 == 1.0 == True, 0.0 == -0.0) and orjson's text alone
    too (NaN and Infinity are written as null), but together they are exact: == ties every
    value to one of the same shape (NaN never equals anything but itself), and on two
    values of the same shape the sorted-key texts differ wherever a type or a sign does."""
    try:
        return a == b and orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(b, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):  # ints beyond 64 bits, lone surrogates: the rules decide
        return False


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
_SIGNALS = _list_of(_SIGNAL, frozenset(_TIMESTAMP_KEYS_OF_SIGNAL))
_POINTS = _list_of(_POINT, frozenset({"timestamp"}))
_SYMBOL = _dict_of({"signals": _SIGNALS, "performance_curve": _POINTS, "performance": _METRICS})
_DOCUMENT_RULES = {"symbols": _list_of(_SYMBOL), "signals": _SIGNALS, "performance_curve": _POINTS,
                   "summary": _METRICS}
