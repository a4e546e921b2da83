"""Feature extraction (stage 3): one log-mel array per track, every track accounted for.

Each track ends in exactly one state, written to ``DST/logs/extract-<UTC>.csv``
(appended and flushed per track) and, at the end, to ``DST/extract_log.csv``
(each track's latest state): ``ok`` (extracted; message ``silent`` for digital
silence), ``skipped`` (already there, with ``--skip``) or ``failed`` (with the
reason). Workers write their own files atomically, so a run killed at any
moment and started again with ``--skip`` finishes the job with identical results.
"""

from __future__ import annotations

import csv
import logging
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from musicrep.audio import load_segment
from musicrep.errors import AudioError, InputError, UsageError
from musicrep.features import TOP_DB, MelConfig, mel_filterbank, mel_power, power_to_db
from musicrep.fileio import ensure_dir, write_csv
from musicrep.store import check_config, track_path, write_track

logger = logging.getLogger(__name__)

LOG_FILE = "extract_log.csv"
LOG_COLUMNS = ["track_id", "status", "message", "frames"]
PAD_VALUES = {"floor": -TOP_DB, "original": 0.0}


@dataclass(frozen=True)
class ExtractConfig:
    """Everything that determines the arrays (saved as ``extract_config.json``).

    Parameters
    ----------
    mel : MelConfig
        The log-mel front end (the original preset by default).
    crop, pad : bool
        Keep the first ``frames`` frames / pad shorter arrays to ``frames``.
    frames : int
        880 frames (about 10.2 s) in the original.
    precision : {16, 32}
        Stored float width.
    pad_value : {"floor", "original"}
        Padded frames hold the -80 dB floor, or 0 dB as the original script wrote.
    """

    mel: MelConfig = field(default_factory=MelConfig)
    crop: bool = False
    pad: bool = False
    frames: int = 880
    precision: int = 32
    pad_value: str = "floor"
    preset: str = "original"

    def validate(self) -> None:
        if self.precision not in (16, 32):
            raise UsageError(f"--precision must be 16 or 32 (got {self.precision})")
        if self.pad_value not in PAD_VALUES:
            raise UsageError(f"--pad-value must be floor or original (got {self.pad_value!r})")

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(data.pop("mel"))
        return data


@dataclass
class TrackResult:
    """The final state of one track."""

    track_id: str
    status: str
    message: str = ""
    frames: int | None = None
    """Valid (non-padded) frames of an extracted array."""


@dataclass
class ExtractReport:
    """Counts and where the log is."""

    dst: Path
    results: list[TrackResult]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[TrackResult]:
        return [r for r in self.results if r.status == "failed"]


def extract_features(path: str | Path, config: ExtractConfig, filterbank: np.ndarray | None = None
                     ) -> tuple[np.ndarray, bool]:
    """The log-mel array of one file.

    Returns
    -------
    array : np.ndarray [shape=(n_mels, frames, 2)], float32 or float16
    silent : bool
        Every channel was digital silence (stored as the -80 dB floor).
    """
    array, silent, _ = extract_with_length(path, config, filterbank)
    return array, silent


def extract_with_length(path: str | Path, config: ExtractConfig, filterbank: np.ndarray | None = None
                        ) -> tuple[np.ndarray, bool, int]:
    """:func:`extract_features` plus the number of valid (non-padded) frames."""
    y = load_segment(path, sr=config.mel.sr)  # decode only the segment (plus a resampling margin)
    db, silent = power_to_db(mel_power(y, config.mel, filterbank))
    if config.crop:
        db = db[:, :, : config.frames]
    valid = db.shape[2]
    if config.pad and db.shape[2] < config.frames:
        db = np.pad(db, ((0, 0), (0, 0), (0, config.frames - db.shape[2])),
                    constant_values=PAD_VALUES[config.pad_value])
    array = np.ascontiguousarray(db.transpose(1, 2, 0))
    if not np.isfinite(array).all():
        raise AudioError(str(path), "non-finite values in the spectrogram")
    return array.astype(np.float16 if config.precision == 16 else np.float32), bool(silent.all()), valid


def _extract_one(job: tuple[str, str, str, ExtractConfig]) -> TrackResult:
    """Worker: extract and write one track; every error becomes a failed result."""
    track_id, audio_path, dst, config = job
    try:
        array, silent, valid = extract_with_length(audio_path, config, _filterbank(config.mel))
        write_track(dst, track_id, array)
    except AudioError as exc:
        return TrackResult(track_id, "failed", exc.reason)
    except OSError as exc:
        return TrackResult(track_id, "failed", f"cannot write features ({exc.strerror or exc})")
    except Exception as exc:  # noqa: BLE001 - any other failure of one track is recorded, the run goes on
        return TrackResult(track_id, "failed", f"{type(exc).__name__}: {exc}")
    return TrackResult(track_id, "ok", "silent" if silent else "", valid)


_FILTERBANKS: dict[MelConfig, np.ndarray] = {}


def _filterbank(config: MelConfig) -> np.ndarray:
    # per-process cache: the filterbank is the same for every track of a run
    if config not in _FILTERBANKS:
        _FILTERBANKS[config] = mel_filterbank(config)
    return _FILTERBANKS[config]


def read_tidfile(path: str | Path) -> pd.DataFrame:
    """A partition file: CSV with a header holding ``track_id`` and ``filename``."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{file}: tidfile not found")
    try:
        frame = pd.read_csv(file, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{file}: not a readable CSV tidfile ({exc})") from exc
    missing = [c for c in ("track_id", "filename") if c not in frame.columns]
    if missing:
        raise InputError(f"{file}: no header with {' and '.join(missing)} "
                         f"(a tidfile starts with the line track_id,filename; got {list(frame.columns)[:3]})")
    return frame[["track_id", "filename"]]


def extract(
    tracks: pd.DataFrame, dst: str | Path, config: ExtractConfig, *, audio_root: Path | None = None,
    workers: int = 1, skip: bool = False, on_progress=None,
) -> ExtractReport:
    """Extract every track of ``tracks`` (``track_id``, ``filename``) into ``dst``.

    Parameters
    ----------
    tracks : pandas.DataFrame
        ``filename`` is absolute or relative to ``audio_root``; an empty filename fails the track.
    dst : path-like
        Output folder (checked writable before any work).
    workers : int
        Processes; a worker killed by a signal fails its in-flight tracks and the pool is restarted.
    skip : bool
        Tracks whose array exists are ``skipped`` (the folder's parameters must match).
    """
    config.validate()
    if workers < 1:
        raise UsageError(f"--workers must be at least 1 (got {workers})")
    root = ensure_dir(dst)
    check_config(root, config.to_dict(), skip=skip)
    logs = ensure_dir(root / "logs")
    run_log = logs / f"extract-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}.csv"
    results: dict[str, TrackResult] = {}
    todo: list[tuple[str, str, str, ExtractConfig]] = []
    with run_log.open("a", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(LOG_COLUMNS)

        def record(result: TrackResult) -> None:
            results[result.track_id] = result
            writer.writerow([result.track_id, result.status, result.message, result.frames or ""])
            handle.flush()
            if on_progress is not None:
                on_progress(len(results), len(tracks))

        for track_id, filename in tracks.drop_duplicates("track_id").itertuples(index=False):
            if skip and track_path(root, track_id).is_file():
                record(TrackResult(track_id, "skipped", "already extracted"))
            elif not filename:
                record(TrackResult(track_id, "failed", "track id not in the manifest"))
            else:
                path = Path(filename) if audio_root is None or Path(filename).is_absolute() else audio_root / filename
                todo.append((track_id, str(path), str(root), config))
        _run_pool(todo, workers, record)
    _write_log(root, results)
    return ExtractReport(dst=root, results=list(results.values()))


def _run_pool(todo: list, workers: int, record) -> None:
    """Run jobs on a process pool with bounded in-flight work; survive dead workers."""
    queue = list(reversed(todo))
    while queue:
        with ProcessPoolExecutor(max_workers=workers, initializer=_single_thread) as pool:
            in_flight: dict[Future, tuple] = {}
            try:
                while queue or in_flight:
                    while queue and len(in_flight) < 4 * workers:
                        job = queue.pop()
                        in_flight[pool.submit(_extract_one, job)] = job
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        # a dead worker raises BrokenProcessPool here: the job is still in
                        # in_flight and is failed below, so nothing is lost
                        result = future.result()
                        del in_flight[future]
                        record(result)
            except BrokenProcessPool:
                reason = _death_reason(pool)
                for job in in_flight.values():
                    record(TrackResult(job[0], "failed", reason))
                logger.warning("a worker died (%s); %d track(s) failed, restarting the pool", reason, len(in_flight))


def _single_thread() -> None:
    """Worker set-up: one thread per process, so N workers use N cores without oversubscription."""
    import torch

    torch.set_num_threads(1)


def _death_reason(pool: ProcessPoolExecutor) -> str:
    # ProcessPoolExecutor keeps its processes privately; their exit codes tell the signal
    processes = getattr(pool, "_processes", None) or {}
    for process in processes.values():
        code = process.exitcode
        if code is not None and code < 0:
            return f"worker died (signal {-code})"
    return "worker died"


def _write_log(root: Path, results: dict[str, TrackResult]) -> None:
    """Update ``extract_log.csv``: every track's latest state (earlier runs' tracks kept)."""
    path = root / LOG_FILE
    states: dict[str, tuple[str, str, str]] = {}
    if path.is_file():
        previous = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "frames" not in previous:
            previous["frames"] = ""
        states.update({r.track_id: (r.status, r.message, r.frames) for r in previous.itertuples(index=False)})
    for r in results.values():
        # a skipped track keeps the valid-frame count of the run that extracted it
        frames = states.get(r.track_id, ("", "", ""))[2] if r.status == "skipped" else str(r.frames or "")
        states[r.track_id] = (r.status, r.message, frames)
    rows = [(track_id, *state) for track_id, state in sorted(states.items())]
    write_csv(pd.DataFrame(rows, columns=LOG_COLUMNS), path)
