"""Capture what C libraries print on stderr (libmpg123 inside libsndfile does, unasked).

:func:`capture_stderr` sends what is printed to stderr during a ``with`` block
to a temporary file, restores stderr afterwards (also when the block raises)
and puts the text on the yielded :class:`Captured`. :func:`summarize` turns
captured text into one short line for a log message.

Each window takes one of two ways:

- **fd 2** (the default): ``dup2`` points file descriptor 2 at the file, so
  every writer is caught, the Python ``sys.stderr`` (flushed before and
  after) included. fd 2 belongs to the whole process, so this is used when
  the calling thread is the process's only Python thread, as in the
  extraction workers.
- **C stdio**, when other threads run (align's header probes, a dask worker)
  on glibc or macOS: only the C library's ``stderr`` stream is pointed at
  the file. libmpg123 prints through it, while ``sys.stderr``, a progress bar
  and log lines of other threads keep writing to fd 2, so none of them is
  swallowed into a window's text. (Redirecting fd 2 while 8 threads probe
  headers swallowed over half of another thread's stderr lines.)

Windows are serialized by a per-process lock (reentrant, so they may nest)
and should be as small as the library call. The file is created on first use
in each process (never at import) and reused: a window costs two ``dup2``
calls or two pointer writes, and an ``fstat``. Forking while another thread
is inside a window leaves the child's stderr pointing at the parent's file.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

MAX_CAPTURED_BYTES = 65536
"""Read at most this much of one window's output (only the first lines are kept anyway)."""

_IONBF = 2  # setvbuf's "unbuffered" on glibc and macOS
_SOURCE_LOCATION = re.compile(r"^\[[^\]]*:\d+\]\s*")  # libmpg123's "[src/libmpg123/layer3.c:f():1774] "
_NUMBERS = re.compile(r"0x[0-9a-fA-F]+|\d+")


@dataclass
class Captured:
    """What was printed to stderr during one :func:`capture_stderr` window (filled in when the block ends)."""

    text: str = ""


class _Sink:
    """One process's temporary file, the lock that serializes its windows, and the C stdio hooks."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.RLock()
        self._fd: int | None = None
        self._stdio: tuple[ctypes.c_void_p, int] | None | bool = False  # False: not looked up yet

    def fd(self) -> int:
        if self._fd is None:
            handle, name = tempfile.mkstemp(prefix="musicrep-stderr-")
            try:  # every writer appends, so nothing needs rewinding after a truncate
                self._fd = os.open(name, os.O_RDWR | os.O_APPEND)
            finally:
                os.close(handle)
                os.unlink(name)
        return self._fd

    def stdio(self) -> tuple[ctypes.c_void_p, int] | None:
        """The C library's ``stderr`` variable and an unbuffered ``FILE *`` on the file, where swapping is safe."""
        if self._stdio is False:
            self._stdio = _open_stdio(self.fd())
        return self._stdio  # type: ignore[return-value]


def _open_stdio(fd: int) -> tuple[ctypes.c_void_p, int] | None:
    if sys.platform == "darwin":
        name = "__stderrp"
    else:
        try:  # glibc only: musl's stderr is a constant in read-only memory
            if not os.confstr("CS_GNU_LIBC_VERSION"):
                return None
        except (AttributeError, ValueError, OSError):
            return None
        name = "stderr"
    try:
        libc = ctypes.CDLL(None)
        variable = ctypes.c_void_p.in_dll(libc, name)
    except (OSError, ValueError):
        return None
    libc.fdopen.restype = ctypes.c_void_p
    libc.fdopen.argtypes = [ctypes.c_int, ctypes.c_char_p]
    libc.setvbuf.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_size_t]
    copy = os.dup(fd)
    stream = libc.fdopen(copy, b"a")
    if not stream:
        os.close(copy)
        return None
    libc.setvbuf(stream, None, _IONBF, 0)
    return variable, stream


_sink: _Sink | None = None
_sink_setup = threading.Lock()


def _current_sink() -> _Sink:
    # a forked child gets its own file and lock: the parent's are shared with it (or held by a thread that is gone)
    global _sink
    with _sink_setup:
        if _sink is None or _sink.pid != os.getpid():
            _sink = _Sink()
        return _sink


@contextmanager
def capture_stderr() -> Iterator[Captured]:
    """Send what is printed to stderr during the block to a temporary file; its text is on the yielded object.

    Yields
    ------
    Captured
        Its ``text`` is filled in when the block ends (also when it raises),
        decoded as UTF-8 with replacement characters, at most
        :data:`MAX_CAPTURED_BYTES` bytes.

    Notes
    -----
    Safe in worker processes and threads; the module docstring says which
    writers are caught. When the process has no fd 2, nothing is redirected.

    Examples
    --------
    >>> with capture_stderr() as captured:
    ...     _ = os.write(2, b"Note: Trying to resync...\\n")
    >>> captured.text
    'Note: Trying to resync...\\n'
    """
    captured = Captured()
    sink = _current_sink()
    with sink.lock:
        file = sink.fd()
        start = os.fstat(file).st_size  # 0, or where an enclosing window of this thread has got to
        stdio = sink.stdio() if threading.active_count() > 1 else None
        try:
            with _stdio_redirected(*stdio) if stdio else _fd_redirected(file):
                yield captured
        finally:
            size = os.fstat(file).st_size
            if size > start:
                data = os.pread(file, min(size - start, MAX_CAPTURED_BYTES), start)
                captured.text = data.decode("utf-8", "replace")
                os.ftruncate(file, start)


@contextmanager
def _fd_redirected(file: int) -> Iterator[None]:
    _flush_python_stderr()  # what Python printed before the window goes to the terminal
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing can reach a terminal
        yield
        return
    try:
        os.dup2(file, 2)
        yield
    finally:
        _flush_python_stderr()  # what Python printed inside the window belongs to it
        os.dup2(saved, 2)
        os.close(saved)


@contextmanager
def _stdio_redirected(variable: ctypes.c_void_p, stream: int) -> Iterator[None]:
    saved = variable.value
    try:
        variable.value = stream
        yield
    finally:
        variable.value = saved


def _flush_python_stderr() -> None:
    for stream in (sys.stderr, sys.__stderr__):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):  # None, replaced by an object without flush, or closed
            pass


def summarize(text: str, *, max_lines: int = 3, width: int = 160) -> str:
    """One line from captured output: the first distinct lines, trimmed, joined by ``"; "``.

    Lines that differ only in numbers (offsets, byte counts, header words)
    count as one (the first is shown); source-location prefixes
    (``[file.c:function():123]``) are dropped; each line is cut to ``width``
    characters. When distinct lines are left out, ``(+N more)`` says how many.

    Examples
    --------
    >>> summarize("Note: Skipped 52 bytes in input.\\nNote: Skipped 26 bytes in input.\\n")
    'Note: Skipped 52 bytes in input.'
    >>> summarize("[src/libmpg123/layer3.c:INT123_do_layer3():1804] error: dequantization failed!\\n"
    ...           "a\\nb\\nc\\n", max_lines=2)
    'error: dequantization failed!; a (+2 more)'
    """
    lines = [_SOURCE_LOCATION.sub("", line).strip() for line in text.splitlines()]
    seen: set[str] = set()
    kept: list[str] = []
    for line in lines:
        key = _NUMBERS.sub("#", line)
        if line and key not in seen:
            seen.add(key)
            kept.append(line if len(line) <= width else line[: width - 1] + "…")
    summary = "; ".join(kept[:max_lines])
    if len(kept) > max_lines:
        summary += f" (+{len(kept) - max_lines} more)"
    return summary
