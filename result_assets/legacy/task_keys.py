"""Directory name <-> task id <-> Dagster partition key, each one to one.

A directory name is bytes. A UTF-8 name is its own task id, unless it starts with
"%bytes:"; any other name (not UTF-8, e.g. CP949 from an old platform, or starting with
"%bytes:") becomes "%bytes:" + percent-encoding of its bytes (printable ASCII other than
"%" kept), so the id is valid text that Postgres, Delta and Dagster can hold and maps
back to the exact bytes. Only encoded names start with the prefix, so no real name can
collide with one; and a real name holds neither "/" nor NUL, so any prefix would take a
few names: this one is long enough that no legacy directory is expected to start with it.

A task id that is safe as a partition key is its own key. Any other id (or one
that starts with "~") becomes "~" + percent-encoding of the characters Dagster
rejects or its UI misreads; other text, Korean included, stays readable.
"""

from __future__ import annotations

import os
import unicodedata
from urllib.parse import quote_from_bytes, unquote_to_bytes

DIR_ENCODED_PREFIX = "%bytes:"
# Kept as they are in an encoded directory name: printable ASCII but "%" (and "/",
# which no directory name holds).
_DIR_NAME_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in "%/")


def task_id_for_dir_name(name: str | bytes) -> str:
    """The task id of a source directory; a str name is the one os.scandir gives
    (undecodable bytes as surrogate escapes)."""
    raw = os.fsencode(name)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and not text.startswith(DIR_ENCODED_PREFIX):
        return text
    return DIR_ENCODED_PREFIX + quote_from_bytes(raw, safe=_DIR_NAME_SAFE)


def dir_name_for_task_id(task_id: str) -> bytes:
    """The exact directory name of a task id; ValueError for an id no directory has
    (a "%bytes:" id that is not the encoding task_id_for_dir_name makes)."""
    if not task_id.startswith(DIR_ENCODED_PREFIX):
        return task_id.encode("utf-8")
    raw = unquote_to_bytes(task_id[len(DIR_ENCODED_PREFIX):])
    if task_id_for_dir_name(raw) != task_id:
        raise ValueError(f"task id {task_id!r} is not the id of any directory name")
    return raw

ENCODED_PREFIX = "~"
# Escaped in encoded keys: "%" (the escape itself), "." (so "..." cannot appear),
# "~" (the prefix), the UI's partition-range syntax, and every control,
# surrogate or line/paragraph separator character.
_ALWAYS_ESCAPED = frozenset("%.~,[]*")
_FORBIDDEN_SUBSTRINGS = ("...", "\a", "\b", "\f", "\n", "\r", "\t", "\v", "\0")


def partition_key_for(task_id: str) -> str:
    if _is_safe_key(task_id):
        return task_id
    return ENCODED_PREFIX + "".join(_escape(ch) if _needs_escape(ch) else ch for ch in task_id)


def task_id_for(partition_key: str) -> str:
    if not partition_key.startswith(ENCODED_PREFIX):
        return partition_key
    return unquote_to_bytes(partition_key[len(ENCODED_PREFIX):]).decode("utf-8", "surrogatepass")


def _is_safe_key(task_id: str) -> bool:
    if not task_id or task_id.startswith(ENCODED_PREFIX):
        return False
    if any(s in task_id for s in _FORBIDDEN_SUBSTRINGS):
        return False
    return not any(ch in ",[]*" or _is_control_like(ch) for ch in task_id)


def _needs_escape(ch: str) -> bool:
    return ch in _ALWAYS_ESCAPED or _is_control_like(ch)


def _is_control_like(ch: str) -> bool:
    # Cc: C0/C1 controls and DEL; Cs: lone surrogates (undecodable file names);
    # Zl/Zp: line and paragraph separators.
    return unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp")


def _escape(ch: str) -> str:
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
