"""Embedding many tracks with an exported model (the ``musicrep embed`` stage).

Inputs are a merged feature store (no decoding), a tidfile, a manifest, or
audio files. Windows of several tracks are batched into one forward pass.
The output folder has
the layout of a target space (:mod:`musicrep.targets.space`), so evaluation
and search read both alike::

    OUT/vectors.npy        float32 (n_embedded, embedding_dim): the mean of each track's window embeddings
    OUT/ids.csv            row,track_id
    OUT/failed.csv         track_id,reason (the reason names the file)
    OUT/embed_config.json  model_id, model folder, input kind and path, segment, counts, musicrep version

Every input ends in exactly one of ``ids.csv`` and ``failed.csv``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicrep import __version__
from musicrep.data.manifest import read_manifest, safe_track_id
from musicrep.errors import AudioError, InputError, UsageError
from musicrep.features.merge import FeatureStore
from musicrep.fileio import atomic_path, ensure_dir, write_csv, write_json
from musicrep.inference.hub import FRONT_END_KEYS, Encoder, Features, load
from musicrep.tables import read_tidfile

logger = logging.getLogger(__name__)

REQUIRED_FILES = ("vectors.npy", "ids.csv")
"""What an embeddings folder must hold to be read (vectors of other models need nothing more)."""
FILES = ("vectors.npy", "ids.csv", "failed.csv", "embed_config.json")
INPUT_KINDS = ("store", "tidfile", "manifest", "audio")
FORMAT_VERSION = 1
ProgressFn = Callable[[int, int], None]


class WindowBatcher:
    """Collects the windows of several tracks and embeds them together, in order.

    :meth:`add` returns the tracks whose embeddings are done (possibly none, possibly several);
    :meth:`flush` finishes the rest. Each result is ``(key, window embeddings (n_windows, dim))``.

    Parameters
    ----------
    encoder : Encoder
    batch_size : int
        Windows per forward pass; a batch runs once this many are waiting.
    """

    def __init__(self, encoder: Encoder, *, batch_size: int = 64) -> None:
        if batch_size < 1:
            raise UsageError(f"batch size must be positive (got {batch_size})")
        self.encoder = encoder
        self.batch_size = batch_size
        self._keys: list[tuple[Any, int]] = []
        self._windows: list[np.ndarray] = []
        self._waiting = 0

    def add(self, key: Any, features: Features) -> list[tuple[Any, np.ndarray]]:
        batch, _ = self.encoder.window_batch(features)
        self._keys.append((key, len(batch)))
        self._windows.append(batch)
        self._waiting += len(batch)
        return self.flush() if self._waiting >= self.batch_size else []

    def flush(self) -> list[tuple[Any, np.ndarray]]:
        if not self._keys:
            return []
        batch = np.concatenate(self._windows)
        vectors = self.encoder.embed_batch(batch, batch_size=self.batch_size)
        done, first = [], 0
        for key, n in self._keys:
            done.append((key, vectors[first:first + n]))
            first += n
        self._keys, self._windows, self._waiting = [], [], 0
        return done


@dataclass
class Embedded:
    """Track vectors in input order, and the inputs that got none."""

    ids: list[str] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def add(self, done: Iterable[tuple[str, np.ndarray]]) -> None:
        for track_id, window_vectors in done:
            self.ids.append(track_id)
            self.vectors.append(window_vectors.mean(axis=0).astype(np.float32))

    def matrix(self, dim: int) -> np.ndarray:
        return np.stack(self.vectors).astype(np.float32) if self.vectors else np.zeros((0, dim), dtype=np.float32)


# --------------------------------------------------------------------------------------------- stores


def check_store(encoder: Encoder, store: FeatureStore) -> None:
    """Refuse a store the model cannot read: other front-end parameters, other shape, normalized values.

    Raises
    ------
    UsageError
        Names the store and the differing key.
    """
    params = store.params
    extract_config = params.get("extract_config") or {}
    model_extraction = encoder.config["extraction"]
    for key in FRONT_END_KEYS:
        if extract_config.get(key) != model_extraction.get(key):
            raise UsageError(f"{store.path}: extracted with {key}={extract_config.get(key)!r}, the model "
                             f"{encoder.path} with {key}={model_extraction.get(key)!r} (extract the audio again "
                             "with the model's parameters, or embed the audio files)")
    if params.get("normalized"):
        raise UsageError(f"{store.path}: holds normalized features; the model standardizes raw dB itself "
                         "(merge without --normalize)")
    n_mels, channels = store.features.shape[1], store.features.shape[3]
    if (n_mels, channels) != (int(encoder.config["n_mels"]), int(encoder.config["channels"])):
        raise UsageError(f"{store.path}: {n_mels} mels x {channels} channels, the model reads "
                         f"{encoder.config['n_mels']} x {encoder.config['channels']}")
    if extract_config.get("segment") != model_extraction.get("segment"):
        logger.warning("%s: segment rule %r, the model trained on %r", store.path, extract_config.get("segment"),
                       model_extraction.get("segment"))


def embed_store(encoder: Encoder, store: FeatureStore, *, batch_size: int = 64,
                on_progress: ProgressFn | None = None) -> tuple[np.ndarray, list[str]]:
    """One vector per row of a merged store: windows over the row's valid frames, mean embedding (no decoding).

    Returns
    -------
    vectors : np.ndarray [shape=(len(store), embedding_dim)], float32
        Rows in the store's order.
    ids : list[str]
    """
    check_store(encoder, store)
    return _store_rows(encoder, store, batch_size=batch_size, on_progress=on_progress)


def _store_rows(encoder: Encoder, store: FeatureStore, *, batch_size: int, on_progress: ProgressFn | None
                ) -> tuple[np.ndarray, list[str]]:
    embedded = Embedded()
    batcher = WindowBatcher(encoder, batch_size=batch_size)
    total = len(store)
    for row, (track_id, valid) in enumerate(zip(store.index.track_id, store.index.valid_frames, strict=True)):
        features = Features(store.features[row], int(valid), 0.0, f"{store.path} row {row} ({track_id})")
        embedded.add(batcher.add(track_id, features))
        if on_progress is not None:
            on_progress(len(embedded.ids), total)
    embedded.add(batcher.flush())
    if on_progress is not None:
        on_progress(total, total)
    return embedded.matrix(encoder.embedding_dim), embedded.ids


# ---------------------------------------------------------------------------------------------- files


def embed_files(encoder: Encoder, tracks: Sequence[tuple[str, str | Path]], *, segment: str = "model",
                batch_size: int = 64, on_progress: ProgressFn | None = None,
                already_failed: int = 0) -> Embedded:
    """Decode and embed ``(track_id, path)`` pairs; a file that cannot be used is recorded with its reason.

    Decoding stays in this thread: decoding ahead in a second one measured slower here (it competes
    with torch's threads and the GIL).

    Parameters
    ----------
    already_failed : int
        Inputs failed before decoding (for the progress total).
    """
    encoder.extract_config(segment)  # an unknown segment fails before any work
    embedded = Embedded()
    batcher = WindowBatcher(encoder, batch_size=batch_size)
    total = len(tracks) + already_failed

    def decode(item: tuple[str, str | Path]) -> tuple[str, Features | None, str]:
        track_id, path = item
        try:
            return track_id, encoder.features(path, segment=segment), ""
        except (AudioError, InputError) as exc:
            return track_id, None, str(exc)
        except Exception as exc:  # noqa: BLE001 - any other failure of one file is recorded, the run goes on
            return track_id, None, f"{path}: {type(exc).__name__}: {exc}"

    for track_id, features, reason in map(decode, tracks):
        if features is None:
            embedded.failed.append((track_id, reason))
        else:
            embedded.add(batcher.add(track_id, features))
        if on_progress is not None:
            on_progress(len(embedded.ids) + len(embedded.failed) + already_failed, total)
    embedded.add(batcher.flush())
    if on_progress is not None:
        on_progress(total, total)
    return embedded


# --------------------------------------------------------------------------------------------- inputs


def tracks_from_tidfile(tidfile: str | Path, audio_root: str | Path | None = None
                        ) -> tuple[list[tuple[str, Path]], list[tuple[str, str]]]:
    """``(track_id, path)`` of a tidfile (``track_id,filename``; relative to ``audio_root``, default its folder)
    and its unusable rows as ``(track_id, reason)``."""
    listed = read_tidfile(tidfile, need_filename=True)
    root = Path(audio_root) if audio_root is not None else listed.path.parent
    failed = [(p.track_id, f"{listed.path}, line {p.line}: {p.reason}") for p in listed.problems]
    tracks = []
    for track_id, filename in listed.tracks.itertuples(index=False):
        if not filename:
            failed.append((track_id, f"{listed.path}: no filename for this track"))
        else:
            path = Path(filename)
            tracks.append((track_id, path if path.is_absolute() else root / path))
    return tracks, failed


def tracks_from_manifest(manifest: str | Path, tidfile: str | Path | None = None
                         ) -> tuple[list[tuple[str, Path]], list[tuple[str, str]]]:
    """``(track_id, path)`` of every manifest track, or of the tracks a tidfile lists (ids only)."""
    loaded = read_manifest(manifest)
    paths = {t: loaded.audio_file(p) for t, p in zip(loaded.frame.track_id, loaded.frame.audio_path, strict=True)}
    if tidfile is None:
        return list(paths.items()), []
    listed = read_tidfile(tidfile)
    failed = [(p.track_id, f"{listed.path}, line {p.line}: {p.reason}") for p in listed.problems]
    tracks = []
    for track_id in listed.track_ids:
        if track_id in paths:
            tracks.append((track_id, paths[track_id]))
        else:
            failed.append((track_id, f"{listed.path}: track id not in the manifest {manifest}"))
    return tracks, failed


def disambiguated_id(track_id: str, file: str | Path) -> str:
    """``track_id`` made distinct by a digest of the file's absolute path: the id of a second file whose name is
    taken (albums full of ``01.flac``); the same file always gets the same id, and the id stays a safe one."""
    digest = hashlib.sha1(str(Path(file).absolute()).encode("utf-8")).hexdigest()[:10]
    return f"{track_id[:100]}-{digest}"


def tracks_from_audio(files: Sequence[str | Path]) -> list[tuple[str, Path]]:
    """``(track_id, path)`` of audio files: the safe id of each file's name without its extension.

    A second file with a name already taken gets the name plus a digest of its absolute path;
    a file listed twice counts once.
    """
    tracks: list[tuple[str, Path]] = []
    owner: dict[str, Path] = {}
    for file in map(Path, files):
        track_id = safe_track_id(file.stem or file.name)
        if track_id in owner and owner[track_id] != file:
            track_id = disambiguated_id(track_id, file)
        if track_id in owner:
            continue  # the same file again
        owner[track_id] = file
        tracks.append((track_id, file))
    return tracks


# ---------------------------------------------------------------------------------------------- stage


@dataclass
class EmbedReport:
    """What ``musicrep embed`` wrote."""

    out_dir: Path
    kind: str
    n_embedded: int
    failed: list[tuple[str, str]]

    @property
    def n_inputs(self) -> int:
        return self.n_embedded + len(self.failed)


def embed(model_dir: str | Path, out_dir: str | Path, *, store: str | Path | None = None,
          tidfile: str | Path | None = None, manifest: str | Path | None = None,
          audio: Sequence[str | Path] = (), audio_root: str | Path | None = None, segment: str = "model",
          device: str = "cpu", batch_size: int = 64, on_progress: ProgressFn | None = None) -> EmbedReport:
    """Embed one kind of input with an exported model and write the output folder.

    Exactly one input kind: ``store`` (a merged store, no decoding), ``tidfile`` (with
    ``audio_root``), ``manifest`` (optionally restricted to a ``tidfile``'s ids), or ``audio`` files.

    Raises
    ------
    UsageError
        No input or two kinds, options that do not go with the input, a store the model cannot read.
    InputError
        A model folder, store or table that cannot be read.
    """
    kind, source = _input_kind(store=store, tidfile=tidfile, manifest=manifest, audio=audio)
    if audio_root is not None and kind != "tidfile":
        raise UsageError("--audio-root goes with --tidfile (a manifest knows its audio root)")
    if kind == "store" and segment != "model":
        raise UsageError("--segment does not apply to --store (the store's frames are already cut)")
    encoder = load(model_dir, device=device)
    encoder.extract_config(segment)
    if kind == "store":
        feature_store = FeatureStore(store)
        check_store(encoder, feature_store)
        out = ensure_dir(out_dir)
        vectors, ids = _store_rows(encoder, feature_store, batch_size=batch_size, on_progress=on_progress)
        failed: list[tuple[str, str]] = []
    else:
        if kind == "tidfile":
            tracks, failed = tracks_from_tidfile(tidfile, audio_root)
        elif kind == "manifest":
            tracks, failed = tracks_from_manifest(manifest, tidfile)
        else:
            tracks, failed = tracks_from_audio(audio), []
        out = ensure_dir(out_dir)
        result = embed_files(encoder, tracks, segment=segment, batch_size=batch_size, on_progress=on_progress,
                             already_failed=len(failed))
        vectors, ids, failed = result.matrix(encoder.embedding_dim), result.ids, failed + result.failed
    write_embeddings(out, vectors, ids, failed, {
        "model_id": encoder.model_id, "model_dir": str(encoder.path.resolve()),
        "input": {"kind": kind, "path": source}, "segment": "store" if kind == "store" else segment,
        "device": str(device), "batch_size": batch_size,
    })
    return EmbedReport(out_dir=out, kind=kind, n_embedded=len(ids), failed=failed)


def _input_kind(*, store, tidfile, manifest, audio) -> tuple[str, Any]:
    given = {"store": store, "manifest": manifest, "audio": list(audio) or None,
             "tidfile": tidfile if manifest is None else None}
    kinds = [k for k in INPUT_KINDS if given[k] is not None]
    if len(kinds) != 1:
        found = f"got {' and '.join('--' + k for k in kinds)}" if kinds else "got none"
        raise UsageError(f"give exactly one input: --store, --tidfile, --manifest [--tidfile] or --audio ({found})")
    kind = kinds[0]
    if kind == "audio":
        return kind, [str(a) for a in audio]
    if kind == "manifest":
        return kind, {"manifest": str(manifest), "tidfile": None if tidfile is None else str(tidfile)}
    return kind, str(given[kind])


def write_embeddings(out_dir: str | Path, vectors: np.ndarray, ids: Sequence[str], failed: Sequence[tuple[str, str]],
                     meta: dict[str, Any]) -> Path:
    """Write the embeddings folder (each file atomically); ``embed_config.json`` last, with the counts."""
    out = ensure_dir(out_dir)
    if len(vectors) != len(ids):
        raise ValueError(f"{len(vectors)} vectors for {len(ids)} ids")
    with atomic_path(out / "vectors.npy") as tmp, tmp.open("wb") as handle:
        np.save(handle, np.ascontiguousarray(vectors, dtype=np.float32))
    write_csv(pd.DataFrame({"row": np.arange(len(ids)), "track_id": list(ids)}), out / "ids.csv")
    write_csv(pd.DataFrame(list(failed), columns=["track_id", "reason"]), out / "failed.csv")
    write_json({"format_version": FORMAT_VERSION, **meta, "embedding_dim": int(vectors.shape[1]),
                "vectors": "float32, the mean of each track's window embeddings (not normalized)",
                "counts": {"inputs": len(ids) + len(failed), "embedded": len(ids), "failed": len(failed)},
                "musicrep_version": __version__},
               out / "embed_config.json")
    return out


def read_embeddings(path: str | Path) -> tuple[np.ndarray, pd.Series, dict[str, Any]]:
    """``vectors`` (memory-mapped), ``ids`` (row -> track_id) and ``embed_config.json`` of an embeddings folder.

    Only ``vectors.npy`` and ``ids.csv`` (a ``track_id`` column) are required, so vectors of any other model
    can be brought: without ``embed_config.json`` the config is ``{}`` (no model known to have made them).
    """
    import json

    folder = Path(path)
    absent = [f for f in REQUIRED_FILES if not (folder / f).is_file()]
    if absent:
        raise InputError(f"{folder}: missing {', '.join(absent)} (not an embeddings folder: vectors.npy + ids.csv)")
    try:
        vectors = np.load(folder / "vectors.npy", mmap_mode="r", allow_pickle=False)
        frame = pd.read_csv(folder / "ids.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
        config_file = folder / "embed_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    except (OSError, ValueError) as exc:
        raise InputError(f"{folder}: unreadable embeddings file ({exc})") from exc
    if "track_id" not in frame.columns:
        raise InputError(f"{folder / 'ids.csv'}: no track_id column (read the header {','.join(frame.columns)!r}; "
                         "expected one track id per row under a track_id header)")
    ids = frame["track_id"]
    return vectors, ids, config

