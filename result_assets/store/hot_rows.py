"""A task's rows in the hot tier: one Arrow IPC stream per table, stored as bytea.

Exact (the Arrow types as they are), and a few microseconds to write and read for
the hundreds of rows an application save holds.
"""
from __future__ import annotations

import pyarrow as pa


def encode(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode(data: bytes, schema: pa.Schema) -> pa.Table:
    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    return table.select(schema.names).cast(schema)
