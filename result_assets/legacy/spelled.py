"""Timestamps spelled as a file spelled them: one value (render_timestamp) or a whole
column (spelled_array, built by Arrow).

A spelling code names one of the legacy spellings: "ms" (epoch milliseconds as an int),
"ms_str" (the same digits as a string), or ISO 8601 as the separator ("T" or " ")
followed by the offset the file wrote ("Z", "+09:00", "+0900") or nothing (Seoul wall time).
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .timestamps import SEOUL, SEOUL_OFFSET_US

_NAIVE_EPOCH = datetime(1970, 1, 1)
NO_VALUES = ""  # the spelling "code" of a field whose rows hold no value (any code spells it)
SEOUL_FIXED_FROM_US = (datetime(1989, 1, 1) - _NAIVE_EPOCH) // timedelta(microseconds=1) - SEOUL_OFFSET_US
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})", re.ASCII)
_ISO_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}([T ])\d{2}:\d{2}:\d{2}(?:\.\d{6})?(Z|[+-]\d{2}:?\d{2})?", re.ASCII)


def timestamp_code(value: object) -> str | None:
    """The spelling code of one legacy timestamp value, or None if it has no code here."""
    if type(value) is int:
        return "ms"
    if type(value) is not str:
        return None
    if value.isascii() and value.isdigit():
        return "ms_str"
    m = _ISO_SHAPE.fullmatch(value)
    return None if m is None else m.group(1) + (m.group(2) or "")


def render_timestamp(us: int, code: str) -> object:
    """The instant `us` (UTC microseconds) spelled as `code` says."""
    if code == "ms":
        return us // 1000
    if code == "ms_str":
        return str(us // 1000)
    sep, suffix = code[0], code[1:]
    if suffix:
        offset = fixed_offset_us(suffix)
    elif us >= SEOUL_FIXED_FROM_US:
        offset = SEOUL_OFFSET_US
    else:  # before 1989 Seoul had summer time: ask zoneinfo
        moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=us)
        offset = moment.astimezone(SEOUL).utcoffset() // timedelta(microseconds=1)
    return (_NAIVE_EPOCH + timedelta(microseconds=us + offset)).isoformat(sep=sep) + suffix


@lru_cache(maxsize=1)
def _seoul_summers() -> list[tuple[int, int, int]]:
    """[(from, until, UTC offset)] in UTC microseconds: where Seoul's offset was not +09:00
    between 1970 and 1989 (its summer times, 1987 and 1988), found by asking zoneinfo day
    by day and then to the second (transitions fall on whole seconds)."""
    def offset(second: int) -> int:
        moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=second)
        return moment.astimezone(SEOUL).utcoffset() // timedelta(microseconds=1)

    def first_change(lo: int, hi: int) -> int:  # offset(lo) != offset(hi): the first second of hi's
        before = offset(lo)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if offset(mid) == before else (lo, mid)
        return hi

    day, end = 86_400, (SEOUL_FIXED_FROM_US + SEOUL_OFFSET_US) // 10**6
    changes, previous = [], offset(0)
    for second in range(day, end + day, day):
        current = offset(second)
        if current != previous:
            changes.append((first_change(second - day, second), current))
            previous = current
    spans = [(start, until) for (start, _), (until, _) in zip(changes, [*changes[1:], (end, None)])]
    return [(start * 10**6, until * 10**6, value) for (start, until), (_, value) in zip(spans, changes)
            if value != SEOUL_OFFSET_US]


def fixed_offset_us(suffix: str) -> int:
    """The UTC offset a code's suffix spells ("Z", "+09:00", "-0500"), in microseconds."""
    if suffix == "Z":
        return 0
    sign, hours, minutes = _OFFSET.fullmatch(suffix).groups()
    return (int(hours) * 3600 + int(minutes) * 60) * 10**6 * (-1 if sign == "-" else 1)


def spelled_column(column: pa.ChunkedArray, code: str) -> list:
    """A timestamp column's values spelled as `code` says, as Python values."""
    return spelled_array(column, code).to_pylist()


_BASE36_VALUE = np.full(256, 255, np.uint8)
for _i, _c in enumerate(b"0123456789abcdefghijklmnopqrstuvwxyz"):
    _BASE36_VALUE[_c] = _i


def rows_by_code(digits: str, n_codes: int) -> tuple[int, dict[int, np.ndarray]] | None:
    """Of a field whose rows mix spellings (row_timestamps: a base-36 digit per row naming one
    of n_codes codes): (the code most rows take, {each other code taken: its row numbers});
    None when a digit names no code. The commonest code spells the whole column and each
    other one only its own rows (a few, as a rule)."""
    choice = _BASE36_VALUE[np.frombuffer(digits.encode("ascii"), np.uint8)]
    if (choice >= n_codes).any():
        return None
    rows_of = np.bincount(choice, minlength=n_codes)
    commonest = int(rows_of.argmax())
    return commonest, {k: np.flatnonzero(choice == k) for k in range(n_codes) if k != commonest and rows_of[k]}


# Up to this many rows of a code are spelled one by one: a column's spelling costs a few
# Arrow calls (about 0.2 ms) however few its rows, render_timestamp a few microseconds a value.
_FEW_ROWS = 32


def spelled_by_row(column: pa.ChunkedArray, codes: list[str], digits: str) -> list:
    """spelled_column with each row in its own code (rows_by_code's digits, one per row)."""
    found = rows_by_code(digits, len(codes))
    if found is None:
        raise ValueError("a row spelling names no code")
    commonest, others = found
    values = spelled_column(column, codes[commonest])
    for k, rows in others.items():
        taken = column.take(rows)
        if len(rows) <= _FEW_ROWS:
            instants = taken.cast(pa.int64()).to_pylist()
            spelled = [None if us is None else render_timestamp(us, codes[k]) for us in instants]
        else:
            spelled = spelled_column(taken, codes[k])
        for i, value in zip(rows.tolist(), spelled):
            values[i] = value
    return values


def spelled_array(column: pa.ChunkedArray | pa.Array, code: str, quoted: bool = False) -> pa.Array:
    """A timestamp column's values spelled as `code` says (strings, or int64 for "ms"), built
    by numpy and Arrow (render_timestamp value by value only for instants before 1970 in Seoul
    wall time or epoch milliseconds). `quoted`: each string as JSON text (ISO text and digit
    strings need no escapes)."""
    if len(column) == 0:
        return pa.array([], pa.int64() if code == "ms" else pa.string())
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    micros = array.view(pa.int64())  # the instants' microseconds, without a cast's copy
    us = micros.to_numpy() if micros.null_count == 0 else None
    low = int(us.min()) if us is not None else pc.min(micros).as_py()
    sep, suffix = code[0], code[1:]
    fixed_offset = code not in ("ms", "ms_str") and bool(suffix)
    if low is None or (low < 0 and not fixed_offset):  # Seoul's zone and floor division before 1970
        text = pa.array([None if v is None else render_timestamp(v, code) for v in micros.to_pylist()],
                        pa.int64() if code == "ms" else pa.string())
        return _quoted(text) if quoted and code != "ms" else text
    if code in ("ms", "ms_str"):
        millis = pc.divide(micros, 1000)  # whole milliseconds: the file spelled them so
        if code == "ms":
            return millis
        return _quoted(millis.cast(pa.string())) if quoted else millis.cast(pa.string())
    if us is None:  # a null: any instant the column holds (its text is not kept)
        us = micros.fill_null(low).to_numpy()
    if suffix:
        local = us + fixed_offset_us(suffix) if suffix != "Z" else us  # "Z": UTC as it is
    else:  # Seoul wall time: +09:00, but for the summer times before 1989
        offset = np.full(len(us), SEOUL_OFFSET_US, np.int64)
        if low < SEOUL_FIXED_FROM_US:
            for start, end, summer in _seoul_summers():
                offset[(us >= start) & (us < end)] = summer
        local = us + offset
    text = _text_from_tables(local, micros, sep, suffix, quoted)
    if text is not None:
        return text
    # Arrow writes "YYYY-MM-DD HH:MM:SS.ffffff"; isoformat drops a zero fraction
    text = pc.if_else(micros.is_valid(), pa.array(local, pa.timestamp("us")), None).cast(pa.string())
    if sep != " ":
        text = pc.replace_substring(text, " ", sep, max_replacements=1)
    text = pc.replace_substring(text, ".000000", "")
    if suffix:
        text = pc.binary_join_element_wise(text, suffix, "")
    return _quoted(text) if quoted else text


def _quoted(text: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise('"', text, '"', "")


_DAY_US = 86_400 * 10**6
_FIRST_DAY, _LAST_DAY = -719_162, 2_932_896  # 0001-01-01 and 9999-12-31: isoformat's four-digit years


def _text_from_tables(local: np.ndarray, nulls_of: pa.Array, sep: str, suffix: str,
                      quoted: bool) -> pa.Array | None:
    """Wall-clock microseconds as isoformat(sep) + suffix writes them: a row of bytes per
    value, its date and its time of day taken from tables, its fraction of a second (".ffffff",
    written only where it is not zero) from its digits (measured: 2.6x faster than Arrow's cast
    to text and the replaces after it, on 100,000 whole seconds); null where `nulls_of` is.
    None where, outside 1900-2100 (whose table is built once), the days span more than the
    column has values (a table of them would cost more)."""
    days, of_day = np.divmod(local, _DAY_US)
    seconds, micro = np.divmod(of_day, 10**6)
    first, last = int(days.min()), int(days.max())
    if _TABLE_FIRST <= first and last <= _TABLE_LAST:  # however far apart: the table is built once
        dates, first = _common_dates(), _TABLE_FIRST
    elif last - first > max(len(local), 1024) or first < _FIRST_DAY or last > _LAST_DAY:
        return None
    else:
        dates = _date_texts(first, last)
    fraction = micro != 0
    fraction_width = 7 if fraction.any() else 0
    quote = 1 if quoted else 0
    width = quote + 19 + fraction_width + len(suffix) + quote
    rows = np.empty((len(local), width), np.uint8)
    rows[:, quote:quote + 10] = dates[days - first]
    rows[:, quote + 10] = ord(sep)
    rows[:, quote + 11:quote + 19] = _time_texts()[seconds]
    at = quote + 19
    if fraction_width:
        rows[:, at] = ord(".")
        for k in range(6):
            rows[:, at + 1 + k] = ord("0") + micro // 10 ** (5 - k) % 10
    if suffix:
        rows[:, at + fraction_width:at + fraction_width + len(suffix)] = np.frombuffer(suffix.encode("ascii"), np.uint8)
    if quoted:
        rows[:, 0] = rows[:, -1] = ord('"')
    lengths = np.full(len(local), width, np.int64)
    if fraction_width and not fraction.all():  # rows of whole seconds leave their fraction's place out
        kept = np.ones(rows.shape, np.bool_)
        kept[~fraction, at:at + fraction_width] = False
        rows = rows[kept]  # row by row, in order
        lengths[~fraction] -= fraction_width
    offsets = np.zeros(len(local) + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    validity = None if nulls_of.null_count == 0 else nulls_of.is_valid().buffers()[1]
    return pa.StringArray.from_buffers(len(local), pa.py_buffer(offsets), pa.py_buffer(rows), validity,
                                       nulls_of.null_count)


def _date_texts(first: int, last: int) -> np.ndarray:
    """"YYYY-MM-DD" of each day from `first` to `last` (days since 1970-01-01), as rows of bytes:
    the proleptic Gregorian calendar's civil date of a day number (H. Hinnant's days_to_civil)."""
    z = np.arange(first, last + 1, dtype=np.int64) + 719_468
    era = z // 146_097
    day_of_era = z - era * 146_097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153  # March is 0
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = np.where(shifted_month < 10, shifted_month + 3, shifted_month - 9)
    year = year_of_era + era * 400 + (month <= 2)
    rows = np.empty((len(z), 10), np.uint8)
    for at, values, digits in ((0, year, 4), (5, month, 2), (8, day, 2)):
        for k in range(digits):
            rows[:, at + digits - 1 - k] = ord("0") + values // 10**k % 10
    rows[:, 4] = rows[:, 7] = ord("-")
    return rows


_TABLE_FIRST, _TABLE_LAST = -25_567, 47_846  # 1900-01-01 to 2100-12-31


@lru_cache(maxsize=1)
def _common_dates() -> np.ndarray:
    """_date_texts of 1900 to 2100, built once (720 KB): most columns fall inside."""
    return _date_texts(_TABLE_FIRST, _TABLE_LAST)


@lru_cache(maxsize=1)
def _time_texts() -> np.ndarray:
    """"HH:MM:SS" of each second of a day, as rows of bytes (built once: 675 KB)."""
    second = np.arange(86_400)
    rows = np.empty((86_400, 8), np.uint8)
    for at, values in ((0, second // 3600), (3, second // 60 % 60), (6, second % 60)):
        rows[:, at], rows[:, at + 1] = ord("0") + values // 10, ord("0") + values % 10
    rows[:, 2] = rows[:, 5] = ord(":")
    return rows
