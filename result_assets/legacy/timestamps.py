"""Legacy timestamp spellings <-> UTC epoch microseconds.

Accepted forms (legacy-format.md "Timestamps"):
- ISO 8601 with offset or Z: 2024-01-03T09:00:00+09:00, 2024-01-03T00:00:00Z
- naive wall time, space or "T", optional fraction: Asia/Seoul local time
- integer epoch milliseconds (an int, or a string of digits)
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

SEOUL = ZoneInfo("Asia/Seoul")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_ONE_US = timedelta(microseconds=1)
# Instants datetime can still print as ISO (years 0001..9999).
MIN_US = (datetime(1, 1, 2, tzinfo=timezone.utc) - _EPOCH) // _ONE_US
MAX_US = (datetime(9999, 12, 30, tzinfo=timezone.utc) - _EPOCH) // _ONE_US
# Seoul has been a fixed +09:00 since the end of 1988 DST; before that ask zoneinfo.
_SEOUL_FIXED_FROM = datetime(1989, 1, 1)
_SEOUL_OFFSET_US = 9 * 3600 * 1_000_000

_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?",
    re.ASCII,
)
_EPOCH_MS = re.compile(r"-?\d{1,19}", re.ASCII)


def parse_timestamp(value: object) -> int | None:
    """UTC epoch microseconds for a legacy timestamp value, or None if it is
    not one of the accepted forms (or cannot be held exactly in microseconds)."""
    if type(value) is str:
        n = len(value)
        # Fast path for the common exact shapes: YYYY-MM-DD?HH:MM:SS[.ffffff][Z|+HH:MM].
        if n >= 26 and value[19] == ".":
            n -= 7
        if (n == 19 or (n == 20 and value[-1] in "Zz") or (n == 25 and value[-6] in "+-" and value[-3] == ":")) \
                and value[10] in "Tt " and value.isascii():
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                return None
            if moment.tzinfo is not None:
                us = (moment - _EPOCH) // _ONE_US
            elif moment >= _SEOUL_FIXED_FROM:
                us = (moment - _NAIVE_EPOCH) // _ONE_US - _SEOUL_OFFSET_US
            else:
                us = (moment - _NAIVE_EPOCH) // _ONE_US - SEOUL.utcoffset(moment) // _ONE_US
            return us if MIN_US <= us <= MAX_US else None
        m = _ISO.fullmatch(value)
        if m is not None:
            return _from_iso_match(m)
        if _EPOCH_MS.fullmatch(value):
            return _from_epoch_ms(int(value))
        return None
    if type(value) is int:
        return _from_epoch_ms(value)
    return None


def _from_epoch_ms(ms: int) -> int | None:
    us = ms * 1000
    return us if MIN_US <= us <= MAX_US else None


def _from_iso_match(m: re.Match) -> int | None:
    year, month, day, hour, minute, second, frac, zulu, sign, off_h, off_m = m.groups()
    micro = 0
    if frac is not None:
        if len(frac) > 6:
            # Digits beyond microseconds are only representable when they are zeros.
            if frac[6:].strip("0"):
                return None
            frac = frac[:6]
        micro = int(frac.ljust(6, "0"))
    try:
        wall = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro)
    except ValueError:
        return None
    wall_us = (wall.toordinal() - 719163) * 86_400_000_000 + (
        (wall.hour * 3600 + wall.minute * 60 + wall.second) * 1_000_000 + wall.microsecond
    )
    if zulu is not None:
        offset_us = 0
    elif sign is not None:
        oh, om = int(off_h), int(off_m)
        if oh > 23 or om > 59:
            return None
        offset_us = (oh * 3600 + om * 60) * 1_000_000
        if sign == "-":
            offset_us = -offset_us
    elif wall >= _SEOUL_FIXED_FROM:
        offset_us = _SEOUL_OFFSET_US
    else:
        # fold=0: an ambiguous wall time takes the earlier (DST) offset, a
        # skipped one is read with the offset before the gap (PEP 495).
        offset_us = SEOUL.utcoffset(wall) // _ONE_US
    us = wall_us - offset_us
    return us if MIN_US <= us <= MAX_US else None


def format_timestamp(us: int) -> str:
    """ISO 8601 UTC spelling with Z; fraction only when there is one."""
    text = (_EPOCH + timedelta(microseconds=us)).isoformat()
    return text[:-6] + "Z"  # "+00:00" -> "Z"
