"""Task id <-> Dagster partition key, one to one.

A task id that is safe as a partition key is its own key. Any other id (or one
that starts with "~") becomes "~" + percent-encoding of the characters Dagster
rejects or its UI misreads; other text, Korean included, stays readable.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote_to_bytes

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
