"""Values as Postgres can hold them: text columns and jsonb query copies.

Postgres text holds no NUL, and the UTF-8 a connection sends holds no lone surrogates
(Python's json reads "\\ud800" escapes into them; os.scandir gives them for names that
are not UTF-8). jsonb also refuses the \\u0000 escape and has no NaN or Infinity. These
columns are query copies or labels: the exact document is the catalog's `skeleton` (JSON
text, every control character escaped) and the backup's bytes. So such characters become
their 6-character escapes as plain text: NUL -> \\u0000, a lone surrogate -> \\udXXX.
"""
from __future__ import annotations

import json
import math


def pg_text(value: str) -> str:
    """value as Postgres text can hold it (unchanged unless it holds NUL or lone surrogates)."""
    if "\x00" in value:
        value = value.replace("\x00", "\\u0000")
    if not value.isascii():
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")  # only surrogates need it
    return value


def jsonb_text(value: object) -> str:
    """JSON text that jsonb accepts, for any value parse_document can produce: NaN and
    infinities as the strings "NaN", "Infinity", "-Infinity"; strings and keys through
    pg_text; integers of any size (jsonb numbers are exact)."""
    return json.dumps(jsonb_safe(value), ensure_ascii=False, allow_nan=False)


def jsonb_safe(value: object) -> object:
    """value with what jsonb cannot hold made as jsonb_text says (for a JSON text built around it)."""
    t = type(value)
    if t is str:
        return pg_text(value)
    if t is float:
        if math.isfinite(value):
            return value
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if t is dict:
        return {pg_text(k): jsonb_safe(v) for k, v in value.items()}
    if t is list:
        return [jsonb_safe(v) for v in value]
    return value
