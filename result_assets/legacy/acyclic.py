"""Building documents without the cyclic garbage collector's passes.

A document (parsed or rebuilt) is hundreds of thousands of small dicts and lists with no
cycles. While they are built, every 700 new containers start a collection that walks the
young ones, and the older generations are walked again and again as the heap grows: for
no garbage, since reference counting frees all of it. Paused for the build, collected
normally after.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager


@contextmanager
def cyclic_gc_paused():
    """Pause the cyclic GC for the block (process-wide, as gc.disable is); restored after
    only if it was on, so nested and concurrent pauses never turn it on early for long."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
