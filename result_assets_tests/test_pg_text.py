"""pg_text / jsonb_text against the real PostgreSQL: hostile strings (NUL, lone
surrogates, text that looks like escapes), NaN/Infinity and huge integers go through a
text and a jsonb column by COPY (as the catalog registers many sources) and through the
catalog's own publish (its rows as JSON), and read back as expected."""
from __future__ import annotations

import io
import json
import math

import psycopg2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from result_assets.store.pg_text import jsonb_text, pg_text

HOSTILE = [
    "", "plain", "a\x00b", "\x00", "\\u0000", "\\\\u0000", "\\", "\\x00", "\\ud800", "\ud800", "x\udcb9y",
    "\udbff\udc00", "한국어 거래량 돌파", "\u2028\u2029", "\x01\x1f\x7f", '"quoted", comma', "\n\r\t", "😀", "NaN",
]


def expected_text(text: str) -> str:
    """What Postgres gives back: NUL and lone surrogates as their 6-character escapes."""
    return "".join("\\u%04x" % ord(c) if c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def expected_json(value):
    if type(value) is str:
        return expected_text(value)
    if type(value) is float and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if type(value) is dict:
        return {expected_text(k): expected_json(v) for k, v in value.items()}
    if type(value) is list:
        return [expected_json(v) for v in value]
    return value


def same(expected, got) -> bool:
    """JSON equality where a float may come back as the int jsonb prints for it (1e16)."""
    if type(expected) is float:
        return type(got) in (int, float) and float(got) == expected
    if type(expected) is dict:
        return type(got) is dict and expected.keys() == got.keys() and all(same(v, got[k]) for k, v in expected.items())
    if type(expected) is list:
        return type(got) is list and len(expected) == len(got) and all(map(same, expected, got))
    return type(expected) is type(got) and expected == got


@pytest.fixture(scope="module")
def conn(project_home):
    from result_assets.store.stores import Stores

    connection = Stores.from_env().catalog.connect()
    with connection, connection.cursor() as cur:
        cur.execute("CREATE TEMP TABLE hostile (id integer, t text, j jsonb)")
    yield connection
    connection.close()


def round_trip(conn, texts: list[str], values: list) -> tuple[list[str], list]:
    """COPY (CSV, every field quoted, as the catalog does) pg_text(text) and jsonb_text(value); read back."""
    buf = io.StringIO()
    for i, (text, value) in enumerate(zip(texts, values)):
        fields = [str(i), pg_text(text), jsonb_text(value)]
        buf.write(",".join('"' + f.replace('"', '""') + '"' for f in fields) + "\n")
    buf.seek(0)
    with conn, conn.cursor() as cur:
        cur.execute("TRUNCATE hostile")
        cur.copy_expert("COPY hostile (id, t, j) FROM STDIN WITH (FORMAT csv)", buf)
        cur.execute("SELECT t, j FROM hostile ORDER BY id")
        rows = cur.fetchall()
    return [r[0] for r in rows], [r[1] for r in rows]


def test_hostile_strings_round_trip_through_text_and_jsonb(conn):
    values = [{"params": {text: [text, 1]}} for text in HOSTILE]
    texts, back = round_trip(conn, HOSTILE, values)
    assert texts == [expected_text(t) for t in HOSTILE]
    assert same([expected_json(v) for v in values], back)
    # text without NUL or surrogates comes back exactly, the literal backslash-u0000 included
    assert texts[HOSTILE.index("\\u0000")] == "\\u0000"
    assert back[HOSTILE.index("\\\\u0000")] == {"params": {"\\\\u0000": ["\\\\u0000", 1]}}


def test_the_catalogs_publish_keeps_hostile_texts_and_every_float(conn):
    """A batch's catalog rows go to Postgres as JSON (json_populate_recordset): texts and the
    jsonb query copies come back as pg_text and jsonb_text say, every float metric bit for bit
    (NaN, the infinities, -0.0, the smallest subnormal), integers past 32 bits exactly."""
    import struct

    from result_assets.store.catalog import SymbolRow, TaskRow
    from result_assets.store.stores import Stores

    catalog = Stores.from_env().catalog
    floats = [math.nan, math.inf, -math.inf, -0.0, 5e-324, 0.1 + 0.2, 1.7976931348623157e308]
    rows = [TaskRow(f"pg-text-{i}", f"pg-text-{i}", "quarantined", "0" * 64, 2**40 + i, source_mtime_ns=2**62 + i,
                    reason=text, strategy=text, params={text: [text, 1, floats[i % len(floats)]]},
                    total_return=floats[i % len(floats)], warnings=[text])
            for i, text in enumerate(HOSTILE)]
    symbols = [SymbolRow(r.task_id, 0, r.strategy, 7, sharpe_ratio=r.total_return) for r in rows]
    try:
        catalog.upsert(rows, symbols)
        connection = catalog.connect()
        with connection, connection.cursor() as cur:
            cur.execute("SELECT t.task_id, t.reason, t.strategy, t.params, t.warnings, t.total_return, t.source_bytes, "
                        "t.source_mtime_ns, s.symbol, s.sharpe_ratio FROM tasks t JOIN task_symbols s USING (task_id) "
                        "WHERE t.task_id LIKE 'pg-text-%' ORDER BY t.source_bytes")
            back = cur.fetchall()
    finally:
        catalog.close()
    bits = struct.Struct("<d").pack
    assert [b[0] for b in back] == [r.task_id for r in rows]
    for row, (_, reason, strategy, params, warnings, total, size, mtime, symbol, sharpe) in zip(rows, back):
        text = row.strategy
        assert reason == strategy == symbol == expected_text(text)
        assert same(expected_json(row.params), params) and warnings == [expected_text(text)]
        assert bits(total) == bits(sharpe) == bits(row.total_return)
        assert (size, mtime) == (row.source_bytes, row.source_mtime_ns)


def test_numbers_in_jsonb(conn):
    values = [math.nan, math.inf, -math.inf, 2**70, -(2**200), 10**4299, 1e-320, 5e-324, 1.7976931348623157e308,
              0.1, -0.0, 1.0000000000000002, True, None, [], {}]
    _, back = round_trip(conn, [""] * len(values), values)
    assert same([expected_json(v) for v in values], back)
    assert type(back[3]) is int and back[3] == 2**70  # exact, not a float


def test_the_old_escape_is_refused_by_jsonb(conn):
    """Why pg_text exists: the catalog's former `.replace("\\\\u0000", "\\\\\\\\u0000")` turns a
    string holding the six characters backslash-u-0-0-0-0 into a NUL escape jsonb refuses."""
    old = json.dumps({"p": "\\u0000"}, ensure_ascii=False).replace("\\u0000", "\\\\u0000")
    with pytest.raises(psycopg2.Error, match="u0000"):
        with conn, conn.cursor() as cur:
            cur.execute("SELECT %s::jsonb", (old,))
    with conn, conn.cursor() as cur:
        cur.execute("SELECT %s::jsonb", (jsonb_text({"p": "\\u0000"}),))
        assert cur.fetchone()[0] == {"p": "\\u0000"}


# Any code point: hypothesis leaves lone surrogates (Cs) out unless asked; NUL and
# escape-like pieces mixed in on purpose.
any_char = st.characters() | st.characters(categories=["Cs"])
any_text = st.lists(st.text(any_char, max_size=4) | st.sampled_from(["\x00", "\\u0000", "\\", "\\ud800", '"']),
                    max_size=4).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats() | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=10,
)


@given(st.lists(st.tuples(any_text, json_values), min_size=1, max_size=8))
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_value_round_trips(conn, pairs):
    texts, values = [p[0] for p in pairs], [p[1] for p in pairs]
    back_texts, back = round_trip(conn, texts, values)
    assert back_texts == [expected_text(t) for t in texts]
    assert same([expected_json(v) for v in values], back)
    assert all(pg_text(t) == t for t in texts if expected_text(t) == t)  # clean text is left alone
