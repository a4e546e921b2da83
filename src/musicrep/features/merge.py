"""Merge per-track arrays into one store per partition, with train statistics (stage 3b).

``OUT/features.npy`` (N, n_mels, frames, channels) is written as an npy header then
one plain write per track, in tidfile order, so memory stays flat whatever N;
``OUT/index.csv`` maps rows to track ids and valid (non-padded) frames;
``OUT/store.json`` holds the parameters; ``stats.npz`` holds float64 mean and
std per mel band and channel over the valid frames of the train partition,
accumulated streaming. Only tracks whose latest extraction state is ``ok`` or
``skipped`` are merged (``extract_log.csv`` and the run logs of ``logs/``, read as
extract reads them: a run killed before it rewrote ``extract_log.csv`` counts);
the others are listed in ``left_out.csv`` with the reason.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from musicrep.errors import InputError, UsageError
from musicrep.features.extract import LOG_FILE, PAD_VALUES, ExtractState, has_log, latest_states
from musicrep.features.store import CONFIG_FILE, read_track, track_path
from musicrep.fileio import atomic_path, ensure_dir, write_csv, write_json
from musicrep.tables import read_tidfile

logger = logging.getLogger(__name__)

STATS_FILE = "stats.npz"


@dataclass
class MergeReport:
    """What was merged and what was left out."""

    out_dir: Path
    n_tracks: int
    shape: tuple[int, ...]
    left_out: list[tuple[str, str]] = field(default_factory=list)
    stats_path: Path | None = None


@dataclass
class RunningStats:
    """Streaming float64 sums for mean and std per (mel band, channel)."""

    total: np.ndarray | None = None
    squares: np.ndarray | None = None
    count: int = 0

    def add(self, array: np.ndarray, valid: int) -> None:
        """Add the first ``valid`` frames of one ``(n_mels, frames, channels)`` array."""
        if self.total is None:
            self.total = np.zeros((array.shape[0], array.shape[2]))
            self.squares = np.zeros_like(self.total)
        for channel in range(array.shape[2]):
            # one channel at a time: reducing (n_mels, frames, 2) over the middle axis is ~20x slower
            frames = array[:, :valid, channel].astype(np.float64)
            self.total[:, channel] += frames.sum(axis=1)
            self.squares[:, channel] += np.einsum("ft,ft->f", frames, frames)
        self.count += valid

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        if self.total is None or self.count == 0:
            raise UsageError("no valid frames to compute statistics from")
        mean = self.total / self.count
        std = np.sqrt(np.maximum(self.squares / self.count - mean**2, 0.0))
        return mean, std


def extract_states(src: Path) -> dict[str, ExtractState]:
    """Each track's latest extraction state, derived as extract derives it (:func:`latest_states`).

    ``extract_log.csv`` with every run log of ``SRC/logs/`` over it, so the
    failures of a run killed before it rewrote ``extract_log.csv`` count too.

    Raises
    ------
    InputError
        No log at all (merge cannot tell which arrays are current) or a log without its columns.
    """
    if not has_log(src):
        raise InputError(f"{Path(src) / LOG_FILE}: not found (merge needs the extraction log to tell current "
                         "arrays from stale ones)")
    return latest_states(src)


def usable_tracks(tidfile: str | Path, source: Path, states: dict[str, ExtractState], *, padded: bool
                  ) -> tuple[list[str], dict[str, int | None], list[tuple[str, str]]]:
    """The tracks of ``tidfile`` whose current array can be merged, their valid frames, and the others with reasons.

    A track is merged only when its latest state is ``ok`` or ``skipped`` and its
    array is there; an array of a later failed extraction is stale. When the
    extraction padded its arrays, the log must know the valid frames: a padded
    frame is never counted as real.

    Returns
    -------
    present : list[str]
        In tidfile order, once each.
    frames : dict[str, int or None]
        Valid frames per present track; ``None``: the whole array (the extraction did not pad).
    left_out : list[(track_id, reason)]
    """
    listed = read_tidfile(tidfile)
    left_out = [(p.track_id, f"tidfile line {p.line}: {p.reason}") for p in listed.problems]
    present: list[str] = []
    frames: dict[str, int | None] = {}
    for track_id in listed.track_ids:
        state = states.get(track_id)
        if state is None:
            left_out.append((track_id, f"not in {LOG_FILE} (never extracted into {source})"))
        elif not state.current:
            left_out.append((track_id, f"latest extraction {state.status}: {state.message}"))
        elif not track_path(source, track_id).is_file():
            left_out.append((track_id, "no extracted array (removed after extraction?)"))
        elif padded and state.frames is None:
            left_out.append((track_id, f"valid frames unknown ({LOG_FILE} has no frame count for this padded "
                                       "array; extract it again)"))
        else:
            present.append(track_id)
            frames[track_id] = state.frames
    return present, frames, left_out


def merge(
    tidfile: str | Path, src: str | Path, out_dir: str | Path, *, crop: bool = False, pad: bool = False,
    frames: int | None = None, stats_from: str | Path | None = None, normalize: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> MergeReport:
    """Stream the arrays of a partition into one memory-mappable store.

    Each array is read once: the statistics are accumulated while writing,
    except with ``--normalize`` over this same tidfile (they are needed first)
    or statistics from another tidfile, which take their own reading pass.

    Parameters
    ----------
    tidfile : path-like
        The partition (``track_id,filename``); rows keep its order.
    src : path-like
        The ``musicrep extract`` output folder.
    crop, pad : bool
        Bring every array to ``frames`` frames; without them unequal lengths are refused.
    frames : int, optional
        Positive; default: the extraction's ``frames`` (880 in the original preset).
    stats_from : path-like, optional
        ``stats.npz`` to copy, or a train tidfile to compute statistics over;
        default: computed over this tidfile's tracks.
    normalize : bool
        Store ``(x - mean) / std`` instead of raw dB (the original's normalized archive).
    """
    if frames is not None and frames < 1:
        raise UsageError(f"--frames must be positive (got {frames})")
    source = Path(src)
    if not (source / CONFIG_FILE).is_file():
        raise InputError(f"{source}: not an extract folder (no {CONFIG_FILE})")
    extract_config = json.loads((source / CONFIG_FILE).read_text())
    frames = int(extract_config.get("frames", 880)) if frames is None else frames
    states = extract_states(source)
    padded = bool(extract_config.get("pad", True))
    present, lengths, left_out = usable_tracks(tidfile, source, states, padded=padded)
    out = ensure_dir(out_dir)
    shape = _store_shape(source, present, extract_config, crop=crop, pad=pad, frames=frames, tidfile=tidfile)
    pad_value = PAD_VALUES.get(extract_config.get("pad_value", "floor"), -80.0)
    dtype = np.dtype(np.float16 if extract_config.get("precision") == 16 else np.float32)

    stats_path = out / STATS_FILE
    running = None
    if stats_from is not None and str(stats_from).endswith(".npz"):
        mean, std = _load_stats(Path(stats_from), shape)
        _save_stats(stats_path, mean, std, source=str(stats_from))
    elif stats_from is not None or normalize:
        if stats_from is None:
            stats_ids, stats_lengths = present, lengths
        else:
            stats_ids, stats_lengths = _stats_tracks(Path(stats_from), source, states, padded=padded)
        mean, std = _statistics(source, stats_ids, stats_lengths)
        _save_stats(stats_path, mean, std, source=str(stats_from or tidfile))
    elif present:
        running = RunningStats()
    else:
        stats_path = None
        logger.warning("%s: no tracks, so no statistics (take them from the train store with --stats-from)", tidfile)

    rows = []
    with atomic_path(out / "features.npy") as tmp, tmp.open("wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                      "fortran_order": False, "shape": shape})
        for row, track_id in enumerate(present):
            array = read_track(source, track_id)
            valid = _valid(lengths[track_id], array)
            if running is not None:
                running.add(array, valid)
            array = _fit(array, shape[2], pad_value)
            if normalize:
                array = (array - mean[:, None, :]) / np.where(std > 0, std, 1.0)[:, None, :]
            handle.write(np.ascontiguousarray(array, dtype=dtype).data)
            rows.append((row, track_id, min(valid, shape[2])))
            if on_progress is not None:
                on_progress(row + 1, len(present))
    if running is not None:
        mean, std = running.finish()
        _save_stats(stats_path, mean, std, source=str(tidfile))
    write_csv(pd.DataFrame(rows, columns=["row", "track_id", "valid_frames"]), out / "index.csv")
    write_csv(pd.DataFrame(left_out, columns=["track_id", "reason"]), out / "left_out.csv")
    write_json({"shape": list(shape), "dtype": dtype.name, "normalized": normalize, "crop": crop, "pad": pad,
                "pad_value": pad_value, "source": str(source.resolve()), "extract_config": extract_config,
                "stats": stats_path.name if stats_path else None}, out / "store.json")
    return MergeReport(out_dir=out, n_tracks=len(present), shape=shape, left_out=left_out, stats_path=stats_path)


def _store_shape(source: Path, present: list[str], extract_config: dict, *, crop: bool, pad: bool, frames: int,
                 tidfile: str | Path) -> tuple[int, int, int, int]:
    """(N, n_mels, frames, channels) of the store.

    Every array's header is read: mels and channels must agree (a folder
    re-extracted with other parameters can hold both), and lengths must agree
    once ``crop`` (longer ones cut to ``frames``) and ``pad`` (shorter ones
    padded to ``frames``) are applied.
    """
    if not present:
        if not (crop and pad):
            raise UsageError(f"{tidfile}: none of its tracks has an extracted array in {source}")
        # an empty partition (tiny collections) still gets a store, with zero rows
        return (0, int(extract_config.get("n_mels", 128)), frames, 1 if extract_config.get("mono") else 2)
    shapes = {track_id: _shape(track_path(source, track_id)) for track_id in present}
    first = shapes[present[0]]
    for track_id, shape in shapes.items():
        if (shape[0], shape[2]) != (first[0], first[2]):
            raise UsageError(f"{track_path(source, track_id)}: {shape[0]} mels x {shape[2]} channels, but "
                             f"{present[0]} has {first[0]} x {first[2]} (arrays of two extractions in one folder?)")

    def length(n: int) -> int:
        n = min(n, frames) if crop else n
        return max(n, frames) if pad else n

    lengths = {track_id: length(shape[1]) for track_id, shape in shapes.items()}
    unequal = [t for t in present if lengths[t] != lengths[present[0]]]
    if unequal:
        hint = "--crop --pad" if not (crop or pad) else ("--pad" if crop else "--crop")
        raise UsageError(f"{unequal[0]}: {shapes[unequal[0]][1]} frames where {present[0]} has "
                         f"{shapes[present[0]][1]} (add {hint} to bring them to {frames})")
    return (len(present), first[0], lengths[present[0]], first[2])


def _load_stats(path: Path, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std from a ``stats.npz``, checked against the store's mels and channels."""
    try:
        with np.load(path) as loaded:
            mean, std = loaded["mean"], loaded["std"]
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{path}: not a stats.npz with mean and std ({exc})") from exc
    expected = (shape[1], shape[3])
    if mean.shape != expected or std.shape != expected:
        raise InputError(f"{path}: statistics of shape {mean.shape}, but the store has {expected[0]} mels x "
                         f"{expected[1]} channels")
    return mean, std


def _stats_tracks(tidfile: Path, source: Path, states: dict[str, ExtractState], *, padded: bool
                  ) -> tuple[list[str], dict[str, int | None]]:
    """The usable tracks of another tidfile (:func:`usable_tracks`); the others are named in a warning."""
    present, lengths, left_out = usable_tracks(tidfile, source, states, padded=padded)
    if left_out:
        logger.warning("%s: %d of %d tracks are left out of the statistics (e.g. %s: %s)", tidfile, len(left_out),
                       len(left_out) + len(present), *left_out[0])
    return present, lengths


def _statistics(source: Path, track_ids: list[str], lengths: dict[str, int | None]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over the valid frames of ``track_ids`` (a reading pass of its own)."""
    running = RunningStats()
    for track_id in track_ids:
        array = read_track(source, track_id, mmap=True)
        running.add(array, _valid(lengths[track_id], array))
    return running.finish()


def _valid(frames: int | None, array: np.ndarray) -> int:
    """Valid frames of an array: the logged count, or the whole array when the extraction did not pad."""
    return array.shape[1] if frames is None else min(frames, array.shape[1])


def _shape(path: Path) -> tuple[int, ...]:
    with path.open("rb") as handle:
        version = np.lib.format.read_magic(handle)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, _ = reader(handle)  # the header only, no data read
    return tuple(shape)


def _fit(array: np.ndarray, n_frames: int, pad_value: float) -> np.ndarray:
    if array.shape[1] >= n_frames:
        return array[:, :n_frames]
    return np.pad(array, ((0, 0), (0, n_frames - array.shape[1]), (0, 0)), constant_values=pad_value)


def _save_stats(path: Path, mean: np.ndarray, std: np.ndarray, *, source: str) -> None:
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez(handle, mean=mean.astype(np.float64), std=std.astype(np.float64), source=np.array(source))


class FeatureStore:
    """A merged partition, memory-mapped: rows by index or track id, random crops, normalization.

    Parameters
    ----------
    path : path-like
        A folder written by :func:`merge`.
    stats : path-like, optional
        ``stats.npz`` used by :meth:`normalized` (default: the folder's own).
    """

    def __init__(self, path: str | Path, stats: str | Path | None = None) -> None:
        self.path = Path(path)
        for name in ("features.npy", "index.csv", "store.json"):
            if not (self.path / name).is_file():
                raise InputError(f"{self.path}: missing {name} (not a merged store)")
        self.features = np.load(self.path / "features.npy", mmap_mode="r")
        self.index = pd.read_csv(self.path / "index.csv", dtype={"track_id": str})
        self.params = json.loads((self.path / "store.json").read_text())
        self._rows = {t: i for i, t in enumerate(self.index.track_id)}
        stats_path = Path(stats) if stats is not None else self.path / STATS_FILE
        self.mean = self.std = None
        if stats_path.is_file():
            with np.load(stats_path) as loaded:
                self.mean, self.std = loaded["mean"], loaded["std"]

    def __len__(self) -> int:
        return len(self.index)

    def row(self, track_id: str) -> int:
        """Row of a track id."""
        if track_id not in self._rows:
            raise KeyError(f"{track_id}: not in {self.path}")
        return self._rows[track_id]

    def get(self, key: str | int) -> np.ndarray:
        """The array of a row or track id, shape (n_mels, frames, channels)."""
        return np.asarray(self.features[self.row(key) if isinstance(key, str) else key])

    def random_crop(self, key: str | int, length: int, rng: np.random.Generator) -> np.ndarray:
        """A random ``length``-frame crop within the valid frames (216 frames ~ 2.5 s in the original)."""
        row = self.row(key) if isinstance(key, str) else key
        valid = int(self.index.valid_frames.iloc[row])
        start = int(rng.integers(0, max(1, valid - length + 1)))
        crop = np.asarray(self.features[row, :, start:start + length], dtype=np.float32)
        if crop.shape[1] < length:
            crop = _fit(crop, length, float(self.params.get("pad_value", -80.0)))
        return crop

    def normalized(self, array: np.ndarray) -> np.ndarray:
        """``(x - mean) / std`` per mel band and channel with the store's statistics."""
        if self.mean is None:
            raise UsageError(f"{self.path}: no statistics to normalize with")
        return ((array - self.mean[:, None, :]) / np.where(self.std > 0, self.std, 1.0)[:, None, :]).astype(
            np.float32)
