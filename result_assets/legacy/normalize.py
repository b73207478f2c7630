"""Legacy document -> skeleton + typed signal/curve row tables + catalog facts.

Nothing is lost: a value goes into a typed column only when that column holds
it exactly; anything else stays, raw, in the row's `extras` JSON object.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from itertools import accumulate
from operator import itemgetter

import orjson
import pyarrow as pa

from .parse import InvalidResult, copy_json, dumps_document, exact_float, parse_document, parse_written
from .schema import (
    CURVE_FLOAT_KEYS,
    CURVE_SCHEMA,
    INDICATORS_TYPE,
    METRIC_NAMES,
    SIGNAL_FLOAT_KEYS,
    SIGNAL_SCHEMA,
    TIMESTAMP_UTC,
)
from .timestamp_column import parsed_column
from .spelled import NO_VALUES, timestamp_code
from .timestamps import MAX_US, MIN_US, parse_timestamp

_MISSING = object()
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# A "numeric string": a decimal number, or nan/inf spelled the way float() reads
# them. Stricter than float() alone (which also takes "1_000" and non-ASCII digits).
_NUMERIC_STRING = re.compile(
    r"\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)\s*",
    re.ASCII | re.IGNORECASE,
)
# The typed keys of each row list, in the order add_list reads their columns.
_SIGNAL_COLUMN_KEYS = ("timestamp", "exit_timestamp", *SIGNAL_FLOAT_KEYS, "holding_bars", "type", "reason", "indicators")
_V1_SIGNAL_COLUMN_KEYS = (*_SIGNAL_COLUMN_KEYS, "symbol")
_CURVE_COLUMN_KEYS = ("timestamp", *CURVE_FLOAT_KEYS)
_SIGNAL_TYPED_KEYS = frozenset(_SIGNAL_COLUMN_KEYS)
_V1_SIGNAL_TYPED_KEYS = frozenset(_V1_SIGNAL_COLUMN_KEYS)
_CURVE_TYPED_KEYS = frozenset(_CURVE_COLUMN_KEYS)
_NONE = type(None)
_FLOAT = frozenset((float,))
_DICT = frozenset((dict,))
_FLOAT_OR_NULL = frozenset((float, _NONE))
_INT_OR_NULL = frozenset((int, _NONE))
_STR_OR_NULL = frozenset((str, _NONE))


@dataclass
class SymbolSummary:
    symbol_idx: int
    symbol: str | None
    n_signals: int
    total_return: float | None = None
    win_rate: float | None = None
    max_drawdown: float | None = None
    sharpe_ratio: float | None = None
    profit_factor: float | None = None
    num_trades: int | None = None


@dataclass
class NormalizedResult:
    task_id: str
    skeleton: dict
    signals: pa.Table
    curves: pa.Table
    symbols: list[SymbolSummary]
    strategy: str
    timeframe: str | None
    start_date: str | None
    end_date: str | None
    params: dict | None
    metrics: dict
    layout: int
    n_signals: int
    n_curve_points: int
    warnings: list[str] = field(default_factory=list)
    # The levels of lists and objects the extracted rows reach in the document (each row list's
    # own level plus its rows' depth): with the skeleton's, the document's nesting depth.
    rows_depth: int = 0
    # {"signals.timestamp"...: the spelling code every value of that field was read in (NO_VALUES
    # for a field without any)}: each value is its instant spelled so (exact.learn needs
    # no look at each row of such a field). A field read otherwise is not named.
    spelled_as: dict[str, str] = field(default_factory=dict)
    # Whether a float field of a row held a numeric string, stored as the float it spells: the
    # file then needs a row patch for it (exact.learn writes those first).
    numbers_as_strings: bool = False
    # {"signals.timestamp"...: each row's spelling code where it was read in one (None elsewhere),
    # rows in the tables' order} of the fields whose rows mix spellings: exact.learn looks
    # only at the other rows.
    row_spellings: dict[str, list[str | None]] = field(default_factory=dict)


def validate_result(task_id: str, raw: bytes) -> NormalizedResult:
    return normalize(task_id, parse_document(raw))


def normalize(task_id: str, doc: object) -> NormalizedResult:
    """Raises InvalidResult for a document that cannot be migrated, never anything else
    for a parsed document (text that is not valid Unicode included: quarantined)."""
    try:
        result = _normalize(task_id, doc)
        _check_text(result.skeleton)  # the catalog keeps it as text
        return result
    except (UnicodeEncodeError, TypeError):
        # pa.array and orjson refuse lone surrogates (Python's json reads "\ud800"
        # escapes into them); say where, or re-raise what is not about text.
        reason = invalid_text_reason(doc)
        if reason is None:
            raise
        raise InvalidResult(reason) from None


def _normalize(task_id: str, doc: object) -> NormalizedResult:
    if type(doc) is not dict:
        raise InvalidResult(f"top level is a JSON {_json_type(doc)}, expected an object")
    strategy = doc.get("strategy", _MISSING)
    if strategy is _MISSING:
        raise InvalidResult('"strategy" is missing')
    if type(strategy) is not str:
        raise InvalidResult(f'"strategy" is a JSON {_json_type(strategy)}, expected a string')
    symbols = doc.get("symbols", _MISSING)
    if symbols is _MISSING:
        raise InvalidResult('"symbols" is missing')
    if type(symbols) is not list:
        raise InvalidResult(f'"symbols" is a JSON {_json_type(symbols)}, expected a list')

    warnings: list[str] = []
    doc_task_id = doc.get("task_id", _MISSING)
    if doc_task_id is not _MISSING and doc_task_id != task_id:
        warnings.append(
            f"task_id field {_show(doc_task_id)} differs from the directory name {_show(task_id)}; "
            "the directory name wins"
        )

    signal_rows = _SignalRows()
    curve_rows = _CurveRows()
    skeleton = dict(doc)  # top-level key order kept; extracted lists emptied below

    top_signals = doc.get("signals")
    layout = 1 if type(top_signals) is list else 2
    if layout == 1:
        signal_rows.add_list(top_signals, -1, None, "signals", v1=True)
        skeleton["signals"] = []
    if _is_curve_list(doc.get("performance_curve")):
        curve_rows.add_list(doc["performance_curve"], -1, "performance_curve")
        skeleton["performance_curve"] = []

    summaries: list[SymbolSummary] = []
    skeleton_symbols = []
    for idx, entry in enumerate(symbols):
        if type(entry) is str:
            name = entry
            summaries.append(SymbolSummary(idx, name, 0))
            skeleton_symbols.append(entry)
            continue
        if type(entry) is not dict:
            warnings.append(f"symbols[{idx}] is a JSON {_json_type(entry)}, neither a name nor an object")
            summaries.append(SymbolSummary(idx, None, 0))
            skeleton_symbols.append(entry)
            continue
        name = entry.get("symbol") if type(entry.get("symbol")) is str else None
        where = f"symbols[{idx}]" + (f" ({_label(name)})" if name is not None else "")
        entry_skeleton = dict(entry)
        n_before = signal_rows.n
        if type(entry.get("signals")) is list:
            signal_rows.add_list(entry["signals"], idx, name, f"{where} signals", v1=False)
            entry_skeleton["signals"] = []
        if _is_curve_list(entry.get("performance_curve")):
            curve_rows.add_list(entry["performance_curve"], idx, f"{where} performance_curve")
            entry_skeleton["performance_curve"] = []
        summary = SymbolSummary(idx, name, signal_rows.n - n_before)
        performance = entry.get("performance")
        if type(performance) is dict:
            for metric, value in _read_metrics(performance, f"{where} performance").items():
                setattr(summary, metric, value)
        summaries.append(summary)
        skeleton_symbols.append(entry_skeleton)
    skeleton["symbols"] = skeleton_symbols

    if layout == 1:
        _count_v1_signals(summaries, signal_rows.v1_symbols, warnings)

    summary_doc = doc.get("summary")
    metrics = (
        _read_metrics(summary_doc, "summary") if type(summary_doc) is dict else dict.fromkeys(METRIC_NAMES)
    )
    params = doc.get("params")
    return NormalizedResult(
        task_id=task_id,
        skeleton=copy_json(skeleton),
        signals=signal_rows.table(task_id),
        curves=curve_rows.table(task_id),
        symbols=summaries,
        strategy=strategy,
        timeframe=_str_or_none(doc.get("timeframe")),
        start_date=_str_or_none(doc.get("start_date")),
        end_date=_str_or_none(doc.get("end_date")),
        params=copy_json(params) if type(params) is dict else None,
        metrics=metrics,
        layout=layout,
        n_signals=signal_rows.n,
        n_curve_points=curve_rows.n,
        warnings=warnings,
        rows_depth=max(signal_rows.depth, curve_rows.depth),
        numbers_as_strings=signal_rows.numbers_as_strings or curve_rows.numbers_as_strings,
        spelled_as={f"{list_key}.{name}": code for list_key, rows in (("signals", signal_rows), ("performance_curve", curve_rows))
                    for name, code in rows.spelled_as.items() if code is not None},
        row_spellings={f"{list_key}.{name}": codes
                       for list_key, rows in (("signals", signal_rows), ("performance_curve", curve_rows))
                       for name, codes in rows.row_codes.items() if _mixed(codes, rows.spelled_as[name])},
    )


class _SignalRows:
    """Column lists for signal rows, filled one signal at a time."""

    def __init__(self):
        self.n = 0
        self.symbol_idx: list[int] = []
        self.seq: list[int] = []
        self.symbol: list[str | None] = []
        self.ts: list[int] = []
        self.exit_ts: list[int | None] = []
        self.type: list[str | None] = []
        self.floats: dict[str, list[float | None]] = {k: [] for k in SIGNAL_FLOAT_KEYS}
        self.holding_bars: list[int | None] = []
        self.reason: list[str | None] = []
        # indicators as a flat map array: offsets into keys/values, plus a null mask
        self.ind_offsets: list[int] = [0]
        self.ind_keys: list[str] = []
        self.ind_values: list[float] = []
        self.ind_null: list[bool] = []
        self.extras: list[str | None] = []
        self.v1_symbols: list[object] = []  # the v1 signals' symbol values, for counts
        self._ts_cache: dict[str, int] = {}
        self.depth = 0  # NormalizedResult.rows_depth
        self.numbers_as_strings = False  # NormalizedResult.numbers_as_strings
        self.spelled_as: dict[str, str | None] = {}  # NormalizedResult.spelled_as, by field
        self.row_codes: dict[str, list[str | None]] = {}  # NormalizedResult.row_spellings, by field

    def add_list(self, signals: list, symbol_idx: int, symbol_name: str | None, where: str, v1: bool):
        """Column by column: one list comprehension per key, then a type check of
        the whole column; only columns holding odd values are walked row by row."""
        n = len(signals)
        for seq, sig in enumerate(signals):
            if type(sig) is not dict:
                raise InvalidResult(f"{where}[{seq}]: is a JSON {_json_type(sig)}, expected an object")
        kept_raw: dict[int, list[str]] = {}  # row -> typed keys whose value stays in extras

        def keep_raw(row: int, key: str):
            kept_raw.setdefault(row, []).append(key)

        typed_keys = _V1_SIGNAL_TYPED_KEYS if v1 else _SIGNAL_TYPED_KEYS
        columns, every_row_holds_them = _columns(signals, _V1_SIGNAL_COLUMN_KEYS if v1 else _SIGNAL_COLUMN_KEYS)
        raw_ts = columns["timestamp"]
        ts = _timestamps(raw_ts, self._ts_cache, self.spelled_as, self.row_codes, "timestamp")
        if None in ts:
            seq = ts.index(None)
            raw = raw_ts[seq]
            if raw is None:
                raise InvalidResult(f"{where}[{seq}]: " + ("timestamp is null" if "timestamp" in signals[seq] else "no timestamp"))
            if type(raw) is str and raw[:5] in ("0001-", "9999-") and timestamp_code(raw) is not None:
                # a timestamp's shape at the ends of the calendar, where an offset leaves the range
                raise InvalidResult(f"{where}[{seq}]: timestamp {_show(raw)} is outside the instants kept "
                                    "(0001-01-02 to 9999-12-30 UTC)")
            raise InvalidResult(
                f"{where}[{seq}]: timestamp {_show(raw)} is not a timestamp "
                "(ISO 8601, Seoul wall time or epoch milliseconds)"
            )
        self.ts.extend(ts)

        raw_exit = columns["exit_timestamp"]
        exit_ts = _timestamps(raw_exit, self._ts_cache, self.spelled_as, self.row_codes, "exit_timestamp")
        _keep_non_timestamps(raw_exit, exit_ts, "exit_timestamp", keep_raw)
        self.exit_ts.extend(exit_ts)

        for key in SIGNAL_FLOAT_KEYS:
            column = columns[key]
            if not _FLOAT_OR_NULL.issuperset(map(type, column)):
                self.numbers_as_strings |= _fix_float_column(column, key, f"{where}", keep_raw)
            self.floats[key].extend(column)

        column = columns["holding_bars"]
        if not _INT_OR_NULL.issuperset(map(type, column)) or not _ints_in_range(column):
            for seq, value in enumerate(column):
                if value is None or (type(value) is int and _INT64_MIN <= value <= _INT64_MAX):
                    continue
                if type(value) is str:
                    _numeric_string(value, f"{where}[{seq}]", "holding_bars")  # validates only
                column[seq] = None
                keep_raw(seq, "holding_bars")
        self.holding_bars.extend(column)

        for key, target in (("type", self.type), ("reason", self.reason)):
            column = columns[key]
            if not _STR_OR_NULL.issuperset(map(type, column)):
                for seq, value in enumerate(column):
                    if value is not None and type(value) is not str:
                        column[seq] = None
                        keep_raw(seq, key)
            target.extend(column)

        maps = self._add_indicators(columns["indicators"], keep_raw)

        if v1:
            column = columns["symbol"]
            self.v1_symbols.extend(column)
            if not _STR_OR_NULL.issuperset(map(type, column)):
                for seq, value in enumerate(column):
                    if value is not None and type(value) is not str:
                        column[seq] = None
                        keep_raw(seq, "symbol")
            self.symbol.extend(column)
        else:
            self.symbol.extend([symbol_name] * n)

        extras = _extras(signals, typed_keys, kept_raw, every_row_holds_them)
        self.extras.extend(extras)
        if n:  # a row is an object; an indicators map one level more
            self.depth = max(self.depth, _list_level(symbol_idx) + _rows_depth(extras, 2 if maps else 1))
        self.symbol_idx.extend([symbol_idx] * n)
        self.seq.extend(range(n))
        self.n += n

    def _add_indicators(self, column: list, keep_raw) -> bool:
        """Whether any of these rows' indicators is kept as a map."""
        offsets, keys, values, nulls = self.ind_offsets, self.ind_keys, self.ind_values, self.ind_null
        if _DICT.issuperset(map(type, column)):
            flat_values = [v for d in column for v in d.values()]
            if _FLOAT.issuperset(map(type, flat_values)):  # the usual case: all maps
                keys.extend([k for d in column for k in d])
                values.extend(flat_values)
                ends = accumulate([len(d) for d in column], initial=offsets[-1])
                next(ends)  # the current end, already in offsets
                offsets.extend(ends)
                nulls.extend([False] * len(column))
                return bool(column)
        any_map = False
        for seq, value in enumerate(column):
            if type(value) is dict and all(type(x) is float for x in value.values()):
                keys.extend(value)
                values.extend(value.values())
                nulls.append(False)
                any_map = True
            else:
                nulls.append(True)
                if value is not None:
                    keep_raw(seq, "indicators")
            offsets.append(len(keys))
        return any_map

    def table(self, task_id: str) -> pa.Table:
        indicators = pa.MapArray.from_arrays(
            pa.array(self.ind_offsets, pa.int32()),
            pa.array(self.ind_keys, pa.string()),
            pa.array(self.ind_values, pa.float64()),
            type=INDICATORS_TYPE,
            mask=pa.array(self.ind_null, pa.bool_()),
        )
        columns = {
            "task_id": pa.array([task_id] * self.n, pa.string()),
            "symbol_idx": pa.array(self.symbol_idx, pa.int32()),
            "seq": pa.array(self.seq, pa.int32()),
            "symbol": pa.array(self.symbol, pa.string()),
            "ts": pa.array(self.ts, TIMESTAMP_UTC),
            "exit_ts": pa.array(self.exit_ts, TIMESTAMP_UTC),
            "type": pa.array(self.type, pa.string()),
            **{k: pa.array(v, pa.float64()) for k, v in self.floats.items()},
            "holding_bars": pa.array(self.holding_bars, pa.int64()),
            "reason": pa.array(self.reason, pa.string()),
            "indicators": indicators,
            "extras": pa.array(self.extras, pa.string()),
        }
        return pa.Table.from_arrays([columns[f.name] for f in SIGNAL_SCHEMA], schema=SIGNAL_SCHEMA)


class _CurveRows:
    def __init__(self):
        self.n = 0
        self.symbol_idx: list[int] = []
        self.seq: list[int] = []
        self.ts: list[int | None] = []
        self.equity: list[float | None] = []
        self.drawdown: list[float | None] = []
        self.extras: list[str | None] = []
        self._ts_cache: dict[str, int] = {}
        self.depth = 0  # NormalizedResult.rows_depth
        self.numbers_as_strings = False  # NormalizedResult.numbers_as_strings
        self.spelled_as: dict[str, str | None] = {}  # NormalizedResult.spelled_as, by field
        self.row_codes: dict[str, list[str | None]] = {}  # NormalizedResult.row_spellings, by field

    def add_list(self, points: list, symbol_idx: int, where: str):
        """Column by column, as _SignalRows.add_list (all dicts: checked by _is_curve_list)."""
        kept_raw: dict[int, list[str]] = {}  # row -> typed keys whose value stays in extras

        def keep_raw(row: int, key: str):
            kept_raw.setdefault(row, []).append(key)

        columns, every_row_holds_them = _columns(points, _CURVE_COLUMN_KEYS)
        raw_ts = columns.pop("timestamp")
        ts = _timestamps(raw_ts, self._ts_cache, self.spelled_as, self.row_codes, "timestamp")
        _keep_non_timestamps(raw_ts, ts, "timestamp", keep_raw)
        self.ts.extend(ts)
        odd = [key for key, column in columns.items() if not _FLOAT_OR_NULL.issuperset(map(type, column))]
        if odd:
            self.numbers_as_strings |= _fix_float_columns([columns[key] for key in odd], odd, where, keep_raw)
        self.equity.extend(columns["equity"])
        self.drawdown.extend(columns["drawdown"])
        extras = _extras(points, _CURVE_TYPED_KEYS, kept_raw, every_row_holds_them)
        self.extras.extend(extras)
        n = len(points)
        if n:
            self.depth = max(self.depth, _list_level(symbol_idx) + _rows_depth(extras, 1))
        self.symbol_idx.extend([symbol_idx] * n)
        self.seq.extend(range(n))
        self.n += n

    def table(self, task_id: str) -> pa.Table:
        return pa.Table.from_arrays(
            [
                pa.array([task_id] * self.n, pa.string()),
                pa.array(self.symbol_idx, pa.int32()),
                pa.array(self.seq, pa.int32()),
                pa.array(self.ts, TIMESTAMP_UTC),
                pa.array(self.equity, pa.float64()),
                pa.array(self.drawdown, pa.float64()),
                pa.array(self.extras, pa.string()),
            ],
            schema=CURVE_SCHEMA,
        )


def _timestamps(raw_values: list, cache: dict[str, int], spelled_as: dict[str, str | None],
                row_codes: dict[str, list[str | None]], name: str) -> list[int | None]:
    """[parse_timestamp(v) (None for None) for v in raw_values], a column at a time where it can.
    spelled_as[name]: the code all of the field's lists so far were read in, or None;
    row_codes[name]: each row's code so far where it was read in one."""
    codes = row_codes.setdefault(name, [])
    if _INT_OR_NULL.issuperset(map(type, raw_values)):  # epoch milliseconds
        out = [None if ms is None else us if MIN_US <= (us := ms * 1000) <= MAX_US else None for ms in raw_values]
        nulls = raw_values.count(None)
        code = NO_VALUES if nulls == len(raw_values) else "ms" if out.count(None) == nulls else None
        _spelled_so_far(spelled_as, name, code)
        codes += [None if us is None else "ms" for us in out]
        return out
    read = parsed_column(raw_values)
    if read is not None:
        _spelled_so_far(spelled_as, name, read.code)
        codes += read.codes
        return read.instants
    _spelled_so_far(spelled_as, name, None)  # read value by value: no code vouched for
    codes += [None] * len(raw_values)
    out = []
    append = out.append
    for raw in raw_values:
        if type(raw) is str:
            us = cache.get(raw)
            if us is None:
                us = parse_timestamp(raw)
                if us is not None:
                    cache[raw] = us
            append(us)
        elif raw is None:
            append(None)
        else:
            append(parse_timestamp(raw))
    return out


def _spelled_so_far(spelled_as: dict[str, str | None], name: str, code: str | None) -> None:
    if name not in spelled_as or spelled_as[name] == NO_VALUES:
        spelled_as[name] = code
    elif code != NO_VALUES and spelled_as[name] != code:
        spelled_as[name] = None


def _mixed(codes: list[str | None], field_code: str | None) -> bool:
    """Whether a field's rows were read in more than one spelling (none vouched for the whole field)."""
    return field_code is None and len(set(codes) - {None}) > 1


def _keep_non_timestamps(raw_values: list, instants: list, key: str, keep_raw):
    """Rows whose `key` holds a value that is not a timestamp keep it as written."""
    if instants.count(None) != raw_values.count(None):
        for seq, (raw, us) in enumerate(zip(raw_values, instants)):
            if us is None and raw is not None:
                keep_raw(seq, key)


def _columns(rows: list[dict], keys: tuple[str, ...]) -> tuple[dict[str, list], bool]:
    """({key: [row.get(key) for row in rows]}, whether every row holds every key): one C call
    per row where every row holds them (the common case; a get per key and row was a quarter
    of normalizing a 38 MB file)."""
    try:
        values = list(map(itemgetter(*keys), rows))
    except KeyError:
        return {key: [row.get(key) for row in rows] for key in keys}, False
    if not values:
        return {key: [] for key in keys}, True
    return dict(zip(keys, map(list, zip(*values)))), True


def _extras(rows: list[dict], typed_keys: frozenset, kept_raw: dict[int, list[str]],
            every_row_holds_them: bool = False) -> list[str | None]:
    """Each row's extras JSON: its keys outside the typed columns, and the typed ones kept as
    written (kept_raw); None for a row with neither. `every_row_holds_them`: each row holds
    every typed key, so a row with more keys than that holds others."""
    extras: list[str | None] = [None] * len(rows)
    odd_rows = set(kept_raw)
    if every_row_holds_them:
        n_typed = len(typed_keys)
        odd_rows.update(seq for seq, size in enumerate(map(len, rows)) if size != n_typed)
    else:
        odd_rows.update(seq for seq, row in enumerate(rows) if not typed_keys.issuperset(row))
    for seq in sorted(odd_rows):
        raw_keys = kept_raw.get(seq, ())
        extras[seq] = dumps_document({k: v for k, v in rows[seq].items() if k not in typed_keys or k in raw_keys})
    return extras


def _list_level(symbol_idx: int) -> int:
    """The level of a row list in the document: the document's own (an object holding a list),
    or a symbol's (the document, "symbols", the symbol's object, the list)."""
    return 2 if symbol_idx == -1 else 4


def _rows_depth(extras: list[str | None], typed_depth: int) -> int:
    """The depth of a list's rows: `typed_depth` (an object of typed values) or more where a
    row's extras hold lists or objects. Most extras hold scalars only: no bracket after their
    own opening one, found without parsing them."""
    depth = typed_depth
    for text in extras:
        if text is not None and (text.find("{", 1) != -1 or text.find("[", 1) != -1):
            depth = max(depth, nesting_depth(parse_written(text.encode())))
    return depth


def nesting_depth(document: object, limit: int = 2**31) -> int:
    """How many levels of lists and objects document has, counting stops past limit.

    Level by level, without recursion, so any depth is measured safely.
    """
    depth, level = 0, [document]
    while level and depth <= limit:
        depth += 1
        # two flat comprehensions per level: a generator per container cost about as much again
        below = [v for value in level if type(value) is dict for v in value.values()
                 if type(v) is dict or type(v) is list]
        below += [v for value in level if type(value) is list for v in value if type(v) is dict or type(v) is list]
        level = below
    return depth if not level else depth + 1


def _is_curve_list(value: object) -> bool:
    return type(value) is list and _DICT.issuperset(map(type, value))


def _fix_float_column(column: list, key: str, where: str, keep_raw) -> bool:
    """Numeric strings become floats; values a float64 cannot hold exactly (ints,
    bools, objects, numeric strings with more digits than a float64...) become null
    here and stay raw in extras. Whether a numeric string became a float."""
    respelled = False
    for seq, value in enumerate(column):
        t = type(value)
        if t is float or value is None:
            continue
        number = _numeric_string(value, f"{where}[{seq}]", key) if t is str else None
        column[seq] = number
        if number is None:
            keep_raw(seq, key)
        else:
            respelled = True
    return respelled


def _fix_float_columns(columns: list[list], keys: list[str], where: str, keep_raw) -> bool:
    """_fix_float_column for several columns of the same rows; a value that is not a number
    is reported at the first row holding one, in `keys` order within the row (as a row-by-row
    reading finds it)."""
    bad = []  # (row, key index, the reason)
    respelled = False
    for index, (column, key) in enumerate(zip(columns, keys)):
        try:
            respelled |= _fix_float_column(column, key, where, keep_raw)
        except InvalidResult as exc:
            row = next(seq for seq, v in enumerate(column) if type(v) is str)  # rows before it are fixed
            bad.append((row, index, exc))
    if bad:
        raise min(bad, key=lambda b: b[:2])[2]
    return respelled


def _ints_in_range(column: list) -> bool:
    ints = [v for v in column if v is not None]
    return not ints or (_INT64_MIN <= min(ints) and max(ints) <= _INT64_MAX)


def _numeric_string(text: str, where: str, key: str) -> float | None:
    """The float a numeric string spells, None when a float64 would round it (kept
    as written instead); InvalidResult when it is not a number."""
    if _NUMERIC_STRING.fullmatch(text) is None:
        raise InvalidResult(f"{where}: {key} {_show(text)} is not a number")
    value = float(text)
    return value if exact_float(text.strip(), value) else None


def stored_as_float(text: str) -> bool:
    """Whether a numeric string in a float field is stored as the float it spells (its text
    is then not in the rows: the file's Spelling keeps it), not kept as written."""
    try:
        return _numeric_string(text, "", "") is not None
    except InvalidResult:
        return False


def _read_metrics(block: dict, where: str) -> dict:
    """The six summary metrics as float (num_trades: int), None when absent or not
    a number; a non-numeric string is invalid (spec: "Numbers")."""
    metrics = {}
    for name in METRIC_NAMES:
        value = block.get(name)
        if type(value) is str:
            value = _numeric_string(value, where, name)
        if type(value) is bool or not isinstance(value, (int, float)):
            metrics[name] = None
        elif name == "num_trades":
            metrics[name] = value if type(value) is int else (int(value) if value.is_integer() else None)
        else:
            metrics[name] = float(value) if type(value) is float or abs(value) < 2**53 else None
    return metrics


def _count_v1_signals(summaries: list[SymbolSummary], v1_symbols: list, warnings: list[str]):
    counts: dict[object, int] = {}
    for value in v1_symbols:
        if type(value) is str:
            counts[value] = counts.get(value, 0) + 1
    names = set()
    for summary in summaries:
        if summary.symbol is not None:
            summary.n_signals += counts.get(summary.symbol, 0)
            names.add(summary.symbol)
    unlisted = sum(n for name, n in counts.items() if name not in names)
    unnamed = len(v1_symbols) - sum(counts.values())
    if unlisted:
        warnings.append(f"{unlisted} top-level signals name a symbol missing from \"symbols\"")
    if unnamed:
        warnings.append(f"{unnamed} top-level signals have no symbol name")


def _str_or_none(value: object) -> str | None:
    return value if type(value) is str else None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )


def _show(value: object, limit: int = 60) -> str:
    """value as JSON for a reason: control characters escaped, and every character a reader
    would not see (a no-break space, a zero-width space, a lone surrogate as \\udXXX: a reason
    is stored as text) as its escape."""
    text = json.dumps(value, ensure_ascii=False)
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _label(name: str) -> str:
    """A symbol name inside a one-line reason: control characters and lone surrogates escaped."""
    return name if name.isprintable() else _show(name, limit=6 * len(name) + 2)[1:-1]


def _check_text(skeleton: dict):
    try:
        orjson.dumps(skeleton)  # fast; it refuses lone surrogates (and ints beyond 64 bits)
    except orjson.JSONEncodeError:
        reason = invalid_text_reason(skeleton)
        if reason is not None:
            raise InvalidResult(reason) from None


def invalid_text_reason(doc: object) -> str | None:
    """Where doc first holds a string (or a key) that is not valid Unicode, as a reason;
    None when it holds none. Depth first, in document order, without recursion."""
    stack = [(doc, ())]
    while stack:
        value, path = stack.pop()
        if type(value) is dict:
            for key, item in value.items():
                bad = _lone_surrogate(key)
                if bad:
                    return f"{_render_path(doc, path)}: key {_show(key)} is not valid Unicode (lone surrogate {bad})"
            stack.extend((item, path + (key,)) for key, item in reversed(value.items()))
        elif type(value) is list:
            stack.extend((item, path + (i,)) for i, item in reversed(list(enumerate(value))))
        elif type(value) is str:
            bad = _lone_surrogate(value)
            if bad:
                return f"{_render_path(doc, path)}: text that is not valid Unicode (lone surrogate {bad})"
    return None


def _lone_surrogate(text: str) -> str | None:
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as e:
        return f"\\u{ord(text[e.start]):04x}"


def _render_path(doc: object, path: tuple) -> str:
    """symbols[0] (KRW-BTC).signals[3].reason; "top level" for the document itself."""
    out = ""
    for i, part in enumerate(path):
        if type(part) is int:
            out += f"[{part}]"
            if i == 1 and path[0] == "symbols" and type(doc) is dict:
                entry = doc["symbols"][part]
                name = entry.get("symbol") if type(entry) is dict else None
                if type(name) is str and _lone_surrogate(name) is None:
                    out += f" ({_label(name)})"
        elif part.isidentifier() and part.isascii():
            out += ("." if out else "") + part
        else:
            out += f"[{_show(part)}]"
    return out or "top level"
