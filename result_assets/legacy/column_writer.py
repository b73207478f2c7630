"""A task's file written straight from its stored columns: the bytes that json.dumps of the
rebuilt document would write (exact.write of the rebuilt, patched document), without
building the document.

The rebuilt document is the skeleton with each row list filled from the tables. Here the
skeleton is written by json.dumps with a placeholder string where each filled list goes,
and each list's text is made by Arrow, column by column: every value as its JSON text
(floats as Python's repr, timestamps in the file's spelling, strings escaped once per
distinct value), each member as `"key": value` or nothing where the row has no such key,
then the rows joined with the separators and indentation of the writer's style. No
Python object is built per row (only per distinct string, and per float whose text
orjson does not write as repr), which is what makes proving a conversion and exporting a
file cheaper than the dict path (docs/performance.md, "Writing a file from its columns").

`write_columns` covers what the stores hold for every task seen so far, row patches and
keys kept in `extras` included. Where it does not apply (a skeleton without the lists
the rows name, or holding the placeholder text) it raises Unwritable and the caller takes
the document path. Its output is only ever trusted after comparing it, or its SHA-256,
with the source's.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .parse import parse_written
from .reconstruct import CURVE_KEYS, SIGNAL_KEYS, key_ordered, symbol_groups
from .schema import TIMESTAMP_COLUMNS
from .spelled import render_timestamp, rows_by_code, spelled_array
from .timestamps import parse_timestamp

_PLACEHOLDER = "@@result-assets-rows:"  # a skeleton that holds this text is written the other way
_KEYS = {"signals": SIGNAL_KEYS, "performance_curve": CURVE_KEYS}
_STRING_KEYS = ("symbol", "type", "reason")


class Unwritable(ValueError):
    """What the stores hold for this task is not one the column writer covers."""


@dataclass(frozen=True)
class _Style:
    indent: int | None
    ensure_ascii: bool
    compact: bool

    @property
    def key_separator(self) -> str:
        return ":" if self.compact else ": "

    def member_separator(self, level: int) -> str:
        """Between two members of a container whose members stand at `level` spaces."""
        if self.indent is not None:
            return ",\n" + " " * level
        return "," if self.compact else ", "

    def brackets(self, open_: str, close: str, level: int) -> tuple[str, str]:
        """A non-empty container's opening and closing text, its members at `level`."""
        if self.indent is None:
            return open_, close
        return open_ + "\n" + " " * level, "\n" + " " * (level - self.indent) + close


def write_columns(skeleton_text: str, signals: pa.Table, curves: pa.Table, spelling) -> bytes:
    """The bytes exact.write(exact.apply(exact.rebuild(...)), spelling) gives, before the
    Spelling's number patches. Raises Unwritable where it does not apply."""
    try:
        return _write(skeleton_text, signals, curves, spelling)
    except pa.ArrowCapacityError as exc:  # a text past Arrow's 2 GiB per array: the document path has no such limit
        raise Unwritable(f"too large for one Arrow string array: {exc}") from exc


def _write(skeleton_text: str, signals: pa.Table, curves: pa.Table, spelling) -> bytes:
    if _PLACEHOLDER in skeleton_text:
        raise Unwritable("the skeleton holds the placeholder text")
    style = _Style(spelling.indent, spelling.ensure_ascii, spelling.compact)
    skeleton = parse_written(skeleton_text.encode())
    if type(skeleton) is not dict:
        raise Unwritable("the skeleton is not an object")
    tables = {"signals": key_ordered(signals).combine_chunks(),
              "performance_curve": key_ordered(curves).combine_chunks()}
    groups: dict[str, tuple[str, int]] = {}  # placeholder -> (list key, group number)
    bounds: dict[str, list[int]] = {}
    symbols_of: dict[str, list[int]] = {}
    for list_key, table in tables.items():
        starts, symbols = symbol_groups(table)
        bounds[list_key], symbols_of[list_key] = starts, symbols
        for number, symbol_idx in enumerate(symbols):
            holder = skeleton if symbol_idx == -1 else _symbol(skeleton, symbol_idx)
            target = holder.get(list_key) if type(holder) is dict else None
            if type(target) is not list or target:
                raise Unwritable(f"no empty {list_key} list for symbol_idx {symbol_idx}")
            placeholder = f"{_PLACEHOLDER}{len(groups)}"
            holder[list_key] = placeholder
            groups[placeholder] = (list_key, number)
    text = _dumps_at(skeleton, 0, style)
    spans = sorted((text.index(f'"{p}"'), p) for p in groups)
    lists: dict[tuple[str, int], list[bytes]] = {}  # (list key, the list's line indentation) -> group texts
    parts, at = [], 0
    for position, placeholder in spans:
        list_key, number = groups[placeholder]
        level = 0 if style.indent is None else _line_indentation(text, position)
        if (list_key, level) not in lists:
            lists[list_key, level] = _list_texts(list_key, tables[list_key], bounds[list_key],
                                                 symbols_of[list_key], level, style, spelling)
        parts += [text[at:position].encode(), lists[list_key, level][number]]
        at = position + len(placeholder) + 2
    parts.append(text[at:].encode())
    return b"".join(parts)


def _line_indentation(text: str, position: int) -> int:
    """The spaces that start the line holding `position` (the `"key": [` line of a list)."""
    line = text[text.rfind("\n", 0, position) + 1:position]
    return len(line) - len(line.lstrip(" "))


def _symbol(skeleton: dict, symbol_idx: int) -> object:
    symbols = skeleton.get("symbols")
    if type(symbols) is not list or not 0 <= symbol_idx < len(symbols):
        raise Unwritable(f"no symbol {symbol_idx}")
    return symbols[symbol_idx]


def _list_texts(list_key: str, table: pa.Table, bounds: list[int], symbols: list[int], level: int,
                style: _Style, spelling) -> list[bytes]:
    """The JSON text of each group's list (UTF-8), written at `level` (the indentation of its line)."""
    member_level = level + (style.indent or 0)
    rows = _row_texts(list_key, table, member_level, style, spelling, _patches(list_key, bounds, symbols, spelling))
    lists = pa.ListArray.from_arrays(pa.array(bounds, pa.int32()), rows)
    joined = pc.binary_join(lists, style.member_separator(member_level))
    open_, close = (text.encode() for text in style.brackets("[", "]", member_level))
    return [open_ + text + close for text in joined.cast(pa.binary()).to_pylist()]  # UTF-8 as it is


def _patches(list_key: str, bounds: list[int], symbols: list[int], spelling) -> dict[int, list]:
    """{row number in the table: its patch} of this list's row patches ("signals:<symbol_idx>:<seq>");
    a patch naming no stored row is ignored, as exact.apply ignores it."""
    first_row = {symbol_idx: (bounds[n], bounds[n + 1]) for n, symbol_idx in enumerate(symbols)}
    out = {}
    for key, patch in spelling.rows.items():
        name, symbol_idx, seq = key.split(":")
        start, end = first_row.get(int(symbol_idx), (0, 0))
        if name == list_key and 0 <= int(seq) < end - start:
            out[start + int(seq)] = patch
    return out


def _row_texts(list_key: str, table: pa.Table, level: int, style: _Style, spelling,
               patches: dict[int, list]) -> pa.Array:
    """Each row's object text, its members at `level` + indent, keys in the rebuilt order; rows
    with a patch, or with extras that re-set a typed key, written by Python from the same texts."""
    key_level = level + (style.indent or 0)
    texts = {key: _value_texts(list_key, key, table, key_level, style, spelling) for key in _KEYS[list_key]}
    extras = table.column("extras").chunk(0)
    extras_members, resets = _extras(extras, key_level, style, _KEYS[list_key])
    rows = _joined_rows(texts, extras_members, key_level, style, table.num_rows)
    special = sorted(set(patches) | resets)
    if not special:
        return rows
    mask = np.zeros(table.num_rows, bool)
    mask[special] = True
    at = pa.array(special, pa.int64())
    # each special row's member texts, one Arrow call per column (a scalar per key and row cost more)
    picked = {key: values.take(at).to_pylist() for key, values in texts.items()}
    row_extras = extras.take(at).to_pylist()
    replacements = [_row_in_python({key: column[n] for key, column in picked.items() if column[n] is not None},
                                   row_extras[n], patches.get(i), key_level, style) for n, i in enumerate(special)]
    return pc.replace_with_mask(rows, pa.array(mask), pa.array(replacements, pa.string()))


def _joined_rows(texts: dict[str, pa.Array], extras_members: pa.Array | None, level: int, style: _Style,
                 n: int) -> pa.Array:
    """Each row's `{...}` from its members' value texts, in as few Arrow calls as the nulls allow:
    a key no row lacks is constant text around its values in one join of the whole row."""
    separator = style.member_separator(level)
    open_, close = style.brackets("{", "}", level)
    parts: list = []  # constant text and value arrays, joined in one call
    for key, values in texts.items():
        if values.null_count == len(values):
            continue  # no row has this key
        prefix = json.dumps(key, ensure_ascii=style.ensure_ascii) + style.key_separator
        if values.null_count == 0:
            parts += [separator + prefix, values]
        else:  # a row without this key writes nothing for it
            parts.append(pc.binary_join_element_wise(separator + prefix, values, "").fill_null(""))
    if extras_members is not None:
        parts.append(extras_members)
    if not parts:
        return pa.array(["{}"] * n, pa.string())
    if isinstance(parts[0], str):  # the first member is in every row: "{" + it, no separator
        parts[0] = open_ + parts[0][len(separator):]
        return pc.binary_join_element_wise(*parts, close, "")
    body = pc.ascii_ltrim(pc.binary_join_element_wise(*parts, ""), characters=separator)
    return pc.if_else(pc.equal(body, ""), "{}", pc.binary_join_element_wise(open_, body, close, ""))


def _extras(extras: pa.Array, level: int, style: _Style, typed_keys) -> tuple[pa.Array | None, set[int]]:
    """The members each row's extras add (their text, "" for none), written once per distinct
    extras object; and the rows whose extras re-set a typed key (the rebuilt row updates it in
    place, so Python writes that row)."""
    if extras.null_count == len(extras):
        return None, set()
    encoded = extras.dictionary_encode()
    texts = encoded.dictionary.to_pylist()
    objects = parse_written(("[" + ",".join(texts) + "]").encode())  # one parse for all of them
    if type(objects) is not list or len(objects) != len(texts):
        objects = [parse_written(text.encode()) for text in texts]
    # a flat object's members by one JSONEncoder (json.dumps builds one per call)
    flat = json.JSONEncoder(ensure_ascii=style.ensure_ascii, allow_nan=True,
                            separators=(style.member_separator(level), style.key_separator)).encode
    member_texts, in_python = [], []
    for extra in objects:
        in_python.append(any(k in typed_keys for k in extra))
        member_texts.append(_members_text(extra, level, style, flat))
    indices = encoded.indices
    texts = pa.array(member_texts, pa.string()).take(indices).fill_null("")
    resets = set()
    if any(in_python):
        resets = {i for i, code in enumerate(indices.to_pylist()) if code is not None and in_python[code]}
    return texts, resets


def _members_text(extra: dict, level: int, style: _Style, flat) -> str:
    """The members of `extra` as they follow other members of an object whose members stand at
    `level`: each after a member separator. One json.dumps of the object, its braces cut off
    (`flat`: the encoder of a flat object at this level and style, the members' separator as
    its own)."""
    if not extra:
        return ""
    if not any(type(v) in (dict, list) for v in extra.values()):  # flat: the C encoder
        return style.member_separator(level) + flat(extra)[1:-1]
    written = _dumps_at(extra, level - (style.indent or 0), style)  # "{" members "}", closing at level - indent
    closing = 1 if style.indent is None else len(style.brackets("{", "}", level)[1])
    between_braces = written[1:-closing]  # indented: starts with the newline and indentation
    return ("," if style.indent is not None else style.member_separator(level)) + between_braces


def _dumps_at(value: object, level: int, style: _Style) -> str:
    """json.dumps of a value standing at `level` spaces (its nested lines indented from there)."""
    separators = (",", ":") if style.compact else None
    text = json.dumps(value, indent=style.indent, ensure_ascii=style.ensure_ascii, separators=separators,
                      allow_nan=True)
    return text.replace("\n", "\n" + " " * level) if style.indent is not None and level else text


def _row_in_python(row: dict[str, str], extras: str | None, patch: list | None, level: int,
                   style: _Style) -> str:
    """A row written as exact.apply leaves it: the rebuilt row's members ({key: value text}),
    updated by its extras, then its patch applied (a new row, changed values, or the file's keys)."""
    for key, value in (parse_written(extras.encode()) if extras is not None else {}).items():
        row[key] = _dumps_at(value, level, style)
    if patch is not None:
        kind, *rest = patch
        if kind == "row":
            return _dumps_at(rest[0], level - (style.indent or 0), style)
        keys, changes = (list(row), rest[0]) if kind == "set" else rest
        patched = {}
        for key in keys:
            if key in changes:
                patched[key] = _dumps_at(changes[key], level, style)
            elif "@" + key in changes:
                us = parse_timestamp(json.loads(row[key]))
                patched[key] = _dumps_at(render_timestamp(us, changes["@" + key]), level, style)
            else:
                patched[key] = row[key]
        row = patched
    if not row:
        return "{}"
    open_, close = style.brackets("{", "}", level)
    return open_ + style.member_separator(level).join(
        _key_text(k, style.ensure_ascii) + style.key_separator + v for k, v in row.items()) + close


def _key_text(key: str, ensure_ascii: bool) -> str:
    """A key's JSON text; short ones cached (rows repeat a few keys; a hostile file's long
    ones must not stay in a worker's memory)."""
    return _short_key_text(key, ensure_ascii) if len(key) <= 64 else json.dumps(key, ensure_ascii=ensure_ascii)


@lru_cache(maxsize=1024)
def _short_key_text(key: str, ensure_ascii: bool) -> str:
    return json.dumps(key, ensure_ascii=ensure_ascii)


def _value_texts(list_key: str, key: str, table: pa.Table, level: int, style: _Style, spelling) -> pa.Array:
    """The JSON text of each row's `key` value; null where the row has no such key."""
    if key in TIMESTAMP_COLUMNS:
        texts = _timestamp_texts(f"{list_key}.{key}", table.column(TIMESTAMP_COLUMNS[key]).chunk(0), spelling)
    elif key == "symbol":  # only v1 signals (the document's own list) carry their symbol
        texts = pc.if_else(pc.equal(table.column("symbol_idx").chunk(0), -1),
                           _string_texts(table.column("symbol").chunk(0), style), pa.scalar(None, pa.string()))
    elif key in _STRING_KEYS:
        texts = _string_texts(table.column(key).chunk(0), style)
    elif key == "indicators":
        texts = _map_texts(table.column(key).chunk(0), level, style)
    else:
        column = table.column(key).chunk(0)
        texts = _float_texts(column) if pa.types.is_floating(column.type) else _int_texts(column)
    if f"{list_key}.{key}" in spelling.null_keys:
        texts = texts.fill_null("null")  # the file writes these nulls out
    return texts


def _timestamp_texts(field: str, column: pa.Array, spelling) -> pa.Array:
    """The column in the file's spelling: its field's code, or each row's (row_timestamps)."""
    if field in spelling.row_timestamps:
        codes, digits = spelling.row_timestamps[field]
        if len(digits) != len(column):
            raise Unwritable(f"{field}: {len(digits)} row spellings for {len(column)} rows")
        # The commonest code spells the column, each other one only its own rows (measured on a
        # 40 MB file whose fields mix 3 spellings: learning it 615 -> 585 ms).
        found = rows_by_code(digits, len(codes))
        if found is None:
            raise Unwritable(f"{field}: a row spelling out of range")
        commonest, others = found
        texts = _json_texts(column, codes[commonest])
        for k, rows in others.items():
            mask = np.zeros(len(column), bool)
            mask[rows] = True
            texts = pc.replace_with_mask(texts, pa.array(mask), _json_texts(column.take(rows), codes[k]))
        return texts
    return _json_texts(column, spelling.timestamps.get(field, "TZ"))  # default: ISO UTC


def _json_texts(column: pa.Array, code: str) -> pa.Array:
    """A timestamp column spelled as `code` says, as JSON text: ints as digits, strings quoted."""
    spelled = spelled_array(column, code, quoted=True)
    return _int_texts(spelled) if pa.types.is_integer(spelled.type) else spelled


def _string_texts(column: pa.Array, style: _Style) -> pa.Array:
    """Strings as JSON text, each distinct value escaped once by json.dumps."""
    encoded = column.dictionary_encode()
    escaped = [json.dumps(s, ensure_ascii=style.ensure_ascii) for s in encoded.dictionary.to_pylist()]
    return pa.array(escaped, pa.string()).take(encoded.indices)


_REPR_MIN, _REPR_MAX = 1e-4, 1e16  # Python's repr writes fixed notation in [1e-4, 1e16)


def _float_texts(column: pa.Array) -> pa.Array:
    """Floats as json.dumps writes them (repr; NaN, Infinity). orjson writes the same shortest
    digits and layout in [1e-4, 1e16) and for zero; the rest (exponents, |x| < 1e-4, where
    orjson's text differs, and non-finite values) are written by Python."""
    values = column.to_numpy(zero_copy_only=False)  # a null reads as NaN: masked below
    valid = None if column.null_count == 0 else column.is_valid().to_numpy(zero_copy_only=False)
    text = _numpy_texts(values, valid)
    with np.errstate(invalid="ignore"):
        magnitude = np.abs(values)
        other = ~((magnitude >= _REPR_MIN) & (magnitude < _REPR_MAX) | (values == 0))
    if valid is not None:
        other &= valid
    if other.any():
        replacements = pa.array([_float_text(v) for v in values[other].tolist()], pa.string())
        text = pc.replace_with_mask(text, pa.array(other), replacements)
    return text


def _int_texts(column: pa.Array) -> pa.Array:
    """int64 values as JSON digits."""
    valid = None if column.null_count == 0 else column.is_valid().to_numpy(zero_copy_only=False)
    values = column.to_numpy() if valid is None else column.fill_null(0).to_numpy()
    return _numpy_texts(values, valid)


def _numpy_texts(values: np.ndarray, valid: np.ndarray | None) -> pa.Array:
    """Each number's text as orjson writes it, as a string array (null where not `valid`): one
    orjson call for the column, cut at its commas by numpy."""
    n = len(values)
    if n == 0:
        return pa.array([], pa.string())
    inner = np.frombuffer(orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY), np.uint8)[1:-1]
    if len(inner) >= 2**31:
        raise Unwritable("a column's text past 2 GiB (32-bit string offsets)")
    commas = np.flatnonzero(inner == ord(","))  # n - 1 of them: numbers hold none
    offsets = np.empty(n + 1, np.int32)
    offsets[0], offsets[n] = 0, len(inner) - (n - 1)
    offsets[1:n] = commas - np.arange(n - 1)
    data = inner[inner != ord(",")]
    validity = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    null_count = 0 if valid is None else int(n - valid.sum())
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data), validity, null_count)


def _float_text(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _map_texts(maps: pa.Array, level: int, style: _Style) -> pa.Array:
    """Each indicators map as a JSON object (members at `level` + indent); null for a null map."""
    offsets = maps.offsets.to_numpy()
    first, last = int(offsets[0]), int(offsets[-1])
    keys = _string_texts(maps.keys.slice(first, last - first), style)
    values = _float_texts(maps.items.slice(first, last - first))
    pairs = pc.binary_join_element_wise(keys, values, style.key_separator)
    member_level = level + (style.indent or 0)
    lists = pa.ListArray.from_arrays(pa.array(offsets - first, pa.int32()), pairs)
    open_, close = style.brackets("{", "}", member_level)
    texts = pc.binary_join_element_wise(open_, pc.binary_join(lists, style.member_separator(member_level)),
                                        close, "")
    texts = pc.if_else(pc.equal(pa.array(np.diff(offsets)), 0), "{}", texts)
    return pc.if_else(maps.is_null(), pa.scalar(None, pa.string()), texts)
