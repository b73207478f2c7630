"""Bytes -> JSON document, with readable reasons for what cannot be read."""

from __future__ import annotations

import json
import math
import os
from decimal import Decimal, InvalidOperation

import numpy as np
import orjson

from .acyclic import cyclic_gc_paused


class InvalidResult(ValueError):
    """A legacy result file that cannot be migrated; `.reason` says why in one line."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# Bare NaN / Infinity literals (Python's json writer) are found with bytes.find
# (they are few) and quoted as unique sentinel strings when they stand where a
# value may: after , : [ and before , ] } (spaces allowed). Inside a string the
# inserted quotes always break the JSON, so orjson then fails and we fall back to
# the stdlib parser: never a silent wrong parse.
_JSON_SPACE = b" \t\r\n"
# orjson turns integers beyond 64 bits into floats (lossy); the stdlib keeps them.
# Spotting a 19+ digit integer literal: map digits to "0", "." to itself, all
# else to " ", then look for " " + 19 zeros (bytes.translate is far faster than
# a regex scan). A hit inside a string only costs the slower, exact parser.
_DIGIT_SHAPES = bytes(0x30 if 0x30 <= b <= 0x39 else 0x2E if b == 0x2E else 0x20 for b in range(256))
_LONG_INTEGER = b" " + b"0" * 19


def parse_document(raw: bytes) -> object:
    """Parse one legacy result file (any JSON value; normalize checks the shape).

    A number literal is read as the float64 it spells, or the file is invalid: one
    with more digits than a float64 holds is never rounded silently."""
    if raw.strip() and may_lose_digits(raw):
        return _parse_with_stdlib(raw, exact_numbers=True)
    return parse_unscreened(raw)  # no literal has more than 17 digits: orjson reads each exactly


def parse_unscreened(raw: bytes) -> object:
    """parse_document without its screen for over-long numbers (a fifth of its time on a
    large file): a literal with more digits than a float64 holds is read rounded. Only for
    callers that prove afterwards that every number was read exactly (the conversion does,
    when the bytes written again from the values hash to the file's) and parse again with
    parse_document when they cannot."""
    if not raw.strip():
        raise InvalidResult("empty file")
    return _parse_fast(raw)


def parse_written(raw: bytes) -> object:
    """Parse JSON this package wrote (dumps_document: float64 reprs only, integers of any
    size): skips parse_document's screen for long numbers."""
    if _LONG_INTEGER in b" " + raw.translate(_DIGIT_SHAPES):
        return _parse_with_stdlib(raw)
    return _parse_fast(raw)


def _parse_fast(raw: bytes) -> object:
    # One scan each, reused below; each starts at its capital letter, found by a one-byte
    # search (memchr: several times faster, and most files hold neither literal).
    nan_at, infinity_at = find_from_first(raw, b"NaN"), find_from_first(raw, b"Infinity")
    if nan_at == -1 and infinity_at == -1:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    else:
        doc = _parse_with_sentinels(raw, nan_at, infinity_at)
        if doc is not _FAILED:
            return doc
    return _parse_with_stdlib(raw)


_FAILED = object()


def find_from_first(raw: bytes, literal: bytes) -> int:
    """raw.find(literal), searching from the first byte the literal starts with (a one-byte
    search, memchr, answers most files alone)."""
    start = raw.find(literal[:1])
    return -1 if start == -1 else raw.find(literal, start)


def _parse_with_sentinels(raw: bytes, nan_at: int, infinity_at: int) -> object:
    """orjson speed for files with bare NaN/Infinity: quote them as unique sentinel strings,
    parse, then put the floats back. `nan_at`, `infinity_at`: the first of each (-1: none);
    a -Infinity is an Infinity after a minus sign (one scan of the file for both)."""
    spans = []  # (start, end, value) of each literal standing as a value
    at = nan_at
    while at != -1:
        end = at + 3
        if _stands_as_value(raw, at, end):
            spans.append((at, end, math.nan))
        at = raw.find(b"NaN", end)
    at = infinity_at
    while at != -1:
        end = at + 8
        start, value = (at - 1, -math.inf) if raw[at - 1:at] == b"-" else (at, math.inf)
        if _stands_as_value(raw, start, end):
            spans.append((start, end, value))
        at = raw.find(b"Infinity", end)
    if not spans:
        return _FAILED
    spans.sort()
    token = _unique_token(raw)
    sentinels: dict[str, float] = {}
    pieces, last = [], 0
    for number, (start, end, value) in enumerate(spans):
        text = f"{token}{number}"
        sentinels[text] = value
        pieces += [raw[last:start], b'"', text.encode(), b'"']
        last = end
    pieces.append(raw[last:])
    patched = b"".join(pieces)
    count = len(spans)
    try:
        doc = orjson.loads(patched)
    except orjson.JSONDecodeError:
        return _FAILED
    found = _replace_sentinels(doc, sentinels, count)
    return doc if found == count else _FAILED


def _stands_as_value(raw: bytes, start: int, end: int) -> bool:
    # A bounded look around; a literal after more spaces than that just takes
    # the stdlib path.
    before = raw[max(0, start - 64):start].rstrip(_JSON_SPACE)[-1:]
    after = raw[end:end + 64].lstrip(_JSON_SPACE)[:1]
    return before != b"" and before in b":,[" and after != b"" and after in b",]}"


def _unique_token(raw: bytes) -> str:
    # Random, so no string in a file (even one spelled with \u escapes) can
    # equal a sentinel except by astronomically unlikely chance.
    while True:
        token = f"nonfinite-{os.urandom(12).hex()}-"
        if token.encode() not in raw:
            return token


def _replace_sentinels(doc: object, sentinels: dict[str, float], expected: int) -> int:
    """Replace sentinel strings in place, breadth first, each level's objects before its lists,
    stopping once all are found: metrics (where NaN usually sits) are objects shallower than
    the rows, so a file's 100,000 signals are not walked for its profit_factor's Infinity."""
    found = 0
    level = [doc]
    while level:
        objects, lists = [], []
        for container in level:
            items = container.items() if type(container) is dict else enumerate(container)
            for key, value in items:
                t = type(value)
                if t is str:
                    if value in sentinels:
                        container[key] = sentinels[value]
                        found += 1
                        if found == expected:
                            return found
                elif t is dict:
                    objects.append(value)
                elif t is list:
                    lists.append(value)
        level = objects + lists
    return found


def _parse_with_stdlib(raw: bytes, exact_numbers: bool = False) -> object:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidResult(
            f"not UTF-8: invalid byte 0x{raw[e.start]:02x} at offset {e.start}"
        ) from None
    try:
        return json.loads(text, parse_float=_exact_float_literal) if exact_numbers else json.loads(text)
    except InvalidResult:
        raise
    except json.JSONDecodeError as e:
        hint = " (file truncated?)" if not text[e.pos:].strip() else ""
        if text.startswith("\ufeff"):
            hint = " (starts with a UTF-8 byte order mark)"
        raise InvalidResult(  # some messages end in "at" already ("Invalid control character at")
            f"not valid JSON: {e.msg.removesuffix(' at')} at line {e.lineno} column {e.colno}{hint}"
        ) from None
    except RecursionError:  # the JSON may be valid: it is nested far past the limit
        raise InvalidResult("nested too deeply to read (far more levels than the limit)") from None
    except ValueError:  # int(): Python reads integers of at most 4300 digits
        raise InvalidResult("an integer literal has more than 4300 digits (more than the parser reads)") from None


# The digit screen: 1 for the bytes of a number's digits ("0".."9", "."), 0 for the rest.
_DIGIT_OR_DOT = bytes(1 if 0x30 <= b <= 0x39 or b == 0x2E else 0 for b in range(256))
_ZERO, _DOT, _PLUS, _MINUS = b"0.+-"
# float64 writers (Python's repr, %.17g) never use more significant digits than this.
_FLOAT64_DIGITS = 17


def may_lose_digits(raw: bytes) -> bool:
    """True when raw may hold a number literal that float64 would round: a run of digits
    with more than 17 significant ones, or an exponent of 3 digits (overflow, underflow).
    Vectorized (numpy) because Python-written files hold millions of 17-digit floats;
    strings are scanned too, so a false alarm only costs the exact (stdlib) parse."""
    if not raw:
        return False
    text = np.frombuffer(raw, np.uint8)
    in_number = np.frombuffer(raw.translate(_DIGIT_OR_DOT), np.bool_)
    if in_number[0] or in_number[-1]:
        return True  # a bare number or a cut file: not worth the bookkeeping
    edges = np.flatnonzero(in_number[1:] != in_number[:-1]) + 1
    starts, ends = edges[0::2], edges[1::2]  # runs of digits and dots; text[end] is neither
    lengths = ends - starts
    after = starts[lengths >= 3]
    before = text[after - 1]
    sign = (before == _PLUS) | (before == _MINUS)
    e_at = np.where(sign, after - 2, after - 1)
    e_at = e_at[_is_e(text[e_at])]
    if e_at.size and _number_ends_at(text, starts, ends, e_at).any():
        return True  # e123, e-123, E+0123 after a number's digits
    first, end = starts[lengths > _FLOAT64_DIGITS], ends[lengths > _FLOAT64_DIGITS]
    # Leading zeros and the dot are not significant: step over them, a bounded number of
    # times (a longer run of zeros is suspect anyway).
    todo = np.arange(first.size)
    for _ in range(24):
        c = text[first[todo]]
        todo = todo[(c == _ZERO) | (c == _DOT)]
        if not todo.size:
            break
        first[todo] += 1
    else:
        return True
    significant = end - first  # characters from the first nonzero digit, a dot included
    if (significant > _FLOAT64_DIGITS + 1).any():
        return True
    # Exactly 18 characters: 17 digits and a dot (a float64 spelling), or 18 digits.
    at = first[significant == _FLOAT64_DIGITS + 1]
    has_dot = np.zeros(at.size, np.bool_)
    for k in range(_FLOAT64_DIGITS + 1):
        has_dot |= text[at + k] == _DOT
    return not has_dot.all()


# What stands before a JSON number: ':' ',' '[', a minus sign, or white space.
_BEFORE_NUMBER = np.zeros(256, np.bool_)
_BEFORE_NUMBER[list(b":,[- \t\r\n")] = True


def _number_ends_at(text: np.ndarray, starts: np.ndarray, ends: np.ndarray, at: np.ndarray) -> np.ndarray:
    """For each position in `at` (an "e"), whether a run of digits that starts where a
    JSON number may ends right there: "1.5e-400" is, the "3e706" of a hex id
    ("bt_..._e3e706") is not (it would only cost the slow parse)."""
    k = np.searchsorted(ends, at)
    k = np.minimum(k, ends.size - 1)
    ok = ends[k] == at
    first = starts[k]
    return ok & (first > 0) & _BEFORE_NUMBER[text[np.maximum(first - 1, 0)]]


def _is_e(byte: np.ndarray) -> np.ndarray:
    return (byte | 0x20) == ord("e")


def _exact_float_literal(text: str) -> float:
    value = float(text)
    if not exact_float(text, value):
        shown = text if len(text) <= 60 else text[:59] + "…"
        problem = "is beyond the range of" if value == 0 or not math.isfinite(value) else "has more digits than"
        raise InvalidResult(f"number {shown} {problem} a float64 (it would be read as {value!r})")
    return value


def exact_float(text: str, value: float) -> bool:
    """True when the float64 `value`, read from the decimal `text`, gives text back at
    text's own precision, so no digit of it was rounded away: "1.07219",
    "0.30000000000000004" and "1e-05" are exact; "1.0000000000000000000001", "1e400" and
    "1e-400" are not. "nan" and "inf" spelled out are exact."""
    if len(text) < 16 and "e" not in text and "E" not in text:
        return True  # at most 15 significant digits, normal range: float64 holds them
    if repr(value) == text:
        return True  # what Python wrote
    try:
        number = Decimal(text)
    except InvalidOperation:  # an exponent of 19 digits or more: past any float64 as well
        mantissa = text.lower().partition("e")[0]
        return value == 0 and not any(c in "123456789" for c in mantissa)  # 0e99999999999999999999 is 0
    if not number.is_finite():
        return True
    if not math.isfinite(value):
        return False
    if Decimal(repr(value)) == number:
        return True  # the shortest spelling, written another way (5.960464477539063e-8, 1.50)
    # or value printed with as many digits as text has (%.17g writers, exact expansions)
    digits = "".join(map(str, number.as_tuple().digits)).strip("0") or "0"
    return Decimal(format(value, f".{len(digits)}g")) == number


# From this many bytes of orjson's text, reading it back is cheaper than walking the document
# (measured: 4.5 against 1.3 us for a row's extras object, 1.9 against 2.9 ms for a 120 KB save).
_READ_BACK_FROM = 2048


def dumps_document(doc: object) -> str:
    """JSON text; NaN/Infinity as bare literals, non-ASCII kept as UTF-8. Written by orjson
    whenever it writes the value exactly (json.dumps is over 10x slower). orjson writes NaN
    and infinities as null and says nothing, so its text is read back and compared with the
    document (both in C: faster than a walk in Python). When they differ only by non-finite
    floats, those go in as sentinel strings that come out bare."""
    return dumps_read_back(doc)[0]


def dumps_read_back(doc: object) -> tuple[str, object | None]:
    """dumps_document's text, and that text parsed when the write read it back whole (what
    parse_unscreened gives for it: orjson's own parse of orjson's text, equal to the
    document, its non-finite floats put back where orjson wrote null); None when it did not
    (a small value, orjson's fallbacks). An application save converts the text next: its
    parse is then already done."""
    try:
        written = orjson.dumps(doc)
    except orjson.JSONEncodeError:  # ints beyond 64 bits, keys that are not strings...
        return _dumps_checked(doc), None
    if len(written) < _READ_BACK_FROM:  # a row's extras: the walk costs less than reading back
        return (written.decode() if _orjson_exact(doc, 0) else _dumps_checked(doc)), None
    with cyclic_gc_paused():  # read back: a document's worth of small containers
        back = orjson.loads(written)
        if back == doc:
            return written.decode(), back
        token, count = f"nonfinite-{os.urandom(12).hex()}-", [0]
        prepared = _sentinels_for_lost_floats(doc, back, 0, token, count)
    if prepared is _FAILED or not count[0]:
        return _dumps_checked(doc), None
    text = _with_bare_nonfinite(prepared, token, count[0])
    if text is None:
        return _dumps_checked(doc), None
    # `back` now holds the floats the parse of `text` reads (measured: a save's second parse,
    # with its sentinels, was a tenth of a document's conversion); a bare float has no holder
    return text, (back if type(back) in (dict, list) else None)


def _sentinels_for_lost_floats(value: object, back: object, depth: int, token: str, count: list[int]) -> object:
    """value with each non-finite float that orjson wrote as null (`back`: value written by
    orjson and read again) as the string "<token><its repr>", containers copied on the way to
    one and equal branches skipped by one comparison in C; _FAILED where value and back differ
    otherwise. Each such null in `back` (orjson's fresh containers) becomes the float a parse
    of the bare literal gives."""
    t = type(value)
    if t is float:
        if value - value != 0.0 and back is None:
            count[0] += 1
            return f"{token}{value!r}"
        return _FAILED
    if depth > 200 or type(back) is not t or len(value) != len(back):
        return _FAILED
    if t is dict:
        copy = dict(value)
        for key, item in value.items():
            other = back.get(key, _FAILED)
            if item is not other and item != other:
                copy[key] = new = _sentinels_for_lost_floats(item, other, depth + 1, token, count)
                if new is _FAILED:
                    return _FAILED
                if type(item) is float:
                    back[key] = _parsed_nonfinite(item)
        return copy
    if t is list:
        copy = list(value)
        for i, (item, other) in enumerate(zip(value, back)):
            if item is not other and item != other:
                copy[i] = new = _sentinels_for_lost_floats(item, other, depth + 1, token, count)
                if new is _FAILED:
                    return _FAILED
                if type(item) is float:
                    back[i] = _parsed_nonfinite(item)
        return copy
    return _FAILED


def _parsed_nonfinite(value: float) -> float:
    """What a parse gives for the bare literal a non-finite float is written as."""
    return math.nan if value != value else (math.inf if value > 0 else -math.inf)


def _with_bare_nonfinite(prepared: object, token: str, count: int) -> str | None:
    """orjson's text of a document whose non-finite floats are sentinel strings, with them
    bare again; None when orjson cannot write it or a string of the document holds the token."""
    try:
        text = orjson.dumps(prepared).decode()
    except orjson.JSONEncodeError:  # lone surrogates: json.dumps writes them
        return None
    if text.count(token) != count:
        return None
    for value, literal in (("nan", "NaN"), ("-inf", "-Infinity"), ("inf", "Infinity")):
        text = text.replace(f'"{token}{value}"', literal)
    return text


def _dumps_checked(doc: object) -> str:
    """dumps_document by walking the document for what orjson cannot write exactly."""
    if _orjson_exact(doc, 0):
        return orjson.dumps(doc).decode()
    token, count = f"nonfinite-{os.urandom(12).hex()}-", [0]
    prepared = _nonfinite_as_sentinels(doc, 0, token, count)
    if prepared is not _FAILED and count[0]:
        text = _with_bare_nonfinite(prepared, token, count[0])
        if text is not None:
            return text
    if _has_key_not_a_string(doc, 0):
        raise NonStringKeys("the document has object keys that are not strings")
    return json.dumps(doc, ensure_ascii=False, allow_nan=True, separators=(",", ":"))


class NonStringKeys(TypeError):
    """Object keys that are not strings: JSON text holds only strings, so a reader would get
    other keys back than the document had (with_string_keys says which)."""


def _has_key_not_a_string(value: object, depth: int) -> bool:
    if depth > 200:
        return False  # json.dumps refuses it on its own
    if type(value) is dict:
        return any(type(k) is not str or _has_key_not_a_string(v, depth + 1) for k, v in value.items())
    if type(value) is list:
        return any(_has_key_not_a_string(v, depth + 1) for v in value)
    return False


def with_string_keys(value: object, path: str = "") -> tuple[object, list[str]]:
    """(value with every object key as json.dumps writes it: 1 -> "1", True -> "true", None ->
    "null", 1.5 -> "1.5"; the paths of the keys it changed). ValueError when two keys of one
    object become one string (json.loads would keep one of them only); TypeError for a key
    JSON has no spelling for."""
    if type(value) is list:
        items, changed = [], []
        for i, item in enumerate(value):
            new, more = with_string_keys(item, f"{path}[{i}]")
            items.append(new)
            changed += more
        return items, changed
    if type(value) is not dict:
        return value, []
    out, changed = {}, []
    for key, item in value.items():
        name = key if type(key) is str else _json_key(key)
        where = f"{path}.{name}" if path else name
        if name in out:
            raise ValueError(f"two keys at {path or 'the top level'} are both {name!r} in JSON: one would be lost")
        if name is not key:
            changed.append(where)
        out[name], more = with_string_keys(item, where)
        changed += more
    return out, changed


def _json_key(key: object) -> str:
    """A key that is not a str, as json.dumps writes it."""
    if isinstance(key, str):
        return str(key)
    if key is True or key is False or key is None:
        return json.dumps(key)
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        return json.dumps(float(key))  # repr, NaN, Infinity
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _orjson_exact(value: object, depth: int) -> bool:
    """True when orjson writes `value` exactly (it turns NaN/inf into null and
    refuses ints beyond 64 bits and non-str keys)."""
    t = type(value)
    if t is str or t is bool or value is None:
        return True
    if t is float:
        return value - value == 0.0  # False for NaN and infinities
    if t is int:
        return -(2**63) <= value < 2**64
    if depth > 200:
        return False
    if t is dict:
        for k, v in value.items():
            if type(k) is not str or not _orjson_exact(v, depth + 1):
                return False
        return True
    if t is list:
        for v in value:
            if not _orjson_exact(v, depth + 1):
                return False
        return True
    return False


def _nonfinite_as_sentinels(value: object, depth: int, token: str, count: list[int]) -> object:
    """value with each non-finite float as the string "<token><its repr>" (a copy of the
    containers on the way to one, the rest shared); _FAILED where orjson could not write
    the rest exactly either (as _orjson_exact judges)."""
    t = type(value)
    if t is float and value - value != 0.0:
        count[0] += 1
        return f"{token}{value!r}"
    if t is not dict and t is not list:
        return value if _orjson_exact(value, depth) else _FAILED
    if depth > 200:
        return _FAILED
    copy = None
    for key, item in (value.items() if t is dict else enumerate(value)):
        if t is dict and type(key) is not str:
            return _FAILED
        new = _nonfinite_as_sentinels(item, depth + 1, token, count)
        if new is _FAILED:
            return _FAILED
        if new is not item:
            if copy is None:
                copy = dict(value) if t is dict else list(value)
            copy[key] = new
    return value if copy is None else copy


def copy_json(value: object) -> object:
    """A deep copy of a parsed JSON value (dicts and lists; scalars are immutable)."""
    if type(value) is dict:
        return {k: copy_json(v) for k, v in value.items()}
    if type(value) is list:
        return [copy_json(v) for v in value]
    return value
