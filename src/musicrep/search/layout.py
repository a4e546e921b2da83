"""The 2-D map of a collection: where each track, and each query, sits on the page.

Up to :data:`TSNE_MAX` tracks, t-SNE of the unit audio embeddings (scikit-learn,
Barnes-Hut, PCA initialization, seeded): neighbourhoods are what a listener
explores, and t-SNE keeps them. Beyond, t-SNE's time (minutes per 10,000 points
on one core) and its lack of a transform for new points make PCA's two main
axes the better map. Coordinates are scaled into [-1, 1].

Points that come later (tracks added with ``musicrep index --add``, queries)
are placed by PCA's transform, or, on a t-SNE map, at the similarity-weighted
mean of their nearest indexed tracks (:data:`PLACE_NEIGHBOURS`), since t-SNE
has no transform.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from musicrep.errors import InputError
from musicrep.fileio import atomic_path

TSNE_MAX = 10_000
"""Largest collection mapped with t-SNE; PCA beyond."""
PLACE_NEIGHBOURS = 5
METHODS = ("auto", "tsne", "pca")


@dataclass
class MapLayout:
    """How the map was made, so that later points land on it.

    Attributes
    ----------
    method : str
        ``"tsne"`` or ``"pca"``.
    scale : float
        Coordinates were divided by it (the largest absolute value).
    mean, components : np.ndarray
        PCA only: the centre ``(dim,)`` and the two axes ``(2, dim)``.
    """

    method: str
    scale: float
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    components: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))

    def place(self, vectors: np.ndarray | None, neighbour_xy: np.ndarray, neighbour_scores: np.ndarray
              ) -> np.ndarray:
        """Map points of new vectors: PCA's transform, else the weighted mean of their neighbours' points.

        Parameters
        ----------
        vectors : np.ndarray [shape=(m, dim)] or None
            Unit audio vectors (None: place by the neighbours, whatever the method).
        neighbour_xy : np.ndarray [shape=(m, j, 2)]
            Points of each vector's nearest indexed tracks (best first; rows of NaN where fewer).
        neighbour_scores : np.ndarray [shape=(m, j)]
            Their similarities.

        Returns
        -------
        np.ndarray [shape=(m, 2)], float32
        """
        if self.method == "pca" and vectors is not None:
            return ((np.asarray(vectors, dtype=np.float32) - self.mean) @ self.components.T / self.scale).astype(
                np.float32)
        xy = np.asarray(neighbour_xy, dtype=np.float64)[:, :PLACE_NEIGHBOURS]
        weights = np.clip(np.nan_to_num(np.asarray(neighbour_scores, dtype=np.float64)[:, :PLACE_NEIGHBOURS],
                                        nan=0.0, neginf=0.0), 0.0, None) + 1e-6
        weights = np.where(np.isnan(xy[..., 0]), 0.0, weights)
        total = weights.sum(axis=1, keepdims=True)
        mean = np.nansum(xy * weights[..., None], axis=1) / np.where(total > 0, total, 1.0)
        return mean.astype(np.float32)

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp, tmp.open("wb") as handle:
            np.savez(handle, method=np.str_(self.method), scale=np.float64(self.scale), mean=self.mean,
                     components=self.components)

    @classmethod
    def load(cls, path: Path) -> MapLayout:
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(method=str(data["method"]), scale=float(data["scale"]),
                           mean=data["mean"].astype(np.float32), components=data["components"].astype(np.float32))
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"{path}: unreadable map layout ({exc})") from exc


def layout_map(vectors: np.ndarray, *, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, MapLayout]:
    """2-D points of unit vectors, and the layout that places later ones.

    Parameters
    ----------
    vectors : np.ndarray [shape=(n, dim)]
    method : {"auto", "tsne", "pca"}
        ``auto``: t-SNE up to :data:`TSNE_MAX` rows (and from 5 rows on), PCA otherwise.
    seed : int

    Returns
    -------
    xy : np.ndarray [shape=(n, 2)], float32, within [-1, 1]
    layout : MapLayout
    """
    n = len(vectors)
    if method == "auto":
        method = "tsne" if 5 <= n <= TSNE_MAX else "pca"
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                  learning_rate="auto").fit_transform(np.asarray(vectors, dtype=np.float32))
        layout = MapLayout(method="tsne", scale=1.0)
    else:
        mean, components = _principal_axes(vectors)
        xy = np.zeros((n, 2)) if n == 0 else (np.asarray(vectors, dtype=np.float32) - mean) @ components.T
        layout = MapLayout(method="pca", scale=1.0, mean=mean, components=components)
    scale = float(np.abs(xy).max()) if n else 1.0
    layout.scale = scale if scale > 0 else 1.0
    return (np.asarray(xy, dtype=np.float64) / layout.scale).astype(np.float32), layout


def _principal_axes(vectors: np.ndarray, *, block: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(dim,)`` and the two main axes ``(2, dim)`` from the covariance, summed in blocks (any n)."""
    n, dim = vectors.shape
    if n == 0:
        return np.zeros(dim, dtype=np.float32), np.zeros((2, dim), dtype=np.float32)
    total = np.zeros(dim)
    scatter = np.zeros((dim, dim))
    for first in range(0, n, block):
        x = np.asarray(vectors[first:first + block], dtype=np.float64)
        total += x.sum(axis=0)
        scatter += x.T @ x
    mean = total / n
    covariance = scatter / n - np.outer(mean, mean)
    _, axes = np.linalg.eigh(covariance)
    components = axes[:, ::-1][:, :2].T
    if components.shape[0] < 2:  # a 1-D embedding: the second axis is empty
        components = np.vstack([components, np.zeros((2 - components.shape[0], dim))])
    return mean.astype(np.float32), components.astype(np.float32)
