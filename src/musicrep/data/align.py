"""Align a collection into one validated manifest (stage 1).

:func:`align` asks a source for its records, normalizes tags, checks ids and
audio, drops unusable tracks with a reason, and writes
``manifest.parquet`` + ``manifest_problems.csv`` atomically.
"""

from __future__ import annotations

import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from musicrep.data.manifest import (
    TRACK_ID_RULE,
    Manifest,
    conform_frame,
    safe_id_mask,
    write_manifest,
)
from musicrep.data.sources import Problem, ProgressFn, Source, SourceRecords
from musicrep.errors import AudioError, InputError
from musicrep.features.audio import MISSING, decoder_output, format_from_path, probe
from musicrep.fileio import ensure_dir, write_csv
from musicrep.memory import paused_gc
from musicrep.targets.stopwords import manifest_language

logger = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.parquet"
PROBLEMS_FILE = "manifest_problems.csv"
PROBLEM_COLUMNS = ["track_id", "file", "reason", "action"]
_PROBE_THREADS = 8


@dataclass
class AlignReport:
    """What :func:`align` wrote and what went wrong."""

    manifest_path: Path
    problems_path: Path
    n_tracks: int
    problems: list[Problem] = field(default_factory=list)
    expected_problems: dict[str, str] = field(default_factory=dict)

    @property
    def unexpected_problems(self) -> list[Problem]:
        """Problems not announced by the source as deliberate."""
        return [p for p in self.problems if p.track_id not in self.expected_problems]


def align(
    source: Source,
    out_dir: str | Path,
    *,
    check_audio: bool = True,
    on_progress: ProgressFn | None = None,
) -> AlignReport:
    """Build and write the manifest of a collection.

    Parameters
    ----------
    source : Source
        A configured source (see :func:`musicrep.data.sources.make_source`).
    out_dir : path-like
        Output folder; receives ``manifest.parquet`` and ``manifest_problems.csv``.
    check_audio : bool
        Open each audio file's header (duration, rate, channels, format). When
        False, only the format is taken from the file name and nothing is
        opened: metadata-only runs at scale.
    on_progress : callable, optional
        ``(done, total)`` callback while audio headers are probed.

    Returns
    -------
    AlignReport
    """
    audio_root = getattr(source, "audio_root", None)
    if check_audio and audio_root is not None and not Path(audio_root).is_dir():
        what = "is not a directory" if Path(audio_root).exists() else "audio folder not found"
        raise InputError(f"{audio_root}: {what} (--audio-root)")
    out = Path(out_dir)
    created = not out.exists()
    ensure_dir(out)
    try:
        with paused_gc():
            records = source.collect(out, on_progress=on_progress)
            frame, problems = clean_records(records, check_audio=check_audio, on_progress=on_progress)
        manifest = Manifest(frame=frame, tagsets=records.tagsets, audio_root=records.audio_root)
        manifest_path = write_manifest(manifest, out / MANIFEST_FILE)
        problems_path = out / PROBLEMS_FILE
        write_csv(problems_frame(problems), problems_path)
    except BaseException:
        if created:  # a failed align leaves nothing behind, not even an empty --out
            shutil.rmtree(out, ignore_errors=True)
        raise
    logger.info("wrote %s (%d tracks, %d problems)", manifest_path, len(frame), len(problems))
    return AlignReport(
        manifest_path=manifest_path,
        problems_path=problems_path,
        n_tracks=len(frame),
        problems=problems,
        expected_problems=records.expected_problems,
    )


def problems_frame(problems: list[Problem]) -> pd.DataFrame:
    """Problems as a table with :data:`PROBLEM_COLUMNS`."""
    rows = [(p.track_id, p.file, p.reason, p.action) for p in problems]
    return pd.DataFrame(rows, columns=PROBLEM_COLUMNS)


def clean_records(
    records: SourceRecords,
    *,
    check_audio: bool,
    on_progress: ProgressFn | None = None,
) -> tuple[pd.DataFrame, list[Problem]]:
    """Normalize, check and filter a source's records; return the frame and problems."""
    problems = list(records.problems)
    frame = conform_frame(records.frame, records.tagsets, normalize_tags=True)
    # one code per language (en-US, eng, English -> en), computed once per distinct value
    languages = frame["language"].fillna("").astype(str)
    frame["language"] = languages.map({v: manifest_language(v) for v in languages.unique()})
    frame["text"] = frame["text"].str.strip()

    keep = np.ones(len(frame), dtype=bool)
    safe = safe_id_mask(frame["track_id"])
    for i in np.flatnonzero(~safe):
        problems.append(Problem(frame.at[i, "track_id"], frame.at[i, "audio_path"],
                                f"unsafe track id ({TRACK_ID_RULE})"))
    keep &= safe
    duplicated = frame["track_id"].duplicated().to_numpy() & keep
    for i in np.flatnonzero(duplicated):
        problems.append(
            Problem(frame.at[i, "track_id"], frame.at[i, "audio_path"], "duplicate track id (first kept)")
        )
    keep &= ~duplicated

    manifest = Manifest(frame=frame, tagsets=records.tagsets, audio_root=records.audio_root)
    no_data = ~manifest.has_data().to_numpy() & keep
    for i in np.flatnonzero(no_data):
        problems.append(Problem(frame.at[i, "track_id"], frame.at[i, "audio_path"], "no tags and no text"))
    keep &= ~no_data

    if check_audio:
        keep &= _probe_audio(frame, records.audio_root, keep, problems, on_progress)
    else:
        empty = (frame["format"] == "").to_numpy()
        suffix = frame.loc[empty, "audio_path"].str.extract(r"\.([^./]+)$", expand=False)
        frame.loc[empty, "format"] = suffix.fillna("").str.lower().to_numpy(dtype=object)

    frame = frame[keep].sort_values("track_id", kind="stable").reset_index(drop=True)
    problems.sort(key=lambda p: (p.track_id, p.reason))
    return frame, problems


def _probe_audio(
    frame: pd.DataFrame,
    audio_root: Path,
    keep: np.ndarray,
    problems: list[Problem],
    on_progress: ProgressFn | None,
) -> np.ndarray:
    """Fill header fields; return the mask of tracks whose audio exists.

    A missing file drops the track; an unreadable one keeps it (with empty
    header fields) so that extraction reports it too, and records a problem.
    What the decoder prints meanwhile is logged at info level instead of reaching stderr.
    """
    rows = np.flatnonzero(keep)
    present = np.ones(len(frame), dtype=bool)
    durations = frame["duration"].to_numpy(copy=True)
    rates = frame["sample_rate"].copy()
    channels = frame["channels"].copy()
    formats = frame["format"].copy()

    def check(i: int) -> tuple[int, object, str]:
        # what the decoder prints while reading a header is logged (at info), never printed on the terminal
        with decoder_output() as output:
            try:
                result: object = probe(audio_root / frame.at[i, "audio_path"])
            except AudioError as exc:
                result = exc
        return i, result, output.summary()

    with ThreadPoolExecutor(max_workers=_PROBE_THREADS) as pool:
        for done, (i, result, warnings) in enumerate(pool.map(check, rows), start=1):
            path = frame.at[i, "audio_path"]
            if warnings:  # e.g. "Xing stream size off" for a truncated mp3, which extraction reports in its log
                logger.info("%s: the decoder printed while reading the header: %s", path, warnings)
            if isinstance(result, AudioError):
                missing = result.reason == MISSING
                present[i] = not missing
                action = "dropped" if missing else "kept"
                problems.append(Problem(frame.at[i, "track_id"], path, result.reason, action))
                formats.iat[i] = format_from_path(path)
            else:
                durations[i] = result.duration
                rates.iat[i] = result.sample_rate
                channels.iat[i] = result.channels
                formats.iat[i] = result.format
            if on_progress is not None:
                on_progress(done, len(rows))
    frame["duration"] = durations
    frame["sample_rate"] = rates
    frame["channels"] = channels
    frame["format"] = formats
    return present
