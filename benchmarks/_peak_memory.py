"""Peak extra resident memory of one call, measured in this process (Linux, glibc).

Before the call the process returns freed heap to the OS (``malloc_trim``) and
resets its peak-RSS mark (``/proc/self/clear_refs``), so ``ru_maxrss`` after minus
before is the call's own peak. ``ALLOCATORS`` are the glibc settings a benchmark
can run its workers under.
"""

from __future__ import annotations

import ctypes
import gc
import os
import resource
import time


def release_and_reset_peak() -> bool:
    """Return freed heap to the OS and reset the peak-RSS mark; False if the reset failed."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def current_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(fn) -> tuple[float, int, bool]:
    """(seconds, peak extra resident bytes, whether the peak mark could be reset) of ``fn()``."""
    reset = release_and_reset_peak()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if not reset:  # the old mark may hide the update's peak; measure from the current RSS
        peak_before = max(current_rss(), 0)
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak_before, reset


ALLOCATORS = {
    # glibc as configured by default: freed heap may stay resident (dynamic mmap/trim thresholds)
    "default": {},
    # every allocation >= 128 KiB is its own mmap, returned on free: peak RSS tracks live bytes
    "mmap128k": {"MALLOC_MMAP_THRESHOLD_": "131072"},
}
