"""Per-track feature files: where they live, how they are written and read.

One ``.npy`` per track at ``DST/<first two hex digits of sha1(track_id)>/<track_id>.npy``
(:func:`track_path`, shared by extract, ``--skip``, merge and readers), written
atomically (temporary file + ``os.replace``, no per-file fsync).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from musicrep.data.manifest import TRACK_ID_RULE, is_safe_track_id
from musicrep.errors import InputError, UsageError
from musicrep.fileio import atomic_path

CONFIG_FILE = "extract_config.json"

logger = logging.getLogger(__name__)


def track_path(root: str | os.PathLike[str], track_id: str) -> Path:
    """Where the features of ``track_id`` live below ``root``.

    Raises
    ------
    InputError
        ``track_id`` is not a safe id (:func:`musicrep.data.manifest.is_safe_track_id`): it could name
        a path outside ``root``. Readers of tidfiles check ids first; this is the last guard.
    """
    if not is_safe_track_id(track_id):
        raise InputError(f"unsafe track id {track_id!r} ({TRACK_ID_RULE})")
    shard = hashlib.sha1(track_id.encode("utf-8")).hexdigest()[:2]
    return Path(root) / shard / f"{track_id}.npy"


def write_track(root: str | os.PathLike[str], track_id: str, array: np.ndarray) -> Path:
    """Write one track's array atomically and return its path."""
    path = track_path(root, track_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with tmp.open("wb") as handle:
            np.save(handle, array)
    return path


def read_track(root: str | os.PathLike[str], track_id: str, *, mmap: bool = False) -> np.ndarray:
    """Read one track's array."""
    return np.load(track_path(root, track_id), mmap_mode="r" if mmap else None, allow_pickle=False)


def check_config(root: Path, config: dict, *, skip: bool) -> None:
    """Check the extraction parameters against those ``root`` was made with, if any (reads only).

    Raises
    ------
    UsageError
        ``skip`` into a folder made with other parameters (names the differing key).
    """
    path = root / CONFIG_FILE
    if not path.is_file():
        return
    try:
        existing = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: unreadable ({exc})") from exc
    differing = sorted(k for k in set(existing) | set(config) if existing.get(k) != config.get(k))
    if differing:
        key = differing[0]
        change = f"{key} was {existing.get(key)!r}, now {config.get(key)!r}"
        if skip:
            raise UsageError(f"{path}: --skip into a folder made with other parameters: {change}")
        logger.warning("%s: parameters changed (%s): arrays of tracks not extracted again keep the old ones "
                       "(merge refuses mixed shapes; use a new --dst to keep runs apart)", path, change)


def write_config(root: Path, config: dict) -> None:
    """Record the extraction parameters in ``root/extract_config.json``."""
    with atomic_path(root / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
