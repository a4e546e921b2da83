"""Any directory of audio files, with metadata from a table or the files' own tags.

With ``--metadata FILE`` (CSV or JSON lines) rows are matched to files by a
``path`` column (relative to ``--audio-root``) or by ``track_id`` (the file
name without extension). Tagset columns are ``tags_<name>`` or a known
tagset name (``genres``, ``styles``, ``moods``, ``themes``, ``instruments``,
``tags``; singular forms accepted) holding ``;``-separated tags, or in JSON
lines a list of tags (``"genres": ["jazz", "blues"]``). Without a
metadata file, embedded tags (genre, artist, album, title, comment) are read
with mutagen.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from musicrep.data.manifest import TAG_PREFIX, safe_track_id
from musicrep.data.sources import Problem, ProgressFn, SourceRecords
from musicrep.data.sources.tables import text_cell
from musicrep.errors import InputError
from musicrep.features.audio import AUDIO_EXTENSIONS
from musicrep.tables import read_table

logger = logging.getLogger(__name__)

KNOWN_TAGSETS = ("genres", "styles", "moods", "themes", "instruments", "tags")
TEXT_COLUMNS = ("artist", "album", "title", "text", "language")
_EMBEDDED_SPLIT = re.compile(r"\s*[;\x00]\s*")


@dataclass
class FolderSource:
    """A folder of audio files (``--audio-root DIR [--metadata FILE]``)."""

    audio_root: Path
    metadata: Path | None = None

    def collect(self, out_dir: Path, *, on_progress: ProgressFn | None = None) -> SourceRecords:
        """Scan the folder and attach metadata to each audio file."""
        root = Path(self.audio_root)
        if not root.is_dir():
            raise InputError(f"{root}: audio folder not found")
        files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                       if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
        if self.metadata is None:
            frame, problems, tagsets = _embedded(root, files, on_progress)
        else:
            frame, problems, tagsets = _from_table(Path(self.metadata), files)
        return SourceRecords(frame=frame, tagsets=tagsets, audio_root=root.resolve(), problems=problems)


def tagset_name(column: str) -> str | None:
    """The tagset a metadata column holds, or None for other columns."""
    name = column.strip().lower()
    if name.startswith(TAG_PREFIX):
        return name[len(TAG_PREFIX):] or None
    if name in KNOWN_TAGSETS:
        return name
    if name + "s" in KNOWN_TAGSETS:
        return name + "s"
    return None


def tag_cell(value: object) -> list[str]:
    """The tags of one metadata cell: a list (JSON lines) as it is, a string split at ``;``; blanks dropped.

    Examples
    --------
    >>> tag_cell(["Jazz", " Blues ", None]), tag_cell("rock; indie rock;"), tag_cell(float("nan"))
    (['Jazz', 'Blues'], ['rock', 'indie rock'], [])
    """
    items = value if isinstance(value, (list, tuple)) else text_cell(value).split(";")
    return [tag for tag in (text_cell(item) for item in items) if tag]


def _from_table(path: Path, files: list[str]) -> tuple[pd.DataFrame, list[Problem], list[str]]:
    table = read_table(path, required_any=("path", "track_id"))
    tag_columns = {c: tagset_name(c) for c in table.columns if tagset_name(c)}
    tagsets = list(dict.fromkeys(tag_columns.values()))
    by_stem: dict[str, str] = {}
    for file in files:
        by_stem.setdefault(Path(file).stem, file)
    problems: list[Problem] = []
    rows = []
    matched: set[str] = set()
    for number, record in zip(table.index, table.to_dict("records"), strict=True):
        given_path = text_cell(record.get("path"))
        given_id = text_cell(record.get("track_id"))
        audio_path = given_path or by_stem.get(given_id, "")
        if not audio_path:
            problems.append(Problem(given_id, f"{path}:{number}", "no audio file for this track_id"))
            continue
        matched.add(audio_path)
        row = {"track_id": given_id or safe_track_id(str(Path(audio_path).with_suffix(""))),
               "audio_path": audio_path}
        row.update({c: text_cell(record.get(c)) for c in TEXT_COLUMNS})
        for column, tagset in tag_columns.items():
            row.setdefault(f"tags_{tagset}", []).extend(tag_cell(record.get(column)))
        rows.append(row)
    for file in files:
        if file not in matched:
            problems.append(Problem(safe_track_id(str(Path(file).with_suffix(""))), file,
                                    f"no row in {path.name}"))
    return pd.DataFrame(rows), problems, tagsets


def _embedded(root: Path, files: list[str], on_progress: ProgressFn | None):
    import mutagen

    rows = []
    problems: list[Problem] = []
    for done, file in enumerate(files, start=1):
        track_id = safe_track_id(str(Path(file).with_suffix("")))
        try:
            tags = mutagen.File(root / file, easy=True)
        except Exception as exc:  # noqa: BLE001 - mutagen raises many kinds; the file is reported
            tags = None
            logger.debug("%s: mutagen failed: %s", file, exc)
        values = dict(tags.tags or {}) if tags is not None and tags.tags is not None else {}
        genres = [g for v in values.get("genre", []) for g in _EMBEDDED_SPLIT.split(v) if g]
        rows.append({
            "track_id": track_id, "audio_path": file,
            "artist": _first(values, "artist"), "album": _first(values, "album"),
            "title": _first(values, "title"), "text": _first(values, "comment"),
            "tags_genres": genres,
        })
        if on_progress:
            on_progress(done, len(files))
    return pd.DataFrame(rows), problems, ["genres"]


def _first(values: dict, key: str) -> str:
    found = values.get(key) or [""]
    return str(found[0]).strip()
