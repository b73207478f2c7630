"""Building documents without the cyclic garbage collector's passes.

A document (parsed or rebuilt) is hundreds of thousands of small dicts and lists with no
cycles. While they are built, every 700 new containers start a collection that walks the
young ones, and the older generations are walked again and again as the heap grows: for
no garbage, since reference counting frees all of it. Paused for the build, collected
normally after.
"""
from __future__ import annotations

import gc
import threading
from contextlib import contextmanager

# The pause is process-wide, so the threads of a process share one count of open pauses: the
# GC comes back when the last one ends, and only if it was on when the first one began.
_lock = threading.Lock()
_open = 0
_was_enabled = False


@contextmanager
def cyclic_gc_paused():
    """Pause the cyclic GC for the block; nested and concurrent pauses (any thread) end together."""
    global _open, _was_enabled
    with _lock:
        if _open == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _open += 1
    try:
        yield
    finally:
        with _lock:
            _open -= 1
            if _open == 0 and _was_enabled:
                gc.enable()
