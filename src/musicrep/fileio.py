"""Atomic file writes: a killed run never leaves a half-written output.

Every writer in musicrep goes through :func:`atomic_path`: write to a
temporary sibling, then ``os.replace`` it over the target.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
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
        Where the caller writes. Removed if the block raises. It is created
        with the mode the umask gives (0644 under 022), which the final file
        keeps: ``tempfile.mkstemp`` would make every output owner-only (0600).
    """
    target = Path(path)
    ensure_dir(target.parent)
    tmp = _create_temporary(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _create_temporary(target: Path, attempts: int = 100) -> Path:
    """Create an empty, uniquely named ``.<name>.<random>.tmp`` sibling of ``target`` (mode 0666 & ~umask)."""
    for _ in range(attempts):
        tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise UsageError(f"{target.parent}: cannot create a temporary file for {target.name}")


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
