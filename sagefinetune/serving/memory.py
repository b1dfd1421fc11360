"""Give the memory of a forward pass back to the operating system once the pass is over (glibc only).

glibc's malloc keeps freed memory for reuse instead of returning it: each thread that allocates gets an arena of its
own, and after a large block is freed it raises its mmap threshold (up to 32 MB), so the next blocks of that size come
from an arena too and stay there once freed. A forward pass over long inputs allocates hundreds of MB of activations
(attention scores grow with the square of the length) in a worker thread, and the server kept it after the pass:
under tests/serving/test_hostile_endpoint.py (6 layers, 40 s), with the input limits in place but without this, its
RSS rose from 499 to 698 MB and was still 646 MB after the run (MALLOC_ARENA_MAX=2 changed nothing: 697 and 655).
``malloc_trim(0)`` after a pass hands the free pages of every arena back; it took 0.15 ms after a pass of 4 short
texts (about 14 ms), and 3 to 14 ms after passes of 32 long texts (1 to 3 s). It runs after every pass of
:data:`LONG_PASS_S` or more (long or many inputs: what grows the heap) and after a shorter one at most once every
:data:`TRIM_EVERY_S`: an int8 pass of one short text takes 2.6 to 3 ms, and a trim after each added 0.13 ms (4%)
to it on a 2-core AMD EPYC (2026-12-07).

Other C libraries (macOS, musl) are left alone: the forward function is returned unchanged.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["releasing", "malloc_trim", "LONG_PASS_S", "TRIM_EVERY_S"]

#: A forward pass this long or longer is followed by a trim: its inputs were long or many.
LONG_PASS_S = 0.05
#: Shorter passes trim at most this often (a trim costs about 0.13 ms: 4% of an int8 pass of one short text).
TRIM_EVERY_S = 1.0

T = TypeVar("T")


def malloc_trim() -> Callable[[int], Any] | None:
    """glibc's ``malloc_trim``, or None where the C library has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


def releasing(forward: Callable[[list[Any]], T], *, long_pass_s: float = LONG_PASS_S,
              every_s: float = TRIM_EVERY_S) -> Callable[[list[Any]], T]:
    """``forward``, then ``malloc_trim(0)`` in the same thread after a call that took ``long_pass_s`` or more (a pass
    over long inputs, whose activations are what the heap kept), and otherwise at most once every ``every_s`` seconds
    (see the module docstring)."""
    trim = malloc_trim()
    if trim is None:
        return forward
    last = [time.monotonic()]  # the last trim, by any thread (a race only trims twice)

    def run(items: list[Any]) -> T:
        started = time.monotonic()
        try:
            return forward(items)
        finally:
            now = time.monotonic()
            if now - started >= long_pass_s or now - last[0] >= every_s:
                last[0] = now
                trim(0)

    return run
