"""Legacy timestamp spellings <-> UTC epoch microseconds.

Accepted forms (legacy-format.md "Timestamps"), and nothing else:
- ISO 8601 calendar date and time with offset (+HH:MM, +HHMM) or Z:
  2024-01-03T09:00:00+09:00, 2024-01-03T00:00:00Z
- naive wall time, space or "T", optional fraction: Asia/Seoul local time
- integer epoch milliseconds (an int, or a string of ASCII digits)

Week dates (2011-W01-2T00:05:23), ordinal dates (2024-003T09:00:00), dates without a
time, comma decimals, a lowercase "z", offsets with seconds and fractions finer than a
microsecond (unless the extra digits are zeros) are refused, never reinterpreted:
datetime.fromisoformat alone would read several of them (and truncate nanoseconds).
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
SEOUL_OFFSET_US = 9 * 3600 * 1_000_000

_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:(Z)|([+-])(\d{2}):?(\d{2}))?",
    re.ASCII,
)
# Unsigned: a "-" string is not a spelling compare.py (the oracle) reads as an instant.
_EPOCH_MS = re.compile(r"\d{1,19}", re.ASCII)


def parse_timestamp(value: object) -> int | None:
    """UTC epoch microseconds for a legacy timestamp value, or None if it is
    not one of the accepted forms (or cannot be held exactly in microseconds)."""
    if type(value) is str:
        # Fast path: YYYY-MM-DD?HH:MM:SS[.ffffff][Z|+HH:MM], separators checked by position:
        # the only shapes where fromisoformat reads exactly what _ISO would (it checks the
        # digits; alone it would also read week dates, commas, nanoseconds cut short...).
        n = len(value)
        if 19 <= n <= 32 and value[4] == "-" and value[7] == "-" and value[13] == ":" and value[16] == ":" \
                and value[10] in "T " and value.isascii() and (n == 19 or _fast_tail(value[19:])):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                return None
            if moment.tzinfo is not None:
                us = (moment - _EPOCH) // _ONE_US
            elif moment >= _SEOUL_FIXED_FROM:
                us = (moment - _NAIVE_EPOCH) // _ONE_US - SEOUL_OFFSET_US
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


def _fast_tail(tail: str) -> bool:
    if tail[0] == ".":
        if len(tail) < 7 or not tail[1:7].isdigit():
            return False
        tail = tail[7:]
    # Offset minutes 60..99 are refused by the regex path; fromisoformat would carry them.
    return tail == "" or tail == "Z" or (len(tail) == 6 and tail[0] in "+-" and tail[3] == ":" and tail[4] < "6")


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
        offset_us = SEOUL_OFFSET_US
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
