"""Process-level settings that make the training loop fast on the CPU.

A full-batch step allocates and frees the same large activation tensors (megabytes each) every step. With glibc's
default settings, blocks that large are mapped fresh from the kernel and returned when freed, so every step pays a
page fault per 4 KiB page touched (~5,000 faults a step on the canonical run, several milliseconds). Raising the
mmap and trim thresholds keeps freed memory in the process for the next step: faults drop to ~0 a step. The process
then holds its peak memory instead of returning it between steps.

``GROKKIT_MALLOC_TUNING=0`` in the environment leaves the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: glibc refuses mmap thresholds above half its heap size (32 MiB on 64-bit machines)
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30

_tuned: bool | None = None


def tune_allocator() -> bool:
    """Raise glibc's mmap/trim thresholds once per process (Linux with glibc only); True if they are set."""
    global _tuned
    if _tuned is not None:
        return _tuned
    _tuned = False
    if not sys.platform.startswith("linux") or os.environ.get("GROKKIT_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _tuned = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _tuned
