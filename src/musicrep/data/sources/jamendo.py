"""MTG-Jamendo: the autotagging TSV layout.

Columns ``TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION`` then one tab-separated
field per tag, ``genre---rock``, ``instrument---piano``,
``mood/theme---happy``. Several TSVs (e.g. the genre and mood/theme subsets)
are merged per track.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from musicrep.data.sources import Problem, ProgressFn, SourceRecords
from musicrep.tables import iter_rows

TAG_CATEGORIES = {"genre": "genres", "instrument": "instruments", "mood/theme": "moodthemes"}
HEADER = ("TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION")


@dataclass
class JamendoSource:
    """MTG-Jamendo autotagging TSVs (``--tsv FILE... --audio-root DIR``)."""

    tsv: list[Path]
    audio_root: Path

    def collect(self, out_dir: Path, *, on_progress: ProgressFn | None = None) -> SourceRecords:
        """Read the TSVs; tags of one track from several files are united."""
        tracks: dict[str, dict] = {}
        problems: list[Problem] = []
        for path in self.tsv:
            _read_tsv(Path(path), tracks, problems)
        tagsets = sorted({t for row in tracks.values() for t in row["tags"]},
                         key=lambda t: list(TAG_CATEGORIES.values()).index(t)
                         if t in TAG_CATEGORIES.values() else 99)
        rows = [
            {"track_id": tid, "audio_path": r["path"], "artist": r["artist"], "album": r["album"],
             "duration": r["duration"], **{f"tags_{t}": r["tags"].get(t, []) for t in tagsets}}
            for tid, r in tracks.items()
        ]
        return SourceRecords(frame=pd.DataFrame(rows), tagsets=tagsets,
                             audio_root=Path(self.audio_root).resolve(), problems=problems)


def _read_tsv(path: Path, tracks: dict[str, dict], problems: list[Problem]) -> None:
    opened = iter_rows(path, what="MTG-Jamendo TSV", ragged_if_tab=True)
    if opened.delimiter != "\t" or tuple(opened.header[:5]) != HEADER:
        raise opened.missing_columns(f"the MTG-Jamendo header {' '.join(HEADER)} (tab-separated)")
    for number, fields in opened.rows:
        if len(fields) < 5 or not all(f.strip() for f in fields[:4]):
            problems.append(Problem(fields[0], f"{path}:{number}", "malformed row (empty id, artist, album or path)"))
            continue
        track_id, artist, album, audio_path, duration = (f.strip() for f in fields[:5])
        row = tracks.setdefault(track_id, {"artist": artist, "album": album, "path": audio_path,
                                           "duration": _float(duration), "tags": {}})
        for tag in filter(str.strip, fields[5:]):
            category, sep, value = tag.strip().partition("---")
            if not sep or not value:
                problems.append(Problem(track_id, f"{path}:{number}", f"malformed tag {tag!r}", "kept"))
                continue
            tagset = TAG_CATEGORIES.get(category, category.replace("/", "") + "s")
            tags = row["tags"].setdefault(tagset, [])
            if value not in tags:
                tags.append(value)


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
