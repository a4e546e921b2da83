"""Offline triplet mining by relatedness in a target space (CBMI 2019 / SAC 2020).

For each anchor of a partition: positives are tracks with cosine >= ``pos``
(up to ``max_pos``, most related first, ties drawn at random), the negative is
the hardest track below ``neg``. Candidates come from the same partition only.

Tracks with identical target vectors (same tag set, same album review) are
collapsed to one *unique* vector first; similarities are computed exactly,
chunk by chunk with top-k (torch), so memory grows with ``chunk x unique``,
never ``N x N``. With ``exclude_same_artist`` the rows of a chunk are the
anchors' (unique vector, artist) pairs, and every unique vector whose tracks
are all of the anchor's artist is masked out *before* top-k, so that however
many same-artist tracks rank first, the best other-artist candidates are found.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from musicrep.data.manifest import normalize_name
from musicrep.errors import InputError, UsageError
from musicrep.fileio import atomic_path, write_csv
from musicrep.targets.space import Space

logger = logging.getLogger(__name__)

_CHUNK_BYTES = 256 * 2**20
_NEGATIVE_CANDIDATES = 8


@dataclass(frozen=True)
class MiningConfig:
    """Thresholds and limits of triplet mining."""

    pos: float = 0.90
    neg: float = 0.85
    max_pos: int = 10
    exclude_same_artist: bool = False
    seed: int = 0

    def validate(self) -> None:
        if not -1.0 <= self.neg <= self.pos <= 1.0:
            raise UsageError(f"need -1 <= --neg <= --pos <= 1 (got --pos {self.pos}, --neg {self.neg})")
        if self.max_pos < 1:
            raise UsageError(f"--max-pos must be at least 1 (got {self.max_pos})")


@dataclass
class MiningReport:
    """What :func:`mine_triplets` found."""

    n_anchors: int
    n_unique: int
    n_triplets: int
    n_with_positive: int
    unmatched: pd.DataFrame = field(repr=False)  # track_id, reason


def unique_rows(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a float matrix and, per input row, the index of its distinct row."""
    contiguous = np.ascontiguousarray(vectors)
    keys = contiguous.view(np.dtype((np.void, contiguous.dtype.itemsize * contiguous.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return contiguous[first], inverse.ravel()


def mine_triplets(
    space: Space, train_ids: list[str], out_path: str | Path, config: MiningConfig, *,
    artists: pd.Series | None = None, on_progress: Callable[[int, int], None] | None = None,
) -> MiningReport:
    """Mine triplets among the tracks of ``train_ids`` that have a vector in ``space``.

    Parameters
    ----------
    space : Space
    train_ids : list[str]
        The partition: anchors and candidates.
    out_path : path-like
        ``triplets.parquet`` (anchor, positive, negative, cos_pos, cos_neg); anchors
        without a positive or a negative go to ``<stem>_unmatched.csv``.
    config : MiningConfig
    artists : pandas.Series, optional
        track_id -> artist, required with ``exclude_same_artist``; names are compared normalized
        (:func:`musicrep.data.manifest.normalize_name`, as partitions group artists).
    """
    config.validate()
    target = Path(out_path)
    if target.is_dir():
        raise InputError(f"{target}: is a directory (--out names the triplets file, "
                         f"e.g. {target / 'triplets.parquet'})")
    row_of = space.row_of()
    rows = np.array(sorted({row_of[t] for t in train_ids if t in row_of}), dtype=np.int64)
    if len(rows) == 0:
        raise UsageError(f"{space.path}: none of the partition's tracks has a vector in this space")
    ids = space.ids.to_numpy(dtype=object)[rows]
    artist_codes = _artist_codes(ids, artists, config.exclude_same_artist)
    unique, inverse = unique_rows(np.asarray(space.vectors[rows], dtype=np.float32))
    members = _groups_of(inverse, len(unique))
    pair_unique, pair_artist, pair_anchors = _anchor_pairs(inverse, len(unique), artist_codes)
    logger.info("%d anchors, %d unique vectors", len(rows), len(unique))

    rng = np.random.default_rng(config.seed)
    k_pos = min(len(unique), 2 * config.max_pos + 1)
    k_neg = min(len(unique), _NEGATIVE_CANDIDATES)
    chunk = max(1, _CHUNK_BYTES // (4 * len(unique)))
    matrix = torch.from_numpy(unique)
    sole = None if artist_codes is None else torch.from_numpy(_sole_artists(members, artist_codes))
    out_rows: list[tuple[int, int, int, float, float]] = []
    unmatched: list[tuple[str, str]] = []
    for start in range(0, len(pair_unique), chunk):
        stop = min(len(pair_unique), start + chunk)
        sims = matrix[torch.from_numpy(pair_unique[start:stop])] @ matrix.T
        if sole is not None:
            # a unique vector all of whose tracks are of the anchor's artist offers no candidate
            sims.masked_fill_(sole[None, :] == torch.from_numpy(pair_artist[start:stop])[:, None], -np.inf)
        pos_vals, pos_idx = torch.topk(sims, k_pos, dim=1)
        neg_vals, neg_idx = torch.topk(sims.masked_fill(sims >= config.neg, -np.inf), k_neg, dim=1)
        pos_vals, pos_idx, neg_vals, neg_idx = (t.numpy() for t in (pos_vals, pos_idx, neg_vals, neg_idx))
        for offset in range(stop - start):
            keep_pos = pos_vals[offset] >= config.pos
            keep_neg = np.isfinite(neg_vals[offset])
            candidates = (pos_idx[offset][keep_pos], pos_vals[offset][keep_pos],
                          neg_idx[offset][keep_neg], neg_vals[offset][keep_neg])
            for anchor in pair_anchors[start + offset]:
                _mine_anchor(int(anchor), candidates, members, artist_codes, config, rng, out_rows, unmatched, ids)
        if on_progress is not None:
            on_progress(stop, len(pair_unique))

    table = _triplet_table(out_rows, ids)
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)
    with_positive = len(rows) - sum(1 for _, reason in unmatched if reason.startswith("no positive"))
    unmatched_frame = pd.DataFrame(unmatched, columns=["track_id", "reason"])
    write_csv(unmatched_frame, unmatched_path(target))
    return MiningReport(n_anchors=len(rows), n_unique=len(unique), n_triplets=table.num_rows,
                        n_with_positive=with_positive, unmatched=unmatched_frame)


def unmatched_path(out_path: Path) -> Path:
    """Where the anchors without a triplet are listed."""
    return out_path.with_name(f"{out_path.stem}_unmatched.csv")


def _artist_codes(ids: np.ndarray, artists: pd.Series | None, exclude: bool) -> np.ndarray | None:
    if not exclude:
        return None
    if artists is None:
        raise UsageError("--exclude-same-artist needs the manifest's artists")
    raw = pd.Series(ids).map(artists).fillna("").astype(str)
    # artists are compared as partition groups them ("Björk" = "BJÖRK" = NFD "Björk"), once per distinct spelling
    names = raw.map({name: normalize_name(name) for name in raw.unique()})
    codes, _ = pd.factorize(names)
    codes = codes.astype(np.int64)
    # a track without an artist is its own artist
    blank = (names == "").to_numpy()
    codes[blank] = -1 - np.arange(int(blank.sum()))
    return codes


def _groups_of(labels: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """Per group ``0..n_groups-1``, the positions holding it (in order)."""
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_groups + 1))
    return [order[bounds[g]:bounds[g + 1]] for g in range(n_groups)]


def _anchor_pairs(
    inverse: np.ndarray, n_unique: int, artist_codes: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray]]:
    """The rows of the similarity chunks: anchors grouped by unique vector (and artist, when excluded).

    Anchors sharing a vector and an artist share their candidates. Returns the
    unique vector and the artist of each pair, and each pair's anchors.
    """
    if artist_codes is None:
        return np.arange(n_unique), None, _groups_of(inverse, n_unique)
    shifted = artist_codes - artist_codes.min()
    keys = inverse.astype(np.int64) * (int(shifted.max()) + 1) + shifted
    _, first, pair_of = np.unique(keys, return_index=True, return_inverse=True)
    return inverse[first], artist_codes[first], _groups_of(pair_of.ravel(), len(first))


def _sole_artists(members: list[np.ndarray], artist_codes: np.ndarray) -> np.ndarray:
    """Per unique vector, the artist of all its tracks, or a code no track has when they differ."""
    order = np.concatenate(members)
    starts = np.cumsum([0] + [len(m) for m in members[:-1]])
    codes = artist_codes[order]
    lowest, highest = np.minimum.reduceat(codes, starts), np.maximum.reduceat(codes, starts)
    return np.where(lowest == highest, lowest, int(artist_codes.max()) + 1)


def _draw(pool: np.ndarray, count: int, anchor: int, artist_codes: np.ndarray | None,
          rng: np.random.Generator) -> np.ndarray:
    """Up to ``count`` random members of ``pool``, never the anchor nor its artist."""
    if len(pool) > 4 * (count + 1):
        # large groups (a common tag set): sample first, filter the sample
        sample = pool[rng.choice(len(pool), size=4 * (count + 1), replace=False)]
        sample = _allowed(sample, anchor, artist_codes)
        if len(sample) >= count:
            return sample[:count]
    allowed = _allowed(pool, anchor, artist_codes)
    if len(allowed) <= count:
        return rng.permutation(allowed)
    return allowed[rng.choice(len(allowed), size=count, replace=False)]


def _allowed(pool: np.ndarray, anchor: int, artist_codes: np.ndarray | None) -> np.ndarray:
    keep = pool != anchor
    if artist_codes is not None:
        keep &= artist_codes[pool] != artist_codes[anchor]
    return pool[keep]


def _mine_anchor(anchor, candidates, members, artist_codes, config, rng, out_rows, unmatched, ids) -> None:
    pos_uniques, pos_sims, neg_uniques, neg_sims = candidates
    positives: list[tuple[int, float]] = []
    for unique, sim in zip(pos_uniques, pos_sims, strict=True):
        need = config.max_pos - len(positives)
        if need <= 0:
            break
        positives += [(int(p), float(sim)) for p in _draw(members[unique], need, anchor, artist_codes, rng)]
    if not positives:
        unmatched.append((ids[anchor], f"no positive with cosine >= {config.pos}"))
        return
    negative = None
    for unique, sim in zip(neg_uniques, neg_sims, strict=True):
        drawn = _draw(members[unique], 1, anchor, artist_codes, rng)
        if len(drawn):
            negative = (int(drawn[0]), float(sim))
            break
    if negative is None:
        unmatched.append((ids[anchor], f"no negative with cosine < {config.neg}"))
        return
    out_rows.extend((anchor, p, negative[0], s, negative[1]) for p, s in positives)


def _triplet_table(rows: list[tuple[int, int, int, float, float]], ids: np.ndarray) -> pa.Table:
    array = np.array(rows, dtype=np.float64).reshape(-1, 5)
    index = array[:, :3].astype(np.int64)
    return pa.table({
        "anchor": pa.array(ids[index[:, 0]].tolist(), pa.string()),
        "positive": pa.array(ids[index[:, 1]].tolist(), pa.string()),
        "negative": pa.array(ids[index[:, 2]].tolist(), pa.string()),
        "cos_pos": pa.array(array[:, 3].astype(np.float32)),
        "cos_neg": pa.array(array[:, 4].astype(np.float32)),
    })
