"""The Track record and the manifest table: read, write, validate, summarize.

A manifest is one Parquet file with one row per track (schema in DESIGN.md).
Audio paths are relative to the manifest's ``audio_root`` so that a run
directory can move; ``audio_root`` itself is stored relative to the manifest's
folder when the audio lives below it.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from hashlib import sha1
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from musicrep.errors import InputError
from musicrep.fileio import atomic_path
from musicrep.memory import paused_gc

SCHEMA_VERSION = 1
TRACK_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}")
TRACK_ID_RULE = "allowed: [A-Za-z0-9._-]{1,128}, not . or .."
_DOT_IDS = frozenset({".", ".."})
TAG_PREFIX = "tags_"
BASE_COLUMNS = (
    "track_id",
    "audio_path",
    "artist",
    "album",
    "title",
    "text",
    "language",
    "duration",
    "sample_rate",
    "channels",
    "format",
)
_STRING_COLUMNS = ("track_id", "audio_path", "artist", "album", "title", "text", "language", "format")
_WHITESPACE = re.compile(r"\s+")
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Track:
    """One track of a collection, as a manifest row.

    Parameters
    ----------
    track_id : str
        Stable id matching ``[A-Za-z0-9._-]{1,128}``.
    audio_path : str
        Path of the audio file relative to the manifest's ``audio_root``.
    tags : dict[str, list[str]]
        Normalized tags per tagset (plural tagset names).
    duration, sample_rate, channels, format
        From the audio header; ``None`` when not probed or unreadable.
    """

    track_id: str
    audio_path: str
    artist: str = ""
    album: str = ""
    title: str = ""
    text: str = ""
    language: str = ""
    duration: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    format: str = ""
    tags: dict[str, list[str]] = field(default_factory=dict)


def normalize_tag(tag: str) -> str:
    """Normalize one tag: Unicode NFC, lower-case, whitespace collapsed.

    A tag stays one term: ``"Hard  Rock"`` becomes ``"hard rock"``, never two words.
    """
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", str(tag)).lower()).strip()


def normalize_name(name: str) -> str:
    """Normalize an artist or album name for matching and grouping (case-folded)."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", str(name)).casefold()).strip()


def is_safe_track_id(track_id: object) -> bool:
    """True when ``track_id`` is a string matching ``[A-Za-z0-9._-]{1,128}`` and is not ``.`` or ``..``.

    A safe id can become a file name anywhere (feature store, embeddings)
    without leaving the folder it is written to.
    """
    return (isinstance(track_id, str) and TRACK_ID_PATTERN.fullmatch(track_id) is not None
            and track_id not in _DOT_IDS)


def safe_id_mask(track_ids: pd.Series) -> np.ndarray:
    """Vectorized :func:`is_safe_track_id` over a string column."""
    ids = track_ids.astype(str)
    return (ids.str.fullmatch(TRACK_ID_PATTERN) & ~ids.isin(_DOT_IDS)).to_numpy(dtype=bool)


def safe_track_id(raw: str) -> str:
    """Derive a safe, stable track id from any string (e.g. a relative path).

    Unsafe characters become ``_``; when anything had to change, or the result
    would be too long, a short SHA-1 of the raw string keeps ids distinct.
    """
    if is_safe_track_id(raw) and not raw.startswith("."):
        return raw
    digest = sha1(raw.encode("utf-8")).hexdigest()[:10]
    stem = _UNSAFE_ID_CHARS.sub("_", raw).strip("._-")[:100]
    return f"{stem}-{digest}" if stem else digest


def tag_column(tagset: str) -> str:
    """Manifest column name of a tagset: ``tags_<tagset>``."""
    return f"{TAG_PREFIX}{tagset}"


def tracks_to_frame(tracks: Sequence[Track], tagsets: Sequence[str]) -> pd.DataFrame:
    """Turn :class:`Track` records into a manifest frame (one column per tagset)."""
    columns: dict[str, list] = {name: [] for name in BASE_COLUMNS}
    for tagset in tagsets:
        columns[tag_column(tagset)] = []
    for track in tracks:
        for name in BASE_COLUMNS:
            columns[name].append(getattr(track, name))
        for tagset in tagsets:
            columns[tag_column(tagset)].append(list(track.tags.get(tagset, [])))
    return conform_frame(pd.DataFrame(columns), tagsets)


def conform_frame(frame: pd.DataFrame, tagsets: Sequence[str], *, normalize_tags: bool = False) -> pd.DataFrame:
    """Give ``frame`` exactly the manifest columns and dtypes, in order.

    Missing string columns become empty strings, missing header fields become
    nulls, and every tag cell becomes a list of strings (NaN or None: empty);
    with ``normalize_tags`` each tag is also normalized (:func:`normalize_tag`),
    empty tags dropped and duplicates within a cell removed.
    """
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for name in _STRING_COLUMNS:
        values = frame[name] if name in frame else pd.Series([""] * len(frame))
        out[name] = values.fillna("").astype(str).to_numpy(dtype=object)
    duration = frame["duration"] if "duration" in frame else pd.Series([np.nan] * len(frame))
    out["duration"] = pd.to_numeric(duration, errors="coerce").astype("float64").to_numpy()
    for name in ("sample_rate", "channels"):
        values = frame[name] if name in frame else pd.Series([None] * len(frame))
        out[name] = pd.array(pd.to_numeric(values, errors="coerce"), dtype="Int64")
    clean = _tag_cleaner() if normalize_tags else list
    for tagset in tagsets:
        column = tag_column(tagset)
        values = frame[column].to_numpy(dtype=object) if column in frame else [None] * len(frame)
        out[column] = [clean(v) if isinstance(v, (list, tuple, np.ndarray)) else [] for v in values]
    return out[list(BASE_COLUMNS) + [tag_column(t) for t in tagsets]]


def _tag_cleaner() -> Callable[[Sequence[str]], list[str]]:
    """A tag-list normalizer that normalizes each distinct tag once (fast at MSD scale)."""
    cache: dict[str, str] = {}

    def clean(tags: Sequence[str]) -> list[str]:
        out: list[str] = []
        for tag in tags:
            norm = cache.get(tag)
            if norm is None:
                norm = cache[tag] = normalize_tag(tag)
            if norm and norm not in out:
                out.append(norm)
        return out

    return clean


@dataclass
class Manifest:
    """A manifest table with its metadata.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per track, columns as in :data:`BASE_COLUMNS` plus ``tags_<tagset>``.
    tagsets : list[str]
        The tagsets recorded, in column order.
    audio_root : Path
        Absolute folder that ``audio_path`` is relative to.
    path : Path or None
        Where the manifest was read from, if anywhere.
    """

    frame: pd.DataFrame
    tagsets: list[str]
    audio_root: Path
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.frame)

    def audio_file(self, audio_path: str) -> Path:
        """Absolute path of an ``audio_path`` entry."""
        return self.audio_root / audio_path

    def tracks(self) -> Iterator[Track]:
        """Iterate over the rows as :class:`Track` records."""
        tag_columns = [tag_column(t) for t in self.tagsets]
        for row in self.frame.itertuples(index=False):
            values = row._asdict()
            tags = {t: list(values[c]) for t, c in zip(self.tagsets, tag_columns, strict=True)}
            yield Track(
                **{name: _plain(values[name]) for name in BASE_COLUMNS},
                tags=tags,
            )

    def has_data(self) -> pd.Series:
        """Boolean mask: the track has at least one tag or a non-empty text."""
        mask = self.frame["text"].str.strip().str.len() > 0
        for tagset in self.tagsets:
            mask |= self.frame[tag_column(tagset)].map(len) > 0
        return mask


def _plain(value: object) -> object:
    """Turn pandas missing values into ``None`` for the record API."""
    if value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.integer):
        return int(value)
    return value


def validate_frame(frame: pd.DataFrame, tagsets: Sequence[str], *, source: str) -> None:
    """Check a manifest frame; raise :class:`InputError` naming ``source`` on the first problem."""
    missing = [c for c in list(BASE_COLUMNS) + [tag_column(t) for t in tagsets] if c not in frame]
    if missing:
        raise InputError(f"{source}: missing manifest column(s) {', '.join(missing)}")
    ids = frame["track_id"]
    bad = ids[~safe_id_mask(ids)]
    if len(bad):
        raise InputError(f"{source}: unsafe track id {bad.iloc[0]!r} ({TRACK_ID_RULE})")
    dup = ids[ids.duplicated()]
    if len(dup):
        raise InputError(f"{source}: duplicate track id {dup.iloc[0]!r}")


def write_manifest(manifest: Manifest, path: str | os.PathLike[str]) -> Path:
    """Write ``manifest`` to a Parquet file atomically and return its path."""
    target = Path(path)
    validate_frame(manifest.frame, manifest.tagsets, source=str(target))
    table = pa.Table.from_pandas(manifest.frame, schema=_arrow_schema(manifest.tagsets), preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata.update(
        {
            b"musicrep.schema_version": str(SCHEMA_VERSION).encode(),
            b"musicrep.tagsets": json.dumps(list(manifest.tagsets)).encode(),
            b"musicrep.audio_root": _stored_root(manifest.audio_root, target.parent).encode(),
        }
    )
    table = table.replace_schema_metadata(metadata)
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    manifest.path = target
    return target


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate a manifest written by :func:`write_manifest`.

    Raises
    ------
    InputError
        The file is missing, not Parquet, not a musicrep manifest, or invalid.
    """
    source = Path(path)
    if not source.is_file():
        raise InputError(f"{source}: manifest not found")
    try:
        table = pq.read_table(source)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{source}: not a readable Parquet manifest ({_first_line(exc)})") from exc
    metadata = table.schema.metadata or {}
    if b"musicrep.schema_version" not in metadata:
        raise InputError(f"{source}: not a musicrep manifest (no schema_version metadata)")
    version = int(metadata[b"musicrep.schema_version"])
    if version > SCHEMA_VERSION:
        raise InputError(f"{source}: schema_version {version} is newer than supported {SCHEMA_VERSION}")
    tagsets = json.loads(metadata[b"musicrep.tagsets"])
    root = Path(metadata[b"musicrep.audio_root"].decode())
    audio_root = root if root.is_absolute() else (source.parent / root)
    with paused_gc():
        frame = table.to_pandas()
        validate_frame(frame, tagsets, source=str(source))
        frame = conform_frame(frame, tagsets)
    return Manifest(frame=frame, tagsets=tagsets, audio_root=audio_root.resolve(), path=source)


def _arrow_schema(tagsets: Sequence[str]) -> pa.Schema:
    fields = [pa.field(name, pa.string()) for name in BASE_COLUMNS[:7]]
    fields += [
        pa.field("duration", pa.float64()),
        pa.field("sample_rate", pa.int32()),
        pa.field("channels", pa.int16()),
        pa.field("format", pa.string()),
    ]
    fields += [pa.field(tag_column(t), pa.list_(pa.string())) for t in tagsets]
    return pa.schema(fields)


def _stored_root(audio_root: Path, manifest_dir: Path) -> str:
    """``audio_root`` relative to the manifest folder when below it, else absolute."""
    root = Path(audio_root).resolve()
    try:
        return str(root.relative_to(manifest_dir.resolve())) or "."
    except ValueError:
        return str(root)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
