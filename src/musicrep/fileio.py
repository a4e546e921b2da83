"""Atomic file writes: a killed run never leaves a half-written output.

Every writer in musicrep goes through :func:`atomic_path`: write to a
temporary sibling, then ``os.replace`` it over the target.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from musicrep.errors import UsageError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it over ``path`` on success.

    Parameters
    ----------
    path : path-like
        The final file. Its directory is created when missing.

    Yields
    ------
    tmp : Path
        Where the caller writes. Removed if the block raises.
    """
    target = Path(path)
    ensure_dir(target.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) or raise a one-line :class:`UsageError`."""
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{directory}: cannot create output directory ({exc.strerror})") from exc
    if not os.access(directory, os.W_OK):
        raise UsageError(f"{directory}: output directory is not writable")
    return directory


def write_csv(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write ``frame`` as CSV without the index, atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
