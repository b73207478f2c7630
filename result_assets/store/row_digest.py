"""A digest of a task's rows that is equal exactly when the rows are equal bit for bit.

The conversion proof (in a worker) digests the rows whose rebuild it proved equal to
the source; the read-back proof digests what the store gives back. Equal digests carry
the proof from the first to the second, whatever happened to the rows in between.
Independent of chunking, slicing and whether Arrow kept a validity bitmap; NaN payloads
and -0.0 count (floats are compared as their bits).
"""
from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa


# Types whose values are their data buffer's bytes, by type id: their width in bytes.
_FIXED_WIDTH = {pa.float64().id: 8, pa.int64().id: 8, pa.int32().id: 4, pa.timestamp("us", tz="UTC").id: 8}


def rows_digest(table: pa.Table) -> str:
    h = hashlib.blake2b(digest_size=20)
    h.update(b"rows:%d;" % table.num_rows)
    for name in table.column_names:
        h.update(name.encode() + b"\0")
        column = table.column(name)
        array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        _feed(h, array)
    return h.hexdigest()


def _feed(h, array: pa.Array) -> None:
    t = array.type
    h.update(b"%d;" % t.id)  # the kind of type (field names inside a map type may differ)
    # Which values are null (a bitmap may be absent, present but all-valid, or sliced).
    # Most columns have none: their mask is that many zero bytes, and their values are read
    # straight from the data buffer (a task's rows are digested four times per save).
    no_nulls = array.null_count == 0
    h.update(bytes(len(array)) if no_nulls else
             np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=np.bool_).tobytes())
    width = _FIXED_WIDTH.get(t.id)
    if no_nulls and width is not None:
        data = array.buffers()[1]
        h.update(memoryview(data)[array.offset * width:(array.offset + len(array)) * width] if len(array) else b"")
        return
    if pa.types.is_map(t) or pa.types.is_list(t):
        # .offsets is sliced with the array, its children are not: take just these rows' entries.
        offsets = np.asarray(array.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
        h.update((offsets - offsets[0]).tobytes() if len(offsets) else b"")
        start, stop = (int(offsets[0]), int(offsets[-1])) if len(offsets) else (0, 0)
        children = [array.keys, array.items] if pa.types.is_map(t) else [array.values]
        for child in children:
            _feed(h, child.slice(start, stop - start))
    elif pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t):
        offsets_type = np.int64 if pa.types.is_large_string(t) else np.int32
        offsets_buffer, data = array.buffers()[1], array.buffers()[2]
        if offsets_buffer is None or len(array) == 0:
            return
        offsets = np.frombuffer(offsets_buffer, dtype=offsets_type)[array.offset:array.offset + len(array) + 1]
        h.update(np.diff(offsets).astype(np.int64).tobytes())
        if data is not None:
            h.update(memoryview(data)[int(offsets[0]):int(offsets[-1])])
    elif pa.types.is_floating(t):
        h.update(array.view(pa.int64()).fill_null(0).to_numpy().tobytes())
    elif pa.types.is_timestamp(t):
        h.update(array.view(pa.int64()).fill_null(0).to_numpy().tobytes())
    elif pa.types.is_integer(t) or pa.types.is_boolean(t):
        h.update(array.fill_null(0).to_numpy(zero_copy_only=False).tobytes())
    else:  # not in our schemas; still exact, only slower
        h.update(repr(array.to_pylist()).encode("utf-8", "surrogatepass"))
