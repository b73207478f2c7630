"""Odd and hostile files: generated valid documents always round-trip, mutated real
samples are migrated losslessly or quarantined with a reason (never an exception that
would fail the batch), and oversized, very deep or very long files are handled.

Example counts are tuned for CI; set FAULTS_EXAMPLES for a longer run, e.g.
`FAULTS_EXAMPLES=5000 pytest result_assets_tests/faults/test_hostile_input.py`.
The long fuzz is `python -m result_assets_tests.faults.fuzz --cases 10000`.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from result_assets.legacy import compare_documents, dumps_document, parse_document, reconstruct
from result_assets.migration.batch import MAX_NESTING, RawResult, read_source, validate
from result_assets.migration.sources import LegacyFile, scan_source_dir
from result_assets.settings import Settings
from result_assets.store.backups import file_sha256
from result_assets.store.backups import sha256_hex
from result_assets_tests.faults import fuzz
from result_assets_tests.faults.helpers import audit, run_cli, stop_home_server, stores_for
from result_assets_tests.test_legacy_roundtrip import has_surrogate

EXAMPLES = int(os.environ.get("FAULTS_EXAMPLES") or 150)
FUZZ_MIGRATED = 40  # mutated samples that also go through the real migration in CI
HYPOTHESIS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


# --- documents by the rules of legacy-format.md ---

finite = st.floats(allow_nan=False, allow_infinity=False)
number = st.one_of(finite, st.just(math.nan), st.just(math.inf), st.just(-math.inf),
                   st.integers(-(2**53), 2**53), finite.map(repr))  # a numeric string is that number
maybe_number = number | st.none()
names = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)  # any Unicode but lone surrogates
json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | names,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=8,
)
# The platform's years; offsets in whole minutes (ISO 8601 has no seconds in an offset).
moments = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1))
epoch_ms = st.integers(0, 4 * 10**12)
timestamp = st.one_of(
    epoch_ms,
    st.builds(lambda d, minutes: d.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat(),
              moments, st.integers(-14 * 60, 14 * 60)),  # ISO with offset
    moments.map(lambda d: d.replace(microsecond=0).isoformat(sep=st_sep(d))),  # naive Seoul wall time
)


def st_sep(moment) -> str:
    return " " if moment.second % 2 else "T"


def extras(keys):
    """Unknown keys: anything may appear and must be kept."""
    return st.dictionaries(names.filter(lambda k: k not in keys), json_value, max_size=2)


def signal(v1: bool):
    known = {
        "type": st.sampled_from(["buy", "sell", "BUY", "SELL", "Buy"]),
        "price": maybe_number, "quantity": maybe_number, "pnl": maybe_number, "commission": maybe_number,
        "exit_price": maybe_number, "return_pct": maybe_number,
        "exit_timestamp": timestamp | st.none(),
        "holding_bars": st.integers(0, 10**6),
        "reason": names,
        "indicators": st.dictionaries(names, finite | st.just(math.nan), max_size=3),
    }
    if v1:
        known["symbol"] = st.sampled_from(["KRW-BTC", "KRW-ETH"])
    base = st.fixed_dictionaries({"timestamp": timestamp}, optional=known)
    return st.tuples(base, extras(set(known) | {"timestamp"})).map(lambda p: {**p[1], **p[0]})


curve_point = st.fixed_dictionaries({"timestamp": timestamp, "equity": number, "drawdown": number},
                                    optional={"cash": json_value})
metrics = st.dictionaries(st.sampled_from(["total_return", "win_rate", "max_drawdown", "sharpe_ratio",
                                           "profit_factor", "num_trades"]), number)


@st.composite
def legacy_document(draw):
    doc = {"strategy": draw(names)}
    for key, value in (("task_id", names), ("params", st.dictionaries(names, json_value, max_size=3)),
                       ("timeframe", st.sampled_from(["1m", "15m", "1h", "1d"])),
                       ("start_date", names), ("end_date", names), ("summary", metrics),
                       ("performance_curve", st.lists(curve_point, max_size=3)),
                       ("metadata", st.dictionaries(names, json_value, max_size=3))):
        if draw(st.booleans()):
            doc[key] = draw(value)
    if draw(st.booleans()):  # layout v1
        doc["symbols"] = draw(st.lists(st.sampled_from(["KRW-BTC", "KRW-ETH"]), max_size=2, unique=True))
        doc["signals"] = draw(st.lists(signal(v1=True), max_size=4))
    else:
        entry = st.fixed_dictionaries({"symbol": names}, optional={
            "signals": st.lists(signal(v1=False), max_size=4),
            "performance": metrics,
            "performance_curve": st.lists(curve_point, max_size=2),
        })
        doc["symbols"] = draw(st.lists(entry | names, max_size=3))
    doc.update(draw(extras(set(doc))))
    return doc


def encode(doc: dict, style: int) -> bytes:
    """The ways the platform wrote files: compact or indented, UTF-8 or \\u escapes."""
    text = json.dumps(doc, allow_nan=True, ensure_ascii=bool(style & 1), indent=2 if style & 2 else None)
    return text.encode("utf-8", "surrogatepass")


@given(legacy_document(), st.integers(0, 3))
@HYPOTHESIS
def test_documents_by_the_format_rules_always_round_trip(doc, style):
    raw = encode(doc, style)
    v = validate(RawResult(LegacyFile("t", "<generated>", len(raw), 0), raw, sha256_hex(raw)))
    assert v.reason is None  # a document by the rules is never quarantined
    rebuilt = reconstruct(v.result.skeleton, v.result.signals, v.result.curves)
    assert compare_documents(doc, rebuilt) == []
    # and what the catalog keeps (the skeleton as text) reads back the same
    assert compare_documents(v.result.skeleton, parse_document(dumps_document(v.result.skeleton).encode())) == []


# --- documents with the hostile input classes (issue 11, point 3) ---

# hypothesis leaves lone surrogates (Cs) out of st.characters() unless asked for them.
hostile_text = st.lists(
    st.text(st.characters(), max_size=3) | st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2)
    | st.sampled_from(["\x00", "\\u0000", "\\\\u0000", "\\", "\\ud800", "\\x00", '\\"', "\ud83d\ude00"]),
    min_size=1, max_size=4).map("".join)
odd_timestamp = st.sampled_from(["2011-W01-2T00:05:23", "2024-003T09:00:00", "2024-01-03T09:00:00.123456789+09:00",
                                 "2024-01-03", "2024-01-03T09:00", "2024-01-03T09:00:00,5", "2024-01-03T09:00:00z",
                                 "20240103T090000", "-1704240000000", "2024-01-03T09:00:00+09:60"])
# a + d * 10**-(k + 1) with k >= 16 is below half a float64 step of a >= 1: always rounded away.
long_digits = st.builds(lambda a, k, d: f"{a}.{'0' * k}{d}", st.integers(1, 10**6), st.integers(16, 30),
                        st.integers(1, 9)) | st.sampled_from(["1e400", "-1e-400", "1.0000000000000000000001"])
LONG_LITERAL = "@@long-literal@@"  # a string replaced by the bare literal after encoding


@st.composite
def hostile_document(draw):
    """A document by the rules, then hostile values put where the draws say; returns
    (document, literal text for LONG_LITERAL or None, whether a signal timestamp is odd)."""
    signals = draw(st.lists(signal(v1=False), min_size=1, max_size=3))
    doc = {"strategy": "s", "params": {"n": 1}, "symbols": [{"symbol": "KRW-BTC", "signals": signals}],
           "performance_curve": draw(st.lists(curve_point, max_size=2))}
    sig = doc["symbols"][0]["signals"][-1]
    text = draw(hostile_text)
    for place in draw(st.sets(st.sampled_from(["reason", "type", "tag", "key", "indicator", "params", "param_key",
                                               "top", "top_key", "symbol", "strategy", "v1_symbol"]), max_size=4)):
        if place in ("reason", "type", "tag"):
            sig[place] = text
        elif place == "key":
            sig[text] = text
        elif place == "indicator":
            sig["indicators"] = {text: 1.5}
        elif place == "params":
            doc["params"]["x"] = [text]
        elif place == "param_key":
            doc["params"][text] = 1
        elif place == "top":
            doc["note"] = text
        elif place == "top_key":
            doc[text] = {"k": text}
        elif place == "symbol":
            doc["symbols"].append({"symbol": text, "signals": []})
        elif place == "strategy":
            doc["strategy"] = text
        else:
            doc["symbols"].append(text)
    odd_signal = draw(st.booleans())
    if odd_signal:
        sig["timestamp"] = draw(odd_timestamp)
    if draw(st.booleans()):
        sig["exit_timestamp"] = draw(odd_timestamp)  # kept as written, never read as an instant
    if doc["performance_curve"] and draw(st.booleans()):
        doc["performance_curve"][0]["timestamp"] = draw(odd_timestamp)
    for key in draw(st.sets(st.sampled_from(["price", "pnl", "quantity"]), max_size=2)):
        sig[key] = draw(long_digits)  # a numeric string float64 would round: kept as written
    literal = None
    if draw(st.booleans()):
        literal = draw(long_digits)
        doc["params"]["long"] = LONG_LITERAL
    return doc, literal, odd_signal


@given(hostile_document(), st.integers(0, 3))
@HYPOTHESIS
def test_hostile_documents_migrate_exactly_or_are_quarantined_for_their_class(case, style):
    """Quarantined only for a class that must be (text that is not valid Unicode, an odd
    signal timestamp, a bare number float64 would round), with a reason naming it; any
    other hostile value (NUL, backslashes, odd exit/curve timestamps, long numeric
    strings) migrates, comes back exactly, and is text the stores can hold."""
    doc, literal, odd_signal = case
    raw = encode(doc, style)
    if literal is not None:
        raw = raw.replace(f'"{LONG_LITERAL}"'.encode(), literal.encode())
    v = validate(RawResult(LegacyFile("t", "<generated>", len(raw), 0), raw, sha256_hex(raw)))
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:  # a surrogate written raw (not as an escape) is not UTF-8
        assert v.reason.startswith("not UTF-8"), v.reason
        return
    allowed = []
    if has_surrogate(parsed):
        allowed.append("is not valid Unicode (lone surrogate \\ud")
    if odd_signal:
        allowed.append("is not a timestamp")
    if literal is not None:
        allowed.append(f"number {literal} ")
    if allowed:
        assert v.reason is not None and any(words in v.reason for words in allowed), (v.reason, allowed)
        v.reason.encode("utf-8")
        return
    assert v.reason is None, v.reason
    rebuilt = reconstruct(v.result.skeleton, v.result.signals, v.result.curves)
    assert compare_documents(parse_document(raw), rebuilt) == []
    assert fuzz.unstorable(v.result) is None


SAMPLES = fuzz.sample_files()


@given(st.sampled_from(sorted(SAMPLES)), st.sampled_from(sorted(fuzz.MUTATIONS)), st.randoms(use_true_random=False),
       st.integers(1, 3))
@HYPOTHESIS
def test_mutated_samples_migrate_losslessly_or_are_quarantined(sample, mutation, rng, times):
    data = SAMPLES[sample]
    for _ in range(times):
        data = fuzz.MUTATIONS[mutation](rng, data)
    kind, detail = fuzz.outcome(fuzz.Case(sample, mutation, data))
    assert kind in ("lossless", "quarantined"), detail


def test_fuzz_smoke_pure(tmp_path):
    """The fuzz command's pure half at CI size (its migration half rides in `odd_files`)."""
    cases = fuzz.make_cases(400, seed=1)
    kinds, reasons, failures, seconds = fuzz.run_pure(cases)
    print(f"\nfuzz: {dict(kinds)} in {seconds:.1f}s ({len(cases) / seconds:.0f} cases/s)")
    assert failures == []
    assert kinds["lossless"] > 0 and kinds["quarantined"] > 0  # both outcomes exercised


# --- size, depth and length ---

def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def odd_document(tag: str) -> bytes:
    # 5 levels around the tag: {} symbols [] {} signals [] {}
    return ('{"strategy": "s", "symbols": [{"symbol": "A", "signals": [{"timestamp": 1704240000000, '
            f'"tag": {tag}}}]}}]}}').encode()


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory) -> tuple[Path, Path, dict]:
    """A source tree of odd files migrated by the CLI with a 5 MB size limit."""
    source = tmp_path_factory.mktemp("odd") / "tasks"
    files = {
        "at_nesting_limit": odd_document(nested(MAX_NESTING - 5)),
        "over_nesting_limit": odd_document(nested(MAX_NESTING - 4)),
        "nested_100k_deep": odd_document(nested(100_000)),
        "long_strings": json.dumps({"strategy": "s" * 100_000, "symbols": [{"symbol": "한" * 50_000, "signals": [
            {"timestamp": 1704240000000, "reason": "거래량 돌파 " * 200_000}]}]}, ensure_ascii=False).encode(),
        "wide_object": json.dumps({"strategy": "s", "symbols": [], "params": {f"k{i}": i for i in range(100_000)}}
                                  ).encode(),
        "oversized": json.dumps({"strategy": "s", "symbols": [{"symbol": "A", "signals": [
            {"timestamp": 1704240000000 + i, "price": i * 1.5} for i in range(150_000)]}]}).encode(),
        "ordinary": (Path(fuzz.SAMPLES) / "bt_20250900_74cff6" / "result.json").read_bytes(),
    }
    for task_id, data in files.items():
        (source / task_id).mkdir(parents=True)
        (source / task_id / "result.json").write_bytes(data)
    fuzzed = fuzz.write_cases(fuzz.make_cases(FUZZ_MIGRATED, seed=2), source)  # one batch with the odd files
    home = tmp_path_factory.mktemp("odd_home")
    result = run_cli(home, "migrate", "--source-dir", str(source), "--json", "--batch-size", "100",
                     RESULT_MAX_FILE_BYTES="5000000")
    yield source, home, {"result": result, "sizes": {t: len(d) for t, d in files.items()}, "fuzzed": fuzzed}
    stop_home_server(home)


def test_odd_files_migrate_or_quarantine_in_one_batch(odd_files):
    source, home, info = odd_files
    result = info["result"]
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["runs"] == 1 and report["failed_runs"] == 0
    state = audit(stores_for(home), source)
    assert state.problems == [] and state.at_rest == []
    assert fuzz.migration_failures(info["fuzzed"], state) == []
    odd = {t: r for t, r in state.catalog.items() if t not in info["fuzzed"]}
    assert sorted(t for t, r in odd.items() if r["status"] == "migrated") == [
        "at_nesting_limit", "long_strings", "ordinary", "wide_object"]
    reasons = {t: r["reason"] for t, r in odd.items() if r["status"] == "quarantined"}
    print(f"\n{json.dumps(reasons, indent=1)}")
    assert set(reasons) == {"over_nesting_limit", "nested_100k_deep", "oversized"}
    assert f"more than {MAX_NESTING} levels" in reasons["over_nesting_limit"]
    assert "nested too deeply" in reasons["nested_100k_deep"]
    assert reasons["oversized"] == (f"file is {info['sizes']['oversized']} bytes, over the 5000000-byte limit "
                                    "(RESULT_MAX_FILE_BYTES)")


def test_oversized_file_is_kept_in_the_backup_by_streaming(odd_files):
    source, home, _ = odd_files
    stores = stores_for(home)
    backup = stores.backups.path("oversized")
    assert file_sha256(backup) == file_sha256(source / "oversized" / "result.json")
    assert stores.catalog.task("oversized")["source_sha256"] == file_sha256(backup)


def test_size_limit_never_reads_the_file_whole(tmp_path, monkeypatch):
    """Over the limit, read_source hashes in chunks; a file that grew after the scan is caught too."""
    task = tmp_path / "tasks" / "big"
    task.mkdir(parents=True)
    path = task / "result.json"
    path.write_bytes(b'{"strategy": "s", "symbols": []}')
    listed = scan_source_dir(tmp_path / "tasks").tasks[0]
    path.write_bytes(b" " * 5000 + b'{"strategy": "s", "symbols": []}')  # grew after the scan
    raw = read_source(listed, 1000)
    assert raw.raw == b"" and raw.backup_from_file
    assert raw.unreadable == "file is 5032 bytes, over the 1000-byte limit (RESULT_MAX_FILE_BYTES)"
    assert raw.sha256 == file_sha256(path)
    monkeypatch.setenv("RESULT_MAX_FILE_BYTES", "100")
    assert read_source(scan_source_dir(tmp_path / "tasks").tasks[0], Settings.from_env().max_file_bytes).unreadable.endswith(
        "over the 100-byte limit (RESULT_MAX_FILE_BYTES)")
    monkeypatch.setenv("RESULT_MAX_FILE_BYTES", "lots")
    with pytest.raises(ValueError, match="RESULT_MAX_FILE_BYTES must be a positive whole number"):
        read_source(listed, Settings.from_env().max_file_bytes)


def test_nesting_is_judged_the_same_at_any_stack_depth():
    """The limit, not the caller's stack, decides: the same file gets the same outcome deep in a call chain."""
    raw = odd_document(nested(MAX_NESTING - 5))
    source = LegacyFile("t", "<deep>", len(raw), 0)

    def at_depth(frames: int):
        return validate(RawResult(source, raw, sha256_hex(raw))) if frames == 0 else at_depth(frames - 1)

    for frames in (0, 300, 600):
        v = at_depth(frames)
        assert v.reason is None, (frames, v.reason)
