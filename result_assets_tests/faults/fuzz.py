"""Fuzz the migration with byte-level mutations of the real samples.

    python -m result_assets_tests.faults.fuzz --cases 10000 [--seed N] [--migrate 200]

Each case mutates one sample file (bit flips, truncation, byte insertions and
deletions, token swaps: numbers to strings, NaN/Infinity injection, deep nesting; and
the hostile classes: text that is not valid Unicode, NUL and backslash sequences in
strings, timestamps outside the spec's forms, numbers with more digits than a float64)
and runs it through validate + normalize + reconstruct + compare (pure, fast). The
outcome of a case is one of:

- lossless: valid, the rebuilt document equals the parsed source, and what the stores
  get (skeleton text, catalog text and jsonb copies) is text they can hold;
- quarantined: invalid, with a one-line reason that is valid text (counted per kind);
- FAILURE: an exception escaped, a quarantine without a reason, a lossy round trip, or
  a value the stores cannot hold.

`--migrate N` also pushes N mutated files through a real migration (one CLI run over a
fresh home, its embedded PostgreSQL stopped at the end) and audits the stores. Any
FAILURE is a bug: the exit code is 1 and each failing case is printed.
"""
from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from result_assets.legacy import compare_documents, dumps_document, reconstruct
from result_assets.migration.batch import RawResult, validate
from result_assets.migration.sources import LegacyFile
from result_assets.store.backups import sha256_hex
from result_assets.store.pg_text import jsonb_text, pg_text

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "tasks"
_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_TOKENS = [b"NaN", b"Infinity", b"-Infinity", b"null", b"true", b'"n/a"', b'""', b"[]", b"{}", b'"\\u0000"',
           b'"2024-13-45 25:00:00"', b"1e999", b"123456789012345678901234567890", b'"\xed\x95\x9c"']


# Put inside a JSON string: lone surrogate escapes, NUL, backslashes that look like escapes, a valid pair.
_HOSTILE_TEXT = [b"\\ud800", b"\\udcb9x", b"\\udfff\\ud800", b"\\u0000", b"\\\\u0000", b"\\\\", b"a\\u0000\\\\ud800",
                 b"\\ud83d\\ude00", b"\\\\x00"]
_ODD_TIMESTAMPS = [b'"2011-W01-2T00:05:23"', b'"2024-003T09:00:00"', b'"2024-01-03T09:00:00.123456789+09:00"',
                   b'"2024-01-03"', b'"2024-01-03T09:00:00,5"', b'"2024-01-03T09:00:00z"', b'"-1704240000000"',
                   b'"2024-01-03T09:00:00+09:60"', b'"2024-01-03T09:00:00.123456000+09:00"', b'"2024-01-03t09:00:00"']
_LONG_NUMBERS = [b"1.0000000000000000000001", b'"1.0000000000000000000001"', b"1e400", b'"1e-400"', b"-1E-400",
                 b"0.123456789012345678", b"123456789012345678901234567890", b'"123456789.123456789123"',
                 b"0.1000000000000000055511151231257827021181583404541015625", b"1.00000000000000001"]
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_TIMESTAMP_VALUE = re.compile(rb'"(?:exit_)?timestamp"\s*:\s*("[^"]*"|-?\d+)')


def sample_files() -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted(SAMPLES.glob("*/result.json"))}


# --- mutations: each returns (name, mutated bytes) ---

def bit_flip(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def insert_bytes(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))) + data[at:]


def delete_bytes(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    at = rng.randrange(len(data))
    return data[:at] + data[at + rng.randint(1, 64):]


def number_to_string(rng: random.Random, data: bytes) -> bytes:
    """A number becomes a string: numeric ("1.5"), or not ("x1.5")."""
    found = list(_NUMBER.finditer(data))
    if not found:
        return data
    m = rng.choice(found)
    text = m.group() if rng.random() < 0.5 else b"x" + m.group()
    return data[: m.start()] + b'"' + text + b'"' + data[m.end():]


def inject_token(rng: random.Random, data: bytes) -> bytes:
    """A number is replaced by NaN, Infinity, null, a string, a huge integer, ..."""
    return _replace_a_number(rng, data, _TOKENS)


def _replace_a_number(rng: random.Random, data: bytes, replacements) -> bytes:
    found = list(_NUMBER.finditer(data))
    if not found:
        return data
    m = rng.choice(found)
    return data[: m.start()] + rng.choice(replacements) + data[m.end():]


def deep_nesting(rng: random.Random, data: bytes) -> bytes:
    """A number becomes a value nested 50 to 5000 levels deep."""
    found = list(_NUMBER.finditer(data))
    if not found:
        return data
    m = rng.choice(found)
    depth = rng.choice([50, 90, 99, 120, 1000, 5000])
    return data[: m.start()] + b"[" * depth + m.group() + b"]" * depth + data[m.end():]


def swap_chunks(rng: random.Random, data: bytes) -> bytes:
    if len(data) < 4:
        return data
    a, b = sorted(rng.sample(range(len(data)), 2))
    n = rng.randint(1, min(64, b - a) or 1)
    return data[:a] + data[b:b + n] + data[a + n:b] + data[a:a + n] + data[b + n:]


def hostile_text(rng: random.Random, data: bytes) -> bytes:
    """Inside a string (a value or a key): a lone surrogate escape, NUL, backslash sequences."""
    found = list(_STRING.finditer(data))
    if not found:
        return data
    m = rng.choice(found)
    at = m.end() - 1 if rng.random() < 0.5 else m.start() + 1  # before the closing or after the opening quote
    return data[:at] + rng.choice(_HOSTILE_TEXT) + data[at:]


def odd_timestamp(rng: random.Random, data: bytes) -> bytes:
    """A timestamp (signal, exit or curve point) spelled outside the spec's forms."""
    found = list(_TIMESTAMP_VALUE.finditer(data))
    if not found:
        return data
    m = rng.choice(found)
    return data[: m.start(1)] + rng.choice(_ODD_TIMESTAMPS) + data[m.end(1):]


def long_number(rng: random.Random, data: bytes) -> bytes:
    """A number becomes one with more digits (or range) than a float64 holds, bare or as a string."""
    return _replace_a_number(rng, data, _LONG_NUMBERS)


MUTATIONS = {f.__name__: f for f in (bit_flip, truncate, insert_bytes, delete_bytes, number_to_string,
                                     inject_token, deep_nesting, swap_chunks, hostile_text, odd_timestamp,
                                     long_number)}


@dataclass
class Case:
    sample: str
    mutation: str
    data: bytes


def make_cases(n: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    samples = sample_files()
    names = sorted(samples)
    cases = []
    for _ in range(n):
        sample = rng.choice(names)
        mutation = rng.choice(sorted(MUTATIONS))
        data = samples[sample]
        for _ in range(rng.choice([1, 1, 1, 2, 3])):  # sometimes stack mutations
            data = MUTATIONS[mutation](rng, data)
        cases.append(Case(sample, mutation, data))
    return cases


def outcome(case: Case) -> tuple[str, str]:
    """(kind, detail): kind is "lossless", "quarantined" or "FAILURE"."""
    source = LegacyFile(case.sample, f"<{case.sample}>", len(case.data), 0)
    try:
        v = validate(RawResult(source, case.data, sha256_hex(case.data)))
        if v.result is None:
            if not v.reason or "\n" in v.reason or not _is_text(v.reason):
                return "FAILURE", f"quarantined without a one-line reason in valid text: {v.reason!r}"
            return "quarantined", reason_kind(v.reason)
        rebuilt = reconstruct(v.result.skeleton, v.result.signals, v.result.curves)
        differences = compare_documents(v.document, rebuilt)
        if differences:
            return "FAILURE", f"lossy: {differences[:3]}"
        problem = unstorable(v.result)
        if problem:
            return "FAILURE", problem
        return "lossless", ""
    except Exception as exc:  # anything escaping validate would fail the whole batch
        return "FAILURE", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-3)}"


def _is_text(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def unstorable(result) -> str | None:
    """Why the stores could not hold a migrated task's values, None when they can: the
    skeleton (a text column) must be valid text, the catalog's text and jsonb copies
    (through pg_text / jsonb_text, as the catalog writes them) valid text without NUL."""
    texts = {"skeleton": dumps_document(result.skeleton), "params": jsonb_text(result.params),
             "warnings": jsonb_text(result.warnings)}
    for name in ("strategy", "timeframe", "start_date", "end_date"):
        if getattr(result, name) is not None:
            texts[name] = pg_text(getattr(result, name))
    texts.update((f"symbol {s.symbol_idx}", pg_text(s.symbol)) for s in result.symbols if s.symbol is not None)
    for name, text in texts.items():
        if not _is_text(text) or (name != "skeleton" and "\x00" in text):
            return f"{name} cannot be stored: {text[:80]!r}"
    return None


def reason_kind(reason: str) -> str:
    """The reason without its positions and values, to count reasons by kind."""
    text = re.sub(r'"[^"]*"', '"…"', reason)
    text = re.sub(r"(?<!UTF-)\d+", "N", text)
    text = re.sub(r"\(.*?\)", "", text)
    return re.sub(r"^(symbols\[N\]|signals\[N\]|performance_curve\[N\])[^:]*: ", "", text).strip()[:70]


def run_pure(cases: list[Case]) -> tuple[Counter, Counter, list[tuple[Case, str]], float]:
    kinds, reasons, failures = Counter(), Counter(), []
    started = time.perf_counter()
    for case in cases:
        kind, detail = outcome(case)
        kinds[kind] += 1
        if kind == "quarantined":
            reasons[detail] += 1
        elif kind == "FAILURE":
            failures.append((case, detail))
    return kinds, reasons, failures, time.perf_counter() - started


def write_cases(cases: list[Case], source: Path) -> dict[str, str]:
    """Each case as <source>/fuzz_<i>_<mutation>/result.json; returns {task_id: expected outcome}."""
    expected = {}
    for i, case in enumerate(cases):
        task_id = f"fuzz_{i:05d}_{case.mutation}"
        (source / task_id).mkdir(parents=True)
        (source / task_id / "result.json").write_bytes(case.data)
        expected[task_id] = outcome(case)[0]
    return expected


def migration_failures(expected: dict[str, str], state) -> list[str]:
    """Where a real migration disagrees with the pure run, or the stores fail their audit."""
    failures = list(state.problems) + list(state.at_rest)
    for task_id, kind in expected.items():
        got = state.catalog.get(task_id, {}).get("status")
        want = "migrated" if kind == "lossless" else "quarantined"
        if got != want:
            failures.append(f"{task_id}: {got} in the catalog, the pure run said {kind}")
    return failures


def run_migration(cases: list[Case], work: Path) -> tuple[Counter, list[str], float]:
    """Write the cases as one source tree, migrate it in one batch (CLI, fresh home), audit the stores."""
    import json

    from result_assets_tests.faults.helpers import audit, run_cli, stop_home_server, stores_for

    source, home = work / "tasks", work / "home"
    expected = write_cases(cases, source)
    home.mkdir()
    started = time.perf_counter()
    try:
        proc = run_cli(home, "migrate", "--source-dir", str(source), "--batch-size", str(len(cases)), "--json",
                       timeout=600)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            return Counter(), [f"migration exit {proc.returncode}: {proc.stderr[-1500:]}"], seconds
        report = json.loads(proc.stdout)
        failures = migration_failures(expected, audit(stores_for(home), source))
        return Counter({"lossless": report["migrated"], "quarantined": report["quarantined"]}), failures, seconds
    finally:
        stop_home_server(home)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fuzz the migration with mutated sample files")
    parser.add_argument("--cases", type=int, default=10_000, help="mutated files through validate/round trip")
    parser.add_argument("--migrate", type=int, default=200, help="of those, how many also go through a real migration")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cases = make_cases(args.cases, args.seed)
    kinds, reasons, failures, seconds = run_pure(cases)
    print(f"{args.cases} cases (seed {args.seed}) in {seconds:.1f}s, {args.cases / seconds:.0f} cases/s")
    for kind in ("lossless", "quarantined", "FAILURE"):
        print(f"  {kind:<12} {kinds[kind]}")
    for reason, count in reasons.most_common(15):
        print(f"    {count:>6}  {reason}")
    for case, detail in failures[:20]:
        print(f"  FAILURE {case.sample} after {case.mutation}: {detail}")
    migrate_failures = []
    if args.migrate:
        with tempfile.TemporaryDirectory(prefix="fuzz_") as work:
            migrated, migrate_failures, seconds = run_migration(cases[: args.migrate], Path(work))
        print(f"{min(args.migrate, len(cases))} cases through a real migration in {seconds:.1f}s: "
              f"{migrated['lossless']} migrated, {migrated['quarantined']} quarantined, "
              f"{len(migrate_failures)} FAILURE")
        for line in migrate_failures[:20]:
            print(f"  FAILURE {line}")
    return 1 if failures or migrate_failures else 0


if __name__ == "__main__":
    sys.exit(main())
