"""The search index of a collection (the ``musicrep index`` stage): build it and read it (``--add``:
:mod:`musicrep.search.add`).

An index folder holds what queries need, and nothing that must be recomputed::

    INDEX/index.json        format, the model's identity (model_id + folder), track count, tagsets, the
                            searchable spaces and how tracks reach each (head or linear map), their vector
                            indexes, the map layout, the inputs used; written last
    INDEX/ids.csv           row,track_id (row = row of every vectors file)
    INDEX/tracks.parquet    per track: title, artist, album, text, language, audio path, x, y and
                            one tags_<tagset> list column per tagset (what hits show)
    INDEX/vectors/audio.npy unit audio embeddings, float32 (n, embedding_dim)
    INDEX/vectors/SPACE.npy the tracks' audio in each target space (unit rows), for tag and text queries
    INDEX/ann/SPACE.faiss   the approximate index of a space, at and above EXACT_BELOW tracks
    INDEX/linear/SPACE.npz  ridge map from audio to a space the model has no head for (no pickle)
    INDEX/map.npz           the 2-D map's layout (musicrep.search.layout)
    INDEX/failed.csv        track_id,reason of the tracks that could not be indexed
    INDEX/embeddings/NAME/  embeddings this stage made itself (``musicrep embed`` layout), reused next time

Vectors come from embeddings folders made by the same model (``embed_config.json``
``model_id``); the tracks still without one are embedded here with
:func:`musicrep.inference.embed.embed`, from the run's merged feature stores
(no decoding) and, for the rest, from their audio files. Target spaces are read
where they are (``index.json`` records their folders and ``space_id``); tag
queries use the tag space that covers the most tagsets, text queries the text
space, through the model's projection head for that space when it has one.

Paths the index records (model, spaces, sources, audio files) are relative to the
index folder when they lie in the folder that holds it (the run), so that a run
moved as a whole keeps working; others are absolute (:func:`stored_path`). A
relative path is read against the index folder, else against where the index
was built (``index.json`` ``location``), so that an index copied alone works too
(:func:`recorded_path`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicrep import __version__
from musicrep.data.manifest import Manifest, read_manifest, tag_column
from musicrep.errors import InputError, UsageError
from musicrep.fileio import atomic_path, ensure_dir, write_csv, write_json
from musicrep.search.layout import METHODS, layout_map
from musicrep.search.spaces import LinearMap, fit_linear_map, projection_heads, through_head, unit_rows
from musicrep.search.vectors import EXACT_BELOW, VECTOR_INDEXES, VectorIndex, build_vector_index, load_vector_index

logger = logging.getLogger(__name__)

INDEX_FILE = "index.json"
FORMAT_VERSION = 1
AUDIO = "audio"
"""Name of the audio embedding space in ``index.json``."""
QUERY_SPACE_KINDS = ("tags", "text")
"""Query kinds answered in a target space (the analyzer kind of the space)."""
ANN_SUFFIX = {"faiss-ivf": ".faiss", "usearch-hnsw": ".usearch"}
SPLIT_SEED_FRACTION = 0.8  # train share when a collection has no partitions (linear maps)
ProgressFn = Callable[[int, int], None]
StageFn = Callable[[str], None]


@dataclass
class IndexReport:
    """What ``musicrep index`` did.

    Attributes
    ----------
    index_dir : Path
    n_indexed : int
        Tracks in the index now.
    n_added : int
        Tracks this call put in (a build: all of them).
    n_embedded : int
        Tracks this call had to embed (no embeddings folder of the model held them).
    failed : list[tuple[str, str]]
        ``(track_id, reason)`` of the tracks left out.
    skipped : int
        ``--add``: tracks already in the index.
    description : dict
        ``index.json``.
    assigned : list[tuple[str, str]]
        ``--add --audio``: ``(file, track_id)`` of each file added, the id it was given.
    """

    index_dir: Path
    n_indexed: int
    n_added: int
    n_embedded: int
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: int = 0
    description: dict[str, Any] = field(default_factory=dict)
    assigned: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Sources:
    """Where a build reads from."""

    model: Path
    manifest: Path
    embeddings: list[Path]
    stores: list[Path]
    targets: Path | None
    partitions: Path | None


# ----------------------------------------------------------------------------------------------- build


def build_index(out_dir: str | Path | None = None, *, model: str | Path | None = None, run: str | Path | None = None,
                embeddings: str | Path | None = None, manifest: str | Path | None = None,
                targets: str | Path | None = None, partitions: str | Path | None = None, kind: str = "auto",
                exact_below: int = EXACT_BELOW, map_method: str = "auto", device: str = "cpu", batch_size: int = 64,
                seed: int = 0, on_progress: ProgressFn | None = None, on_stage: StageFn | None = None
                ) -> IndexReport:
    """Index every track of a run (or of a manifest) with a model, and write the index folder.

    Parameters
    ----------
    out_dir : path-like, optional
        The index folder (default ``RUN/index``).
    model : path-like, optional
        Model folder (default ``RUN/model``, or the model recorded by the embeddings).
    run : path-like, optional
        A run directory: its manifest, ``embeddings/*``, ``features/*`` stores, ``targets/``, ``partitions/``.
    embeddings : path-like, optional
        Instead of a run: an embeddings folder, or a folder of them (with ``manifest``).
    manifest : path-like, optional
        The collection (required without ``run``); its tracks are the tracks indexed.
    targets, partitions : path-like, optional
        Target spaces and partitions (default: ``targets/`` and ``partitions/`` beside the manifest).
    kind : str
        Vector index kind: ``auto`` (exact below ``exact_below`` tracks, FAISS above) or one of
        :data:`musicrep.search.vectors.VECTOR_INDEXES`.
    map_method : {"auto", "tsne", "pca"}
    device, batch_size
        For the tracks that must be embedded.
    seed : int
        Map, index training and linear-map split.

    Returns
    -------
    IndexReport

    Raises
    ------
    UsageError
        Inputs that do not go together, nothing to index.
    InputError
        A model folder, manifest, embeddings folder or space that cannot be read.
    """
    from musicrep.inference.hub import load

    if map_method not in METHODS:
        raise UsageError(f"--map must be one of {', '.join(METHODS)} (got {map_method!r})")
    if kind != "auto" and kind not in VECTOR_INDEXES:
        raise UsageError(f"--kind must be auto or one of {', '.join(VECTOR_INDEXES)} (got {kind!r})")
    sources = resolve_sources(run=run, embeddings=embeddings, manifest=manifest, targets=targets,
                              partitions=partitions, model=model)
    if out_dir is None and run is None:
        raise UsageError("give --out DIR for the index (without --run there is no RUN/index)")
    out = ensure_dir(out_dir if out_dir is not None else Path(run) / "index")  # type: ignore[arg-type]
    stage = on_stage or (lambda name: None)
    encoder = load(sources.model, device=device)
    collection = read_manifest(sources.manifest)
    wanted = collection.frame["track_id"].tolist()

    stage("collect embeddings")
    ids, raw, n_embedded, failed = _collect(encoder, sources, out, wanted, device=device, batch_size=batch_size,
                                            on_progress=on_progress, on_stage=stage)
    audio = unit_rows(raw)
    stage("target spaces")
    spaces = _searchable_spaces(encoder, sources.targets)
    entries, space_vectors = _project_spaces(encoder, spaces, out, ids, raw, audio,
                                             _split(sources.partitions, ids, seed))

    stage("vector indexes")
    index_entries = {AUDIO: _write_space_index(out, AUDIO, audio, kind, exact_below, seed)}
    for name, vectors in space_vectors.items():
        entries[name]["index"] = _write_space_index(out, name, vectors, kind, exact_below, seed)
    stage("map")
    xy, layout = layout_map(audio, method=map_method, seed=seed)
    layout.save(out / "map.npz")
    write_csv(pd.DataFrame({"row": np.arange(len(ids)), "track_id": ids}), out / "ids.csv")
    write_tracks(out, tracks_frame(collection, ids, xy, out))
    write_csv(pd.DataFrame(failed, columns=["track_id", "reason"]), out / "failed.csv")
    description = {
        "format_version": FORMAT_VERSION, "musicrep_version": __version__, "count": len(ids),
        "location": os.path.abspath(out),
        "model": {"model_id": encoder.model_id, "path": stored_path(encoder.path, out),
                  "embedding_dim": encoder.embedding_dim},
        "tagsets": list(collection.tagsets),
        "spaces": {AUDIO: {"kind": "audio", "vectors": f"vectors/{AUDIO}.npy", "index": index_entries[AUDIO]},
                   **{name: {**entry, "vectors": f"vectors/{name}.npy"} for name, entry in entries.items()}},
        "queries": _query_roles(spaces),
        "map": {"method": layout.method, "file": "map.npz"},
        "exact_below": exact_below, "index_kind": kind, "seed": seed,
        "sources": {"manifest": stored_path(sources.manifest, out),
                    "run": None if run is None else stored_path(run, out),
                    "embeddings": [stored_path(p, out) for p in sources.embeddings],
                    "targets": None if sources.targets is None else stored_path(sources.targets, out), "added": []},
    }
    write_json(description, out / INDEX_FILE)
    return IndexReport(index_dir=out, n_indexed=len(ids), n_added=len(ids), n_embedded=n_embedded, failed=failed,
                       description=description)


def _collect(encoder: Any, sources: Sources, out: Path, wanted: Sequence[str], *, device: str, batch_size: int,
             on_progress: ProgressFn | None, on_stage: StageFn) -> tuple[list[str], np.ndarray, int, list]:
    """Raw vectors of the wanted tracks: from the model's embeddings folders, else embedded here from the
    run's stores, else from audio. Returns the ids found (in ``wanted`` order), their vectors, how many were
    embedded now, and the ``(track_id, reason)`` of those that could not be."""
    folders = _usable(encoder.model_id, [*sources.embeddings, *_own_embeddings(out)])
    found = _locate(folders, wanted)
    missing = [t for t in wanted if t not in found.index]
    n_embedded, failed = 0, []
    for store in sources.stores:  # rows of merged stores: embedding without decoding
        if missing and _store_ids(store).intersection(missing):
            on_stage(f"embed {store}")
            report = embed_into(encoder, out / "embeddings" / store.name, device, batch_size, on_progress, store=store)
            n_embedded += report.n_embedded
            folders = [f for f in folders if f != report.out_dir] + [report.out_dir]
            found = _locate(folders, wanted)
            missing = [t for t in wanted if t not in found.index]
    if missing:
        on_stage(f"embed {len(missing)} audio files")
        tidfile = out / "embeddings" / "to-embed.csv"
        write_csv(pd.DataFrame({"track_id": missing}), tidfile)
        report = embed_into(encoder, next_folder(out / "embeddings", "audio"), device, batch_size, on_progress,
                        manifest=sources.manifest, tidfile=tidfile)
        n_embedded += report.n_embedded
        failed = list(report.failed)
        found = _locate([*folders, report.out_dir], wanted)
    ids = [t for t in wanted if t in found.index]
    if not ids:
        raise UsageError(f"nothing to index: none of the {len(wanted)} tracks of {sources.manifest} could be "
                         "embedded" + (f" (first: {failed[0][0]}: {failed[0][1]})" if failed else ""))
    return ids, _gather(found, ids, encoder.embedding_dim), n_embedded, failed


def _project_spaces(encoder: Any, spaces: dict[str, tuple[Any, str | None]], out: Path, ids: Sequence[str],
                    raw: np.ndarray, audio: np.ndarray, split: dict[str, set[str]]
                    ) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """The tracks' vectors in each searchable space (through its head, or a linear map fitted and saved here)
    and the spaces' ``index.json`` entries."""
    entries: dict[str, dict[str, Any]] = {}
    vectors: dict[str, np.ndarray] = {}
    for name, (space, head) in spaces.items():
        if head is not None:
            vectors[name] = through_head(encoder, head, raw)
            entries[name] = {"via": "head", "head": head}
        else:
            linear = _fit_linear(space, ids, audio, split)
            linear.save(out / "linear" / f"{name}.npz")
            vectors[name] = linear.apply(audio)
            entries[name] = {"via": "linear", "map": f"linear/{name}.npz", "alpha": linear.alpha,
                             "val_cosine": None if np.isnan(linear.val_cosine) else round(linear.val_cosine, 4)}
        entries[name].update({"kind": space.model.analyzer.kind, "path": stored_path(space.path, out),
                              "space_id": space.space_id, "dims": space.model.dims})
    return entries, vectors


def resolve_sources(*, run: str | Path | None, embeddings: str | Path | None, manifest: str | Path | None,
                    targets: str | Path | None, partitions: str | Path | None, model: str | Path | None) -> Sources:
    """The files a build reads, from a run directory or from an embeddings folder and a manifest.

    Raises
    ------
    UsageError
        ``run`` with ``embeddings``, neither ``run`` nor ``manifest``, no model to use.
    InputError
        A folder that does not exist.
    """
    if run is not None and embeddings is not None:
        raise UsageError("give --run or --embeddings, not both (a run's embeddings are RUN/embeddings)")
    stores: list[Path] = []
    folders: list[Path] = []
    if run is not None:
        run = Path(run)
        if not run.is_dir():
            raise InputError(f"{run}: run directory not found")
        manifest = Path(manifest) if manifest is not None else run / "manifest.parquet"
        folders = embeddings_folders(run / "embeddings") if (run / "embeddings").is_dir() else []
        features = run / "features"
        stores = sorted(p.parent for p in features.glob("*/store.json")) if features.is_dir() else []
        model = model if model is not None else run / "model"
    elif manifest is None:
        raise UsageError("give --run RUN, or --manifest M (with --embeddings DIR of its tracks' embeddings)")
    else:
        manifest = Path(manifest)
        if embeddings is not None:
            folders = embeddings_folders(Path(embeddings))
    manifest = Path(manifest)
    if model is None:
        model = _recorded_model(folders)
    near = manifest.parent
    targets = Path(targets) if targets is not None else (near / "targets" if (near / "targets").is_dir() else None)
    if targets is not None and not targets.is_dir():
        raise InputError(f"{targets}: targets folder not found")
    partitions = (Path(partitions) if partitions is not None
                  else (near / "partitions" if (near / "partitions").is_dir() else None))
    return Sources(model=Path(model), manifest=manifest, embeddings=folders, stores=stores, targets=targets,
                   partitions=partitions)


def embeddings_folders(path: Path) -> list[Path]:
    """``path`` if it is an embeddings folder (``embed_config.json``), else its subfolders that are.

    Raises
    ------
    InputError
        Neither.
    """
    if not path.is_dir():
        raise InputError(f"{path}: embeddings folder not found")
    if (path / "embed_config.json").is_file():
        return [path]
    found = sorted(p.parent for p in path.glob("*/embed_config.json"))
    if not found:
        raise InputError(f"{path}: not an embeddings folder (no embed_config.json in it or its subfolders)")
    return found


def _recorded_model(folders: Sequence[Path]) -> Path:
    for folder in folders:
        try:
            recorded = json.loads((folder / "embed_config.json").read_text()).get("model_dir")
        except (OSError, ValueError):
            continue
        if recorded:
            return Path(recorded)
    raise UsageError("give --model DIR (no embeddings folder records the model that made it)")


def _own_embeddings(out: Path) -> list[Path]:
    """Embeddings folders an earlier build or ``--add`` of this index made."""
    folder = out / "embeddings"
    return sorted(p.parent for p in folder.glob("*/embed_config.json")) if folder.is_dir() else []


def next_folder(parent: Path, prefix: str) -> Path:
    number = 1
    while (parent / f"{prefix}-{number}").exists():
        number += 1
    return parent / f"{prefix}-{number}"


def _store_ids(store: Path) -> set[str]:
    from musicrep.features.merge import FeatureStore

    return set(FeatureStore(store).index.track_id)


def embed_into(encoder: Any, out: Path, device: str, batch_size: int, on_progress: ProgressFn | None, **inputs: Any):
    """:func:`musicrep.inference.embed.embed` with the index's model into ``out``."""
    from musicrep.inference.embed import embed

    return embed(encoder.path, out, device=device, batch_size=batch_size, on_progress=on_progress, **inputs)


def _usable(model_id: str, folders: Sequence[Path]) -> list[Path]:
    """The embeddings folders made by the model ``model_id``; the others are named in a warning."""
    usable = []
    for folder in folders:
        try:
            recorded = json.loads((folder / "embed_config.json").read_text()).get("model_id")
        except (OSError, ValueError) as exc:
            raise InputError(f"{folder / 'embed_config.json'}: unreadable ({exc})") from exc
        if recorded == model_id:
            usable.append(folder)
        else:
            logger.warning("%s: embedded by another model (model_id %s…, this one %s…): not used", folder,
                           str(recorded)[:12], model_id[:12])
    return usable


def _locate(folders: Sequence[Path], wanted: Sequence[str]) -> pd.DataFrame:
    """Where each wanted track's vector is: a frame indexed by track_id with ``folder`` and ``row`` (first found)."""
    from musicrep.inference.embed import read_embeddings

    frames = []
    wanted_set = set(wanted)
    for folder in folders:
        _, ids, _ = read_embeddings(folder)
        frame = pd.DataFrame({"track_id": ids.to_numpy(), "folder": str(folder), "row": np.arange(len(ids))})
        frames.append(frame[frame.track_id.isin(wanted_set)])
    if not frames:
        return pd.DataFrame({"folder": pd.Series(dtype=str), "row": pd.Series(dtype=int)},
                            index=pd.Index([], name="track_id"))
    return pd.concat(frames).drop_duplicates("track_id").set_index("track_id")


def _gather(found: pd.DataFrame, ids: Sequence[str], dim: int) -> np.ndarray:
    """Raw vectors of ``ids`` (in that order) from their embeddings folders."""
    from musicrep.inference.embed import read_embeddings

    out = np.zeros((len(ids), dim), dtype=np.float32)
    where = found.loc[list(ids)]
    positions = np.arange(len(ids))
    for folder, group in where.assign(position=positions).groupby("folder", sort=False):
        vectors, _, _ = read_embeddings(folder)
        out[group.position.to_numpy()] = vectors[group.row.to_numpy()]
    return out


def _searchable_spaces(encoder: Any, targets: Path | None) -> dict[str, tuple[Any, str | None]]:
    """The spaces the index keeps: every space the model has a projection head for, and a tag and a text space
    for the query kinds (through a linear map when no head). ``{name: (Space, head or None)}``."""
    from musicrep.targets.space import load_space

    if targets is None:
        logger.warning("no targets folder: the index answers track and audio queries only")
        return {}
    loaded = {}
    for folder in sorted(p.parent for p in targets.glob("*/model.json")):
        try:
            loaded[folder.name] = load_space(folder)
        except InputError as exc:
            logger.warning("%s (not used)", exc)
    heads = {}
    for name, head in projection_heads(encoder.config).items():
        if name not in loaded:
            logger.warning("head %s maps into space %r, not found in %s", head["head"], name, targets)
        elif head["space_id"] != loaded[name].space_id:
            logger.warning("head %s was trained on another version of %s (space_id %s…, found %s…): not used",
                           head["head"], loaded[name].path, str(head["space_id"])[:12], loaded[name].space_id[:12])
        else:
            heads[name] = head["head"]
    chosen = {name: (loaded[name], head) for name, head in heads.items()}
    for name in _query_roles({n: (s, heads.get(n)) for n, s in loaded.items()}).values():
        chosen.setdefault(name, (loaded[name], None))
    return chosen


def _query_roles(spaces: dict[str, tuple[Any, str | None]]) -> dict[str, str]:
    """Query kind -> the space that answers it: a space with a head first, then (tags) the most tagsets."""
    roles = {}
    for role in QUERY_SPACE_KINDS:
        candidates = [n for n, (s, _) in spaces.items() if s.model.analyzer.kind == role]
        if candidates:
            roles[role] = min(candidates, key=lambda n: (spaces[n][1] is None,
                                                         -len(getattr(spaces[n][0].model.analyzer, "tagsets", ())),
                                                         n))
    return roles


def _split(partitions: Path | None, ids: Sequence[str], seed: int) -> dict[str, set[str]]:
    """Train and validation ids: the partitions' when there are, else a seeded 80/20 split of ``ids``."""
    from musicrep.tables import read_tidfile

    if partitions is not None and (partitions / "train.csv").is_file():
        split = {name: set(read_tidfile(partitions / f"{name}.csv").track_ids) if (partitions / f"{name}.csv").is_file()
                 else set() for name in ("train", "val")}
        if split["train"].intersection(ids):
            return split
    order = np.random.default_rng(seed).permutation(len(ids))
    cut = int(round(SPLIT_SEED_FRACTION * len(ids)))
    logger.info("no partitions: linear maps fitted on a seeded %d/%d split", cut, len(ids) - cut)
    return {"train": {ids[i] for i in order[:cut]}, "val": {ids[i] for i in order[cut:]}}


def _fit_linear(space: Any, ids: Sequence[str], audio: np.ndarray, split: dict[str, set[str]]) -> LinearMap:
    rows = space.row_of()
    chosen = {}
    for name in ("train", "val"):
        positions = [i for i, t in enumerate(ids) if t in split[name] and t in rows]
        chosen[name] = (audio[positions], np.asarray(space.vectors[[rows[ids[i]] for i in positions]]))
    try:
        return fit_linear_map(*chosen["train"], *chosen["val"])
    except UsageError as exc:
        raise UsageError(f"{space.path}: {exc}") from exc


def _write_space_index(out: Path, name: str, vectors: np.ndarray, kind: str, exact_below: int, seed: int
                       ) -> dict[str, Any]:
    """Save a space's vectors and its vector index; the ``index`` entry of ``index.json``."""
    with atomic_path(out / "vectors" / f"{name}.npy") as tmp, tmp.open("wb") as handle:
        np.save(handle, np.ascontiguousarray(vectors, dtype=np.float32))
    index = build_vector_index(vectors, kind=kind, exact_below=exact_below, seed=seed)
    return save_vector_index(out, name, index)


def save_vector_index(out: Path, name: str, index: VectorIndex) -> dict[str, Any]:
    file = None
    if index.kind != "exact":
        file = f"ann/{name}{ANN_SUFFIX[index.kind]}"
        index.save(out / file)
    return {"kind": index.kind, "params": index.params(), "file": file}


def tracks_frame(collection: Manifest, ids: Sequence[str], xy: np.ndarray, out: Path) -> pd.DataFrame:
    """What hits show, per indexed track, from the manifest (audio paths as the index ``out`` records them:
    :func:`stored_path`)."""
    rows = collection.frame.set_index("track_id").loc[list(ids)]
    frame = pd.DataFrame({"track_id": list(ids)})
    for column in ("title", "artist", "album", "text", "language"):
        frame[column] = rows[column].fillna("").astype(str).to_numpy()
    frame["audio_path"] = [stored_path(collection.audio_file(p), out) if p else ""
                           for p in rows["audio_path"].fillna("")]
    frame["x"], frame["y"] = xy[:, 0].astype(np.float32), xy[:, 1].astype(np.float32)
    for tagset in collection.tagsets:
        frame[tag_column(tagset)] = [list(map(str, tags)) for tags in rows[tag_column(tagset)]]
    return frame


def write_tracks(out: Path, frame: pd.DataFrame) -> None:
    with atomic_path(out / "tracks.parquet") as tmp:
        frame.to_parquet(tmp, index=False)


def stored_path(path: str | Path, index_dir: str | Path) -> str:
    """How the index records a path: relative to the index folder when it lies in the folder that holds the
    index (the run: moving the run keeps it valid), else absolute. Symbolic links are kept, not resolved."""
    absolute = Path(os.path.abspath(path))
    index = Path(os.path.abspath(index_dir))
    if absolute.is_relative_to(index.parent):
        return Path(os.path.relpath(absolute, index)).as_posix()
    return str(absolute)


def recorded_path(index_dir: str | Path, recorded: str | Path, origin: str | None = None) -> Path:
    """The path an index records, absolute (older indexes record absolute paths, read as they are).

    A relative path is read against the index folder (a run moved as a whole); when nothing is there, against
    ``origin``, where the index was built (an index copied alone). Neither there: the first.
    """
    path = Path(recorded)
    if path.is_absolute():
        return path
    here = Path(os.path.normpath(Path(os.path.abspath(index_dir)) / path))
    if origin is None or here.exists():
        return here
    there = Path(os.path.normpath(Path(origin) / path))
    return there if there.exists() else here


def missing_path_message(index_dir: Path, what: str, path: Path, fix: str) -> str:
    """The one line for a path the index records that is not there (moved or deleted)."""
    return f"{path}: {what} not found; the index {index_dir} records that path (moved or deleted?): {fix}"


# ------------------------------------------------------------------------------------------------- read


def read_description(index_dir: str | Path) -> dict[str, Any]:
    """``index.json`` of an index folder, checked.

    Raises
    ------
    InputError
        Not an index folder, malformed, or of a newer format.
    """
    path = Path(index_dir) / INDEX_FILE
    if not path.parent.is_dir():
        raise InputError(f"{path.parent}: index folder not found")
    if not path.is_file():
        raise InputError(f"{path.parent}: not an index folder (no {INDEX_FILE}; build one with musicrep index)")
    try:
        description = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable ({exc})") from exc
    if not isinstance(description, dict) or description.get("format_version") != FORMAT_VERSION:
        found = description.get("format_version") if isinstance(description, dict) else None
        raise InputError(f"{path}: format_version {found!r}, this musicrep reads {FORMAT_VERSION}")
    for key in ("count", "model", "spaces", "queries", "map", "tagsets"):
        if key not in description:
            raise InputError(f"{path}: missing key {key!r}")
    return description


def read_ids(index_dir: Path, count: int) -> list[str]:
    ids = pd.read_csv(index_dir / "ids.csv", dtype={"track_id": str}, keep_default_na=False)["track_id"].tolist()
    if len(ids) != count:
        raise InputError(f"{index_dir / 'ids.csv'}: {len(ids)} ids, {INDEX_FILE} says {count} (an interrupted "
                         "--add? build the index again)")
    return ids


def read_tracks(index_dir: Path, count: int) -> pd.DataFrame:
    """``tracks.parquet`` (audio paths as recorded: :func:`recorded_path` reads them)."""
    try:
        frame = pd.read_parquet(index_dir / "tracks.parquet")
    except (OSError, ValueError) as exc:
        raise InputError(f"{index_dir / 'tracks.parquet'}: unreadable ({exc})") from exc
    if len(frame) != count:
        raise InputError(f"{index_dir / 'tracks.parquet'}: {len(frame)} rows, {INDEX_FILE} says {count}")
    return frame


def read_failed(index_dir: Path) -> dict[str, str]:
    """``track_id -> reason`` of the tracks the index build could not index (``failed.csv``; empty without)."""
    path = index_dir / "failed.csv"
    if not path.is_file():
        return {}
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable ({exc})") from exc
    if not {"track_id", "reason"}.issubset(frame.columns):
        return {}
    return dict(zip(frame["track_id"], frame["reason"], strict=True))


def load_model(index_dir: Path, description: dict[str, Any], device: str) -> Any:
    """The model the index records (:func:`musicrep.inference.hub.load`), a missing folder said as such."""
    from musicrep.inference.hub import load

    path = recorded_path(index_dir, description["model"]["path"], description.get("location"))
    if not path.exists():
        raise InputError(missing_path_message(index_dir, "model folder", path,
                                              "give --model DIR (the same model), or build the index again"))
    return load(path, device=device)


def open_space(index_dir: Path, description: dict[str, Any], name: str) -> tuple[np.ndarray, VectorIndex]:
    """The tracks' vectors in a space of the index (memory-mapped) and their vector index."""
    entry = description["spaces"][name]
    path = index_dir / entry["vectors"]
    try:
        vectors = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable vectors ({exc})") from exc
    if len(vectors) != description["count"]:
        raise InputError(f"{path}: {len(vectors)} vectors, {INDEX_FILE} says {description['count']} (an "
                         "interrupted --add? build the index again)")
    index_entry = entry["index"]
    file = index_dir / index_entry["file"] if index_entry.get("file") else path
    return vectors, load_vector_index(index_entry["kind"], file, index_entry.get("params", {}), vectors)


def other_model_message(index_dir: Path, description: dict[str, Any], encoder: Any) -> str:
    """The one line that refuses a model other than the index's."""
    built = description["model"]
    where = recorded_path(index_dir, built["path"], description.get("location"))
    return (f"{encoder.path}: model_id {encoder.model_id[:12]}…, but the index {index_dir} was built with model_id "
            f"{str(built['model_id'])[:12]}… ({where}); its vectors are not "
            "comparable: query it with that model, or build an index with this one (musicrep index)")
