"""Process-level tuning for CPU inference.

Each forward pass of a U-Net allocates activation buffers of tens of megabytes. glibc's malloc
hands blocks that size back to the kernel on free and maps them again on the next allocation, so
every batch pays page faults: measured here at ~40,000 faults and half the run time as system
time per 512x512 slice. PyTorch's CPU performance guide recommends jemalloc or tcmalloc for this;
without them, raising glibc's mmap and trim thresholds (``mallopt``) keeps the memory in the heap
for reuse: 0.127 -> 0.085 s per slice at batch 2 on 2 cores, page faults ~0.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's upper limit on 64-bit
TRIM_THRESHOLD = 1024 * 1024 * 1024


@functools.cache
def tune_cpu_allocator() -> bool:
    """Keep large freed blocks in the heap (glibc only; once per process). True when applied."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        applied = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    log.debug("glibc malloc thresholds raised for CPU inference: %s", applied)
    return applied
