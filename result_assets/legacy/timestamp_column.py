"""A column of legacy timestamp values -> UTC epoch microseconds, read as one block of bytes.

normalize reads every signal's timestamp and exit_timestamp and every curve point's;
value by value (timestamps.parse_timestamp) that is about a microsecond each. Here a column
in the spelling of its first value (`YYYY-MM-DD?HH:MM:SS` and that value's offset, or Seoul
wall time) is read by numpy: the values of exactly that width are joined into one block,
each character position is checked (digits where digits go, the separators, the offset's
exact text), the fields are checked as datetime checks them (months, days of the month, 24
hours, 60 minutes, 60 seconds, year 1 on) and the instant is computed from the civil date.
An instant is kept only where all of that holds: parse_timestamp reads such a value as that
instant. Every other value (another spelling, a fraction, Seoul's summer times, out of
range, not a timestamp at all) is parsed one by one.
"""
from __future__ import annotations

import numpy as np

from .spelled import SEOUL_FIXED_FROM_US, fixed_offset_us, timestamp_code
from .timestamps import MAX_US, MIN_US, SEOUL_OFFSET_US, parse_timestamp

# Below this many values numpy's fixed cost per column exceeds the per-value parse.
_MIN_COLUMN_VALUES = 64
_STR_OR_NULL = frozenset((str, type(None)))
_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])  # YYYY-MM-DD?HH:MM:SS
_WALL_WIDTH = 19
_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_US_PER_SECOND = 1_000_000


def parsed_column(values: list) -> tuple[list[int | None], str | None] | None:
    """([parse_timestamp(v) (None for None) for v in values], the spelling code of every value
    when each one was read here in its first value's spelling, else None), or None when a
    column read would not be faster: a short column, or one whose first value is not ISO 8601
    text. A value read here is the text its instant is spelled as in that code (the shape,
    fields and offset checked position by position), so the code says the whole column."""
    parsed = _column_parsed(values) if len(values) >= _MIN_COLUMN_VALUES else None
    if parsed is None:
        return None
    micros, unproven, code = parsed
    for i in unproven:
        micros[i] = parse_timestamp(values[i])
    return micros, None if unproven else code


def _column_parsed(values: list) -> tuple[list[int | None], list[int], str] | None:
    """(instants, positions of the non-null values not read here, the spelling read), or None
    when the column's first spelling is not one read here."""
    if not _STR_OR_NULL.issuperset(map(type, values)):
        return None
    first = next((v for v in values if v is not None), None)
    code = timestamp_code(first)
    # parse_timestamp reading the first value also vouches for its offset (hours to 23, minutes to 59)
    if code is None or code in ("ms", "ms_str") or parse_timestamp(first) is None:
        return None
    sep, suffix = code[0], code[1:]
    width = _WALL_WIDTH + len(suffix)
    filler = "x" * width  # stands in for None and values of another width: it fails the digit check
    texts = [v if v is not None and len(v) == width else filler for v in values]
    block = "".join(texts).encode()
    if len(block) != len(texts) * width:  # a value holds non-ASCII characters: it is not read here
        texts = [t if t.isascii() else filler for t in texts]
        block = "".join(texts).encode()
    chars = np.frombuffer(block, np.uint8).reshape(len(texts), width)
    digits = chars[:, _DIGITS] - np.uint8(ord("0"))  # a non-digit wraps past 9
    ok = (digits <= 9).all(axis=1)
    for at, char in ((4, "-"), (7, "-"), (10, sep), (13, ":"), (16, ":")):
        ok &= chars[:, at] == ord(char)
    if suffix:
        ok &= (chars[:, _WALL_WIDTH:] == np.frombuffer(suffix.encode(), np.uint8)).all(axis=1)
    d = digits.astype(np.int64)
    year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    month, day = d[:, 4] * 10 + d[:, 5], d[:, 6] * 10 + d[:, 7]
    hour, minute, second = d[:, 8] * 10 + d[:, 9], d[:, 10] * 10 + d[:, 11], d[:, 12] * 10 + d[:, 13]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = _DAYS_IN_MONTH[np.clip(month, 1, 12) - 1] + (leap & (month == 2))
    ok &= (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= month_days)
    ok &= (hour <= 23) & (minute <= 59) & (second <= 59)
    wall = (_days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second) * _US_PER_SECOND
    micros = wall - (fixed_offset_us(suffix) if suffix else SEOUL_OFFSET_US)
    # parse_timestamp refuses instants outside MIN_US..MAX_US; Seoul wall time before 1989
    # may be summer time (an hour's wall times mean two instants): both are left to it.
    low = MIN_US if suffix else max(MIN_US, SEOUL_FIXED_FROM_US)
    ok &= (micros >= low) & (micros <= MAX_US)
    out: list[int | None] = micros.tolist()
    unproven = []
    for i in np.flatnonzero(~ok).tolist():
        out[i] = None
        if values[i] is not None:
            unproven.append(i)
    return out, unproven, code


def _days_from_civil(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (years from 1; H. Hinnant's algorithm)."""
    y = year - (month <= 2)
    era = y // 400
    year_of_era = y - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468
