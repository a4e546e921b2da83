"""Feature extraction (stage 3): one log-mel array per track, every track accounted for.

Each track ends in exactly one state, written to ``DST/logs/extract-<UTC>.csv``
(appended and flushed per track) and, at the end, to ``DST/extract_log.csv``
(each track's latest state): ``ok`` (extracted; message ``silent`` for digital
silence), ``skipped`` (already there, with ``--skip``; keeps the message and
frames of the extraction it skips) or ``failed`` (with the reason; the track's
array of an earlier run is removed, so the array in the folder is always that of
the latest successful extraction). Workers write their own files atomically, so
a run killed at any moment and started again with ``--skip`` finishes the job
with identical results. :func:`latest_states` is the one reader of those states
(extract's ``--skip`` and merge use it).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from musicrep.data.manifest import TRACK_ID_RULE, is_safe_track_id
from musicrep.errors import AudioError, InputError, UsageError
from musicrep.features.audio import DecoderOutput, decoder_output, load, load_segment
from musicrep.features.executors import make_runner
from musicrep.features.frontend import TOP_DB, MelConfig, mel_front_end
from musicrep.features.store import check_config, track_path, write_config, write_track
from musicrep.fileio import ensure_dir, write_csv
from musicrep.memory import retain_freed_memory
from musicrep.tables import TidProblem, read_table

logger = logging.getLogger(__name__)

LOG_FILE = "extract_log.csv"
LOG_COLUMNS = ["track_id", "status", "message", "frames"]
PAD_VALUES = {"floor": -TOP_DB, "original": 0.0}
SEGMENTS = ("original", "full")
PRESETS: dict[str, MelConfig] = {"original": MelConfig()}
"""Named front ends; any field can be overridden (``ExtractConfig.from_preset``)."""


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
    mono : bool
        One channel, the mean of all (default: two, see :func:`musicrep.features.audio.to_stereo`).
    segment : {"original", "full"}
        The original rule (3-14 s when longer than 14 s, else the first 11 s) or the whole file.
    """

    mel: MelConfig = field(default_factory=MelConfig)
    crop: bool = False
    pad: bool = False
    frames: int = 880
    precision: int = 32
    pad_value: str = "floor"
    preset: str = "original"
    mono: bool = False
    segment: str = "original"

    @classmethod
    def from_preset(cls, preset: str = "original", *, mel_overrides: dict | None = None, **fields) -> ExtractConfig:
        """A preset's front end with some of its :class:`MelConfig` fields overridden (``None`` = keep)."""
        if preset not in PRESETS:
            raise UsageError(f"--preset must be one of {', '.join(PRESETS)} (got {preset!r})")
        changes = {k: v for k, v in (mel_overrides or {}).items() if v is not None}
        return cls(mel=replace(PRESETS[preset], **changes), preset=preset, **fields)

    def validate(self) -> None:
        """Raise :class:`UsageError` naming the first impossible parameter."""
        mel = self.mel
        checks = [
            (self.precision in (16, 32), f"--precision must be 16 or 32 (got {self.precision})"),
            (self.pad_value in PAD_VALUES, f"--pad-value must be floor or original (got {self.pad_value!r})"),
            (self.segment in SEGMENTS, f"--segment must be one of {', '.join(SEGMENTS)} (got {self.segment!r})"),
            (self.frames > 0, f"--frames must be positive (got {self.frames})"),
            (mel.sr >= 1000, f"--sample-rate must be at least 1000 Hz (got {mel.sr})"),
            (16 <= mel.n_fft, f"--n-fft must be at least 16 (got {mel.n_fft})"),
            (0 < mel.hop_length, f"--hop-length must be positive (got {mel.hop_length})"),
            (0 < mel.n_mels <= mel.n_fft // 2 + 1,
             f"--n-mels must be between 1 and n_fft / 2 + 1 = {mel.n_fft // 2 + 1} (got {mel.n_mels})"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)

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


@dataclass(frozen=True)
class ExtractState:
    """A track's latest logged extraction state (:func:`latest_states`)."""

    status: str
    message: str
    frames: int | None
    """Valid (non-padded) frames, when the log knows them."""

    @property
    def current(self) -> bool:
        """The latest extraction succeeded (``ok``, or ``skipped`` over an ``ok``): its array is current."""
        return self.status in ("ok", "skipped")


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


def extract_features(path: str | Path, config: ExtractConfig) -> tuple[np.ndarray, bool]:
    """The log-mel array of one file.

    Returns
    -------
    array : np.ndarray [shape=(n_mels, frames, channels)], float32 or float16
    silent : bool
        Every channel was digital silence (stored as the -80 dB floor).
    """
    array, silent, _ = extract_with_length(path, config)
    return array, bool(silent.all())


def extract_with_length(path: str | Path, config: ExtractConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`extract_features` with the silence of each channel and the number of valid (non-padded) frames."""
    if config.segment == "full":
        y = load(path, sr=config.mel.sr, mono=config.mono)
    else:  # decode only the segment (plus a resampling margin)
        y = load_segment(path, sr=config.mel.sr, mono=config.mono)
    db, silent = mel_front_end(config.mel).log_mel(y)
    array, valid = stored_layout(db, config)
    if not np.isfinite(array).all():
        raise AudioError(str(path), "non-finite values in the spectrogram")
    return array, silent, valid


def stored_layout(db: np.ndarray, config: ExtractConfig) -> tuple[np.ndarray, int]:
    """A log-mel ``(n_mels, frames, channels)`` as extraction stores it: cropped and padded to ``config.frames``
    as asked, in the stored precision; and its valid (non-padded) frames."""
    if config.crop:
        db = db[:, : config.frames]
    valid = db.shape[1]
    if config.pad and valid < config.frames:
        db = np.pad(db, ((0, 0), (0, config.frames - valid), (0, 0)), constant_values=PAD_VALUES[config.pad_value])
    array = db.astype(np.float16 if config.precision == 16 else np.float32, copy=False)
    return np.ascontiguousarray(array), valid


def _extract_one(job: tuple[str, str, str, ExtractConfig]) -> TrackResult:
    """Worker: extract and write one track; every error becomes a failed result.

    What the decoders printed never reaches stderr: an extracted track's message
    says ``decoded with warnings: <first lines>``; a failed one keeps its reason only.
    """
    track_id, audio_path, dst, config = job
    with decoder_output() as output:
        try:
            array, silent, valid = extract_with_length(audio_path, config)
            write_track(dst, track_id, array)
        except AudioError as exc:  # "PATH: reason": the line names the file that was tried
            return TrackResult(track_id, "failed", str(exc))
        except OSError as exc:  # disk full, permissions, a path blocked by a file: name the array that was not written
            return TrackResult(track_id, "failed", f"cannot write features to {track_path(dst, track_id)} "
                                                   f"({exc.strerror or exc})")
        except Exception as exc:  # noqa: BLE001 - any other failure of one track is recorded, the run goes on
            return TrackResult(track_id, "failed", f"{type(exc).__name__}: {exc}")
    return TrackResult(track_id, "ok", _join_messages(_silence_message(silent), _decoder_message(output)), valid)


def _decoder_message(output: DecoderOutput) -> str:
    summary = output.summary()
    return f"decoded with warnings: {summary}" if summary else ""


def _join_messages(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


def _silence_message(silent: np.ndarray) -> str:
    if silent.all():
        return "silent"
    if silent.any():
        return "silent channel(s): " + " ".join(str(c + 1) for c in np.flatnonzero(silent))
    return ""


def extract(
    tracks: pd.DataFrame, dst: str | Path, config: ExtractConfig, *, audio_root: Path | None = None,
    workers: int | None = 1, scheduler: str | None = None, skip: bool = False, on_progress=None,
    rejected: Sequence[TidProblem] = (), missing_filename: str = "no filename",
) -> ExtractReport:
    """Extract every track of ``tracks`` (``track_id``, ``filename``) into ``dst``.

    Parameters
    ----------
    tracks : pandas.DataFrame
        ``filename`` is absolute or relative to ``audio_root``; an empty filename fails the track.
    dst : path-like
        Output folder (checked writable before any work).
    audio_root : path-like, optional
        Must be a folder (checked before anything is written).
    workers : int, optional
        Processes of the local pool; with ``scheduler``, tasks in flight (see :mod:`musicrep.features.executors`).
        A worker killed by a signal fails its in-flight tracks and the run goes on.
    scheduler : str, optional
        ``"local"`` (a dask LocalCluster) or ``tcp://HOST:PORT``; default: a local process pool.
    skip : bool
        Tracks whose array exists and whose latest logged state (:func:`latest_states`) is ``ok`` or
        ``skipped`` are ``skipped``, keeping that state's message and frames (the folder's parameters
        must match); every other track is extracted.
    rejected : sequence of TidProblem
        Tidfile rows that cannot be used (:func:`musicrep.tables.read_tidfile`): each is recorded as failed.
        Unsafe ids in ``tracks`` fail too, and nothing is written for them.
    missing_filename : str
        The reason a track with an empty ``filename`` fails (the CLI says ``track id not in the manifest``
        when the paths come from a manifest).
    """
    config.validate()
    if audio_root is not None and not Path(audio_root).is_dir():
        what = "is not a directory" if Path(audio_root).exists() else "audio folder not found"
        raise InputError(f"{audio_root}: {what} (--audio-root)")
    root = Path(dst)
    check_config(root, config.to_dict(), skip=skip)
    unique = tracks[["track_id", "filename"]].drop_duplicates("track_id")
    results: dict[object, TrackResult] = {}  # by track id; rejected tidfile rows by line (their ids may repeat)
    # remote workers are shared and long-lived: their malloc settings are not ours to change
    initializer = _init_worker if scheduler in (None, "local") else None
    with make_runner(workers, scheduler, initializer) as runner:
        # only once the workers are there: a run that cannot start leaves no config or logs behind
        ensure_dir(root)
        write_config(root, config.to_dict())
        logs = ensure_dir(root / "logs")
        _remove_partial_files(root)
        previous = latest_states(root) if skip else {}
        run_log = logs / f"extract-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}.csv"
        try:
            with run_log.open("a", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(LOG_COLUMNS)

                def record(result: TrackResult, key: object = None) -> None:
                    if result.status == "failed":
                        _remove_stale_array(root, result.track_id)
                    results[result.track_id if key is None else key] = result
                    writer.writerow([result.track_id, result.status, result.message,
                                     "" if result.frames is None else result.frames])
                    handle.flush()
                    if on_progress is not None:
                        on_progress(len(results), len(unique) + len(rejected))

                for problem in rejected:
                    record(TrackResult(problem.track_id, "failed", f"tidfile line {problem.line}: {problem.reason}"),
                           key=("tidfile line", problem.line))
                todo = []
                for track_id, filename in unique.itertuples(index=False):
                    if not is_safe_track_id(track_id):
                        record(TrackResult(track_id, "failed", f"unsafe track id ({TRACK_ID_RULE})"))
                    elif skip and _is_current(previous.get(track_id)) and track_path(root, track_id).is_file():
                        state = previous[track_id]
                        record(TrackResult(track_id, "skipped", state.message, state.frames))
                    elif not filename:
                        record(TrackResult(track_id, "failed", missing_filename))
                    else:
                        path = Path(filename)
                        if audio_root is not None and not path.is_absolute():
                            path = audio_root / path
                        todo.append((track_id, str(path), str(root), config))
                runner.run(_extract_one, todo, record,
                           lambda job, reason: record(TrackResult(job[0], "failed", reason)))
        finally:  # even an interrupted run leaves extract_log.csv true to what was done
            _write_log(root)
    return ExtractReport(dst=root, results=list(results.values()))


def _is_current(state: ExtractState | None) -> bool:
    return state is not None and state.current


def _remove_stale_array(root: Path, track_id: str) -> None:
    """Remove the array an earlier run left for a track that has just failed (it is no longer current)."""
    if not is_safe_track_id(track_id):
        return
    path = track_path(root, track_id)
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:  # e.g. the shard folder is blocked by a file: there is no array to remove then
        if path.exists():
            logger.warning("%s: cannot remove the stale array of failed track %s (%s)", path, track_id,
                           exc.strerror or exc)


def _remove_partial_files(root: Path) -> None:
    """Delete temporary arrays a killed run left behind (``atomic_path`` names them ``.<file>.*.tmp``).

    Run only at the start of an extraction: two runs writing into one folder at once are not supported.
    """
    for partial in root.glob("*/.*.npy.*.tmp"):
        partial.unlink(missing_ok=True)


def _init_worker() -> None:
    """Worker set-up: keep freed buffers for the next track (:func:`musicrep.memory.retain_freed_memory`).

    Nothing here uses threads (scipy's FFT and the sparse product run on one),
    so N workers use N cores without oversubscription.
    """
    retain_freed_memory()


_STATUSES = frozenset({"ok", "skipped", "failed"})
_OLD_SKIP_MESSAGE = "already extracted"
"""What ``skipped`` rows said before they carried the skipped extraction's message."""


def _read_run_log(path: Path) -> list[list[str]]:
    """Rows ``track_id,status,message,frames`` of one run log; a killed run's cut-off last row is ignored."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows = [row + [""] * (len(LOG_COLUMNS) - len(row)) for row in csv.reader(io.StringIO(text))][1:]
    return [row for row in rows if len(row) == len(LOG_COLUMNS) and row[1] in _STATUSES]


def has_log(root: str | Path) -> bool:
    """``root`` holds ``extract_log.csv`` or at least one run log."""
    folder = Path(root)
    return (folder / LOG_FILE).is_file() or any((folder / "logs").glob("extract-*.csv"))


def latest_states(root: str | Path) -> dict[str, ExtractState]:
    """Each track's latest extraction state: ``extract_log.csv`` with every run log over it, oldest first.

    Run logs are flushed per track, so the states of a run killed before it
    rewrote ``extract_log.csv`` (SIGKILL) are included; a ``skipped`` row keeps
    the message and valid frames of the state it skipped. Reads only.

    Raises
    ------
    InputError
        ``extract_log.csv`` exists but is not a log (no ``track_id`` and ``status`` columns).
    """
    folder = Path(root)
    path = folder / LOG_FILE
    states: dict[str, tuple[str, str, str]] = {}
    if path.is_file():
        previous = read_table(path, required_all=("track_id", "status"), what="extraction log")
        messages = previous["message"] if "message" in previous else [""] * len(previous)
        frames = previous["frames"] if "frames" in previous else [""] * len(previous)
        states.update({t: (s, m, f) for t, s, m, f in zip(previous["track_id"], previous["status"], messages,
                                                          frames, strict=True)})
    for run_log in sorted((folder / "logs").glob("extract-*.csv")):
        for track_id, status, message, frames in _read_run_log(run_log):
            if status == "skipped":
                _, old_message, old_frames = states.get(track_id, ("", "", ""))
                frames = frames or old_frames
                message = old_message if message == _OLD_SKIP_MESSAGE else message
            states[track_id] = (status, message, frames)
    return {track_id: ExtractState(status, message, int(frames) if frames.strip().isdigit() else None)
            for track_id, (status, message, frames) in states.items()}


def _write_log(root: Path) -> None:
    """Rebuild ``extract_log.csv`` from every run log (:func:`latest_states`): each track's latest state."""
    rows = [(track_id, state.status, state.message, "" if state.frames is None else state.frames)
            for track_id, state in sorted(latest_states(root).items())]
    write_csv(pd.DataFrame(rows, columns=LOG_COLUMNS), root / LOG_FILE)
