"""A column of legacy timestamp values -> UTC epoch microseconds: Arrow parses the column,
and spelling each instant back proves it.

normalize reads every signal's timestamp and exit_timestamp; value by value
(timestamps.parse_timestamp) that is about a microsecond each. Here Arrow reads the column
in the spelling of its first value (`YYYY-MM-DD?HH:MM:SS` and that value's offset, or
Seoul wall time), spells the instants back the same way (spelled.spelled_array) and keeps
an instant only where that spelling is the value itself: parse_timestamp reads such a
value as that instant. Every other value (another spelling, a fraction, Seoul's summer
times, out of range, not a timestamp at all) is parsed one by one.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from .schema import TIMESTAMP_UTC
from .spelled import SEOUL_FIXED_FROM_US, fixed_offset_us, spelled_array, timestamp_code
from .timestamps import MAX_US, MIN_US, SEOUL_OFFSET_US, parse_timestamp

# Below this many values Arrow's fixed cost per call exceeds the per-value parse.
_MIN_ARROW_VALUES = 512
_STR_OR_NULL = frozenset((str, type(None)))


def parsed_by_arrow(values: list) -> list[int | None] | None:
    """[parse_timestamp(v) (None for None) for v in values], or None when Arrow would not be
    faster: a short column, or one whose first value is not ISO 8601 text."""
    parsed = _arrow_parsed(values) if len(values) >= _MIN_ARROW_VALUES else None
    if parsed is None:
        return None
    micros, unproven = parsed
    for i in unproven:
        micros[i] = parse_timestamp(values[i])
    return micros


def _arrow_parsed(values: list) -> tuple[list[int | None], list[int]] | None:
    """(instants, positions of the non-null values Arrow did not prove), or None when the
    column's first spelling is not one Arrow reads here."""
    if not _STR_OR_NULL.issuperset(map(type, values)):
        return None
    first = next((v for v in values if v is not None), None)
    code = timestamp_code(first)
    # parse_timestamp reading the first value also vouches for its offset (hours to 23, minutes to 59)
    if code is None or code in ("ms", "ms_str") or parse_timestamp(first) is None:
        return None
    sep, suffix = code[0], code[1:]
    offset = fixed_offset_us(suffix) if suffix else SEOUL_OFFSET_US
    text = pa.array(values, pa.string())
    wall = pc.strptime(pc.utf8_slice_codeunits(text, 0, 19), format=f"%Y-%m-%d{sep}%H:%M:%S", unit="us",
                       error_is_null=True)
    micros = pc.subtract(wall.cast(pa.int64()), offset)
    # parse_timestamp refuses instants outside MIN_US..MAX_US; Seoul wall time before 1989
    # may be summer time (an hour's wall times mean two instants): both are left to it.
    low = MIN_US if suffix else max(MIN_US, SEOUL_FIXED_FROM_US)
    micros = pc.if_else(pc.and_(pc.greater_equal(micros, low), pc.less_equal(micros, MAX_US)), micros, None)
    same = pc.fill_null(pc.equal(spelled_array(micros.cast(TIMESTAMP_UTC), code), text), False)
    unproven = pc.indices_nonzero(pc.and_(pc.invert(same), pc.is_valid(text)))
    return micros.to_pylist(), unproven.to_pylist()

