"""Give the memory of a forward pass back to the operating system once the pass is over (glibc only).

glibc's malloc keeps freed memory for reuse instead of returning it: each thread that allocates gets an arena of its
own, and after a large block is freed it raises its mmap threshold (up to 32 MB), so the next blocks of that size come
from an arena too and stay there once freed. A forward pass over long inputs allocates hundreds of MB of activations
(attention scores grow with the square of the length) in a worker thread, and the server kept it after the pass:
under tests/serving/test_hostile_endpoint.py (6 layers, 40 s), with the input limits in place but without this, its
RSS rose from 499 to 698 MB and was still 646 MB after the run (MALLOC_ARENA_MAX=2 changed nothing: 697 and 655).
``malloc_trim(0)`` after each pass hands the free pages of every arena back; it took 0.15 ms after a pass of 4 short
texts (about 14 ms), and 3 to 14 ms after passes of 32 long texts (1 to 3 s).

Other C libraries (macOS, musl) are left alone: the forward function is returned unchanged.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["releasing", "malloc_trim"]

T = TypeVar("T")


def malloc_trim() -> Callable[[int], Any] | None:
    """glibc's ``malloc_trim``, or None where the C library has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


def releasing(forward: Callable[[list[Any]], T]) -> Callable[[list[Any]], T]:
    """``forward``, then ``malloc_trim(0)`` in the same thread, after every call (see the module docstring)."""
    trim = malloc_trim()
    if trim is None:
        return forward

    def run(items: list[Any]) -> T:
        try:
            return forward(items)
        finally:
            trim(0)

    return run
