"""Giving memory back to the system between the large steps of a run."""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None on another C library (only glibc has it)."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def give_back() -> bool:
    """Return the pages of freed objects to the system, so that the next step (DuckDB loading
    a version, say) does not add its memory on top of what the last one dropped; glibc keeps
    freed heap pages otherwise. Objects are freed as their last reference goes; this only
    returns their pages. True when the C library could be asked."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
