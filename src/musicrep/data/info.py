"""What a manifest holds: counts, coverage, top labels, languages, durations, formats.

Artists and albums are counted as partitions group them (normalized names:
``Björk`` and ``BJÖRK`` are one artist) and languages as analyzers read them
(``en-US``, ``eng`` and ``English`` are ``en``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from musicrep.data.manifest import Manifest, normalize_name, tag_column
from musicrep.targets.stopwords import manifest_language

DURATION_BINS = (0.0, 4.0, 11.0, 14.0, 30.0, 60.0, 600.0, np.inf)


@dataclass
class ManifestInfo:
    """Summary tables of one manifest, ready to print."""

    n_tracks: int
    n_artists: int
    n_albums: int
    coverage: pd.DataFrame  # tagset, tracks, share, distinct labels, mean tags per track
    top_labels: dict[str, pd.Series]  # tagset -> label counts (top N)
    n_text: int
    languages: pd.Series
    durations: pd.Series
    formats: pd.Series
    unprobed: int
    missing_audio: list[str] = field(default_factory=list)


def manifest_info(manifest: Manifest, *, top: int = 10, check_audio: bool = True) -> ManifestInfo:
    """Summarize a manifest.

    Parameters
    ----------
    manifest : Manifest
    top : int
        How many of the most frequent labels to list per tagset.
    check_audio : bool
        Check that every audio file exists (a ``stat`` per track).
    """
    frame = manifest.frame
    coverage_rows = []
    top_labels = {}
    for tagset in manifest.tagsets:
        tags = frame[tag_column(tagset)]
        lengths = tags.map(len)
        counts = tags.explode().dropna().value_counts()
        coverage_rows.append({
            "tagset": tagset, "tracks": int((lengths > 0).sum()),
            "share": float((lengths > 0).mean()) if len(frame) else 0.0,
            "labels": len(counts), "tags per track": float(lengths[lengths > 0].mean() or 0.0)
            if (lengths > 0).any() else 0.0,
        })
        top_labels[tagset] = counts.head(top)
    has_text = frame["text"].str.len() > 0
    durations = pd.cut(frame["duration"], DURATION_BINS, right=False).value_counts(sort=False)
    durations.index = [_bin_label(i) for i in durations.index]
    missing = []
    if check_audio:
        missing = [p for p in frame["audio_path"] if not manifest.audio_file(p).is_file()]
    artists, albums = _normalized(frame["artist"]), _normalized(frame["album"])
    languages = frame.loc[has_text, "language"]  # normalized again: manifests aligned before align normalized them
    return ManifestInfo(
        n_tracks=len(frame),
        n_artists=artists[artists != ""].nunique(),
        n_albums=pd.DataFrame({"artist": artists, "album": albums})[albums != ""].drop_duplicates().shape[0],
        coverage=pd.DataFrame(coverage_rows),
        top_labels=top_labels,
        n_text=int(has_text.sum()),
        languages=languages.map({v: manifest_language(v) for v in languages.unique()}).replace(
            "", "unknown").value_counts(),
        durations=durations[durations > 0],
        formats=frame["format"].replace("", "unknown").value_counts(),
        unprobed=int(frame["duration"].isna().sum()),
        missing_audio=missing,
    )


def _normalized(names: pd.Series) -> pd.Series:
    """Names as partitions group them (:func:`musicrep.data.manifest.normalize_name`), once per distinct name."""
    names = names.fillna("").astype(str)
    return names.map({name: normalize_name(name) for name in names.unique()})


def _bin_label(interval: pd.Interval) -> str:
    high = "" if np.isinf(interval.right) else f"{interval.right:g}"
    return f"{interval.left:g}-{high} s"
