"""Memory helpers for bulk table work at collection scale."""

from __future__ import annotations

import contextlib
import ctypes
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a bulk load.

    Building millions of small lists (one per track and tagset) makes the
    collector traverse every live container again and again: reading the
    MSD-sized labels file takes 2-3x longer with it running. Nothing built in
    these regions forms reference cycles, so reference counting frees it all.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers (glibc malloc.h)
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's upper bound for M_MMAP_THRESHOLD on 64-bit


def retain_freed_memory(trim_threshold: int = 256 << 20) -> bool:
    """Let glibc malloc keep freed buffers of up to 32 MB for reuse instead of unmapping them.

    Each track allocates and frees a few 4-16 MB buffers (frames, spectrum,
    power). By default glibc hands buffers that large straight back to the
    kernel, so every track page-faults ~25 MB of fresh zeroed pages again:
    about a third of the spectrogram time. Call once per worker process; a
    worker then holds at most ``trim_threshold`` bytes of freed memory.

    Returns
    -------
    bool
        False where the C library is not glibc (nothing changed).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) and mallopt(_M_TRIM_THRESHOLD, trim_threshold))
