"""Training data: random crops from a memory-mapped feature store, each task's targets, batches with positives.

Nothing loads a whole store into memory: each loader process opens the
merged ``features.npy`` memory-mapped on first use. Crops are drawn inside the
valid (non-padded) frames with a generator seeded by (seed, epoch, position),
so the same recipe gives the same batches whatever the number of workers.
Batches bring each anchor with some of its positives in the first task's
space (other tracks, of other artists by default), so most anchors have a
positive in their batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Sampler

from musicrep.data.manifest import normalize_name
from musicrep.errors import UsageError
from musicrep.features.merge import FeatureStore
from musicrep.models.encoder import window_starts, windows
from musicrep.targets.space import Space
from musicrep.training.recipe import AugmentRecipe


@dataclass
class TaskTargets:
    """One task's targets aligned to a store's rows."""

    name: str
    vectors: np.ndarray
    """float32 (rows, space_dim), L2-normalized; zero where missing."""
    valid: np.ndarray
    """bool (rows,): the track has a vector in the space."""
    labels: np.ndarray | None = None
    """float32 (rows, n_labels) multi-hot, for tag spaces."""
    label_names: list[str] = field(default_factory=list)


def align_targets(space: Space, track_ids: list[str], name: str, *, with_labels: bool) -> TaskTargets:
    """A space's vectors (and, for tag spaces, multi-hot labels over its vocabulary) in ``track_ids`` order."""
    row_of = space.row_of()
    rows = np.array([row_of.get(t, -1) for t in track_ids], dtype=np.int64)
    valid = rows >= 0
    vectors = np.zeros((len(track_ids), space.model.dims), dtype=np.float32)
    vectors[valid] = np.asarray(space.vectors[rows[valid]], dtype=np.float32)
    targets = TaskTargets(name=name, vectors=vectors, valid=valid)
    if with_labels and space.model.analyzer.kind == "tags":
        targets.label_names = list(space.model.vocabulary)
        targets.labels = _multi_hot(space, track_ids, targets.label_names)
    return targets


def _multi_hot(space: Space, track_ids: list[str], vocabulary: list[str]) -> np.ndarray:
    from musicrep.data.manifest import read_manifest

    source = space.params.get("manifest")
    if not source or not Path(source).is_file():
        raise UsageError(f"{space.path}: labels need the manifest the space was built from ({source})")
    frame = read_manifest(source).frame.set_index("track_id")
    known = [t for t in track_ids if t in frame.index]
    documents, _ = space.model.analyzer.documents(frame.loc[known].reset_index())
    column = {term: i for i, term in enumerate(vocabulary)}
    labels = np.zeros((len(track_ids), len(vocabulary)), dtype=np.float32)
    position = {t: i for i, t in enumerate(track_ids)}
    for track_id, terms in zip(known, documents, strict=True):
        for term in space.model.analyzer(terms):
            if term in column:
                labels[position[track_id], column[term]] = 1.0
    return labels


def artist_codes(track_ids: list[str], artists: pd.Series) -> np.ndarray:
    """An integer per track: equal for tracks of one artist; a track without an artist is its own artist."""
    names = pd.Series(track_ids).map(artists).fillna("").map(normalize_name)
    names = names.where(names != "", "\x00" + pd.Series(track_ids))
    return pd.factorize(names)[0].astype(np.int64)


def positive_partners(targets: TaskTargets, *, pos: float, artists: np.ndarray | None, max_partners: int = 32,
                      chunk: int = 1024) -> list[np.ndarray]:
    """For each row, up to ``max_partners`` other tracks related to it (cosine >= ``pos`` in the space).

    With ``artists``, partners are tracks of other artists only: positives of the
    same artist (an album's tracks share its tags) teach the network the artist's
    timbre, which an artist-filtered evaluation does not reward. Exact, chunked
    (memory grows with ``chunk x rows``), ties broken at random by a fixed seed.
    """
    rows = np.flatnonzero(targets.valid)
    partners = [np.zeros(0, dtype=np.int64) for _ in range(len(targets.valid))]
    if len(rows) < 2:
        return partners
    matrix = torch.from_numpy(targets.vectors[rows])
    jitter = torch.from_numpy(np.random.default_rng(0).random(len(rows)).astype(np.float32) * 1e-6)
    codes = torch.from_numpy(artists[rows]) if artists is not None else None
    k = min(len(rows), max_partners + 1)
    for start in range(0, len(rows), chunk):
        sims = matrix[start:start + chunk] @ matrix.T
        positions = torch.arange(start, min(start + chunk, len(rows)))
        sims[torch.arange(len(positions)), positions] = -np.inf
        if codes is not None:
            sims[codes[positions].unsqueeze(1) == codes.unsqueeze(0)] = -np.inf
        values, index = torch.topk(sims + jitter, k, dim=1)
        for offset, (v, i) in enumerate(zip(values.numpy(), index.numpy(), strict=True)):
            partners[rows[start + offset]] = rows[i[v >= pos - 1e-5]]
    return partners


class PartnerBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches in which anchors come with some of their positives (P anchors x K tracks).

    Each epoch visits the rows in a new random order as anchors; each anchor
    brings up to ``group_size - 1`` of its partners (:func:`positive_partners`),
    so most anchors have a positive in the batch. Yields lists of
    ``(row, crop_seed)``; ``ceil(rows / batch_size)`` batches per epoch. Under
    DDP each rank takes every ``world_size``-th batch of the same sequence;
    ``set_epoch`` (called by the trainer) changes the draws per epoch.
    """

    def __init__(self, partners: list[np.ndarray], *, batch_size: int, group_size: int, seed: int,
                 rank: int = 0, world_size: int = 1) -> None:
        self.partners = partners
        self.batch_size = batch_size
        self.group_size = max(1, min(group_size, batch_size))
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        total = max(1, -(-len(self.partners) // self.batch_size))
        return max(1, total // self.world_size)

    def _batches(self, rng: np.random.Generator) -> Iterator[list[int]]:
        anchors = iter(rng.permutation(len(self.partners)).tolist())
        for _ in range(len(self) * self.world_size):
            rows: list[int] = []
            while len(rows) < self.batch_size:
                anchor = next(anchors, None)
                if anchor is None:
                    anchors = iter(rng.permutation(len(self.partners)).tolist())
                    continue
                partners = self.partners[anchor]
                take = min(len(partners), self.group_size - 1, self.batch_size - len(rows) - 1)
                rows.append(anchor)
                rows.extend(rng.choice(partners, size=take, replace=False).tolist() if take > 0 else [])
            yield rows

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        rng = np.random.default_rng((self.seed, self.epoch))
        for number, rows in enumerate(self._batches(rng)):
            seeds = rng.integers(0, 2**31 - 1, size=len(rows))
            if number % self.world_size == self.rank:
                yield list(zip(rows, seeds.tolist(), strict=True))


class TripletBatchSampler(PartnerBatchSampler):
    """Batches of whole mined triplets: ``batch_size // 3`` (anchor, positive, negative) rows each.

    Parameters
    ----------
    triplets : np.ndarray [shape=(n, 3)]
        Store rows of the triplets ``mine-triplets`` wrote.
    """

    def __init__(self, triplets: np.ndarray, *, n_rows: int, batch_size: int, seed: int, rank: int = 0,
                 world_size: int = 1) -> None:
        if len(triplets) == 0:
            raise UsageError("the triplets file holds no triplet among the training tracks")
        super().__init__([np.zeros(0, dtype=np.int64)] * n_rows, batch_size=batch_size, group_size=1, seed=seed,
                         rank=rank, world_size=world_size)
        self.triplets = triplets

    def _batches(self, rng: np.random.Generator) -> Iterator[list[int]]:
        per_batch = max(1, self.batch_size // 3)
        for _ in range(len(self) * self.world_size):
            yield self.triplets[rng.integers(0, len(self.triplets), size=per_batch)].ravel().tolist()


class StoreDataset(Dataset):
    """A dataset over a merged store that each loader process opens itself (memory-mapped, on first use).

    Parameters
    ----------
    store_dir : Path
        A merged store.
    """

    def __init__(self, store_dir: Path) -> None:
        self.store_dir = Path(store_dir)
        self._store: FeatureStore | None = None

    @property
    def store(self) -> FeatureStore:
        if self._store is None:
            self._store = FeatureStore(self.store_dir)
        return self._store

    def __getstate__(self) -> dict:  # a memory map must not travel to loader processes: each opens its own
        state = dict(self.__dict__)
        state["_store"] = None
        return state

    def __len__(self) -> int:
        return len(self.store)


class CropDataset(StoreDataset):
    """``(row, crop_seed)`` -> a random crop ``(channels, n_mels, crop_frames)`` in dB (float32) and the row.

    Parameters
    ----------
    store_dir : Path
    crop_frames : int
    augment : AugmentRecipe
    """

    def __init__(self, store_dir: Path, crop_frames: int, augment: AugmentRecipe | None = None) -> None:
        super().__init__(store_dir)
        self.crop_frames = crop_frames
        self.augment = augment or AugmentRecipe()

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, int]:
        row, crop_seed = item
        rng = np.random.default_rng(crop_seed)
        crop = self.store.random_crop(int(row), self.crop_frames, rng)  # (n_mels, frames, channels)
        crop = augment_crop(crop, self.augment, rng, floor=float(self.store.params.get("pad_value", -80.0)))
        return torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))), int(row)


class WindowDataset(StoreDataset):
    """Row -> every window of the track's valid frames ``(n_windows, channels, n_mels, window)`` and the row.

    The windows are :func:`musicrep.models.encoder.window_starts`'s, as inference takes them.
    """

    def __init__(self, store_dir: Path, window: int) -> None:
        super().__init__(store_dir)
        self.window = window

    def __getitem__(self, row: int) -> tuple[torch.Tensor, int]:
        store = self.store
        valid = int(store.index.valid_frames.iloc[row])
        array = store.features[row]
        starts = window_starts(valid, self.window)
        cut = windows(array, starts, self.window, float(store.params.get("pad_value", -80.0)))
        return torch.from_numpy(cut), int(row)


def collate_windows(items: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Windows of several tracks in one batch: ``(windows, owner position of each window, rows)``."""
    owners = torch.cat([torch.full((len(w),), i, dtype=torch.long) for i, (w, _) in enumerate(items)])
    return torch.cat([w for w, _ in items]), owners, torch.tensor([row for _, row in items], dtype=torch.long)


def augment_crop(crop: np.ndarray, augment: AugmentRecipe, rng: np.random.Generator, *, floor: float) -> np.ndarray:
    """Gain jitter and SpecAugment-style time/frequency masks on one ``(n_mels, frames, channels)`` crop."""
    if augment.gain_db:
        crop = np.maximum(crop + rng.uniform(-augment.gain_db, augment.gain_db), floor)
    if augment.freq_mask:
        width = int(rng.integers(0, augment.freq_mask + 1))
        start = int(rng.integers(0, max(1, crop.shape[0] - width + 1)))
        crop[start:start + width] = floor
    if augment.time_mask:
        width = int(rng.integers(0, augment.time_mask + 1))
        start = int(rng.integers(0, max(1, crop.shape[1] - width + 1)))
        crop[:, start:start + width] = floor
    return crop


def mixup(batch: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """With ``probability`` per crop, mix it with another crop of the batch (in dB: the louder bin wins)."""
    if probability <= 0 or len(batch) < 2:
        return batch
    chosen = torch.rand(len(batch), generator=generator) < probability
    partners = torch.randperm(len(batch), generator=generator)
    mixed = torch.maximum(batch, batch[partners])
    return torch.where(chosen[:, None, None, None], mixed, batch)


def store_track_ids(store_dir: Path) -> list[str]:
    """The track ids of a merged store, in row order."""
    return pd.read_csv(Path(store_dir) / "index.csv", dtype={"track_id": str})["track_id"].tolist()
