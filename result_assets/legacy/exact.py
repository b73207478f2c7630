"""A task's exact bytes, written again from its stored values.

Every legacy file seen so far is one of four `json.dumps` calls (indent None or 2,
ensure_ascii True or False): keys in insertion order, floats as Python's repr, bare
NaN/Infinity. The rows keep every value a file holds except how each timestamp was
spelled (they hold UTC instants), and the skeleton keeps the rest as exact JSON. So a
file comes back byte for byte from the document rebuilt from its rows (reconstruct.py)
and a small `Spelling`:

- the writer's style (indent, ensure_ascii, compact separators);
- per timestamp field (signals' timestamp and exit_timestamp, curve points' timestamp)
  the spelling of the file's first timestamp in it (nulls skipped): ISO with "T" or a
  space and its offset ("Z", "+09:00", "+0900", or none: Seoul wall time), or epoch
  milliseconds as an int or a string;
- for a field whose rows mix spellings, each row's spelling (one base-36 digit);
- the row fields whose nulls the file writes out (`"exit_timestamp": null` of an open
  position) rather than leaving the key out;
- patches for what still differs: per row the values spelled otherwise (a numeric
  string, an explicit null, a timestamp spelling where the field keeps no per-row
  spellings), and per number the text another writer gave it (orjson's floats that
  differ from Python's repr);
- or, for a file that is orjson's own text of its document (an application's save),
  `by_orjson`: written again by orjson from the rebuilt document.

`learn` finds the Spelling that reproduces a file (and the bytes it writes), or None when
nothing here does (the store then keeps the file's text). `rebuild` spells the timestamps (Arrow, column by
column), `apply` patches the rows: together the file's document (what json.loads of the
file gives); `write` gives its bytes. `written_from_columns` gives the same bytes without
building the document (column_writer.py): `learn` writes with it (a file that needs no
row patch is learned without rebuilding its document), and `file_bytes` uses it when the
bytes hash to the source's. `file_document`
and `file_bytes` do it all from what the store keeps.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from itertools import count, islice

import numpy as np
import orjson
import pyarrow as pa

from .column_writer import Unwritable, write_columns
from .normalize import stored_as_float
from .parse import dumps_document, exact_float, find_from_first, parse_document, parse_written
from .reconstruct import key_ordered, reconstruct
from .schema import CURVE_FLOAT_KEYS, SIGNAL_FLOAT_KEYS, TIMESTAMP_COLUMNS
from .spelled import NO_VALUES, render_timestamp, spelled_by_row, spelled_column, timestamp_code
from .timestamps import parse_timestamp

# (row list, field): the timestamp fields of the row lists.
TIMESTAMP_FIELDS = (("signals", "timestamp"), ("signals", "exit_timestamp"), ("performance_curve", "timestamp"))
ROW_LISTS = ("signals", "performance_curve")
_TIMESTAMP_NAMES = frozenset(name for _, name in TIMESTAMP_FIELDS)
_DICT = frozenset((dict,))

@dataclass
class Spelling:
    indent: int | None  # json.dumps(indent=...)
    ensure_ascii: bool
    compact: bool = False  # separators (",", ":"), as dumps_document writes
    timestamps: dict[str, str] = field(default_factory=dict)  # {"signals.timestamp": code}
    rows: dict[str, list] = field(default_factory=dict)  # {"signals:<symbol_idx>:<seq>": row patch}
    # [offset in the written bytes, length, the file's text]: numbers another writer spelled
    # otherwise than Python's repr (orjson: 5.96e-05 as 0.0000596...)
    numbers: list[list] = field(default_factory=list)
    # A field whose rows mix spellings: {"signals.timestamp": [[code, ...], "0120..."]}, each
    # row's code as a base-36 digit into the list, rows in (symbol_idx, seq) order: one
    # character per row instead of a patch per row, and spelled column by column.
    row_timestamps: dict[str, list] = field(default_factory=dict)
    # Row fields ("signals.exit_timestamp") whose every null the file writes as `"key": null`
    # (a null otherwise means the key is absent): one name instead of a patch per row.
    null_keys: list[str] = field(default_factory=list)
    # The file is orjson's text of its document (as dumps_document writes an application's
    # save): written so again, from the rebuilt document.
    by_orjson: bool = False

    def to_json(self) -> str:
        fields = {"indent": self.indent, "ensure_ascii": self.ensure_ascii, "compact": self.compact,
                  "timestamps": self.timestamps, "rows": self.rows, "numbers": self.numbers}
        if self.row_timestamps:  # absent otherwise: a Spelling without them reads as before
            fields["row_timestamps"] = self.row_timestamps
        if self.null_keys:
            fields["null_keys"] = self.null_keys
        if self.by_orjson:
            fields["by_orjson"] = True
        return json.dumps(fields, separators=(",", ":"), allow_nan=True)  # ASCII: safe in Postgres text

    @classmethod
    def from_json(cls, text: str) -> "Spelling":
        return cls(**json.loads(text))


def rebuild(skeleton_text: str, signals, curves, timestamps: dict[str, str] | None = None,
            row_timestamps: dict[str, list] | None = None, spelled: dict[str, list] | None = None,
            null_keys: list[str] | None = None, bare_nonfinite: bool = False) -> dict:
    """The document rebuilt from a skeleton's stored text and rows, its timestamps spelled
    as `timestamps` says (default ISO 8601 UTC), row by row where `row_timestamps` says,
    the nulls of the `null_keys` fields written out. `bare_nonfinite`: for writing it with
    orjson, the skeleton's NaN and infinities as their bare literals (orjson.Fragment)."""
    spell = None if not timestamps and not row_timestamps and not spelled else \
        _spelled(timestamps or {}, row_timestamps or {}, spelled or {})
    skeleton = parse_written(skeleton_text.encode())
    if bare_nonfinite and _nonfinite_literals(skeleton_text.encode()):
        skeleton = _as_fragments(skeleton)
    return reconstruct(skeleton, signals, curves, spell, frozenset(null_keys or ()))


def _as_fragments(value: object) -> object:
    """value (a parsed skeleton) with each non-finite float as the literal JSON text
    dumps_document writes for it: orjson writes a Fragment as it is, and a float NaN as null."""
    t = type(value)
    if t is float:
        return value if value - value == 0.0 else _FRAGMENT_OF[repr(value)]
    if t is dict:
        return {k: _as_fragments(v) for k, v in value.items()}
    if t is list:
        return [_as_fragments(v) for v in value]
    return value


_FRAGMENT_OF = {"nan": orjson.Fragment(b"NaN"), "inf": orjson.Fragment(b"Infinity"),
                "-inf": orjson.Fragment(b"-Infinity")}


def _nonfinite_literals(text: bytes) -> int:
    """How many times NaN or Infinity is spelled in text (as a value or not)."""
    return (0 if find_from_first(text, b"NaN") == -1 else text.count(b"NaN")) + \
        (0 if find_from_first(text, b"Infinity") == -1 else text.count(b"Infinity"))


def file_document(skeleton_text: str, signals, curves, spelling: str | None, exact_text: str | None,
                  spelled: dict[str, list] | None = None) -> dict:
    """What json.loads of the stored file gives, from what the store keeps of it. A task
    stored before spellings were kept (no spelling) comes back as rebuilt. `spelled`: timestamp
    fields already spelled (spelled_in_bulk), rows in (symbol_idx, seq) order."""
    if exact_text is not None:
        return parse_document(exact_text.encode("utf-8"))
    if spelling is None:
        return rebuild(skeleton_text, signals, curves)
    return rebuilt_file(skeleton_text, signals, curves, Spelling.from_json(spelling), spelled)


def spelled_in_bulk(tasks: dict[str, tuple[str, pa.Table, pa.Table]]) -> dict[str, dict[str, list]]:
    """{task_id: {field: its timestamps spelled}} for many tasks at once, from {task_id:
    (spelling JSON, key-ordered signal rows, key-ordered curve rows)}: one Arrow call per
    field and spelling instead of one per task, field and spelling (the calls' fixed cost
    was a fifth of a bulk read). Rows that mix spellings pick theirs as _spelled does."""
    wanted: dict[tuple[str, str], list[tuple[str, pa.ChunkedArray]]] = {}
    row_codes: dict[tuple[str, str], list] = {}
    for task_id, (spelling, signals, curves) in tasks.items():
        parsed = Spelling.from_json(spelling)
        tables = {"signals": signals, "performance_curve": curves}
        for list_key, name in TIMESTAMP_FIELDS:
            field_name, column = f"{list_key}.{name}", tables[list_key].column(TIMESTAMP_COLUMNS[name])
            if not len(column):
                continue
            if field_name in parsed.row_timestamps:
                codes, digits = parsed.row_timestamps[field_name]
                if len(digits) != len(column):
                    continue  # left to file_document, which says what is wrong
                row_codes[(task_id, field_name)] = [codes, digits]
            else:
                codes = [parsed.timestamps.get(field_name, "TZ")]  # no code: ISO 8601 UTC
            for code in codes:
                wanted.setdefault((field_name, code), []).append((task_id, column))
    spelled_as: dict[tuple[str, str, str], list] = {}
    for (field_name, code), columns in wanted.items():
        chunks = [chunk for _, column in columns for chunk in column.chunks]
        values = spelled_column(pa.chunked_array(chunks, columns[0][1].type), code)
        at = 0
        for task_id, column in columns:
            spelled_as[(task_id, field_name, code)] = values[at:at + len(column)]
            at += len(column)
    out: dict[str, dict[str, list]] = {task_id: {} for task_id in tasks}
    for (task_id, field_name, code), values in spelled_as.items():
        if (task_id, field_name) not in row_codes:
            out[task_id][field_name] = values
    for (task_id, field_name), (codes, digits) in row_codes.items():
        out[task_id][field_name] = _by_row([spelled_as[(task_id, field_name, code)] for code in codes], digits)
    return out


def _by_row(columns: list[list], digits: str) -> list:
    """Each row's value from the column its base-36 digit names (row_timestamps)."""
    return [columns[int(d, 36)][i] for i, d in enumerate(digits)]


def file_bytes(skeleton_text: str, signals, curves, spelling: str | None, exact_text: str | None,
               sha256: str | None = None) -> bytes:
    """The stored file's exact bytes (a task stored before spellings: its rebuilt JSON): written
    from the columns when they hash to `sha256` (the source's), else through the rebuilt document."""
    if exact_text is not None:
        return exact_text.encode("utf-8")
    if spelling is None:
        return dumps_document(rebuild(skeleton_text, signals, curves)).encode()
    parsed = Spelling.from_json(spelling)
    if parsed.by_orjson:
        written = orjson_text(rebuilt_file(skeleton_text, signals, curves, parsed, bare_nonfinite=True))
        if written is not None and (sha256 is None or hashlib.sha256(written).hexdigest() == sha256):
            return written
    written = _from_columns(skeleton_text, signals, curves, parsed, sha256)
    if written is not None:
        return written
    return write(rebuilt_file(skeleton_text, signals, curves, parsed), parsed)


def rebuilt_file(skeleton_text: str, signals, curves, spelling: Spelling,
                 spelled: dict[str, list] | None = None, bare_nonfinite: bool = False) -> dict:
    """The file's document, rebuilt and patched as its Spelling says (`spelled`: timestamp
    fields already spelled, as rebuild takes them; `bare_nonfinite`: as rebuild takes it)."""
    return apply(rebuild(skeleton_text, signals, curves, spelling.timestamps, spelling.row_timestamps, spelled,
                         spelling.null_keys, bare_nonfinite), spelling)


def orjson_text(document: object) -> bytes | None:
    """orjson's text of document; None where orjson cannot write it."""
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError:  # ints beyond 64 bits, lone surrogates: not orjson's file
        return None


def written_from_columns(skeleton_text: str, signals, curves, spelling: Spelling) -> bytes:
    """What `write(apply(rebuild(...)), spelling)` gives, written straight from the columns
    (column_writer.py) and the Spelling's number patches. Raises Unwritable where the column
    writer does not apply."""
    return _with_numbers(write_columns(skeleton_text, signals, curves, spelling), spelling.numbers)


def _from_columns(skeleton_text: str, signals, curves, spelling: Spelling, sha256: str | None) -> bytes | None:
    """The file's bytes written from the columns, when they hash to `sha256` (else None: the
    document path, which the column writer mirrors, writes them)."""
    if sha256 is None:
        return None
    try:
        written = written_from_columns(skeleton_text, signals, curves, spelling)
    except Unwritable:
        return None
    return written if hashlib.sha256(written).hexdigest() == sha256 else None


def write(document: object, spelling: Spelling) -> bytes:
    """The bytes of `document` (the file's, after `apply`) in the writer's style."""
    separators = (",", ":") if spelling.compact else None
    written = json.dumps(document, indent=spelling.indent, ensure_ascii=spelling.ensure_ascii,
                         separators=separators, allow_nan=True).encode()
    return _with_numbers(written, spelling.numbers)


def _with_numbers(written: bytes, numbers: list[list]) -> bytes:
    if not numbers:
        return written
    parts, at = [], 0
    for offset, length, text in numbers:
        parts += [written[at:offset], text.encode()]
        at = offset + length
    parts.append(written[at:])
    return b"".join(parts)


def apply(rebuilt: dict, spelling: Spelling) -> dict:
    """The file's document from the one rebuilt with the Spelling's timestamps: its row
    patches applied (changed in place, returned)."""
    if not spelling.rows:
        return rebuilt
    holders = dict(_holders(rebuilt))
    for key, patch in spelling.rows.items():  # patches are few: find each row, not each row's patch
        list_key, symbol_idx, seq = key.split(":")
        holder = holders.get(int(symbol_idx))
        rows = holder.get(list_key) if type(holder) is dict else None
        at = int(seq)
        if type(rows) is list and 0 <= at < len(rows):
            rows[at] = _patched(rows[at], patch)
    return rebuilt


def learn(raw: bytes, source: object, skeleton_text: str, signals, curves,
          spelled_as: dict[str, str] | None = None, numbers_as_strings: bool = True,
          row_spellings: dict[str, list] | None = None) -> tuple[Spelling, bytes] | None:
    """The Spelling under which the document rebuilt from this skeleton text and these rows
    writes exactly `raw`, whose parse is `source`, and the bytes it writes; None when
    nothing here reproduces the file. The bytes are written as readers will write them:
    from the skeleton text, the rows and the Spelling's JSON (its row patches read back).

    Most files need no row patch: for them the columns are written (column_writer.py) in
    the style the bytes suggest, and no document is rebuilt. The others are rebuilt and
    compared row by row to find their patches. `spelled_as`: normalize's NormalizedResult.spelled_as
    of these rows, the fields it read whole in one spelling (none looked at again here);
    `numbers_as_strings`: its NormalizedResult.numbers_as_strings (False: no float field held
    a numeric string it stored as a float, so no row needs a patch for one); `row_spellings`:
    its NormalizedResult.row_spellings, the rows' codes it read of the fields that mix them."""
    if type(source) is not dict:
        return None
    tables = {"signals": signals, "performance_curve": curves}
    spelling = Spelling(None, True, timestamps=_timestamp_codes(source))
    listed = {list_key: _list_rows(source, list_key) for list_key in tables}  # one walk per list
    row_spellings = row_spellings or {}
    uniform, mixed = _uniform_fields(listed, spelling.timestamps, tables, spelled_as or {}, set(row_spellings))
    spelling.row_timestamps = _row_codes(listed, spelling.timestamps, {k: t.num_rows for k, t in tables.items()},
                                         skip=set(uniform), mixed=mixed, known=row_spellings)
    spelling.null_keys = _null_keys(source, tables)
    # The commonest reason a file needs row patches: numbers written as strings. Their
    # patches are known without rebuilding the document (measured: a 312 KB file with 33
    # such rows, 30 -> 20 ms); the bytes still decide.
    spelling.rows = _numeric_string_patches(source) if numbers_as_strings else {}
    in_skeleton = _nonfinite_literals(skeleton_text.encode())
    orjsons = _maybe_orjsons_text(raw, in_skeleton)
    bare = orjsons and in_skeleton > 0  # orjson's text needs Fragments
    rebuilt = None  # the document rebuilt for orjson's text, kept for the row patches below if unpatched
    found = None
    if orjsons:
        if spelling.rows:
            spelling.rows = Spelling.from_json(spelling.to_json()).rows  # what readers will apply
        document = rebuilt_file(skeleton_text, signals, curves, spelling,
                                {k: v for k, v in uniform.items() if v is not None}, bare_nonfinite=bare)
        found = _written_by_orjson(raw, spelling, document)
        rebuilt = None if spelling.rows or bare else document  # a Fragment is no float to compare or dump
    if found is None:
        found = _written_as(raw, spelling, _writer(skeleton_text, signals, curves, None), islice(_styles(raw), 1))
    if found is not None:
        return found
    spelling.rows = {}
    if rebuilt is None:
        uniform = {key: _spelled_field(key, tables, spelling.timestamps) if spelled is None else spelled
                   for key, spelled in uniform.items()}
        rebuilt = rebuild(skeleton_text, signals, curves, spelling.timestamps, spelling.row_timestamps, uniform,
                          spelling.null_keys)
    for key, source_row, row in _row_pairs(source, rebuilt):
        # == is C-fast; what it misses (1 vs 1.0 inside a row) the byte check below catches
        if not (type(row) is dict and row == source_row and list(row) == list(source_row)):
            spelling.rows[key] = _row_patch(row, source_row)
    spelling.rows = Spelling.from_json(spelling.to_json()).rows  # what readers will apply
    apply(rebuilt, spelling)
    if orjsons:  # written as file_bytes writes it (the Fragments in a rebuild of their own)
        found = _written_by_orjson(raw, spelling, rebuilt_file(skeleton_text, signals, curves, spelling,
                                                               bare_nonfinite=True) if bare else rebuilt)
    return found or _written_as(raw, spelling, _writer(skeleton_text, signals, curves, rebuilt), _styles(raw))


def _maybe_orjsons_text(raw: bytes, skeleton_nonfinite: int = 0) -> bool:
    """Whether raw may be orjson's text of its document, as dumps_document writes it: one
    line, no spaces, and any NaN or Infinity in the skeleton (orjson writes those as null;
    dumps_document puts them back bare, and the rebuild can do the same for the skeleton's
    own: an application's metrics, where its non-finite floats sit). A NaN in the rows is
    left to the column writer: counted here as one NaN or Infinity more in raw than in the
    skeleton's text, whose count is `skeleton_nonfinite` (_nonfinite_literals; a string
    holding the word counts too: that only costs the try)."""
    indent, _, compact = next(_styles(raw))
    return indent is None and compact and not _escapes_orjson_never_writes(raw) and \
        _nonfinite_literals(raw) == skeleton_nonfinite


def _escapes_orjson_never_writes(raw: bytes) -> bool:
    """Whether raw holds a \\u escape other than orjson's (it escapes only control characters,
    \\u0000-\\u001f): a compact file written with ensure_ascii is not orjson's text, and
    rebuilding its document to find that out cost a 39.5 MB file 0.7 s."""
    at = find_from_first(raw, b"\\u")
    while at != -1:
        if _backslashes_before(raw, at) % 2 == 0 and raw[at + 2:at + 5] not in (b"000", b"001"):
            return True
        at = raw.find(b"\\u", at + 2)
    return False


def _written_by_orjson(raw: bytes, spelling: Spelling, document: dict) -> tuple[Spelling, bytes] | None:
    """(spelling, raw) when `raw` is orjson's text of `document` (rebuilt from the rows and
    patched as `spelling` says: how dumps_document writes an application's save); None
    otherwise. The rebuild and one orjson call prove such a file in less time than the column
    writer (a save's 219 KB document: about 2.5 against 3.9 ms), and orjson writes its floats
    as it wrote them (the column writer needs a number patch where repr differs)."""
    if orjson_text(document) != raw:
        return None
    spelling.indent, spelling.ensure_ascii, spelling.compact, spelling.by_orjson = None, raw.isascii(), True, True
    spelling.numbers = []
    return spelling, raw


def _writer(skeleton_text: str, signals, curves, rebuilt: dict | None):
    """spelling -> its bytes: from the columns; where they do not apply, from the rebuilt
    document (None without one)."""
    def write_as(spelling: Spelling) -> bytes | None:
        try:
            return write_columns(skeleton_text, signals, curves, spelling)
        except Unwritable:
            return None if rebuilt is None else write(rebuilt, spelling)
    return write_as


def _written_as(raw: bytes, spelling: Spelling, writer, styles) -> tuple[Spelling, bytes] | None:
    """(spelling, bytes) with the first of `styles` under which `writer` writes `raw` (but for
    number patches, which the spelling then holds); None when none does."""
    for indent, ensure_ascii, compact in styles:
        spelling.indent, spelling.ensure_ascii, spelling.compact = indent, ensure_ascii, compact
        written = writer(spelling)
        if written is None:
            return None
        if written == raw:
            return spelling, written
        numbers = _number_patches(written, raw)
        if numbers is not None:
            spelling.numbers = numbers  # offsets and ASCII number text: JSON gives them back as they are
            return spelling, _with_numbers(written, numbers)
    return None


# --- timestamps ---

def _timestamp_codes(source: dict) -> dict[str, str]:
    """Per timestamp field, the code of the file's first timestamp in that field: a null (an
    open position's exit) or a value that is no timestamp (if shaped like one: 2023-02-30)
    says nothing of the field's spelling. (Stopping at such a first value left the field
    without a code, and each of its rows with a patch: a 38 MB file took 11 s to convert,
    2.2 s with a code.)"""
    codes: dict[str, str] = {}
    for _, holder in _holders(source):
        for list_key, name in TIMESTAMP_FIELDS:
            key = f"{list_key}.{name}"
            rows = holder.get(list_key) if type(holder) is dict else None
            if key in codes or type(rows) is not list:
                continue
            for row in rows:
                value = row.get(name) if type(row) is dict else None
                code = timestamp_code(value)
                if code is not None and parse_timestamp(value) is not None:  # a timestamp, not its shape
                    codes[key] = code
                    break
    return codes


_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


# The typed fields of each row list (the ones a null in the tables can stand for).
_ROW_FIELDS = {"signals": ("timestamp", "type", "price", "quantity", "exit_timestamp", "exit_price", "return_pct",
                           "pnl", "commission", "holding_bars", "reason", "indicators"),
               "performance_curve": ("timestamp", "equity", "drawdown")}
_ABSENT = object()


def _null_keys(source: dict, tables: dict[str, pa.Table]) -> list[str]:
    """The row fields the file writes as explicit nulls wherever their value is null: some
    row holds `"key": null` and no row of that list leaves the key out. A field whose rows
    do both keeps its row patches (the tables cannot tell the two apart)."""
    out = []
    for list_key, names in _ROW_FIELDS.items():
        lists = [holder.get(list_key) for _, holder in _holders(source)]
        rows = [r for rows in lists if type(rows) is list for r in rows if type(r) is dict]
        table = tables[list_key]
        # When the table holds every row, a column without nulls has no row that is null or
        # absent there: most fields are skipped without walking the rows.
        every_row_held = len(rows) == table.num_rows
        for name in names:
            if every_row_held and table.column(TIMESTAMP_COLUMNS.get(name, name)).null_count == 0:
                continue
            values = [r.get(name, _ABSENT) for r in rows]
            if None in values and _ABSENT not in values:
                out.append(f"{list_key}.{name}")
    return out


def _uniform_fields(listed: dict, codes: dict[str, str], tables: dict[str, pa.Table], spelled_as: dict[str, str],
                    mixing: set[str] = frozenset()) -> tuple[dict[str, list | None], dict[str, tuple[list, list]]]:
    """({field: its spelled column, or None where normalize vouched for it} of the timestamp
    fields whose rows all hold their value as the field's code spells the whole column,
    {field: (the rows' values, that spelled column)} of the fields with a code whose rows mix
    spellings). A uniform field needs no look at each row in _row_codes (one list compare
    instead of a pattern match per row; none at all for a field normalize read whole in its
    code, `spelled_as`), and rebuild takes the column as spelled here; a mixed one is looked
    at only where a row differs from its field's spelling. Rows in the tables' (symbol_idx,
    seq) order; `listed`: _list_rows of each list; `mixing`: fields normalize read in several
    spellings (neither uniform nor needing a look here)."""
    uniform, mixed = {}, {}
    for list_key, name in TIMESTAMP_FIELDS:
        key = f"{list_key}.{name}"
        rows, every_list = listed[list_key]
        if not every_list or len(rows) != tables[list_key].num_rows or key in mixing:
            continue
        if spelled_as.get(key) in (codes.get(key, "TZ"), NO_VALUES):
            uniform[key] = None  # spelled only if a rebuild needs it (_spelled_field)
            continue
        spelled = _spelled_field(key, tables, codes)
        values = [r.get(name) for r in rows]
        if values == spelled:
            uniform[key] = spelled
        elif key in codes:
            mixed[key] = (values, spelled)
    return uniform, mixed


def _spelled_field(key: str, tables: dict[str, pa.Table], codes: dict[str, str]) -> list:
    """A timestamp field's column spelled in its code (none: ISO 8601 UTC), rows in the
    tables' (symbol_idx, seq) order."""
    list_key, name = key.split(".")
    return spelled_column(key_ordered(tables[list_key]).column(TIMESTAMP_COLUMNS[name]), codes.get(key, "TZ"))


def _list_rows(source: dict, list_key: str) -> tuple[list[dict], bool]:
    """The rows of each `list_key` list that holds only objects (the document's, then each
    symbol's: the tables' (symbol_idx, seq) order), and whether every such list did."""
    rows, every_list = [], True
    for _, holder in _holders(source):
        found = holder.get(list_key)
        if type(found) is list:
            if _DICT.issuperset(map(type, found)):
                rows += found
            else:
                every_list = False
    return rows, every_list


def _row_codes(listed: dict, codes: dict[str, str], table_rows: dict[str, int],
               skip: set[str] = frozenset(), mixed: dict[str, tuple[list, list]] | None = None,
               known: dict[str, list] | None = None) -> dict[str, list]:
    """{field: [codes, one base-36 digit per row]} of the fields whose rows mix spellings, rows
    in the order the tables sort them ((symbol_idx, seq): the document's own list, then each
    symbol's). A row without a code (null, absent, not a timestamp) takes its field's; a field
    whose rows the tables do not hold one for one, or with more than 36 spellings, keeps its
    row patches instead. `mixed` (_uniform_fields): a row whose value is its field's spelling
    of the stored instant takes the field's code without a pattern match (measured: 200,000
    matches were a third of learning a 40 MB file that spells 6 timestamps another way); it is
    the same text either way, and the proof hashes the bytes. `known` (normalize's
    row_spellings): a row whose code normalize read needs no pattern match either."""
    out = {}
    for list_key, name in TIMESTAMP_FIELDS:
        key = f"{list_key}.{name}"
        if key in skip:
            continue
        default = codes.get(key)
        rows, _ = listed[list_key]
        read = known.get(key) if known else None
        if read is not None and len(read) == len(rows):
            row_codes = [code or default for code in read]
            for i in [i for i, code in enumerate(read) if code is None]:
                value = rows[i].get(name)
                if value is not None:  # a value normalize did not read in a code
                    row_codes[i] = timestamp_code(value) or default
        elif mixed and key in mixed:
            values, spelled = mixed[key]
            row_codes = [default] * len(rows)
            for i in [i for i, v, s in zip(count(), values, spelled) if v != s or type(v) is not type(s)]:
                row = rows[i]
                row_codes[i] = (timestamp_code(row[name]) if name in row else None) or default
        else:
            row_codes = [(timestamp_code(r[name]) if name in r else None) or default for r in rows]
        distinct = [c for c in dict.fromkeys(row_codes) if c is not None]
        if len(distinct) < 2 or len(distinct) > len(_BASE36) or len(row_codes) != table_rows[list_key] \
                or None in row_codes:
            continue
        digit = {c: _BASE36[i] for i, c in enumerate(distinct)}
        out[key] = [distinct, "".join(map(digit.__getitem__, row_codes))]
    return out


def _spelled(codes: dict[str, str], row_codes: dict[str, list], known: dict[str, list]):
    """reconstruct's `spell`: each field's column in its code's spelling, or row by row in
    each row's code (spelled.spelled_by_row)."""
    def spell(field: str, column: pa.ChunkedArray) -> list:
        if field in known:  # spelled already, in the same row order (spelled_in_bulk, learn's _uniform_fields)
            return known[field]
        if field in row_codes:
            spellings, digits = row_codes[field]
            if len(digits) != len(column):
                raise ValueError(f"{field}: {len(digits)} row spellings for {len(column)} rows")
            return spelled_by_row(column, spellings, digits)
        return spelled_column(column, codes.get(field, "TZ"))  # no code: ISO 8601 UTC
    return spell


# --- rows and styles ---

def _holders(doc: dict):
    """(symbol_idx, dict) of each dict that may hold row lists: the document (-1) and its symbols."""
    yield -1, doc
    symbols = doc.get("symbols")
    if type(symbols) is list:
        for i, symbol in enumerate(symbols):
            if type(symbol) is dict:
                yield i, symbol


def _row_pairs(source: dict, rebuilt: dict):
    """("<list>:<symbol_idx>:<seq>", the file's row, the rebuilt row) of every row the two share."""
    rebuilt_holders = dict(_holders(rebuilt))
    for idx, holder in _holders(source):
        other = rebuilt_holders.get(idx)
        if type(other) is not dict:
            continue
        for list_key in ROW_LISTS:
            rows, others = holder.get(list_key), other.get(list_key)
            if type(rows) is list and type(others) is list and len(rows) == len(others):
                for seq, (row, rebuilt_row) in enumerate(zip(rows, others)):
                    yield f"{list_key}:{idx}:{seq}", row, rebuilt_row


def _numeric_string_patches(source: dict) -> dict[str, list]:
    """The row patches of the rows whose float fields hold numeric strings stored as floats
    ({"signals:<symbol_idx>:<seq>": ["set", {key: the string}]}), as _row_patch gives them
    for a row that differs from its rebuilt one in those values alone."""
    patches = {}  # in _row_pairs' order, as the comparison lists them
    for idx, holder in _holders(source):
        for list_key, keys in (("signals", SIGNAL_FLOAT_KEYS), ("performance_curve", CURVE_FLOAT_KEYS)):
            rows = holder.get(list_key)
            if type(rows) is not list or not all(type(row) is dict for row in rows):
                continue  # a list normalize keeps whole in the skeleton: no rows in the tables
            odd: dict[int, set[str]] = {}
            for key in keys:
                column = [row.get(key) for row in rows]
                if str in set(map(type, column)):
                    for seq, value in enumerate(column):
                        if type(value) is str and stored_as_float(value):
                            odd.setdefault(seq, set()).add(key)
            for seq, found in sorted(odd.items()):
                patches[f"{list_key}:{idx}:{seq}"] = ["set", {k: v for k, v in rows[seq].items() if k in found}]
    return patches


def _same(a: object, b: object) -> bool:
    """Equal as JSON text is: key order and int vs float too (a NaN row differs: kept whole)."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return list(a) == list(b) and all(_same(x, y) for x, y in zip(a.values(), b.values()))
    if type(a) is list:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _row_patch(row: object, source_row: object) -> list:
    """How a rebuilt row becomes the file's: ["set", changes] when the keys are the same,
    ["keys", the file's keys, changes] when the file has more (an explicit null, say), else
    ["row", the file's row]. changes = {key: the file's value}; a timestamp spelled otherwise
    than its field's first one is kept as its code ({"@timestamp": "T+09:00"}): a few bytes
    instead of the text."""
    if type(row) is not dict or type(source_row) is not dict or not set(row) <= set(source_row):
        return ["row", source_row]
    changes = {}
    for key, value in source_row.items():
        if key in row and _same(row[key], value):
            continue
        code = timestamp_code(value) if key in row and key in _TIMESTAMP_NAMES else None
        us = parse_timestamp(row[key]) if code is not None else None
        if us is not None and _same(render_timestamp(us, code), value):
            changes["@" + key] = code
        else:
            changes[key] = value
    if list(row) == list(source_row):
        return ["set", changes]
    return ["keys", list(source_row), changes]


def _patched(row: dict, patch: list) -> object:
    kind, *rest = patch
    if kind == "row":
        return rest[0]
    keys, changes = (list(row), rest[0]) if kind == "set" else rest
    out = {}
    for key in keys:
        if key in changes:
            out[key] = changes[key]
        elif "@" + key in changes:
            out[key] = render_timestamp(parse_timestamp(row[key]), changes["@" + key])
        else:
            out[key] = row[key]
    return out


_NUMBER_BYTES = frozenset(b"-+.0123456789eE")
MAX_NUMBER_PATCHES = 10_000


def _number_patches(written: bytes, raw: bytes) -> list[list] | None:
    """Where `written` and `raw` differ only in how some numbers are spelled: a patch per
    number ([offset in written, length, raw's text]); None when they differ otherwise,
    digits inside a string included ("00:00:00.000Z" against "00:00:00Z"): readers build
    documents without the patches, so a patch may only respell a number, never a string."""
    patches: list[list] = []
    i = j = 0
    while len(patches) <= MAX_NUMBER_PATCHES:
        n = _common_prefix(written, i, raw, j)
        i, j = i + n, j + n
        if i == len(written) and j == len(raw):
            return patches if not patches or _outside_strings(written, [p[0] for p in patches]) else None
        # back to the start of the number both are in, then to the end of each spelling
        start = 0
        while start < n and written[i - start - 1] in _NUMBER_BYTES:
            start += 1
        i, j = i - start, j - start
        end_w, end_r = i, j
        while end_w < len(written) and written[end_w] in _NUMBER_BYTES:
            end_w += 1
        while end_r < len(raw) and raw[end_r] in _NUMBER_BYTES:
            end_r += 1
        if end_w == i or end_r == j:
            return None  # not inside a number
        text = raw[j:end_r].decode("ascii")
        if not _same_number(written[i:end_w], text):
            return None  # another value, not another spelling of it
        patches.append([i, end_w - i, text])
        i, j = end_w, end_r
    return None


def _outside_strings(text: bytes, offsets: list[int]) -> bool:
    """Whether no offset falls inside a JSON string of `text`: an odd number of unescaped
    quotes before it says it does."""
    if b'\\"' not in text:  # every quote opens or closes a string: count them in C, no array
        quotes, at = 0, 0
        for offset in sorted(offsets):
            quotes, at = quotes + text.count(b'"', at, offset), offset
            if quotes % 2:
                return False
        return True
    data = np.frombuffer(text, np.uint8)
    quotes = np.flatnonzero(data == 0x22)
    after_backslash = quotes[(quotes > 0) & (data[np.maximum(quotes - 1, 0)] == 0x5C)]
    escaped = [q for q in after_backslash.tolist() if _backslashes_before(text, q) % 2 == 1]
    if escaped:
        quotes = quotes[~np.isin(quotes, escaped)]
    return not bool((np.searchsorted(quotes, np.asarray(offsets)) % 2).any())


def _backslashes_before(text: bytes, at: int) -> int:
    run = 0
    while at - run - 1 >= 0 and text[at - run - 1] == 0x5C:
        run += 1
    return run


def patches_spell_exact_floats(numbers: list[list]) -> bool:
    """True when each number patch spells a float64's exact value to its last digit (its
    value is the float read, _number_patches checks that). An integer patch never does: it
    is a literal a float parse read (beyond 64 bits), where Python reads an int."""
    return all(any(c in text for c in ".eE") and exact_float(text, float(text)) for _, _, text in numbers)


def _same_number(written: bytes, text: str) -> bool:
    """True when `text` spells the value that `written` (Python's repr of it) does."""
    try:
        return float(written) == float(text)
    except ValueError:
        return False


def _common_prefix(a: bytes, i: int, b: bytes, j: int) -> int:
    """How many bytes a[i:] and b[j:] share from their start: spans doubling from 4 KB until
    one differs, then halving within it (C compares; each byte copied a few times at most,
    where halving the whole rest copied it again for every difference)."""
    lo, limit, span = 0, min(len(a) - i, len(b) - j), 4096
    while lo < limit:
        hi = min(lo + span, limit)
        if a[i + lo:i + hi] != b[j + lo:j + hi]:
            break
        lo, span = hi, span * 2
    else:
        return limit
    while lo < hi:  # the first difference is in [lo, hi)
        mid = (lo + hi + 1) // 2
        if a[i + lo:i + mid] == b[j + lo:j + mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _styles(raw: bytes):
    """The four json.dumps styles and dumps_document's, the likeliest for these bytes first."""
    indented = raw[:2] in (b"{\n", b"[\n")
    compact = not indented and (b'":' in raw[:4096] and b'": ' not in raw[:4096])
    ascii_only = raw.isascii()
    first = (2 if indented else None, ascii_only, compact)
    yield first
    for style in ((None, True, False), (None, False, False), (2, True, False), (2, False, False),
                  (None, False, True), (None, True, True)):
        if style != first:
            yield style
