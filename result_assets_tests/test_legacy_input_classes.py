"""The hostile input classes, each handled on purpose (issue 11, point 3):

- text that is not valid Unicode (a lone surrogate escape): quarantined, the reason says where;
- NUL and backslash sequences: migrated, given back exactly; the catalog's copies hold them;
- timestamps outside the spec's forms: quarantined (signal timestamp) or kept as written;
- numbers with more digits than a float64: kept as written (numeric strings) or quarantined
  (bare literals); never rounded;
- directory names that are not UTF-8: a task id that maps back to the exact bytes.
"""
from __future__ import annotations

import json
import math
import os
import struct

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from result_assets.legacy import (
    InvalidResult,
    compare_documents,
    dumps_document,
    normalize,
    parse_document,
    partition_key_for,
    reconstruct,
    task_id_for,
)
from result_assets.legacy.parse import dumps_read_back, exact_float, may_lose_digits, parse_unscreened
from result_assets.migration import convert as convert_module
from result_assets.migration.batch import RawResult, read_source, validate
from result_assets.migration.convert import convert
from result_assets.migration.sources import LegacyFile, scan_source_dir, stat_legacy_file
from result_assets.store.backups import sha256_hex
from result_assets.store.pg_text import jsonb_text, pg_text
from result_assets_tests.conftest import SAMPLES

SIGNAL = {"timestamp": "2024-01-03 09:00:00", "type": "buy", "price": 1.5, "reason": "x", "indicators": {"rsi": 30.0}}


def v2(signal: dict | None = None, **top) -> dict:
    doc = {"strategy": "s", "params": {"n": 5}, "symbols": [
        {"symbol": "KRW-BTC", "signals": [dict(SIGNAL) for _ in range(3)] + [{**SIGNAL, **(signal or {})}]}]}
    doc.update(top)
    return doc


def run(raw: bytes, task_id: str = "t"):
    """validate() as a batch calls it: never raises, migrated or quarantined."""
    return validate(RawResult(LegacyFile(task_id, "<test>", len(raw), 0), raw, sha256_hex(raw)))


def migrated(doc: dict, ensure_ascii: bool = True):
    raw = json.dumps(doc, ensure_ascii=ensure_ascii, allow_nan=True).encode()
    v = run(raw)
    assert v.reason is None, v.reason
    rebuilt = reconstruct(v.result.skeleton, v.result.signals, v.result.curves)
    assert compare_documents(parse_document(raw), rebuilt) == []
    return v, rebuilt


def assert_storable(v):
    """What the catalog and the Delta tables get is valid text (no lone surrogate); the
    catalog's copies hold no NUL."""
    r = v.result
    dumps_document(r.skeleton).encode("utf-8")
    for text in (r.strategy, r.timeframe, r.start_date, r.end_date, *(s.symbol for s in r.symbols)):
        if text is not None:
            assert "\x00" not in pg_text(text)
            pg_text(text).encode("utf-8")
    assert "\x00" not in jsonb_text(r.params) and "\\u0000" not in jsonb_text(r.params).replace("\\\\", "")


# --- 1. text that is not valid Unicode -------------------------------------------------------

SURROGATE = "\ud800"
WHERE = "symbols[0] (KRW-BTC).signals[3]"


@pytest.mark.parametrize("doc, reason", [
    (v2({"reason": f"a{SURROGATE}b"}), f"{WHERE}.reason: text that is not valid Unicode (lone surrogate \\ud800)"),
    (v2({"type": SURROGATE}), f"{WHERE}.type: text that is not valid Unicode (lone surrogate \\ud800)"),
    (v2({"tag": ["ok", "\udcb9"]}), f"{WHERE}.tag[1]: text that is not valid Unicode (lone surrogate \\udcb9)"),
    (v2({f"k{SURROGATE}": 1}), f'{WHERE}: key "k\\ud800" is not valid Unicode (lone surrogate \\ud800)'),
    (v2({"indicators": {SURROGATE: 1.0}}),
     f'{WHERE}.indicators: key "\\ud800" is not valid Unicode (lone surrogate \\ud800)'),
    (v2({"exit_timestamp": SURROGATE}),
     f"{WHERE}.exit_timestamp: text that is not valid Unicode (lone surrogate \\ud800)"),
    (v2(params={"w": [1, SURROGATE]}), "params.w[1]: text that is not valid Unicode (lone surrogate \\ud800)"),
    (v2(**{SURROGATE: 1}), 'top level: key "\\ud800" is not valid Unicode (lone surrogate \\ud800)'),
    (v2(note=SURROGATE), "note: text that is not valid Unicode (lone surrogate \\ud800)"),
    (v2(strategy="\udfff"), "strategy: text that is not valid Unicode (lone surrogate \\udfff)"),
    ({"strategy": "s", "symbols": [{"symbol": f"KRW{SURROGATE}", "signals": [SIGNAL]}]},
     "symbols[0].symbol: text that is not valid Unicode (lone surrogate \\ud800)"),
    ({"strategy": "s", "symbols": ["KRW-BTC", SURROGATE]},
     "symbols[1]: text that is not valid Unicode (lone surrogate \\ud800)"),
    ({"strategy": "s", "symbols": ["A"], "signals": [{**SIGNAL, "symbol": f"A{SURROGATE}"}]},
     "signals[0].symbol: text that is not valid Unicode (lone surrogate \\ud800)"),
    ({"strategy": "s", "symbols": [], "performance_curve": [{"timestamp": 1, "equity": 1.0, "cash": SURROGATE}]},
     "performance_curve[0].cash: text that is not valid Unicode (lone surrogate \\ud800)"),
    (v2({"pnl": math.nan, "tag": SURROGATE}), f"{WHERE}.tag: text that is not valid Unicode (lone surrogate \\ud800)"),
])
def test_lone_surrogates_are_quarantined_with_where(doc, reason):
    raw = json.dumps(doc, allow_nan=True).encode()  # ensure_ascii: the surrogate is a \ud800 escape
    assert b"\\ud" in raw
    v = run(raw)
    assert v.result is None and v.reason == reason
    reason.encode("utf-8")  # the reason itself is valid text (the catalog stores it)
    with pytest.raises(InvalidResult, match="not valid Unicode"):  # normalize alone, on the parsed document
        normalize("t", json.loads(raw))


def test_surrogate_pairs_and_raw_surrogate_bytes():
    # A pair escape is one real character: migrated.
    v, rebuilt = migrated(v2({"reason": "\U0001F600 거래량 돌파"}))
    assert rebuilt["symbols"][0]["signals"][3]["reason"] == "\U0001F600 거래량 돌파"
    # A surrogate encoded in the bytes is not UTF-8 at all.
    raw = json.dumps(v2()).encode().replace(b'"x"', b'"\xed\xa0\x80"', 1)
    assert run(raw).reason.startswith("not UTF-8: invalid byte 0xed")


def test_one_bad_task_does_not_fail_its_neighbours():
    good = json.dumps(v2()).encode()
    bad = json.dumps(v2({"reason": SURROGATE})).encode()
    outcomes = [run(raw).status for raw in (good, bad, good)]
    assert outcomes == ["migrated", "quarantined", "migrated"]


# --- 2. NUL and backslash sequences -----------------------------------------------------------

HOSTILE_TEXT = ["a\x00b", "\\u0000", "\\\\u0000", "\\", "\\x00", '\\"', "\x00\\u0000\x00", "\\ud800"]


@pytest.mark.parametrize("text", HOSTILE_TEXT)
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_nul_and_backslashes_migrate_exactly(text, ensure_ascii):
    doc = v2({"reason": text, "type": text, text: text, "indicators": {text: 1.0}},
             strategy=text, timeframe=text, params={text: [text]}, extra={text: text})
    doc["symbols"].append({"symbol": text, "signals": [{**SIGNAL, "reason": text}]})
    v, rebuilt = migrated(doc, ensure_ascii)
    signal = rebuilt["symbols"][0]["signals"][3]
    assert signal["reason"] == signal["type"] == signal[text] == text and signal["indicators"] == {text: 1.0}
    assert rebuilt["strategy"] == text and rebuilt["params"] == {text: [text]} and rebuilt["extra"] == {text: text}
    assert rebuilt["symbols"][1]["symbol"] == text
    assert v.result.params == {text: [text]} and v.result.symbols[1].symbol == text
    assert_storable(v)
    # the skeleton the catalog keeps reads back exactly
    assert parse_document(dumps_document(v.result.skeleton).encode()) == v.result.skeleton


def test_catalog_copies_of_hostile_text():
    assert pg_text("a\x00b") == "a\\u0000b" and pg_text("\\u0000") == "\\u0000" and pg_text("x\udcb9") == "x\\udcb9"
    assert pg_text("한국어") == "한국어"
    assert json.loads(jsonb_text({"p": "\\u0000", "q\x00": [math.nan, -math.inf, 2**80]})) == \
        {"p": "\\u0000", "q\\u0000": ["NaN", "-Infinity", 2**80]}


# --- 3. timestamps outside the spec's forms ---------------------------------------------------

ODD_TIMESTAMPS = [
    "2011-W01-2T00:05:23",  # ISO week date: datetime.fromisoformat reads it
    "2011-W01-2T00:05:23+09:00",
    "2024-003T09:00:00",  # ordinal date
    "2024-01-03T09:00:00.123456789+09:00",  # nanoseconds: the column holds microseconds
    "2024-01-03",  # a date without time
    "2024-01-03T09:00",
    "2024-01-03T09:00:00,5",  # comma decimal
    "2024-01-03T09:00:00.+09:00",
    "2024-01-03T09:00:00z",
    "2024-01-03T09:00:00+09:60",
    "2024-01-03T09:00:00+09:00:30",
    "20240103T090000",
    "2024-01-03T24:00:00",
    "2024-01-03T09:00:60",
    "-1704240000000",
    "1704240000000.0",
    "２０２４-01-03 09:00:00",
]


@pytest.mark.parametrize("spelling", ODD_TIMESTAMPS)
def test_odd_signal_timestamp_is_quarantined(spelling):
    v = run(json.dumps(v2({"timestamp": spelling}), ensure_ascii=False).encode())
    assert v.result is None
    assert v.reason == (f"symbols[0] (KRW-BTC) signals[3]: timestamp {json.dumps(spelling, ensure_ascii=False)} "
                        "is not a timestamp (ISO 8601, Seoul wall time or epoch milliseconds)")


@pytest.mark.parametrize("spelling", ODD_TIMESTAMPS)
def test_odd_exit_and_curve_timestamps_are_kept_as_written(spelling):
    doc = v2({"exit_timestamp": spelling}, performance_curve=[{"timestamp": spelling, "equity": 1.0}])
    v, rebuilt = migrated(doc)
    assert v.result.signals.column("exit_ts").to_pylist()[3] is None  # not read as an instant
    assert rebuilt["symbols"][0]["signals"][3]["exit_timestamp"] == spelling  # never reinterpreted
    assert rebuilt["performance_curve"][0]["timestamp"] == spelling


@pytest.mark.parametrize("spelling", ["2024-01-03T09:00:00+09:00", "2024-01-03T00:00:00Z", "2024-01-03 09:00:00",
                                      "2024-01-03T09:00:00", "2024-01-03T09:00:00.000000", "2024-01-03T09:00:00+0900",
                                      "2024-01-03T09:00:00.000000000+09:00", "2024-01-03 00:00:00Z", 1704240000000,
                                      "1704240000000"])
def test_spec_timestamps_are_read(spelling):
    v, rebuilt = migrated(v2({"timestamp": spelling}))
    assert v.result.signals.column("ts").to_pylist()[3].timestamp() == 1704240000
    assert rebuilt["symbols"][0]["signals"][3]["timestamp"] == "2024-01-03T00:00:00Z"


# --- 4. numbers never rounded -----------------------------------------------------------------

@pytest.mark.parametrize("text", ["1.0000000000000000000001", "0.1000000000000000000001", "1e400", "1e-400",
                                  "123456789.123456789123", "1.00000000000000001",
                                  "1e12345678901234567890"])  # an exponent past Decimal's: quarantined once
def test_numeric_strings_float64_would_round_are_kept_as_written(text):
    doc = v2({"price": text, "pnl": text}, performance_curve=[{"timestamp": 1, "equity": text}],
             summary={"total_return": text})
    v, rebuilt = migrated(doc)
    assert v.result.signals.column("price").to_pylist()[3] is None  # not in the float column...
    assert json.loads(v.result.signals.column("extras").to_pylist()[3]) == {"price": text, "pnl": text}  # ...but raw
    signal = rebuilt["symbols"][0]["signals"][3]
    assert signal["price"] == signal["pnl"] == text and rebuilt["performance_curve"][0]["equity"] == text
    assert v.result.metrics["total_return"] is None and rebuilt["summary"] == {"total_return": text}


@pytest.mark.parametrize("text, value", [("1.07219", 1.07219), (" 1.5", 1.5),
                                         ("0.30000000000000004", 0.30000000000000004), ("1e-05", 1e-05), ("0.10000000000000001", 0.1), ("nan", math.nan),
                                         ("-Infinity", -math.inf), ("5e-324", 5e-324), ("100", 100.0)])
def test_numeric_strings_float64_holds_are_numbers(text, value):
    v, _ = migrated(v2({"price": text}))
    got = v.result.signals.column("price").to_pylist()[3]
    assert got == value or (math.isnan(got) and math.isnan(value))
    assert v.result.signals.column("extras").to_pylist()[3] is None


ROUNDED_LITERALS = [
    ("1.0000000000000000000001",
     "number 1.0000000000000000000001 has more digits than a float64 (it would be read as 1.0)"),
    ("0.123456789012345678", "number 0.123456789012345678 has more digits than a float64 "
                             "(it would be read as 0.12345678901234568)"),
    ("12345678.1234567891",
     "number 12345678.1234567891 has more digits than a float64 (it would be read as 12345678.12345679)"),
    ("1e400", "number 1e400 is beyond the range of a float64 (it would be read as inf)"),
    ("-1E-400", "number -1E-400 is beyond the range of a float64 (it would be read as -0.0)"),
    ("1e12345678901234567890",  # 19+ exponent digits: Decimal raised InvalidOperation, an unreadable reason
     "number 1e12345678901234567890 is beyond the range of a float64 (it would be read as inf)"),
    ("1" * 5000, "an integer literal has more than 4300 digits (more than the parser reads)"),
]
HELD_LITERALS = [
    ("123456789012345678901234567890", 123456789012345678901234567890),  # integers are exact
    ("1180591620717411303424", 2**70),  # beyond 64 bits: still an int, though a float64 holds its value
    ("0.1000000000000000055511151231257827021181583404541015625", 0.1),  # the exact value of 0.1
    ("1.5e-300", 1.5e-300), ("1.2345678901234567e+300", 1.2345678901234567e300),
    ("0.30000000000000004", 0.30000000000000004),
    ("0e12345678901234567890", 0.0),  # zero whatever its exponent
]


@pytest.mark.parametrize("literal, reason", ROUNDED_LITERALS)
@pytest.mark.parametrize("where", ["price", "tag", "params"])
def test_bare_literals_float64_would_round_are_quarantined(literal, reason, where):
    doc = v2({"price": "@@"}) if where == "price" else v2({"tag": ["@@"]}) if where == "tag" else v2(params={"x": "@@"})
    raw = json.dumps(doc).replace('"@@"', literal).encode()
    assert run(raw).reason == reason


@pytest.mark.parametrize("literal, value", HELD_LITERALS)
def test_bare_literals_float64_holds_migrate(literal, value):
    raw = json.dumps(v2({"price": "@@"}, params={"x": "@@"})).replace('"@@"', literal).encode()
    v = run(raw)
    assert v.reason is None
    rebuilt = reconstruct(v.result.skeleton, v.result.signals, v.result.curves)
    assert rebuilt["symbols"][0]["signals"][3]["price"] == value and rebuilt["params"] == {"x": value}
    assert type(rebuilt["params"]["x"]) is type(value)
    assert compare_documents(parse_document(raw), rebuilt) == []


@pytest.mark.parametrize("points, reason", [
    ([{"equity": 1.0}, {"drawdown": "abc"}, {"equity": "xyz"}], 'performance_curve[1]: drawdown "abc" is not a number'),
    ([{"equity": "1.5"}, {"equity": "a", "drawdown": "b"}], 'performance_curve[1]: equity "a" is not a number'),
    ([{"drawdown": "-0.5"}, {"equity": 2.0, "drawdown": 0.1}, {"equity": "1e400x"}],
     'performance_curve[2]: equity "1e400x" is not a number'),
])
def test_curve_values_that_are_not_numbers_are_reported_at_the_first_point(points, reason):
    """The curve is read column by column; the reason still names the first point (and,
    within it, the first field) a reading point by point would."""
    stamped = [{"timestamp": 1704240000000 + i, **point} for i, point in enumerate(points)]
    raw = json.dumps({"strategy": "s", "symbols": [], "performance_curve": stamped}).encode()
    assert run(raw).reason == reason


# The conversion parses without the digit screen and relies on its proof instead (a number
# patched in as text must be another spelling of a float64's exact value): it must read every
# literal as validate() does, whatever writer's style the file has.
STYLES = [{}, {"indent": 2}, {"separators": (",", ":")}]


@pytest.mark.parametrize("literal, reason", ROUNDED_LITERALS)
@pytest.mark.parametrize("style", STYLES)
def test_conversion_quarantines_what_float64_would_round(literal, reason, style):
    raw = json.dumps(v2({"price": "@@"}, params={"x": 1.5}), **style).replace('"@@"', literal).encode()
    v = convert(RawResult(LegacyFile("t", "<test>", len(raw), 0), raw, sha256_hex(raw)))
    assert (v.reason, v.proof) == (reason, None)


@pytest.mark.parametrize("literal, value", HELD_LITERALS)
@pytest.mark.parametrize("style", STYLES)
def test_conversion_reads_what_float64_holds_exactly(literal, value, style):
    raw = json.dumps(v2({"price": "@@"}, params={"x": "@@"}), **style).replace('"@@"', literal).encode()
    v = convert(RawResult(LegacyFile("t", "<test>", len(raw), 0), raw, sha256_hex(raw)))
    assert v.reason is None and v.proof is not None, (v.reason, v.failure)
    assert v.result.params == {"x": value} and type(v.result.params["x"]) is type(value)
    price = reconstruct(v.result.skeleton, v.result.signals, v.result.curves)["symbols"][0]["signals"][3]["price"]
    assert price == value and type(price) is type(value)


def test_conversion_of_proven_files_skips_the_digit_screen(monkeypatch):
    def screen(raw):
        raise AssertionError("screened a file its proof showed exact")
    monkeypatch.setattr(convert_module, "may_lose_digits", screen)
    for path in sorted((SAMPLES / "tasks").glob("bt_*/result.json")):
        raw = path.read_bytes()
        v = convert(RawResult(LegacyFile(path.parent.name, str(path), len(raw), 0), raw, sha256_hex(raw)))
        assert v.reason is None and v.proof is not None, (path.parent.name, v.reason, v.failure)


def _bits_equal(a, b) -> bool:
    """Equal values of equal types, floats bit for bit (NaN's sign and payload, -0.0)."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return struct.pack("<d", a) == struct.pack("<d", b)
    if type(a) is dict:
        return list(a) == list(b) and all(_bits_equal(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(map(_bits_equal, a, b))
    return a == b


@given(st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=3)
                    | st.floats() | st.sampled_from([math.nan, -math.nan, math.inf, -math.inf]),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
                    max_leaves=12))
@settings(max_examples=200, deadline=None)
def test_a_writes_read_back_is_the_parse_of_its_text_non_finite_floats_included(value):
    """dumps_read_back's parse, when it gives one, is what parse_unscreened reads from its
    text, bit for bit: where orjson wrote null for a non-finite float, the float a parse of the
    bare literal gives (a save converts it instead of parsing again)."""
    doc = {"pad": "x" * 2048, "value": value}  # past the size from which the write reads back
    text, parsed = dumps_read_back(doc)
    if parsed is not None:
        assert _bits_equal(parse_unscreened(text.encode()), parsed)


def test_a_save_converts_the_parse_its_write_made(monkeypatch):
    """An application save's write reads its text back whole (parse.dumps_read_back): the
    conversion takes that parse instead of parsing again, and its proof judges it as it
    judges a parse: rows that do not write the bytes again are not proven as rows (the file
    is then kept whole as text)."""
    doc = v2({"price": 40713.12, "quantity": 0.25}, params={"window": 20, "name": "한"})
    doc["symbols"][0]["signals"] *= 40  # past the size from which the write reads back
    text, parsed = dumps_read_back(doc)
    raw = text.encode()
    assert parsed == parse_unscreened(raw) and parsed is not doc
    nan_text, nan_parsed = dumps_read_back({**doc, "nan": math.nan})  # written through sentinels
    assert math.isnan(nan_parsed.pop("nan")) and nan_parsed == parsed and '"nan":NaN' in nan_text
    assert dumps_read_back({"strategy": "s"})[1] is None  # small: not read back

    def no_parse(raw):
        raise AssertionError("parsed again")
    monkeypatch.setattr(convert_module, "parse_unscreened", no_parse)
    source = LegacyFile("t", "", len(raw), 0)
    v = convert(RawResult(source, raw, sha256_hex(raw)), parsed)
    assert v.reason is None and v.proven and v.proof.exact_text is None, v.failure
    wrong = orjson.loads(raw)
    wrong["symbols"][0]["signals"][7]["price"] = 1.5  # 40713.12 in the bytes
    v = convert(RawResult(source, raw, sha256_hex(raw)), wrong)
    assert v.proof.exact_text == text and v.proof.regenerated_sha256 == sha256_hex(raw)

def test_exact_float_rule():
    for text in ["1.07219", "0.1", "1e-05", "0.30000000000000004", "0.10000000000000001", "1.5", "-0.0", "5e-324",
                 "1.7976931348623157e308", "0.0000404233077788696", "inf", "nan", "1E5"]:
        assert exact_float(text, float(text)), text
    for text in ["1.0000000000000000000001", "1.00000000000000001", "1e400", "1e-400", "1e-330",
                 "9007199254740993", "0.12345678901234567890"]:
        assert not exact_float(text, float(text)), text


def test_the_digit_screen_lets_real_files_take_the_fast_parser():
    """Python-written files hold 17-digit floats everywhere: the screen must not send them
    to the slow exact parser (which would be correct, only slower)."""
    samples = [p.read_bytes() for p in sorted((SAMPLES / "tasks").glob("bt_*/result.json"))]
    assert samples and not any(may_lose_digits(raw) for raw in samples)
    typical = json.dumps({"p": [0.45684752926073163, 123.45678901234567, 1.6281479942037436e-06, 1e16, 1704240000000,
                                1234567890123456.0, 0.00012345678901234567]}).encode()
    assert not may_lose_digits(typical)
    # a hex task id ("e" then 3 digits) is not an exponent: no slow parse for it
    assert not may_lose_digits(b'{"task_id": "bt_20251019_e3e706", "p": 1.5}')
    for long in [b"1.00000000000000000001", b"123456789012345678", b"0.123456789012345678", b"1e-400", b"2E+308"]:
        assert may_lose_digits(b'{"p": [1, ' + long + b', 2]}'), long


# --- 5. directory names that are not UTF-8 ----------------------------------------------------

CP949 = "백테스트_005".encode("cp949")  # b'\xb9\xe9\xc5\xd7\xbd\xba\xc6\xae_005'
CP949_ID = "%bytes:%B9%E9%C5%D7%BD%BA%C6%AE_005"


def make_task(source: bytes, name: bytes, strategy: str) -> None:
    task = os.path.join(source, name)
    os.mkdir(task)
    with open(os.path.join(task, b"result.json"), "wb") as f:
        f.write(json.dumps({"strategy": strategy, "symbols": []}).encode())


def test_non_utf8_directory_names(tmp_path):
    source = os.fsencode(tmp_path)
    names = {
        CP949: "cp949",
        b"%bytes:%B9%E9%C5%D7%BD%BA%C6%AE_005": "literally the escaped form",  # a real UTF-8 name like an id
        b"%B9": "percent",  # "%" alone is no prefix: its own id
        "백테스트_005".encode(): "utf-8",
        b"\xff": "one byte",
    }
    for name, strategy in names.items():
        make_task(source, name, strategy)
    scan = scan_source_dir(tmp_path)
    by_strategy = {}
    for task in scan.tasks:
        task.task_id.encode("utf-8")  # storable text
        assert task_id_for(task.partition_key) == task.task_id
        assert stat_legacy_file(tmp_path, task.task_id) == task  # from the id back to the same directory
        v = validate(read_source(task, 1 << 30))
        assert v.status == "migrated", v.reason
        by_strategy[v.result.strategy] = task.task_id
    assert by_strategy == {
        "cp949": CP949_ID,
        "literally the escaped form": "%bytes:%25bytes:%25B9%25E9%25C5%25D7%25BD%25BA%25C6%25AE_005",
        "percent": "%B9",
        "utf-8": "백테스트_005",
        "one byte": "%bytes:%FF",
    }
    assert scan.not_tasks == []


def test_task_ids_no_directory_has(tmp_path):
    make_task(os.fsencode(tmp_path), b"abc", "s")
    assert stat_legacy_file(tmp_path, "abc").task_id == "abc"
    for task_id in ["%bytes:abc", "%bytes:%61bc", "%bytes:%zz", "%bytes:", "%bytes:%ff", "%abc", "..", "../abc", "a/b",
                    "", "nul\x00"]:
        assert stat_legacy_file(tmp_path, task_id) is None, task_id


def test_scan_only_and_not_tasks_use_the_ids(tmp_path):
    source = os.fsencode(tmp_path)
    make_task(source, CP949, "s")
    os.mkdir(os.path.join(source, b"empty\xb9"))
    scan = scan_source_dir(tmp_path, only={CP949_ID, "%bytes:empty%B9"})
    assert [t.task_id for t in scan.tasks] == [CP949_ID]
    assert scan.not_tasks == ["%bytes:empty%B9"]
    assert os.fsencode(scan.tasks[0].path).endswith(b"/" + CP949 + b"/result.json")  # the real directory
    assert partition_key_for(scan.tasks[0].task_id) == scan.tasks[0].task_id  # a valid Dagster key as it stands


def test_refused_link_reason_is_valid_text(tmp_path):
    source, outside = tmp_path / "tasks", tmp_path / "out"
    source.mkdir()
    os.makedirs(os.path.join(os.fsencode(outside), b"x\xb9"))
    with open(os.path.join(os.fsencode(outside), b"x\xb9", b"result.json"), "wb") as f:
        f.write(b"{}")
    os.symlink(os.path.join(os.fsencode(outside), b"x\xb9"), os.path.join(os.fsencode(source), CP949))
    (task,) = scan_source_dir(source).tasks
    assert task.refused == (f"refused: {CP949_ID}/result.json is a link to {outside}/x\\xb9/result.json, "
                            "outside the source directory")


@given(st.floats(allow_nan=False, allow_infinity=False))
@settings(max_examples=2000)
def test_every_float64_spelling_is_exact(value):
    """Any writer's spelling of a float64 reads back as exact: Python's repr, orjson's
    (5.960464477539063e-8), %.17g, and longer expansions."""
    for text in (repr(value), orjson.dumps(value).decode(), "%.17g" % value, "%.25g" % value, "%.40e" % value):
        assert float(text) == value and exact_float(text, value), text


@given(st.floats(min_value=1, max_value=1e15), st.integers(17, 40))
@settings(max_examples=500)
def test_a_digit_float64_cannot_hold_is_never_exact(value, places):
    text = f"{value:.16e}"  # then one more digit, below half a float64 step of value
    mantissa, exponent = text.split("e")
    longer = f"{mantissa}{'0' * (places - 16)}1e{exponent}"
    assert not exact_float(longer, float(longer))


def test_task_dir_path_is_the_exact_directory(tmp_path):
    from result_assets.migration.sources import task_dir_path

    assert os.fsencode(task_dir_path(tmp_path, CP949_ID)) == os.fsencode(tmp_path) + b"/" + CP949
    assert task_dir_path(tmp_path, "백테스트_005") == tmp_path / "백테스트_005"
    assert task_dir_path(tmp_path, "../x") is None and task_dir_path(tmp_path, "%bytes:abc") is None


def reference_depth(value: object) -> int:
    """Levels of lists and objects, by recursion (the shapes below stay shallow enough for it)."""
    if type(value) is dict:
        return 1 + max(map(reference_depth, value.values()), default=0)
    if type(value) is list:
        return 1 + max(map(reference_depth, value), default=0)
    return 0


json_shapes = st.recursive(st.one_of(st.none(), st.integers(), st.text(max_size=2)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=2), inner, max_size=3)),
                           max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(json_shapes)
def test_nesting_depth_counts_levels_of_lists_and_objects(doc):
    from result_assets.migration.batch import nesting_depth

    assert nesting_depth(doc, 100) == max(1, reference_depth(doc))  # a bare value is one level


row_values = st.one_of(json_shapes, st.floats(allow_nan=False), st.dictionaries(st.text(max_size=2), st.floats(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["price", "indicators", "tag", "x"]), row_values, max_size=3), max_size=3),
       st.lists(st.dictionaries(st.sampled_from(["equity", "tag"]), row_values, max_size=2), max_size=2),
       json_shapes, st.booleans())
def test_the_depth_normalize_reports_is_the_documents(signals, curve, params, v1):
    """validate checks the depth from the skeleton and what the rows add (rows_depth), not by
    walking the rows again: the two must be the document's depth, whatever the rows hold."""
    from result_assets.legacy import InvalidResult, normalize
    from result_assets.legacy.normalize import nesting_depth

    rows = [{"timestamp": 1704240000000, **row} for row in signals]
    points = [{"timestamp": 1704240000000, **point} for point in curve]
    if v1:
        doc = {"strategy": "s", "signals": rows, "performance_curve": points, "symbols": ["A"], "params": params}
    else:
        doc = {"strategy": "s", "symbols": [{"symbol": "A", "signals": rows, "performance_curve": points}, "B"],
               "params": params}
    doc = json.loads(json.dumps(doc))  # as a file gives it
    try:
        result = normalize("t", doc)
    except InvalidResult:
        assume(False)  # e.g. an equity that is not a number
    assert max(nesting_depth(result.skeleton), result.rows_depth) == nesting_depth(doc)


def test_documents_nested_past_the_limit_are_quarantined_at_it():
    from result_assets.migration.batch import MAX_NESTING, RawResult, validate
    from result_assets.migration.sources import LegacyFile
    from result_assets.store.backups import sha256_hex

    def nested(levels: int) -> bytes:  # the document, "params" and its lists: `levels` levels in all
        inner: object = 1
        for _ in range(levels - 2):
            inner = [inner]
        return json.dumps({"strategy": "s", "symbols": [], "params": {"p": inner}}).encode()

    def reason(raw: bytes) -> str | None:
        return validate(RawResult(LegacyFile("t", "", len(raw), 0), raw, sha256_hex(raw))).reason

    assert reason(nested(MAX_NESTING)) is None
    assert reason(nested(MAX_NESTING + 1)) == f"nested more than {MAX_NESTING} levels deep (the limit)"


def test_reasons_say_what_is_wrong_in_plain_words():
    from result_assets.legacy.parse import InvalidResult, parse_document

    def reason(raw: bytes) -> str:
        with pytest.raises(InvalidResult) as caught:
            parse_document(raw)
        return caught.value.reason

    assert reason(b'{"a": "x\ty"}') == "not valid JSON: Invalid control character at line 1 column 9"  # not "at at"
    deep = reason(b"[" * 100_000 + b"]" * 100_000)  # valid JSON, far past the nesting limit
    assert "nested too deeply" in deep and "not valid JSON" not in deep

    def invalid(signal: dict) -> str:
        doc = {"strategy": "s", "symbols": [{"symbol": "A", "signals": [
            {"timestamp": "2024-01-03T00:00:00Z", "type": "buy", "price": 1.5, **signal}]}]}
        with pytest.raises(InvalidResult) as caught:
            normalize("t", doc)
        return caught.value.reason

    assert invalid({"price": "\u00a01.5x"}).endswith('price "\\xa01.5x" is not a number')  # the no-break space shows
    assert "outside the instants kept" in invalid({"timestamp": "0001-01-01T00:00:00Z"})
    assert "is not a timestamp" in invalid({"timestamp": "2024-01-03T09:00:00+09:60"})
