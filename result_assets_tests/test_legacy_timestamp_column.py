"""timestamp_column.parsed_column: the same instants as parse_timestamp value by value,
whatever a column mixes (the per-value parse is the oracle)."""

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from result_assets.legacy.spelled import render_timestamp, timestamp_code
from result_assets.legacy.timestamp_column import parsed_column
from result_assets.legacy.timestamps import parse_timestamp

_UTC = timezone.utc
_SUFFIXES = ["Z", "+09:00", "+0900", "-05:30", "+00:00", "-00:00", "+23:59", ""]
# Spellings the fast path must not take at face value: parse_timestamp refuses or reads
# them otherwise (impossible dates, offsets out of range, shapes Arrow's parser accepts).
_ODD = ["2024-02-30T00:00:00Z", "2023-02-29 12:00:00", "2024-01-03T24:00:00Z", "2024-01-03T00:00:60Z",
        "2024-01-03T09:00:00+24:00", "2024-01-03T09:00:00+09:75", "2024-01-03T09:00:00+99:99",
        "2024-01-03", "2024-01-03T09:00:00z", "2024-1-3T09:00:00Z", "2024-01-03T9:00:00Z",
        "2011-W01-2T00:05:23", "2024-003T09:00:00", "2024-01-03T09:00:00,5Z", " 2024-01-03T09:00:00Z",
        "2024-01-03T09:00:00Z ", "2024-01-03T09:00:00.5Z", "2024-01-03T09:00:00.000000Z",
        "2024-01-03T09:00:00.123456+09:00", "2024-01-03T09:00:00.1234567Z", "0001-01-01T00:00:00Z",
        "0001-01-01T08:59:59+09:00", "0001-01-02T00:00:00+09:00", "9999-12-31T23:59:59Z",
        "9999-12-30T00:00:00Z", "9999-12-29T23:59:59-05:30", "1704240000000", "", "x",
        "１９９０-01-01T00:00:00Z", "2024-01-03T09:00:00+09", "2024-01-03T09:00:00+0900 ",
        "1900-02-29 12:00:00", "2000-02-29T00:00:00Z", "2100-02-29T00:00:00+09:00", "2024-13-01T00:00:00Z",
        "2024-00-10T00:00:00Z", "2024-01-00T00:00:00Z", "0000-01-01T00:00:00Z", "2024-04-31 00:00:00"]
# Seoul wall times around its summer times (1987, 1988) and the switch to a fixed +09:00.
_SEOUL_EDGES = ["1987-05-10 02:30:00", "1987-10-11 02:30:00", "1988-05-08 02:30:00", "1988-10-09 02:30:00",
                "1988-10-09 03:30:00", "1988-12-31 23:59:59", "1989-01-01 00:00:00", "1989-01-01T00:00:00",
                "1969-12-31 23:59:59", "1970-01-01 08:59:59", "1970-01-01 09:00:00", "1951-08-01T12:00:00"]


def _spell(moment: datetime, sep: str, suffix: str) -> str:
    text = f"{moment.year:04d}" + moment.strftime(f"-%m-%d{sep}%H:%M:%S")  # %Y gives "999"
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + suffix


spelled = st.builds(_spell, st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)),
                    st.sampled_from(["T", " "]), st.sampled_from(_SUFFIXES))
values = st.one_of(spelled, st.sampled_from(_ODD + _SEOUL_EDGES), st.none(),
                   st.integers(-10**16, 10**16).map(str), st.integers(-10**16, 10**16))


def _oracle(column: list) -> list:
    return [None if v is None else parse_timestamp(v) for v in column]


def _read_as_oracle(column: list) -> bool:
    """parsed_column's instants are parse_timestamp's; when it names a spelling code (the
    column read whole in it), every value is its instant spelled in that code."""
    read = parsed_column(column)
    assert read.instants == _oracle(column)
    if read.code is not None:
        assert all(v is None or render_timestamp(us, read.code) == v for v, us in zip(column, read.instants))
    # each value read in a code is its instant spelled so, and has the code timestamp_code names
    assert all(code is None or (render_timestamp(us, code) == v and timestamp_code(v) == code)
               for v, us, code in zip(column, read.instants, read.codes))
    return True


@given(st.lists(values, min_size=1, max_size=40), st.integers(512, 700))
@settings(max_examples=300, deadline=None)
def test_a_mixed_column_reads_as_parse_timestamp_reads_each_value(sample, size):
    column = (sample * (size // len(sample) + 1))[:size]
    if parsed_column(column) is not None:
        assert _read_as_oracle(column)


@given(spelled, st.lists(values, max_size=30), st.integers(0, 10**6))
@settings(max_examples=200, deadline=None)
def test_a_column_spelled_like_its_first_value_is_read_by_arrow(first, odd, step_seconds):
    """Ordinary columns (every value in the first value's spelling) take the Arrow path; a
    few odd values among them change nothing."""
    start = datetime(2015, 1, 1, tzinfo=_UTC)
    sep, suffix = ("T" if "T" in first else " "), first[19:].lstrip(".0123456789")
    column = [_spell(start + timedelta(seconds=i * step_seconds), sep, suffix) for i in range(600)] + odd
    assert parsed_column(column) is not None
    assert _read_as_oracle(column)
    if not odd and "." not in first:  # every value in the first one's spelling: the code is named
        assert parsed_column(column).code is not None


def test_the_odd_spellings_and_seoul_edges_are_each_read_as_parse_timestamp_reads_them():
    for value in _ODD + _SEOUL_EDGES:
        for first in ["2024-01-03T00:00:00Z", "2024-01-03 09:00:00", "2024-01-03T09:00:00+09:00"]:
            column = [first] * 600 + [value, None]
            assert _read_as_oracle(column), (first, value)
    # The hour Seoul's clocks repeated when summer time ended: the earlier instant (+10:00).
    column = ["1988-10-09 02:30:00"] * 600 + ["1989-01-01 00:00:00"]
    read = parsed_column(column)
    assert (read.instants[:600], read.code) == ([parse_timestamp("1988-10-08T16:30:00Z")] * 600, None)


def test_short_columns_and_other_spellings_are_left_to_the_per_value_parse():
    assert parsed_column(["2024-01-03T00:00:00Z"] * 10) is None
    assert parsed_column(["1704240000000"] * 600) is None  # epoch milliseconds as text
    assert parsed_column([1704240000000] * 600) is None  # an int: not a column of text
    assert parsed_column(["2024-01-03T09:00:00+09:75"] * 600) is None  # an offset parse_timestamp refuses
    assert parsed_column([None] * 600) is None


def test_a_column_mixing_spellings_is_read_in_each_and_says_each_values_code():
    """A years-old file mixes epoch milliseconds, "T" and " " wall times and offsets in one
    column: each value read in a block names its code (exact.learn takes it instead of
    matching each value's pattern); a null or a value left to the parse names none."""
    base = datetime(2021, 3, 1, tzinfo=_UTC)
    spellings = [("T", ""), (" ", ""), ("T", "Z"), ("T", "+09:00"), (" ", "+0900"), ("T", "-05:30")]
    column: list = []
    for i in range(700):
        moment = base + timedelta(minutes=7 * i)
        if i % 7 == 6:
            column.append(int(moment.timestamp() * 1000))
        elif i % 11 == 10:
            column.append(None)
        else:
            sep, suffix = spellings[i % len(spellings)]
            column.append(_spell(moment.astimezone(timezone(timedelta(hours=9))).replace(tzinfo=None)
                                 if not suffix else moment, sep, suffix))
    column.append("2021-03-01T09:00:00.5+09:00")  # a fraction: left to the parse
    read = parsed_column(column)
    assert read is not None and read.code is None
    assert _read_as_oracle(column)
    assert [c for v, c in zip(column, read.codes) if v is None or "." in str(v)] == [None] * (column.count(None) + 1)
    assert {timestamp_code(v) for v, c in zip(column, read.codes) if c is not None} == \
        {"ms", "T", " ", "TZ", "T+09:00", " +0900", "T-05:30"}
