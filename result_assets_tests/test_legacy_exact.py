"""legacy/exact.py: a file's exact bytes, written again from its rows and a small Spelling."""
from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from result_assets.legacy import dumps_document, exact, normalize, parse_document
from result_assets.legacy.parse import InvalidResult
from result_assets.legacy.timestamps import parse_timestamp

SAMPLES = Path(__file__).parent / "samples" / "tasks"
STYLES = [dict(indent=indent, ensure_ascii=ascii_only) for indent in (None, 2) for ascii_only in (True, False)]
SPELLINGS = ["TZ", "T+09:00", " +0900", "T-05:00", " ", "T", "ms", "ms_str"]


def stored(task_id: str, raw: bytes) -> tuple:
    """What the store keeps of a file: (skeleton text, signal rows, curve rows)."""
    result = normalize(task_id, parse_document(raw))
    return dumps_document(result.skeleton), result.signals, result.curves


def learn(task_id: str, raw: bytes) -> exact.Spelling | None:
    learned = exact.learn(raw, parse_document(raw), *stored(task_id, raw), **read_as(task_id, raw))
    return None if learned is None else learned[0]


def read_as(task_id: str, raw: bytes) -> dict:
    """The timestamp fields normalize read whole in one spelling (learn skips looking at them),
    and the rows' codes it read of the fields that mix spellings, as convert passes them."""
    result = normalize(task_id, parse_document(raw))
    return {"spelled_as": result.spelled_as, "row_spellings": result.row_spellings}


def regenerated(task_id: str, raw: bytes) -> bytes | None:
    """Learn the Spelling, then write the bytes from what is stored and the Spelling's JSON,
    as readers do; they are the bytes learn wrote (the proof's)."""
    learned = exact.learn(raw, parse_document(raw), *stored(task_id, raw), **read_as(task_id, raw))
    if learned is None:
        return None
    spelling, written = learned
    again = exact.file_bytes(*stored(task_id, raw), spelling.to_json(), None)
    assert again == written
    # the column writer (exports, archive checks, learn's first guess) writes the same bytes;
    # orjson's own text (by_orjson) is written by orjson, as file_bytes did just above
    if not spelling.by_orjson:
        assert exact.written_from_columns(*stored(task_id, raw), exact.Spelling.from_json(spelling.to_json())) == written
    return again


def valid_samples() -> list[tuple[str, bytes]]:
    out = []
    for folder in sorted(SAMPLES.iterdir()):
        raw = (folder / "result.json").read_bytes()
        try:
            normalize(folder.name, parse_document(raw))
        except (InvalidResult, ValueError):
            continue
        out.append((folder.name, raw))
    return out


def test_every_valid_sample_comes_back_byte_for_byte():
    samples = valid_samples()
    assert len(samples) == 14
    assert [name for name, raw in samples if regenerated(name, raw) != raw] == []


def test_the_generated_corpus_comes_back_byte_for_byte(tmp_path):
    """Four json.dumps styles and orjson's (its float spellings patched), every timestamp form."""
    from benchmarks.corpus import generate_corpus

    expect = generate_corpus(tmp_path, 40, seed=11, bad_per_kind=0)
    valid = [t for t, e in expect.items() if e["valid"]]
    assert len(valid) == 40
    assert [t for t in valid if regenerated(t, (tmp_path / t / "result.json").read_bytes())
            != (tmp_path / t / "result.json").read_bytes()] == []


def signal(moment: datetime, code: str, price) -> dict:
    us = (moment - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)
    return {"timestamp": exact.render_timestamp(us, code), "type": "buy", "price": price, "quantity": 0.5,
            "exit_timestamp": exact.render_timestamp(us + 3_600_000_000, code), "pnl": -0.0}


@settings(max_examples=60, deadline=None)
@given(style=st.sampled_from(STYLES), code=st.sampled_from(SPELLINGS),
       seconds=st.lists(st.integers(631_152_000, 1_893_456_000), min_size=1, max_size=6),
       prices=st.lists(st.floats(allow_nan=True, allow_infinity=False, width=64), min_size=6, max_size=6),
       numeric_string=st.booleans(), symbol=st.sampled_from(["KRW-BTC", "비트코인", "ETH/USDT"]))
def test_any_style_and_timestamp_spelling_comes_back(style, code, seconds, prices, numeric_string, symbol):
    signals = [signal(datetime.fromtimestamp(s, timezone.utc), code, p) for s, p in zip(seconds, prices)]
    if numeric_string:
        signals[0]["price"] = "100.50"  # a value spelled as a string, kept by a row patch
    doc = {"strategy": "sma", "params": {"n": 5}, "symbols": [{"symbol": symbol, "signals": signals}],
           "metadata": {"note": "λ"}}
    raw = json.dumps(doc, **style).encode()
    assert regenerated("t", raw) == raw


def test_pre_1989_seoul_summer_time_is_spelled_as_the_file_did():
    import pyarrow as pa

    texts = ["1987-06-01 12:00:00", "1987-12-01 12:00:00", "1988-10-09 01:30:00"]
    for text in texts:
        assert exact.render_timestamp(parse_timestamp(text), text[10]) == text
    column = pa.chunked_array([pa.array([parse_timestamp(t) for t in texts], pa.int64())]).cast(
        pa.timestamp("us", tz="UTC"))
    assert exact.spelled_column(column, " ") == texts


def test_arrow_spells_as_render_timestamp_does():
    import pyarrow as pa

    micros = [parse_timestamp("2024-01-03T09:00:00+09:00"), parse_timestamp("2024-02-29T23:59:59.5Z"), None,
              parse_timestamp("1969-07-20T20:17:40.25Z")]  # before 1970: Arrow for fixed offsets, else Python
    column = pa.chunked_array([pa.array(micros, pa.int64())]).cast(pa.timestamp("us", tz="UTC"))
    for code in SPELLINGS:
        assert exact.spelled_column(column, code) == [
            None if us is None else exact.render_timestamp(us, code) for us in micros]


def _assert_spelled_as_render_timestamp(micros: list[int | None], code: str) -> None:
    """spelled_array of a column of these instants gives render_timestamp's text, quoted or not."""
    import pyarrow as pa

    from result_assets.legacy.spelled import spelled_array

    column = pa.chunked_array([pa.array(micros, pa.int64())]).cast(pa.timestamp("us", tz="UTC"))
    spelled = [None if us is None else exact.render_timestamp(us, code) for us in micros]
    assert spelled_array(column, code).to_pylist() == spelled
    assert spelled_array(column, code, quoted=True).to_pylist() == [
        v if v is None or code == "ms" else f'"{v}"' for v in spelled]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(SPELLINGS), st.integers(-719_000, 2_932_000), st.sampled_from([1, 60, 3600, 86_400, 86_400 * 400]),
       st.lists(st.one_of(st.none(), st.integers(0, 3000)), min_size=1, max_size=60), st.booleans())
def test_whole_seconds_are_spelled_from_tables_as_render_timestamp_does(code, first_day, step, steps, fraction):
    """Columns take the date and time tables (spelled._text_from_tables); one whose days,
    outside 1900-2100, span more than its values takes Arrow's cast. Both give
    render_timestamp's text, quoted or not, nulls kept, at the ends of the calendar too."""
    lowest, highest = parse_timestamp("0001-01-02T00:00:00Z"), parse_timestamp("9999-12-30T00:00:00Z")
    micros = [None if k is None else min(max(first_day * 86_400_000_000 + k * step * 1_000_000 + fraction * 500, lowest),
                                         highest) for k in steps]
    _assert_spelled_as_render_timestamp(micros, code)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(SPELLINGS), st.integers(-25_000, 47_000),
       st.lists(st.one_of(st.none(), st.tuples(st.integers(0, 10**6), st.sampled_from([0, 0, 1, 500_000, 999_999]))),
                min_size=1, max_size=60))
def test_fractions_of_a_second_are_spelled_from_the_tables_row_by_row(code, first_day, values):
    """A column mixing whole seconds and fractions: the tables write ".ffffff" only where a
    value has one, as isoformat does, quoted or not, nulls kept; over a century of days too."""
    micros = [None if v is None else first_day * 86_400_000_000 + v[0] * 3_700_000_000 + v[1] for v in values]
    _assert_spelled_as_render_timestamp(micros, code)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(SPELLINGS), min_size=2, max_size=4, unique=True),
       st.lists(st.tuples(st.one_of(st.none(), st.integers(-2 * 10**9, 4 * 10**9)), st.integers(0, 3),
                          st.sampled_from([0, 0, 250_000])), min_size=1, max_size=120))
def test_a_field_mixing_spellings_is_spelled_row_by_row_as_render_timestamp_does(codes, rows):
    """spelled_by_row: the commonest code spells the column, another code's rows are spelled
    one by one when few and as a column when many; each row as render_timestamp writes it."""
    import pyarrow as pa

    from result_assets.legacy.spelled import spelled_by_row

    micros = [None if second is None else second * 1_000_000 + fraction for second, _, fraction in rows]
    digits = "".join(str(code % len(codes)) for _, code, _ in rows)
    column = pa.chunked_array([pa.array(micros, pa.int64())]).cast(pa.timestamp("us", tz="UTC"))
    assert spelled_by_row(column, codes, digits) == [
        None if us is None else exact.render_timestamp(us, codes[int(d)]) for us, d in zip(micros, digits)]


def test_a_writer_nothing_here_reproduces_gets_none():
    doc = {"strategy": "s", "symbols": [{"symbol": "A", "signals": [
        {"timestamp": "2024-01-03T00:00:00Z", "type": "buy", "price": 1.5}]}]}
    odd = json.dumps(doc, separators=(" , ", " : ")).encode()  # no json.dumps style we know
    assert learn("t", odd) is None


def test_orjson_float_spellings_are_number_patches():
    doc = {"strategy": "s", "symbols": [{"symbol": "A", "signals": [
        {"timestamp": "2024-01-03T00:00:00Z", "type": "buy", "price": 5.9664421070415585e-05}]}]}
    # orjson's indented text: json.dumps(indent=2)'s but for the float, 0.000059664421070415585
    # where repr says 5.9664421070415585e-05
    raw = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    assert raw != json.dumps(doc, indent=2).encode()
    spelling = learn("t", raw)
    assert spelling is not None and len(spelling.numbers) == 1 and not spelling.by_orjson
    assert regenerated("t", raw) == raw


def test_orjsons_own_text_is_written_by_orjson_again():
    """An application's save is orjson's text of its document (dumps_document): the Spelling
    says so, the file is written again by orjson from the rebuilt document, and needs no
    number patch for the floats orjson spells otherwise than repr; NaN and infinities in the
    skeleton written bare (dumps_document puts them back itself). Not with one in the rows:
    the columns write that file."""
    doc = {"strategy": "s", "symbols": [{"symbol": "A", "signals": [
        {"timestamp": "2024-01-03T00:00:00Z", "type": "buy", "price": 5.9664421070415585e-05, "reason": "익절"},
        {"timestamp": "2024-01-03T01:00:00Z", "type": "sell", "price": 1e-07, "exit_timestamp": None}]}]}
    raw = orjson.dumps(doc)
    assert raw != json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    spelling = learn("t", raw)
    assert spelling.by_orjson and spelling.numbers == []  # a row patch still says where the null is written
    assert exact.Spelling.from_json(spelling.to_json()).by_orjson
    assert regenerated("t", raw) == raw
    plain = orjson.dumps({**doc, "symbols": [{"symbol": "A", "signals": doc["symbols"][0]["signals"][:1]}]})
    spelling = learn("t", plain)
    assert spelling.by_orjson and spelling.numbers == [] and spelling.rows == {}
    assert regenerated("t", plain) == plain
    # a number written as a string: its row patch is known before the rebuild, and applied to it
    as_string = orjson.dumps({**doc, "symbols": [{"symbol": "A", "signals": [
        {**doc["symbols"][0]["signals"][0], "quantity": "0.5"}]}]})
    spelling = learn("t", as_string)
    assert spelling.by_orjson and list(spelling.rows) == ["signals:0:0"]
    assert regenerated("t", as_string) == as_string
    # NaN and infinities in the skeleton (an application's metrics) are written bare by orjson
    # from the rebuilt document, as dumps_document puts them back; readers get floats
    with_nan = dumps_document({**doc, "summary": {"sharpe_ratio": math.nan, "profit_factor": -math.inf,
                                                  "sortino": [math.inf, 1.5]}}).encode()
    assert b":NaN" in with_nan and b":-Infinity" in with_nan and b"[Infinity," in with_nan
    spelling = learn("t", with_nan)
    assert spelling.by_orjson and spelling.numbers == []
    assert regenerated("t", with_nan) == with_nan
    read = exact.file_document(*stored("t", with_nan), spelling.to_json(), None)
    assert json.dumps(read) == json.dumps(parse_document(with_nan)) and type(read["summary"]["sharpe_ratio"]) is float
    # one in the rows: the columns write that file
    in_row = dumps_document({**doc, "symbols": [{"symbol": "A", "signals": [
        {**doc["symbols"][0]["signals"][0], "quantity": math.inf}]}]}).encode()
    spelling = learn("t", in_row)
    assert spelling is not None and not spelling.by_orjson and "by_orjson" not in spelling.to_json()
    assert regenerated("t", in_row) == in_row


_METRIC = st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=80, deadline=None)
@given(metrics=st.dictionaries(st.sampled_from(["sharpe_ratio", "profit_factor", "sortino", "calmar"]),
                               st.one_of(_METRIC, st.lists(_METRIC, max_size=3)), max_size=4),
       row_value=st.sampled_from([1.5, math.nan, -math.inf]), word=st.booleans())
def test_a_saves_text_with_nonfinite_floats_anywhere_comes_back_byte_for_byte(metrics, row_value, word):
    """dumps_document's text of a save whose non-finite floats stand anywhere in its skeleton
    (and maybe in a row, and maybe the word NaN in a string): written again byte for byte; by
    orjson whenever the rows hold none, by the columns otherwise."""
    doc = {"strategy": "NaN hunter" if word else "s", "metrics": metrics, "symbols": [{"symbol": "A", "signals": [
        {"timestamp": "2024-01-03T00:00:00Z", "type": "buy", "price": row_value},
        {"timestamp": "2024-01-03T01:00:00Z", "type": "sell", "price": 2.5, "exit_timestamp": None}]}]}
    raw = dumps_document(doc).encode()
    assert regenerated("t", raw) == raw
    assert learn("t", raw).by_orjson == math.isfinite(row_value)
    read = exact.file_document(*stored("t", raw), learn("t", raw).to_json(), None)
    assert json.dumps(read) == json.dumps(parse_document(raw))


def test_a_compact_file_with_ascii_escapes_is_not_taken_for_orjsons_text():
    """orjson escapes only control characters: a one-line compact file with \\u escapes of
    other characters (json.dumps's ensure_ascii) skips the rebuild that orjson's route costs,
    and the columns still write it byte for byte. A string holding a backslash and "u" is
    not an escape."""
    doc = {"strategy": "s", "symbols": [{"symbol": "A", "signals": [
        {"timestamp": "2024-01-03T00:00:00Z", "type": "buy", "price": 1.5, "reason": "익절"}]}]}
    escaped = json.dumps(doc, separators=(",", ":")).encode()
    assert b"\\uc775" in escaped and not exact._maybe_orjsons_text(escaped)
    assert regenerated("t", escaped) == escaped and not learn("t", escaped).by_orjson
    for text in ("\x01 bell", "a \\u1234 b", "익절"):
        own = orjson.dumps({**doc, "strategy": text})
        assert exact._maybe_orjsons_text(own)
        assert learn("t", own).by_orjson and regenerated("t", own) == own


def test_a_number_patch_is_only_another_spelling_of_the_same_value():
    """The conversion trusts a patched number's value (it skips the digit screen when each
    patch spells a float64 exactly), so a patch never stands for another value."""
    assert exact._number_patches(b'[1.5,2.0]', b'[1.50,2.0]') == [[1, 3, "1.50"]]
    assert exact._number_patches(b'[5.9e-05]', b'[0.000059]') == [[1, 7, "0.000059"]]
    assert exact._number_patches(b'[1.5,2.0]', b'[1.6,2.0]') is None
    assert exact._number_patches(b'[1e+22]', b'[2e+22]') is None


def _inside_a_string(text: bytes) -> list[bool]:
    """The oracle: a JSON scanner's state at each offset of `text`."""
    inside, escaped, out = False, False, []
    for byte in text:
        out.append(inside)
        if escaped:
            escaped = False
        elif inside and byte == 0x5C:
            escaped = True
        elif byte == 0x22:
            inside = not inside
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(alphabet='a"\\0', max_size=6), st.floats(allow_nan=False)), max_size=8))
def test_outside_strings_agrees_with_a_scanner(values):
    """Both ways of telling a number patch's offset from one inside a string (the quote count
    in C when no quote is escaped, the numpy scan otherwise) agree with a scanner."""
    text = json.dumps(values).encode()
    inside = _inside_a_string(text)
    for offset in range(len(text)):
        assert exact._outside_strings(text, [offset]) == (not inside[offset])


def test_a_number_patch_never_respells_digits_inside_a_string():
    """Readers build documents without the number patches: one inside a string (a timestamp
    "00:00:00.000Z" written as "00:00:00Z") gave them another string than the file's, though the
    bytes came back exact. Such a file takes row patches, which documents apply too."""
    assert exact._number_patches(b'["00Z",1.5]', b'["00.000Z",1.5]') is None
    assert exact._number_patches(b'["a\\\\",1.5]', b'["a\\\\",1.50]') == [[7, 3, "1.50"]]  # after an escaped backslash
    for stamps in (["2024-01-03T00:00:00.000Z", "2024-01-03T01:00:00.250Z"],  # JavaScript's toISOString
                   ["2024-01-03 09:00:00.000000", "2024-01-03 10:00:00.000000"],  # isoformat of a datetime
                   ["01704240000000", "01704243600000"]):  # epoch milliseconds with a leading zero
        for style in STYLES:
            doc = {"strategy": "s", "symbols": [{"symbol": "A", "signals": [
                {"timestamp": t, "type": "buy", "price": 1.5 + k} for k, t in enumerate(stamps)]}]}
            raw = json.dumps(doc, **style).encode()
            spelling = learn("t", raw)
            assert spelling is not None and not spelling.numbers, (stamps, style)
            document = exact.file_document(*stored("t", raw), spelling.to_json(), None)
            assert json.dumps(document) == json.dumps(json.loads(raw)), (stamps, style)
            assert regenerated("t", raw) == raw


@settings(max_examples=40, deadline=None)
@given(codes=st.lists(st.sampled_from(SPELLINGS), min_size=2, max_size=12), curve_codes=st.lists(
    st.sampled_from(SPELLINGS), min_size=0, max_size=5), style=st.sampled_from(STYLES))
def test_rows_that_mix_timestamp_spellings_keep_one_digit_each(codes, curve_codes, style):
    """A field whose rows mix spellings keeps each row's as a digit (row_timestamps), not a
    patch per row; the file still comes back byte for byte, on the document's own list and
    on a symbol's, for the signals' and the curve's timestamps."""
    start = datetime(2023, 4, 18, 5, tzinfo=timezone.utc)
    signals = [signal(start + timedelta(hours=i), code, 1.5 + i) for i, code in enumerate(codes)]
    curve = [{"timestamp": signal(start + timedelta(hours=i), code, 0.0)["timestamp"], "equity": 1e6 + i}
             for i, code in enumerate(curve_codes)]
    doc = {"strategy": "sma", "symbols": [{"symbol": "KRW-BTC", "signals": signals[1:]}],
           "signals": signals[:1], "performance_curve": curve}
    raw = json.dumps(doc, **style).encode()
    assert regenerated("t", raw) == raw
    spelling = learn("t", raw)
    mixed = len(set(codes)) > 1
    assert ("signals.timestamp" in spelling.row_timestamps) == mixed
    if mixed:
        spellings, digits = spelling.row_timestamps["signals.timestamp"]
        assert [spellings[int(d, 36)] for d in digits] == codes
        assert not any("@timestamp" in patch[-1] for patch in spelling.rows.values())


@pytest.mark.parametrize("exit_codes", [[" "] * 6, [" ", "T", " ", "ms", "T", " "]])
def test_a_field_whose_first_value_is_null_takes_the_spelling_of_its_first_timestamp(exit_codes):
    """An open position first (its exit_timestamp null) says nothing of the field's spelling:
    the field takes its first timestamp's, and its rows need no patch each (that made a 38 MB
    file 7x slower to convert, and its Spelling 6x larger on a 100-signal one)."""
    start = datetime(2023, 4, 18, 5, tzinfo=timezone.utc)
    signals = []
    for i, code in enumerate(exit_codes):
        row = signal(start + timedelta(hours=i), "TZ", 1.5 + i)
        row["exit_timestamp"] = signal(start + timedelta(hours=i), code, 0.0)["exit_timestamp"]
        signals.append(row)
    signals.insert(0, {**signals[0], "exit_timestamp": None})  # an open position first
    for style in STYLES:
        raw = json.dumps({"strategy": "s", "symbols": [{"symbol": "A", "signals": signals}]}, **style).encode()
        spelling = learn("t", raw)
        assert spelling.timestamps["signals.exit_timestamp"] == " "
        assert not spelling.rows, style
        assert regenerated("t", raw) == raw


@settings(max_examples=60, deadline=None)
@given(code=st.sampled_from(SPELLINGS), odd=st.lists(st.tuples(st.integers(0, 149), st.sampled_from(
    SPELLINGS + ["fraction", "null", "absent", "not a timestamp", "seoul summer", "past 9999"])), max_size=4),
    style=st.sampled_from(STYLES))
@example(code="ms", odd=[(3, "past 9999")], style=STYLES[0])
@example(code=" ", odd=[(80, "seoul summer"), (5, "T")], style=STYLES[1])
def test_fields_normalize_reads_whole_are_the_ones_spelled_whole(code, odd, style):
    """normalize reads a long column in its first value's spelling at once and names the
    fields it read whole so (spelled_as); learn then takes them as uniform without looking at
    a row. Every field it names is uniform by the row-by-row check, whatever a few rows
    spell otherwise, and the file still comes back byte for byte."""
    start = datetime(2023, 4, 18, 5, tzinfo=timezone.utc)
    rows = [signal(start + timedelta(hours=i), code, 1.5 + i) for i in range(150)]
    for at, other in odd:
        moment = start + timedelta(hours=at)
        if other == "fraction":
            rows[at]["timestamp"] = exact.render_timestamp(parse_timestamp(rows[at]["timestamp"] if code not in (
                "ms", "ms_str") else "2023-04-18T05:00:00Z") + 250_000, "T+09:00")
        elif other == "null":
            rows[at]["exit_timestamp"] = None
        elif other == "absent":
            rows[at].pop("exit_timestamp", None)
        elif other == "not a timestamp":
            rows[at]["exit_timestamp"] = "open"
        elif other == "seoul summer":
            rows[at]["timestamp"] = "1988-06-01 12:00:00"
        elif other == "past 9999":  # epoch milliseconds no instant here holds: kept as written
            rows[at]["exit_timestamp"] = 10**17
        else:
            rows[at] = signal(moment, other, 1.5 + at)
    curve = [{"timestamp": row["timestamp"], "equity": 1e6 + i} for i, row in enumerate(rows) if "timestamp" in row]
    doc = {"strategy": "sma", "symbols": [{"symbol": "KRW-BTC", "signals": rows[70:], "performance_curve": curve}],
           "signals": rows[:70]}
    raw = json.dumps(doc, **style).encode()
    source, result = parse_document(raw), normalize("t", parse_document(raw))
    tables = {"signals": result.signals, "performance_curve": result.curves}
    listed = {key: exact._list_rows(source, key) for key in tables}
    checked, _ = exact._uniform_fields(listed, exact._timestamp_codes(source), tables, {})
    assert set(result.spelled_as) <= set(checked), (result.spelled_as, set(checked))
    # the rows' codes normalize names for the fields that mix spellings are their values' own
    for key, codes in result.row_spellings.items():
        list_key, name = key.split(".")
        values = [row.get(name) for row in listed[list_key][0]]
        assert len(codes) == len(values) and len(set(codes) - {None}) > 1
        assert all(code is None or exact.timestamp_code(v) == code for v, code in zip(values, codes))
    assert regenerated("t", raw) == raw


def test_a_spelling_without_row_timestamps_reads_as_before():
    old = '{"indent":null,"ensure_ascii":true,"compact":false,"timestamps":{"signals.timestamp":"TZ"},"rows":{},"numbers":[]}'
    spelling = exact.Spelling.from_json(old)
    assert spelling.row_timestamps == {} and spelling.to_json() == old


@settings(max_examples=40, deadline=None)
@given(kinds=st.lists(st.sampled_from(["closed", "null", "absent"]), min_size=1, max_size=10),
       style=st.sampled_from(STYLES), curve_null=st.booleans())
def test_explicit_nulls_are_one_field_name_not_a_patch_per_row(kinds, style, curve_null):
    """Open positions written as `"exit_timestamp": null, "exit_price": null` (and a curve
    point's null equity): each field is named once in null_keys and no row is patched, unless
    some row of the list leaves the key out instead (then each null row keeps its patch).
    Byte for byte either way."""
    start = datetime(2023, 4, 18, 5, tzinfo=timezone.utc)
    signals = []
    for i, kind in enumerate(kinds):
        base = signal(start + timedelta(hours=i), "TZ", 100.0 + i)
        row = {k: base[k] for k in ("timestamp", "type", "price", "quantity", "exit_timestamp")}
        if kind == "closed":
            row["exit_price"] = 101.0
        elif kind == "null":
            row["exit_timestamp"] = row["exit_price"] = None
        else:
            del row["exit_timestamp"]
        signals.append({**row, "pnl": base["pnl"]})  # the keys in the tables' order
    curve = [{"timestamp": signal(start + timedelta(hours=i), "TZ", 0)["timestamp"],
              "equity": None if curve_null and i == 1 else 1e6 + i} for i in range(3)]
    doc = {"strategy": "sma", "symbols": [{"symbol": "KRW-BTC", "signals": signals}], "performance_curve": curve}
    raw = json.dumps(doc, **style).encode()
    assert regenerated("t", raw) == raw
    spelling = learn("t", raw)
    explicit = "null" in kinds and "absent" not in kinds
    assert ("signals.exit_timestamp" in spelling.null_keys) == explicit
    assert ("signals.exit_price" in spelling.null_keys) == explicit
    assert ("performance_curve.equity" in spelling.null_keys) == curve_null
    null_rows = 0 if explicit else kinds.count("null")
    assert len(spelling.rows) == null_rows


def test_a_spelling_without_null_keys_reads_as_before():
    old = '{"indent":2,"ensure_ascii":true,"compact":false,"timestamps":{},"rows":{},"numbers":[]}'
    spelling = exact.Spelling.from_json(old)
    assert spelling.null_keys == [] and spelling.to_json() == old


def test_seoul_wall_time_before_1989_is_spelled_by_arrow_as_render_timestamp_does():
    """Naive Seoul time across 1986-1989 (the 1987 and 1988 summer times, each change to the
    second) and a null: the column spelled whole equals render_timestamp value by value."""
    import random

    import pyarrow as pa

    rng = random.Random(5)
    start, end = parse_timestamp("1986-06-01 00:00:00"), parse_timestamp("1989-02-01 00:00:00")
    micros = [rng.randrange(start, end) for _ in range(3000)]
    for edge_text in ("1987-05-10 01:59:59", "1987-05-10 03:00:00", "1987-10-11 02:59:59", "1988-05-08 01:00:00",
                      "1988-10-09 02:30:00", "1988-12-31 23:59:59"):
        edge = parse_timestamp(edge_text)
        micros += [edge - 1_000_000, edge - 1, edge, edge + 1, edge + 3_600_000_000]
    micros.append(None)
    column = pa.chunked_array([pa.array(micros, pa.int64())]).cast(pa.timestamp("us", tz="UTC"))
    for code in (" ", "T"):
        assert exact.spelled_column(column, code) == [
            None if us is None else exact.render_timestamp(us, code) for us in micros]


def test_documents_spelled_in_bulk_are_the_documents_spelled_one_by_one(tmp_path):
    """Readers of many tasks spell their timestamps together (spelled_in_bulk): each document
    is still json.loads of its file, and what file_document gives for it alone. Samples, the
    generated corpus (every timestamp form, pre-1970 and pre-1989 instants among them) and
    tasks whose rows mix spellings, read in one batch."""
    from benchmarks.corpus import generate_corpus

    from result_assets.legacy.reconstruct import key_ordered

    generate_corpus(tmp_path, 30, seed=5, bad_per_kind=0)
    files = [(name, raw) for name, raw in valid_samples()]
    files += [(p.parent.name, p.read_bytes()) for p in sorted(tmp_path.glob("*/result.json"))]
    moments = [datetime(1987, 6, 1, 3, tzinfo=timezone.utc), datetime(2024, 1, 3, tzinfo=timezone.utc)]
    for n, codes in enumerate([["TZ", " ", "ms", "T+09:00"], [" ", " "], ["ms_str", "TZ"]]):
        mixed = [signal(moments[i % 2] + timedelta(hours=i), code, 1.5) for i, code in enumerate(codes)]
        files.append((f"mixed{n}", json.dumps({"strategy": "s", "symbols": [{"symbol": "K", "signals": mixed}]}).encode()))
    tasks, alone = {}, {}
    for name, raw in files:
        learned = exact.learn(raw, parse_document(raw), *stored(name, raw))
        assert learned is not None, name
        skeleton_text, signals, curves = stored(name, raw)
        spelling = learned[0].to_json()
        tasks[name] = (spelling, key_ordered(signals), key_ordered(curves))
        alone[name] = (skeleton_text, exact.file_document(skeleton_text, signals, curves, spelling, None))
    assert sum(1 for spelling, _, _ in tasks.values() if exact.Spelling.from_json(spelling).row_timestamps) >= 3
    spelled = exact.spelled_in_bulk(tasks)
    assert set(spelled) == set(tasks)
    for name, raw in files:
        spelling, signals, curves = tasks[name]
        skeleton_text, document = alone[name]
        together = exact.file_document(skeleton_text, signals, curves, spelling, None, spelled[name])
        assert json.dumps(together) == json.dumps(document) == json.dumps(json.loads(raw)), name


@pytest.mark.parametrize("style", STYLES)
def test_numbers_written_as_strings_are_patched_without_rebuilding_the_document(style, monkeypatch):
    """The rows whose prices are numeric strings get the patches the row-by-row comparison
    gives them, found without rebuilding the document; the file comes back byte for byte."""
    start = datetime(2023, 4, 18, 5, tzinfo=timezone.utc)
    signals = [signal(start + timedelta(hours=i), "T+09:00", 100.5 + i) for i in range(6)]
    signals[1]["price"], signals[4]["price"], signals[4]["pnl"] = "101.5", "0.005477104418944712", "-3.25"
    signals[2]["price"] = "1.50"  # not repr's spelling: the string keeps it
    signals[0]["pnl"] = "-1.5"  # a later field on an earlier row: the patches stay in row order
    doc = {"strategy": "s", "symbols": [{"symbol": "A", "signals": signals}],
           "performance_curve": [{"timestamp": "2023-04-18T05:00:00Z", "equity": "1000000.0", "drawdown": 0.0}]}
    raw = json.dumps(doc, **style).encode()
    with monkeypatch.context() as m:  # the row-by-row comparison of the rebuilt document
        m.setattr(exact, "_numeric_string_patches", lambda source: {})
        compared = learn("t", raw)
    assert len(compared.rows) == 5

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the document was rebuilt")

    with monkeypatch.context() as m:
        m.setattr(exact, "rebuild", no_rebuild)
        assert learn("t", raw).to_json() == compared.to_json()
    assert regenerated("t", raw) == raw


def test_normalize_says_whether_a_float_field_held_a_numeric_string_it_stored_as_a_float():
    """exact.learn writes those rows' patches in its first attempt, and looks for none in a
    file without them."""
    start = datetime(2023, 4, 18, 5, tzinfo=timezone.utc)

    def flag(signals, curve=()):
        doc = {"strategy": "s", "symbols": [{"symbol": "A", "signals": signals}], "performance_curve": list(curve)}
        return normalize("t", parse_document(json.dumps(doc).encode())).numbers_as_strings

    plain = [signal(start + timedelta(hours=i), "TZ", 1.5 + i) for i in range(3)]
    assert flag(plain) is False
    assert flag([*plain[:2], {**plain[2], "pnl": "-3.25"}]) is True
    assert flag(plain, [{"timestamp": "2023-04-18T05:00:00Z", "equity": "1000000.0"}]) is True
    # more digits than a float64 holds: kept as written (in extras), no patch needed
    assert flag([*plain[:2], {**plain[2], "price": "1.00000000000000000001"}]) is False


def test_a_timestamp_shaped_value_that_is_no_timestamp_gives_its_field_no_code():
    start = datetime(2023, 4, 18, 5, tzinfo=timezone.utc)
    signals = [signal(start + timedelta(hours=i), "TZ", 1.5 + i) for i in range(4)]
    signals[0]["exit_timestamp"], signals[1]["exit_timestamp"] = None, "2023-02-30 00:00:00"  # no such day
    raw = json.dumps({"strategy": "s", "symbols": [{"symbol": "A", "signals": signals}]}).encode()
    assert learn("t", raw).timestamps["signals.exit_timestamp"] == "TZ"
    assert regenerated("t", raw) == raw


def test_a_curve_list_kept_whole_in_the_skeleton_gets_no_numeric_string_patch():
    """normalize keeps a curve list holding anything but objects as written: its rows are not
    in the tables, so no row patch names them."""
    start = datetime(2023, 4, 18, 5, tzinfo=timezone.utc)
    doc = {"strategy": "s", "performance_curve": [{"timestamp": "2023-04-18T00:00:00Z", "equity": "1000.5"}, 7],
           "symbols": [{"symbol": "A", "signals": [signal(start, "TZ", 1.5), signal(start, "TZ", "2.5")]}]}
    raw = json.dumps(doc).encode()
    assert list(learn("t", raw).rows) == ["signals:0:1"]
    assert regenerated("t", raw) == raw
