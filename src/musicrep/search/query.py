"""Queries on an index folder: by track, by audio, by tags, by free text (``musicrep search``).

:class:`Searcher` opens an index (:mod:`musicrep.search.index`) and answers
:class:`SearchResult` lists of :class:`Hit`. Track and audio queries search the
unit audio embeddings; tag and text queries are projected into their target
space (:mod:`musicrep.search.spaces`) and compared by cosine with the tracks'
audio in that space. Each hit says why it matched: its score, the tags it shares
with the query track (or with the query's tags), and for a text query the query
terms that weigh most in the hit's own text (its TF-IDF row in the text space).

A Searcher is safe to share between threads (the HTTP server does): it only
reads, and what it loads on first use (the model, the target spaces) is loaded
under a lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musicrep.data.manifest import normalize_name, tag_column
from musicrep.errors import AudioError, InputError, UsageError
from musicrep.search.index import (
    AUDIO,
    load_model,
    missing_path_message,
    open_space,
    other_model_message,
    read_description,
    read_failed,
    read_ids,
    read_tracks,
    recorded_path,
)
from musicrep.search.layout import PLACE_NEIGHBOURS, MapLayout
from musicrep.search.spaces import QueryTerms, project_terms, split_tags, tag_terms, text_terms, weighted_terms
from musicrep.targets.analyzers import TextDocument

logger = logging.getLogger(__name__)

MAX_K = 1000
"""Largest ``k`` a query may ask for."""
SAME_RECORDING = 0.9999
"""Cosine from which an audio query is taken to be an indexed track (the same recording)."""


class UnknownTrackError(InputError):
    """A track id that is not in the index (or an indexed track without an audio file)."""


@dataclass
class Hit:
    """One result of a query.

    Attributes
    ----------
    rank : int
        1 for the best.
    track_id, title, artist, album : str
    score : float
        Cosine similarity with the query in the space searched.
    tags : dict[str, list[str]]
        Tagset -> the track's tags.
    why : dict
        ``shared_tags``: tags shared with the query track or the query's tags; ``terms``: for a
        text query, the query terms that weigh most in the track's text (heaviest first).
    xy : tuple[float, float]
        The track's point on the 2-D map.
    """

    rank: int
    track_id: str
    score: float
    title: str
    artist: str
    album: str
    tags: dict[str, list[str]]
    why: dict[str, Any]
    xy: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["xy"] = [float(self.xy[0]), float(self.xy[1])]
        return data


@dataclass
class SearchResult:
    """The answer to a query.

    Attributes
    ----------
    query : dict
        ``kind`` (track, audio, tags, text), ``value``, ``space`` searched; for tags and text also
        ``known`` and ``unknown`` (what the space does not know).
    hits : list[Hit]
    timings : dict[str, float]
        Seconds: ``decode``, ``embed`` (audio: the network; tags and text: the projection), ``search``.
    query_xy : tuple[float, float] or None
        Where the query sits on the map.
    """

    query: dict[str, Any]
    hits: list[Hit]
    timings: dict[str, float] = field(default_factory=dict)
    query_xy: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "hits": [hit.to_dict() for hit in self.hits], "timings": dict(self.timings),
                "query_xy": None if self.query_xy is None else [float(self.query_xy[0]), float(self.query_xy[1])]}


class Searcher:
    """An opened index folder (:meth:`open`).

    Attributes
    ----------
    path : Path
        The index folder.
    description : dict
        Its ``index.json``.
    ids : list[str]
        Indexed track ids, in row order.
    model_id : str
        The model the index was built with.
    max_k : int
        ``k`` must lie in ``1..max_k``.
    """

    max_k: int = MAX_K

    def __init__(self, path: Path, description: dict[str, Any], *, encoder: Any = None, device: str = "cpu") -> None:
        self.path = path
        self.description = description
        self.model_id: str = description["model"]["model_id"]
        self.device = device
        self.ids = read_ids(path, description["count"])
        self._row = {track_id: row for row, track_id in enumerate(self.ids)}
        self._failed = read_failed(path)  # tracks of the collection the build could not index, and why
        tracks = read_tracks(path, description["count"])
        self._tagsets: list[str] = list(description["tagsets"])
        self._titles = tracks["title"].tolist()
        self._artists = tracks["artist"].tolist()
        self._albums = tracks["album"].tolist()
        self._texts = list(zip(tracks["text"].tolist(), tracks["language"].tolist(), strict=True))
        self._audio_paths = tracks["audio_path"].fillna("").tolist()  # as recorded: read by audio_path()
        # per tagset one column of tag lists; a hit's dict is made when it is shown (a million dicts would not be)
        self._tag_columns = {t: tracks[tag_column(t)].to_numpy() for t in self._tagsets if tag_column(t) in tracks}
        self._xy = tracks[["x", "y"]].to_numpy(dtype=np.float32)
        artist_keys = [normalize_name(a) for a in self._artists]
        self._artist_key = [key or f"\0{row}" for row, key in enumerate(artist_keys)]  # no artist: its own
        self._by_artist: dict[str, list[int]] = {}
        for row, key in enumerate(self._artist_key):
            self._by_artist.setdefault(key, []).append(row)
        self._layout = MapLayout.load(path / description["map"]["file"])
        self._spaces = {name: open_space(path, description, name) for name in description["spaces"]}
        self._encoder = encoder
        self._target_spaces: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, index_dir: str | Path, *, model: str | Path | None = None, device: str = "cpu") -> Searcher:
        """Open an index folder.

        Parameters
        ----------
        index_dir : path-like
        model : path-like, optional
            Model folder for audio queries (default: the one recorded in the index, loaded on the
            first audio query). A model of another ``model_id`` is refused.
        device : str
            Torch device of the model.

        Raises
        ------
        InputError
            Not an index folder, or its files disagree.
        UsageError
            ``model`` is not the index's model.
        """
        path = Path(index_dir)
        description = read_description(path)
        encoder = None
        if model is not None:
            from musicrep.inference.hub import load

            encoder = load(model, device=device)
            if encoder.model_id != description["model"]["model_id"]:
                raise UsageError(other_model_message(path, description, encoder))
        return cls(path, description, encoder=encoder, device=device)

    def __len__(self) -> int:
        return len(self.ids)

    # -- tracks

    def track(self, track_id: str) -> dict[str, Any]:
        """``track_id``, ``title``, ``artist``, ``album``, ``tags``, ``xy`` and ``has_audio`` of an indexed track.

        Raises
        ------
        UnknownTrackError
        """
        row = self._row_of(track_id)
        return {"track_id": track_id, "title": self._titles[row], "artist": self._artists[row],
                "album": self._albums[row], "tags": self._tags(row),
                "xy": [float(self._xy[row, 0]), float(self._xy[row, 1])],
                "has_audio": bool(self._audio_paths[row]) and self.audio_path(track_id).is_file()}

    def audio_path(self, track_id: str) -> Path:
        """The audio file of an indexed track (only ids of the index lead to a file).

        Raises
        ------
        UnknownTrackError
            Not indexed, or indexed without an audio file.
        """
        row = self._row_of(track_id)
        if not self._audio_paths[row]:
            raise UnknownTrackError(f"track {track_id!r} has no audio file in the index {self.path}")
        return recorded_path(self.path, self._audio_paths[row], self.description.get("location"))

    def map_points(self) -> tuple[list[str], np.ndarray]:
        """Indexed ids and their map points ``(n, 2)`` float32."""
        return list(self.ids), self._xy.copy()

    # -- queries

    def by_track(self, track_id: str, *, k: int = 10, exclude_artist: bool = False) -> SearchResult:
        """The tracks that sound most like an indexed track (never the track itself).

        Parameters
        ----------
        track_id : str
        k : int
            1..:attr:`max_k`.
        exclude_artist : bool
            Leave out the query track's artist.

        Raises
        ------
        UnknownTrackError, UsageError
        """
        self._check_k(k)
        row = self._row_of(track_id)
        excluded = self._excluded(row, exclude_artist)
        start = time.perf_counter()
        vectors, _ = self._spaces[AUDIO]
        scores, rows = self._search(AUDIO, np.asarray(vectors[row], dtype=np.float32), k, excluded)
        searched = time.perf_counter() - start
        query_tags = self._tags(row)
        hits = self._hits(scores, rows, lambda hit: {"shared_tags": _shared(query_tags, self._tags(hit)),
                                                     "terms": []})
        query = {"kind": "track", "value": track_id, "space": AUDIO, "title": self._titles[row],
                 "artist": self._artists[row], "exclude_artist": exclude_artist}
        return SearchResult(query, hits, {"search": searched}, (float(self._xy[row, 0]), float(self._xy[row, 1])))

    def by_audio(self, audio: str | Path | np.ndarray, sr: int | None = None, *, k: int = 10,
                 exclude_artist: bool = False) -> SearchResult:
        """The tracks that sound most like an audio file or array, embedded by the index's model.

        An indexed recording given again (cosine >= :data:`SAME_RECORDING`) is reported as
        ``query["same_as"]``; with ``exclude_artist`` it and its artist are left out.

        Parameters
        ----------
        audio : path-like or np.ndarray [shape=(n,) or (channels, n)]
            A file, or float samples (``sr`` then required).
        sr : int, optional
        k, exclude_artist
            As in :meth:`by_track`.

        Raises
        ------
        InputError
            The audio cannot be decoded or used (names it).
        UsageError
            ``k`` out of range.
        """
        self._check_k(k)
        encoder = self._model()
        start = time.perf_counter()
        try:
            features = encoder.features(audio, sr)
        except AudioError as exc:
            raise InputError(str(exc)) from exc
        decoded = time.perf_counter()
        batch, _ = encoder.window_batch(features)
        vector = encoder.embed_batch(batch).mean(axis=0).astype(np.float32)
        vector /= max(float(np.linalg.norm(vector)), 1e-12)
        embedded = time.perf_counter()
        vectors, index = self._spaces[AUDIO]
        best_scores, best_rows = index.search(vector[None], 1)
        same = int(best_rows[0, 0]) if best_rows[0, 0] >= 0 and best_scores[0, 0] >= SAME_RECORDING else None
        excluded = self._excluded(same, exclude_artist) if same is not None and exclude_artist else set()
        scores, rows = self._search(AUDIO, vector, k, excluded)
        searched = time.perf_counter()
        query_tags = self._tags(same) if same is not None else {}
        hits = self._hits(scores, rows, lambda hit: {"shared_tags": _shared(query_tags, self._tags(hit)),
                                                     "terms": []})
        query = {"kind": "audio", "value": features.name, "space": AUDIO, "exclude_artist": exclude_artist,
                 "same_as": None if same is None else self.ids[same]}
        timings = {"decode": decoded - start, "embed": embedded - decoded, "search": searched - embedded}
        return SearchResult(query, hits, timings, self._place(vector, scores, rows))

    def by_tags(self, tags: str | Sequence[str], *, k: int = 10) -> SearchResult:
        """The tracks whose audio lies closest to a tag query in the tag space (``"jazz;calm"`` or a list).

        Raises
        ------
        UsageError
            No tag, none known to the tag space, no tag space in the index, ``k`` out of range.
        """
        self._check_k(k)
        name, space = self._query_space("tags")
        start = time.perf_counter()
        terms = tag_terms(space, tags)
        vector = self._project(space, terms, what="tag", known_hint=_tag_examples(space))
        projected = time.perf_counter()
        scores, rows = self._search(name, vector, k, set())
        searched = time.perf_counter()
        query_terms = set(terms.terms)  # tagset:tag, so that a tag shared in another tagset does not count
        hits = self._hits(scores, rows, lambda hit: {"shared_tags": list(dict.fromkeys(
            tag for tagset, values in self._tags(hit).items() for tag in values if f"{tagset}:{tag}" in query_terms)),
            "terms": []})
        query = {"kind": "tags", "value": split_tags(tags), "space": name, "known": terms.known,
                 "unknown": terms.unknown}
        return SearchResult(query, hits, {"embed": projected - start, "search": searched - projected},
                            self._place(None, scores, rows))

    def by_text(self, text: str, *, k: int = 10) -> SearchResult:
        """The tracks whose audio lies closest to a free-text description in the text space, in any language
        the space was fitted on.

        Raises
        ------
        UsageError
            Blank text, no word known to the text space, no text space in the index, ``k`` out of range.
        """
        self._check_k(k)
        if not isinstance(text, str):
            raise UsageError(f"a text query is a string (got {type(text).__name__})")
        name, space = self._query_space("text")
        start = time.perf_counter()
        terms = text_terms(space, text)
        vector = self._project(space, terms, what="word", known_hint="")
        projected = time.perf_counter()
        scores, rows = self._search(name, vector, k, set())
        searched = time.perf_counter()

        def why(hit: int) -> dict[str, Any]:
            text_, language = self._texts[hit]
            document = TextDocument(text_, language)
            return {"shared_tags": [], "terms": weighted_terms(space.model, document, terms.terms) if text_ else []}

        hits = self._hits(scores, rows, why)
        query = {"kind": "text", "value": text, "space": name, "known": terms.known, "unknown": terms.unknown}
        return SearchResult(query, hits, {"embed": projected - start, "search": searched - projected},
                            self._place(None, scores, rows))

    # -- helpers

    def _tags(self, row: int) -> dict[str, list[str]]:
        """Tagset -> tags of an indexed track."""
        return {tagset: [str(tag) for tag in column[row]] for tagset, column in self._tag_columns.items()}

    def _check_k(self, k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= self.max_k:
            raise UsageError(f"k must be a whole number from 1 to {self.max_k} (got {k!r})")

    def _row_of(self, track_id: str) -> int:
        row = self._row.get(track_id) if isinstance(track_id, str) else None
        if row is None and isinstance(track_id, str) and track_id in self._failed:
            raise UnknownTrackError(f"{track_id[:130]!r} is in the manifest but not indexed (its audio failed: "
                                    f"{self._failed[track_id]})")
        if row is None:
            raise UnknownTrackError(f"unknown track {str(track_id)[:130]!r}: not in the index {self.path}")
        return row

    def _excluded(self, row: int | None, exclude_artist: bool) -> set[int]:
        if row is None:
            return set()
        return set(self._by_artist[self._artist_key[row]]) if exclude_artist else {row}

    def _search(self, space: str, vector: np.ndarray, k: int, excluded: set[int]) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best rows for one query vector, leaving out ``excluded`` (fetched deeper to make up for them)."""
        _, index = self._spaces[space]
        depth = min(k + len(excluded), len(self.ids))
        scores, rows = index.search(np.asarray(vector, dtype=np.float32)[None], depth)
        keep = [(s, r) for s, r in zip(scores[0], rows[0], strict=True) if r >= 0 and int(r) not in excluded][:k]
        return (np.array([s for s, _ in keep], dtype=np.float32), np.array([r for _, r in keep], dtype=np.int64))

    def _hits(self, scores: np.ndarray, rows: np.ndarray, why: Any) -> list[Hit]:
        return [Hit(rank=rank, track_id=self.ids[row], score=round(float(score), 6), title=self._titles[row],
                    artist=self._artists[row], album=self._albums[row], tags=self._tags(row), why=why(row),
                    xy=(float(self._xy[row, 0]), float(self._xy[row, 1])))
                for rank, (score, row) in enumerate(zip(scores, rows, strict=True), start=1)]

    def _place(self, vector: np.ndarray | None, scores: np.ndarray, rows: np.ndarray) -> tuple[float, float] | None:
        """The query's map point: PCA's transform of its audio vector, else the weighted mean of its best hits."""
        if vector is None and len(rows) == 0:
            return None
        top = rows[:PLACE_NEIGHBOURS]
        point = self._layout.place(None if vector is None else vector[None], self._xy[top][None],
                                   scores[:PLACE_NEIGHBOURS][None])
        return float(point[0, 0]), float(point[0, 1])

    def _query_space(self, kind: str) -> tuple[str, Any]:
        """The index's space for tag or text queries, with its target space loaded (once)."""
        from musicrep.targets.space import load_space

        name = self.description["queries"].get(kind)
        if name is None:
            raise UsageError(f"the index {self.path} has no {kind} space (it was built without target spaces "
                             f"of kind {kind}): {kind} queries cannot be answered")
        with self._lock:
            if name not in self._target_spaces:
                entry = self.description["spaces"][name]
                folder = recorded_path(self.path, entry["path"], self.description.get("location"))
                if not folder.is_dir():
                    raise InputError(missing_path_message(self.path, f"{kind} space folder", folder,
                                                          "build the index again (musicrep index)"))
                space = load_space(folder)
                if space.space_id != entry["space_id"]:
                    raise InputError(f"{folder}: space_id {space.space_id[:12]}…, the index {self.path} was "
                                     f"built with {str(entry['space_id'])[:12]}… (the space was rebuilt: build the "
                                     "index again)")
                self._target_spaces[name] = space
            return name, self._target_spaces[name]

    def _project(self, space: Any, terms: QueryTerms, *, what: str, known_hint: str) -> np.ndarray:
        vector = project_terms(space.model, terms.terms)
        if vector is None:
            given = ", ".join(terms.unknown) or "nothing but stop words"
            raise UsageError(f"no {what} of the query is known to the space {space.path} ({given})"
                             + (f"; known {what}s include {known_hint}" if known_hint else ""))
        return vector

    def _model(self) -> Any:
        """The index's model (loaded on first use, its model_id checked)."""
        with self._lock:
            if self._encoder is None:
                encoder = load_model(self.path, self.description, self.device)
                if encoder.model_id != self.model_id:
                    raise UsageError(other_model_message(self.path, self.description, encoder))
                self._encoder = encoder
            return self._encoder


def _shared(query: dict[str, list[str]], hit: dict[str, list[str]]) -> list[str]:
    """Tags of ``hit`` that the query track has in the same tagset, in the hit's order."""
    return list(dict.fromkeys(tag for tagset, values in hit.items() for tag in values
                              if tag in query.get(tagset, ())))


def _tag_examples(space: Any, count: int = 6) -> str:
    tags = list(dict.fromkeys(term.split(":", 1)[-1] for term in space.model.vocabulary))
    return ", ".join(tags[:count]) + (", ..." if len(tags) > count else "")
