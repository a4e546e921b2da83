"""Adding tracks to an index without rebuilding it (``musicrep index --add``).

New tracks get what the others have: their unit audio vector appended to every
vector index (an exact index that reaches ``exact_below`` tracks becomes an
approximate one, calibrated as a build would), their vectors in every target
space through the same route (the model's head, or the saved linear map), and a
point on the map (:meth:`~musicrep.search.layout.MapLayout.place`). The model
must be the index's (``model_id``).

Audio files get their ids as ``musicrep embed`` gives them (the file's name); a
name already indexed for another file gets the name plus a digest of the file's
path, as a second file of the same name within one call does. The same file
added again is refused as already indexed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicrep.data.manifest import Manifest, read_manifest, tag_column
from musicrep.errors import UsageError
from musicrep.fileio import atomic_path, write_csv, write_json
from musicrep.search.index import (
    AUDIO,
    INDEX_FILE,
    IndexReport,
    ProgressFn,
    embed_into,
    embeddings_folders,
    load_model,
    next_folder,
    open_space,
    other_model_message,
    read_description,
    read_ids,
    read_tracks,
    recorded_path,
    save_vector_index,
    stored_path,
    write_tracks,
)
from musicrep.search.layout import PLACE_NEIGHBOURS, MapLayout
from musicrep.search.spaces import LinearMap, through_head, unit_rows
from musicrep.search.vectors import VECTOR_INDEXES, build_vector_index


def add_to_index(index_dir: str | Path, *, model: str | Path | None = None, embeddings: str | Path | None = None,
                 manifest: str | Path | None = None, audio: Sequence[str | Path] = (), device: str = "cpu",
                 batch_size: int = 64, on_progress: ProgressFn | None = None) -> IndexReport:
    """Add tracks to an index without rebuilding it.

    Exactly one input: ``audio`` files (ids from their names, titles from their names), an
    ``embeddings`` folder of the index's model (metadata from ``manifest`` when given), or a
    ``manifest`` alone (its tracks not indexed yet, embedded from their audio). New tracks
    are appended to every vector index (an exact index that reaches the threshold becomes an
    approximate one), projected into every target space as the others were, and placed on the
    map (:meth:`~musicrep.search.layout.MapLayout.place`).

    Raises
    ------
    UsageError
        No input or two, a model or embeddings of another model_id.
    """
    from musicrep.inference.embed import read_embeddings
    from musicrep.inference.hub import load

    index_dir = Path(index_dir)
    description = read_description(index_dir)
    if sum([bool(audio), embeddings is not None, manifest is not None and embeddings is None]) != 1:
        raise UsageError("--add takes exactly one input: --audio FILE..., --embeddings DIR [--manifest M] or "
                         "--manifest M")
    encoder = load(model, device=device) if model is not None else load_model(index_dir, description, device)
    if encoder.model_id != description["model"]["model_id"]:
        raise UsageError(other_model_message(index_dir, description, encoder))
    ids = read_ids(index_dir, description["count"])
    indexed = set(ids)
    tracks = read_tracks(index_dir, description["count"])
    failed: list[tuple[str, str]] = []
    collection = read_manifest(manifest) if manifest is not None else None
    n_embedded = skipped = 0
    created: Path | None = None  # the embeddings folder this call made: removed when nothing is added
    if audio:
        report = embed_into(encoder, next_folder(index_dir / "embeddings", "added"), device, batch_size, on_progress,
                        audio=list(audio))
        folders, failed, n_embedded = [report.out_dir], list(report.failed), report.n_embedded
        created = report.out_dir
    elif embeddings is not None:
        folders = embeddings_folders(Path(embeddings))
        for folder in folders:
            recorded = json.loads((folder / "embed_config.json").read_text()).get("model_id")
            if recorded != encoder.model_id:
                raise UsageError(f"{folder}: embedded by model_id {str(recorded)[:12]}…, the index's model is "
                                 f"{encoder.model_id[:12]}… (embed the tracks with {encoder.path})")
    else:
        todo = [t for t in collection.frame.track_id if t not in indexed]  # type: ignore[union-attr]
        skipped = len(collection.frame) - len(todo)  # type: ignore[union-attr]
        folders = []
        if todo:
            tidfile = index_dir / "embeddings" / "to-add.csv"
            write_csv(pd.DataFrame({"track_id": todo}), tidfile)
            report = embed_into(encoder, next_folder(index_dir / "embeddings", "added"), device, batch_size,
                            on_progress, manifest=manifest, tidfile=tidfile)
            folders, failed, n_embedded = [report.out_dir], list(report.failed), report.n_embedded
            created = report.out_dir
    new_ids, new_raw = [], []
    assigned: dict[str, Path] = {}  # --audio: new track id -> its file
    for folder in folders:
        vectors, folder_ids, _ = read_embeddings(folder)
        if audio:
            indexed_audio = {t: recorded_path(index_dir, p, description.get("location")) if p else None
                             for t, p in zip(ids, tracks.audio_path.fillna(""), strict=True)}
            rows, assigned_here, refused = _audio_ids(folder_ids.tolist(), audio, indexed_audio)
            failed.extend(refused)
            assigned.update(assigned_here)
            # the folder's ids become the index's, so that a later build reusing it reads the same ids
            write_csv(pd.DataFrame({"row": np.arange(len(folder_ids)), "track_id": rows}), folder / "ids.csv")
            chosen = [(row, track_id) for row, track_id in enumerate(rows) if track_id in assigned_here]
        else:
            chosen = list(enumerate(folder_ids))
        for row, track_id in chosen:
            if track_id in indexed:
                skipped += 1
                continue
            indexed.add(track_id)
            new_ids.append(track_id)
            new_raw.append(np.asarray(vectors[row], dtype=np.float32))
    if not new_ids:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        return IndexReport(index_dir=index_dir, n_indexed=len(ids), n_added=0, n_embedded=n_embedded,
                           failed=failed, skipped=skipped, description=description)
    raw = np.stack(new_raw)
    audio_vectors = unit_rows(raw)
    new_tracks = _added_tracks(new_ids, tracks, collection, audio_files=assigned, index_dir=index_dir,
                               description=description)
    new_tracks[["x", "y"]] = _place(index_dir, description, tracks, audio_vectors)
    for name, entry in description["spaces"].items():
        if name == AUDIO:
            vectors = audio_vectors
        elif entry["via"] == "head":
            vectors = through_head(encoder, entry["head"], raw)
        else:
            vectors = LinearMap.load(index_dir / entry["map"]).apply(audio_vectors)
        entry["index"] = _append(index_dir, description, name, vectors)
    write_csv(pd.DataFrame({"row": np.arange(len(ids) + len(new_ids)), "track_id": ids + new_ids}),
              index_dir / "ids.csv")
    write_tracks(index_dir, pd.concat([tracks, new_tracks], ignore_index=True))
    description["count"] = len(ids) + len(new_ids)
    description["sources"]["added"].append({"tracks": len(new_ids),
                                            "from": [stored_path(f, index_dir) for f in folders]})
    write_json(description, index_dir / INDEX_FILE)
    return IndexReport(index_dir=index_dir, n_indexed=description["count"], n_added=len(new_ids),
                       n_embedded=n_embedded, failed=failed, skipped=skipped, description=description,
                       assigned=[(str(assigned[t]), t) for t in new_ids if t in assigned])


def _audio_ids(embedded: Sequence[str], audio: Sequence[str | Path], indexed_audio: dict[str, Path | None]
               ) -> tuple[list[str], dict[str, Path], list[tuple[str, str]]]:
    """The index ids of the rows of an ``--audio`` embeddings folder.

    A row keeps its id when the index does not have it; an id the index has for another file becomes the id
    plus a digest of the file's path (as :func:`musicrep.inference.embed.tracks_from_audio` makes a second
    file of the same name within one call); the file itself already indexed is refused.

    Parameters
    ----------
    embedded : list of str
        The folder's ids, in row order (from :func:`~musicrep.inference.embed.tracks_from_audio`).
    audio : list of path-like
        The files given.
    indexed_audio : dict
        Indexed track id -> its audio file (None: none).

    Returns
    -------
    rows : list[str]
        Per row, the id it has in the index (new or refused: its own).
    assigned : dict[str, Path]
        New track id -> file, of the rows to add.
    refused : list[tuple[str, str]]
        ``(track_id, reason)`` of the files not added.
    """
    from musicrep.inference.embed import disambiguated_id, tracks_from_audio

    files = dict(tracks_from_audio(audio))
    rows, assigned, refused = [], {}, []
    for track_id in embedded:
        file = files[track_id]
        for candidate in (track_id, disambiguated_id(track_id, file)):
            if candidate in indexed_audio and _same_file(indexed_audio[candidate], file):
                refused.append((track_id, f"{file}: already indexed (track id {candidate!r})"))
                rows.append(candidate)
                break
            if candidate not in indexed_audio and candidate not in assigned:
                assigned[candidate] = file
                rows.append(candidate)
                break
        else:
            refused.append((track_id, f"{file}: track ids {track_id!r} and {disambiguated_id(track_id, file)!r} are "
                                      "taken by other indexed tracks (rename the file)"))
            rows.append(track_id)
    return rows, assigned, refused




def _same_file(recorded: Path | None, file: Path) -> bool:
    if recorded is None:
        return False
    try:
        return os.path.samefile(recorded, file)
    except OSError:  # one of them is gone: compare the names
        return os.path.abspath(recorded) == os.path.abspath(file)


def _added_tracks(ids: Sequence[str], tracks: pd.DataFrame, collection: Manifest | None, *,
                  audio_files: dict[str, Path], index_dir: Path, description: dict[str, Any]) -> pd.DataFrame:
    """Rows of ``tracks.parquet`` for new tracks: from the manifest when it lists them, else from the audio
    files (``audio_files``: id -> file; title = file name, no tags)."""
    known = collection.frame.set_index("track_id") if collection is not None else None
    files = audio_files
    rows = []
    for track_id in ids:
        row: dict[str, Any] = {column: "" for column in ("title", "artist", "album", "text", "language", "audio_path")}
        row.update({tag_column(t): [] for t in description["tagsets"]})
        if known is not None and track_id in known.index:
            listed = known.loc[track_id]
            row.update({c: "" if pd.isna(listed[c]) else str(listed[c]) for c in row if c in listed and
                        not c.startswith("tags_")})
            row["audio_path"] = (stored_path(collection.audio_file(listed["audio_path"]), index_dir)
                                 if listed["audio_path"] else "")
            row.update({c: [str(t) for t in listed[c]] for c in row if c.startswith("tags_") and c in listed})
        elif track_id in files:
            row["title"], row["audio_path"] = Path(files[track_id]).stem, stored_path(files[track_id], index_dir)
        rows.append({"track_id": track_id, **row})
    return pd.DataFrame(rows, columns=[c for c in tracks.columns if c not in ("x", "y")]).assign(x=0.0, y=0.0)


def _place(index_dir: Path, description: dict[str, Any], tracks: pd.DataFrame, audio: np.ndarray) -> np.ndarray:
    """Map points of new unit audio vectors, by the map's layout."""
    layout = MapLayout.load(index_dir / description["map"]["file"])
    _, index = open_space(index_dir, description, AUDIO)
    scores, rows = index.search(audio, min(PLACE_NEIGHBOURS, len(tracks)))
    xy = tracks[["x", "y"]].to_numpy(dtype=np.float64)
    neighbour_xy = np.where(rows[..., None] >= 0, xy[np.maximum(rows, 0)], np.nan)
    return layout.place(audio, neighbour_xy, scores)


def _append(index_dir: Path, description: dict[str, Any], name: str, vectors: np.ndarray) -> dict[str, Any]:
    """Append unit rows to a space's vectors file and vector index; the new ``index`` entry."""
    old, index = open_space(index_dir, description, name)
    combined = np.concatenate([np.asarray(old, dtype=np.float32), np.asarray(vectors, dtype=np.float32)])
    del old
    if index.kind == "exact" and len(combined) >= description["exact_below"] and description["index_kind"] == "auto":
        index = build_vector_index(combined, exact_below=description["exact_below"], seed=description["seed"])
    elif index.kind == "exact":
        index = VECTOR_INDEXES["exact"](combined)
    else:
        index.add(np.asarray(vectors, dtype=np.float32))
    entry = description["spaces"][name]
    with atomic_path(index_dir / entry["vectors"]) as tmp, tmp.open("wb") as handle:
        np.save(handle, combined)
    return save_vector_index(index_dir, name, index)
