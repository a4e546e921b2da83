"""Million Song Dataset audio with the AMG tagsets and album reviews (the original layout).

* ``--labels msd_amglabels_all.h5``: a pandas HDF5 file (fixed format, key
  ``data``) indexed by MSD track id, with list-valued columns ``genres``,
  ``styles``, ``moods``, ``themes`` (missing = NaN) and ``artist_name``,
  ``title``, ``release``.
* ``--audio-root``: the MSD preview tree, ``ROOT/tid[2]/tid[3]/tid[4]/tid.mp3``.
* ``--reviews``: CSV or JSON lines (artist, album or release, text, optional
  language), matched to tracks by normalized artist + release.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from musicrep.data.manifest import normalize_name
from musicrep.data.sources import Problem, ProgressFn, SourceRecords
from musicrep.data.sources.tables import text_cell
from musicrep.errors import InputError
from musicrep.tables import read_table
from musicrep.targets.stopwords import joined_language

logger = logging.getLogger(__name__)

TAGSETS = ("genres", "styles", "moods", "themes")
HDF_KEY = "data"


def msd_audio_path(track_id: str) -> str:
    """Relative path of an MSD preview: ``t[2]/t[3]/t[4]/tid.mp3``."""
    return f"{track_id[2]}/{track_id[3]}/{track_id[4]}/{track_id}.mp3"


@dataclass
class MsdAmgSource:
    """MSD + AMG labels (``--labels H5 --audio-root DIR [--reviews FILE]``)."""

    labels: Path
    audio_root: Path
    reviews: Path | None = None

    def collect(self, out_dir: Path, *, on_progress: ProgressFn | None = None) -> SourceRecords:
        """Read the labels file, join the reviews, lay out audio paths."""
        table = read_labels(Path(self.labels))
        tagsets = [t for t in TAGSETS if t in table.columns]
        ids = table.index.astype(str).to_numpy(dtype=object)
        frame = pd.DataFrame({
            "track_id": ids,
            "audio_path": [msd_audio_path(t) if len(t) >= 5 else t + ".mp3" for t in ids],
            "artist": _strings(table, "artist_name"),
            "album": _strings(table, "release"),
            "title": _strings(table, "title"),
        })
        for tagset in tagsets:
            # lists or NaN, as stored; align turns them into normalized lists in one pass
            frame[f"tags_{tagset}"] = table[tagset].to_numpy(dtype=object)
        problems: list[Problem] = []
        if self.reviews is not None:
            _join_reviews(frame, Path(self.reviews), problems)
        return SourceRecords(frame=frame, tagsets=tagsets, audio_root=Path(self.audio_root).resolve(),
                             problems=problems)


def read_labels(path: Path) -> pd.DataFrame:
    """Read ``msd_amglabels_all.h5`` (pandas HDF5, key ``data``) with clear errors."""
    if not path.is_file():
        raise InputError(f"{path}: labels file not found")
    try:
        with pd.HDFStore(path, mode="r") as store:
            keys = [k.lstrip("/") for k in store.keys()]
            if HDF_KEY not in keys:
                raise InputError(f"{path}: no key '{HDF_KEY}' in the HDF5 file (keys: {', '.join(keys) or 'none'})")
            table = store.select(HDF_KEY)  # select, not get: 3x faster on pickled list columns
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - PyTables/HDF5 raise many kinds for a bad file
        raise InputError(f"{path}: not a readable pandas HDF5 file ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(table, pd.DataFrame):
        raise InputError(f"{path}: key '{HDF_KEY}' is not a table")
    if not any(t in table.columns for t in TAGSETS):
        raise InputError(f"{path}: no tagset column (expected one of {', '.join(TAGSETS)})")
    return table


def _strings(table: pd.DataFrame, column: str) -> np.ndarray:
    if column not in table.columns:
        return np.full(len(table), "", dtype=object)
    values = pd.Series(table[column].to_numpy(dtype=object))
    return values.fillna("").astype(str).str.strip().to_numpy(dtype=object)


def _join_reviews(frame: pd.DataFrame, path: Path, problems: list[Problem]) -> None:
    """Attach review text to tracks by normalized artist + release.

    Several reviews of one album are joined; their language is kept when they
    share it, else the text is labelled ``mul`` (multiple languages).
    """
    reviews = read_table(path, required_any=("album", "release"), required_all=("artist", "text"))
    album_column = "album" if "album" in reviews.columns else "release"
    texts: dict[tuple[str, str], list[str]] = {}
    languages: dict[tuple[str, str], list[str]] = {}
    for number, record in zip(reviews.index, reviews.to_dict("records"), strict=True):
        key = (normalize_name(text_cell(record.get("artist"))), normalize_name(text_cell(record.get(album_column))))
        text = text_cell(record.get("text"))
        if not key[0] or not text:
            problems.append(Problem("", f"{path}:{number}", "review without artist or text", "dropped"))
            continue
        texts.setdefault(key, []).append(text)
        languages.setdefault(key, []).append(text_cell(record.get("language")))
    keys = list(zip(frame["artist"].map(normalize_name), frame["album"].map(normalize_name), strict=True))
    frame["text"] = ["\n\n".join(texts.get(k, [])) for k in keys]
    # reviews in several languages: "mul", so that no single language's stop words apply to all of them
    frame["language"] = [joined_language(languages.get(k, [])) for k in keys]
    matched = set(keys)
    unmatched = [k for k in texts if k not in matched]
    if unmatched:
        logger.info("%s: %d reviews match no track", path, len(unmatched))
