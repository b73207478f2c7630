"""A column of legacy timestamp values -> UTC epoch microseconds, read as blocks of bytes.

normalize reads every signal's timestamp and exit_timestamp and every curve point's;
value by value (timestamps.parse_timestamp) that is about a microsecond each. Here a column
is read by numpy, one block per width of text (`YYYY-MM-DD?HH:MM:SS` and an offset of none,
one, five or six characters): each character position is checked (digits where digits go,
the separators, the offset's shape), the fields are checked as datetime checks them (months,
days of the month, 24 hours, 60 minutes, 60 seconds, year 1 on), the offset as
parse_timestamp takes it, and the instant is computed from the civil date. An instant is
kept only where all of that holds: parse_timestamp reads such a value as that instant, and
the value is that instant spelled in its code (its separator and offset), which the file's
Spelling needs (exact.py). Every other value (epoch milliseconds as text, a fraction,
Seoul's summer times, out of range, not a timestamp at all) is parsed one by one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .spelled import SEOUL_FIXED_FROM_US
from .timestamps import MAX_US, MIN_US, SEOUL_OFFSET_US, parse_timestamp

# Below this many values numpy's fixed cost per column exceeds the per-value parse.
_MIN_COLUMN_VALUES = 64
# The widths of the offsets a code's text may end in: none (Seoul wall time), "Z", "+0900", "+09:00".
_SUFFIX_WIDTHS = (0, 1, 5, 6)
_STR_INT_OR_NULL = frozenset((str, int, type(None)))
_STR = {str}
_CODE_POSITIONS = np.array([10, 19, 20, 21, 22, 23, 24])  # the separator, then the offset's characters
_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])  # YYYY-MM-DD?HH:MM:SS
_WALL_WIDTH = 19
_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_US_PER_SECOND = 1_000_000


@dataclass
class ColumnRead:
    instants: list[int | None]  # parse_timestamp(v) of each value (None for None)
    code: str | None  # the spelling code of every value when all were read here in one, else None
    # each value's code where it was read here (its text is its instant spelled so), else None
    codes: list[str | None]


def parsed_column(values: list) -> ColumnRead | None:
    """The column read width by width: the values `YYYY-MM-DD?HH:MM:SS` plus nothing (Seoul
    wall time), "Z", "+HHMM" or "+HH:MM" are each read as one block of bytes, whatever mix of
    separators and offsets a block holds; ints as epoch milliseconds; whatever is left is
    parsed value by value. None when a column read would not be faster: a short column, one
    holding values other than text, ints and nulls, or one none of whose text was read here.
    A value read here is the text its instant is spelled as in its code (the shape, fields
    and offset checked position by position)."""
    n = len(values)
    types = set(map(type, values)) if n >= _MIN_COLUMN_VALUES else None
    if types is None or not _STR_INT_OR_NULL.issuperset(types):
        return None
    instants = np.zeros(n, np.int64)
    code_at = np.full(n, -1, np.int64)  # each value's code, an index into `names`; -1: not read here
    names: list[str] = []
    lengths = list(map(len, values)) if types == _STR else None
    if lengths is not None and lengths.count(lengths[0]) == n and lengths[0] - _WALL_WIDTH in _SUFFIX_WIDTHS:
        _read_block(values, None, lengths[0] - _WALL_WIDTH, instants, code_at, names)  # the usual column
    else:
        # the width of each text; an int: -1
        widths = np.array(lengths if lengths is not None else
                          [len(v) if type(v) is str else -1 if type(v) is int else 0 for v in values], np.int64)
        for suffix_width in _SUFFIX_WIDTHS:
            at = np.flatnonzero(widths == _WALL_WIDTH + suffix_width)
            if len(at):
                _read_block(values, at, suffix_width, instants, code_at, names)
        _read_epoch_ms(values, np.flatnonzero(widths == -1), instants, code_at, names)
    if not names or names == ["ms"]:
        return None
    micros = instants.tolist()
    not_read = np.flatnonzero(code_at < 0).tolist()
    unread = []  # values not read here
    for i in not_read:
        micros[i] = None
        if values[i] is not None:
            unread.append(i)
            micros[i] = parse_timestamp(values[i])
    if len(names) == 1:
        codes = [names[0]] * n
        for i in not_read:
            codes[i] = None
    else:
        codes = np.array([*names, None], object)[code_at].tolist()  # -1: the None at the end
    # `names` holds the codes of the values read, each read for at least one
    return ColumnRead(micros, names[0] if len(names) == 1 and not unread else None, codes)


def _read_epoch_ms(values: list, at: np.ndarray, instants: np.ndarray, code_at: np.ndarray,
                   names: list[str]) -> None:
    """The ints at `at` read as epoch milliseconds, where the instant is in range."""
    read = [(i, us) for i in at.tolist() if MIN_US <= (us := values[i] * 1000) <= MAX_US]
    if read:
        rows = [i for i, _ in read]
        instants[rows] = [us for _, us in read]
        code_at[rows] = _code_index(names, "ms")


def _code_index(names: list[str], code: str) -> int:
    if code not in names:
        names.append(code)
    return names.index(code)


def _read_block(values: list, at: np.ndarray | None, suffix_width: int, instants: np.ndarray,
                code_at: np.ndarray, names: list[str]) -> None:
    """The values at `at` (None: every value), text of one width, read where each is
    `YYYY-MM-DD?HH:MM:SS` and an offset of that width: each character position checked, the
    fields checked as datetime checks them, the offset as parse_timestamp takes it (hours to
    23, minutes to 59), the instant computed from the civil date. Sets instants and code_at
    where all of that holds (the rest is left to parse_timestamp: a date that does not
    exist, Seoul's summer times, out of range, another shape)."""
    width = _WALL_WIDTH + suffix_width
    texts = values if at is None else [values[i] for i in at.tolist()]
    block = "".join(texts).encode()
    if len(block) != len(texts) * width:  # a value holds non-ASCII characters: it is not read here
        block = "".join(t if t.isascii() else "x" * width for t in texts).encode()
    chars = np.frombuffer(block, np.uint8).reshape(len(texts), width)
    digits = chars[:, _DIGITS] - np.uint8(ord("0"))  # a non-digit wraps past 9
    ok = (digits <= 9).all(axis=1) & ((chars[:, 10] == ord("T")) | (chars[:, 10] == ord(" ")))
    for position, char in ((4, "-"), (7, "-"), (13, ":"), (16, ":")):
        ok &= chars[:, position] == ord(char)
    offset_us = _offsets_us(chars[:, _WALL_WIDTH:], ok)
    d = digits.astype(np.int64)
    year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    month, day = d[:, 4] * 10 + d[:, 5], d[:, 6] * 10 + d[:, 7]
    hour, minute, second = d[:, 8] * 10 + d[:, 9], d[:, 10] * 10 + d[:, 11], d[:, 12] * 10 + d[:, 13]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = _DAYS_IN_MONTH[np.clip(month, 1, 12) - 1] + (leap & (month == 2))
    ok &= (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= month_days)
    ok &= (hour <= 23) & (minute <= 59) & (second <= 59)
    wall = (_days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second) * _US_PER_SECOND
    block_instants = wall - offset_us
    # parse_timestamp refuses instants outside MIN_US..MAX_US; Seoul wall time before 1989
    # may be summer time (an hour's wall times mean two instants): both are left to it.
    ok &= (block_instants >= (MIN_US if suffix_width else max(MIN_US, SEOUL_FIXED_FROM_US))) & (block_instants <= MAX_US)
    if not ok.any():
        return
    rows = ok if at is None else at[ok]
    instants[rows] = block_instants[ok]
    # Each value's code: its separator and its offset's text.
    code_chars = chars[:, _CODE_POSITIONS[:1 + suffix_width]]
    first = code_chars[int(np.argmax(ok))]
    if ((code_chars == first).all(axis=1) | ~ok).all():  # the usual block: one spelling
        code_at[rows] = _code_index(names, bytes(first).decode())
        return
    code_bytes = code_chars[ok]
    keys = np.zeros(len(code_bytes), np.int64)  # as one integer while numpy sorts them out
    for column in code_bytes.T:
        keys = (keys << 8) | column
    distinct, which = np.unique(keys, return_inverse=True)
    index = np.array([_code_index(names, bytes(code_bytes[np.argmax(keys == key)]).decode())
                      for key in distinct.tolist()], np.int64)
    code_at[rows] = index[which]


def _offsets_us(suffixes: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Each value's UTC offset (its suffix: nothing, Seoul's +09:00; "Z"; "+HHMM"; "+HH:MM"),
    microseconds; `ok` cleared where the suffix is not one parse_timestamp takes."""
    rows, width = suffixes.shape
    if width == 0:
        return np.full(rows, SEOUL_OFFSET_US, np.int64)
    if width == 1:
        ok &= suffixes[:, 0] == ord("Z")
        return np.zeros(rows, np.int64)
    hours_at, minutes_at = (1, 2), ((3, 4) if width == 5 else (4, 5))
    sign = suffixes[:, 0]
    ok &= (sign == ord("+")) | (sign == ord("-"))
    if width == 6:
        ok &= suffixes[:, 3] == ord(":")
    d = suffixes[:, [*hours_at, *minutes_at]] - np.uint8(ord("0"))
    ok &= (d <= 9).all(axis=1)
    d = d.astype(np.int64)
    hours, minutes = d[:, 0] * 10 + d[:, 1], d[:, 2] * 10 + d[:, 3]
    ok &= (hours <= 23) & (minutes <= 59)
    return np.where(sign == ord("-"), -1, 1) * (hours * 3600 + minutes * 60) * _US_PER_SECOND


def _days_from_civil(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (years from 1; H. Hinnant's algorithm)."""
    y = year - (month <= 2)
    era = y // 400
    year_of_era = y - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468
