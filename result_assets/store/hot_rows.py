"""A task's rows in the hot tier: one Arrow IPC stream per table, stored as bytea.

Exact (the Arrow types as they are), and a fraction of a millisecond to write and read for
the hundreds of rows an application save holds. The stream's buffers are LZ4-compressed:
the bytes go to Postgres as hex text in the INSERT, and that statement was the largest
part of a save's publish (docs/performance.md "The hot tier's bytes"). Streams written
before, uncompressed, read the same.

A stream of an application save's size is (de)compressed on the calling thread: handing its
buffers to Arrow's thread pool cost more than the work (measured, a 100-signal save's two
tables: 0.6-1.2 ms each way against 0.2-0.4 ms; docs/performance.md "The hot tier's
streams"). A large one (tens of thousands of rows) keeps the pool.
"""
from __future__ import annotations

import pyarrow as pa

THREADED_MIN_BYTES = 2 << 20  # measured: 20,000 signals (2.5 MB as a stream) gain from the pool, 4,000 do not
_WRITE = {threads: pa.ipc.IpcWriteOptions(compression="lz4", use_threads=threads) for threads in (False, True)}
_READ = {threads: pa.ipc.IpcReadOptions(use_threads=threads) for threads in (False, True)}


def encode(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_WRITE[table.nbytes >= THREADED_MIN_BYTES]) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode(data: bytes, schema: pa.Schema) -> pa.Table:
    stream = pa.ipc.open_stream(pa.py_buffer(data), options=_READ[len(data) >= THREADED_MIN_BYTES])
    table = stream.read_all().select(schema.names)
    return table if table.schema == schema else table.cast(schema)  # a cast is a call per column
