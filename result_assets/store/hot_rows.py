"""A task's rows in the hot tier: one Arrow IPC stream per table, stored as bytea.

Exact (the Arrow types as they are), and a fraction of a millisecond to write and read for
the hundreds of rows an application save holds. The stream's buffers are LZ4-compressed:
the bytes go to Postgres as hex text in the INSERT, and that statement was the largest
part of a save's publish (docs/performance.md "The hot tier's bytes"). Streams written
before, uncompressed, read the same.
"""
from __future__ import annotations

import pyarrow as pa

_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


def encode(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_OPTIONS) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode(data: bytes, schema: pa.Schema) -> pa.Table:
    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all().select(schema.names)
    return table if table.schema == schema else table.cast(schema)  # a cast is a call per column
