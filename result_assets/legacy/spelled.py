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

import pyarrow as pa
import pyarrow.compute as pc

from .timestamps import SEOUL, SEOUL_OFFSET_US

_NAIVE_EPOCH = datetime(1970, 1, 1)
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


def spelled_array(column: pa.ChunkedArray | pa.Array, code: str) -> pa.Array:
    """A timestamp column's values spelled as `code` says (strings, or int64 for "ms"), built
    by Arrow (render_timestamp value by value only for instants before 1970 in Seoul wall time
    or epoch milliseconds)."""
    if len(column) == 0:
        return pa.array([], pa.int64() if code == "ms" else pa.string())
    micros = column.cast(pa.int64())
    if isinstance(micros, pa.ChunkedArray):
        micros = micros.combine_chunks()
    low = pc.min(micros).as_py()
    sep, suffix = code[0], code[1:]
    fixed_offset = code not in ("ms", "ms_str") and bool(suffix)
    if low is None or (low < 0 and not fixed_offset):  # Seoul's zone and floor division before 1970
        return pa.array([None if us is None else render_timestamp(us, code) for us in micros.to_pylist()],
                        pa.int64() if code == "ms" else pa.string())
    if code in ("ms", "ms_str"):
        millis = pc.divide(micros, 1000)  # whole milliseconds: the file spelled them so
        return millis if code == "ms" else millis.cast(pa.string())
    if suffix:
        offset = fixed_offset_us(suffix)
    else:  # Seoul wall time: +09:00, but for the summer times before 1989
        offset = pa.scalar(SEOUL_OFFSET_US, pa.int64())
        if low < SEOUL_FIXED_FROM_US:
            for start, end, summer in _seoul_summers():
                offset = pc.if_else(pc.and_(pc.greater_equal(micros, start), pc.less(micros, end)), summer, offset)
    # Arrow writes "YYYY-MM-DD HH:MM:SS.ffffff"; isoformat drops a zero fraction
    local = micros if isinstance(offset, int) and offset == 0 else pc.add(micros, offset)  # "Z": UTC as it is
    text = local.cast(pa.timestamp("us")).cast(pa.string())
    if sep != " ":
        text = pc.replace_substring(text, " ", sep, max_replacements=1)
    text = pc.replace_substring(text, ".000000", "")
    if suffix:
        text = pc.binary_join_element_wise(text, suffix, "")
    return text
