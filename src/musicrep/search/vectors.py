"""Nearest-neighbour search over unit vectors by inner product: exact, FAISS IVF-Flat, USearch HNSW.

Every kind answers the same two calls, :meth:`VectorIndex.add` and
:meth:`VectorIndex.search`, over rows numbered in the order they were added,
and is looked up by the name an index folder records (:data:`VECTOR_INDEXES`).
:func:`build_vector_index` picks exact search below :data:`EXACT_BELOW` rows
(a 20,000 x 128 matrix product takes about a millisecond per query: nothing to
gain, and an approximate index would only lose recall) and the approximate
library above it.

Why FAISS (``faiss-ivf``) and not USearch
-----------------------------------------
``python bench/index.py --n 1000000`` (1,000,000 x 128 clustered unit vectors,
1,000 held-out queries; search on one thread, build on two; each library
calibrated at build time to the smallest search effort that reaches recall@10
>= 0.96 on 256 held-out rows; measured on 2 shared, busy cores)::

                  build s  peak MB  kept MB  file MB  recall@10  batch q/s (x exact)  1-query q/s (x exact)
    faiss-ivf        35.6     1035      670      497      0.970      10,930 (263x)         7,754 (342x)
    usearch-hnsw    653.7     1111      745      630      0.973       3,591  (50x)         2,687  (97x)

At the same recall FAISS IVF-Flat built 18 times faster (k-means on an 80,000-row
sample and one assignment pass, where HNSW links every row into a graph), keeps
less memory (the vectors and their list ids, no graph links) and answered three
times more queries per second, batched and one at a time. It needs a training
sample, which is why it starts at :data:`EXACT_BELOW` rows; tracks added later
are assigned to the trained lists (no rebuild), and the calibrated ``nprobe``
adapts the search effort to how the collection clusters. ``usearch-hnsw`` stays
registered (``--kind usearch-hnsw``) for the benchmark and for collections that
grow far past what the lists were trained on.

Nothing here sets library-wide state (thread counts): callers that want one
thread set it themselves, as ``bench/index.py`` does.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from musicrep.errors import InputError, UsageError
from musicrep.fileio import atomic_path

logger = logging.getLogger(__name__)

EXACT_BELOW = 20_000
"""Collections with fewer rows are searched exactly (:class:`ExactIndex`)."""
DEFAULT_ANN = "faiss-ivf"
"""The approximate kind :func:`build_vector_index` uses at and above :data:`EXACT_BELOW` rows."""
TARGET_RECALL = 0.96
"""recall@10 against exact search that the approximate kinds are calibrated to reach: 0.95 with a margin for
the sampling error of :data:`CALIBRATION_QUERIES` queries (about 0.01)."""
CALIBRATION_QUERIES = 256
_SCRATCH = 2**24  # exact search: similarities per matrix product (64 MB float32, 128 MB of argpartition rows)
_ADD_BLOCK = 100_000


class VectorIndex(Protocol):
    """Rows of unit vectors, searched by inner product (cosine)."""

    kind: ClassVar[str]

    def __len__(self) -> int: ...

    def add(self, vectors: np.ndarray, *, rows: np.ndarray | None = None) -> None:
        """Add rows ``(m, dim)`` float32 numbered ``rows`` (default: the next numbers)."""
        ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best rows of each query ``(m, dim)``: ``scores`` float32 and ``rows`` int64, both ``(m, k)``,
        best first; ``rows`` is -1 (score -inf) where fewer than ``k`` were found."""
        ...

    def params(self) -> dict[str, Any]:
        """What :meth:`load` needs besides the file (recorded in the index folder's ``index.json``)."""
        ...

    def save(self, path: Path) -> None: ...

    @classmethod
    def load(cls, path: Path, params: dict[str, Any], vectors: np.ndarray) -> VectorIndex: ...


class ExactIndex:
    """Exact inner-product search: one matrix product per chunk of queries, ties broken by row.

    Parameters
    ----------
    vectors : np.ndarray [shape=(n, dim)], float32
        Unit rows (a memory map is fine: only read).
    """

    kind: ClassVar[str] = "exact"

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors

    def __len__(self) -> int:
        return len(self.vectors)

    def add(self, vectors: np.ndarray, *, rows: np.ndarray | None = None) -> None:
        if rows is not None and not np.array_equal(rows, np.arange(len(self), len(self) + len(vectors))):
            raise ValueError("an exact index appends rows in order")
        self.vectors = np.concatenate([np.asarray(self.vectors), np.asarray(vectors, dtype=np.float32)])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return exact_search(self.vectors, queries, k)

    def params(self) -> dict[str, Any]:
        return {}

    def save(self, path: Path) -> None:
        """Nothing to write: the index folder keeps the vectors themselves."""

    @classmethod
    def load(cls, path: Path, params: dict[str, Any], vectors: np.ndarray) -> ExactIndex:
        return cls(vectors)


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int, *, chunk: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``vectors`` with the largest inner product with each query, best first.

    Parameters
    ----------
    vectors : np.ndarray [shape=(n, dim)]
    queries : np.ndarray [shape=(m, dim)]
    k : int
        Capped at ``n``; the missing columns hold row -1 and score -inf.
    chunk : int, optional
        Queries per matrix product (scratch memory grows with ``chunk x n``); default: as many as keep
        it near 200 MB, at most 256.

    Returns
    -------
    scores : np.ndarray [shape=(m, k)], float32
    rows : np.ndarray [shape=(m, k)], int64
    """
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    n, m = len(vectors), len(queries)
    scores = np.full((m, k), -np.inf, dtype=np.float32)
    rows = np.full((m, k), -1, dtype=np.int64)
    found = min(k, n)
    if found == 0:
        return scores, rows
    chunk = chunk or int(np.clip(_SCRATCH // n, 1, 256))
    matrix = np.asarray(vectors, dtype=np.float32)
    for q0 in range(0, m, chunk):
        similarity = queries[q0:q0 + chunk] @ matrix.T
        top = _top_rows(similarity, found)
        top_scores = np.take_along_axis(similarity, top, axis=1)
        order = np.lexsort((top, -top_scores), axis=1)  # score descending, then row
        rows[q0:q0 + chunk, :found] = np.take_along_axis(top, order, axis=1)
        scores[q0:q0 + chunk, :found] = np.take_along_axis(top_scores, order, axis=1)
    return scores, rows


def _top_rows(similarity: np.ndarray, k: int) -> np.ndarray:
    """Per row of ``similarity``, the columns of its ``k`` largest values, ties at the cut going to the lowest
    columns (so that a deeper search lists the same rows first), columns ascending."""
    n = similarity.shape[1]
    if k >= n:
        return np.broadcast_to(np.arange(n), similarity.shape)
    cut = np.partition(similarity, n - k, axis=1)[:, n - k, None]
    chosen = similarity > cut
    tied = similarity == cut
    room = k - np.count_nonzero(chosen, axis=1, keepdims=True)
    chosen |= tied & (np.cumsum(tied, axis=1) <= room)
    return (np.flatnonzero(chosen) % n).reshape(-1, k)


class FaissIvfIndex:
    """FAISS ``IndexIVFFlat`` (inner product): k-means lists, each query scans its ``nprobe`` nearest lists.

    Parameters
    ----------
    index : faiss.IndexIVFFlat
        Trained; rows are its ids.
    """

    kind: ClassVar[str] = "faiss-ivf"
    SEARCH_EFFORTS: ClassVar[tuple[int, ...]] = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)

    def __init__(self, index: Any) -> None:
        self.index = index

    @classmethod
    def empty(cls, sample: np.ndarray, n_total: int, *, seed: int = 0, threads: int = 0) -> FaissIvfIndex:
        """Lists trained by k-means on ``sample`` (``nlist = 2 sqrt(n_total)``, at most one per 40 sample
        rows, as FAISS asks); no row added yet. ``threads`` is not used: FAISS runs on its OpenMP pool
        (``faiss.omp_set_num_threads``)."""
        faiss = _import("faiss", "pip install 'musicrep[search]'")
        dim = sample.shape[1]
        nlist = int(max(1, min(2 * math.sqrt(n_total), len(sample) // 40)))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        return cls(index)

    @staticmethod
    def sample_size(n_total: int) -> int:
        """Training rows wanted for ``n_total`` rows: 40 per list."""
        return int(40 * max(1, 2 * math.sqrt(n_total)))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def effort(self) -> int:
        return int(self.index.nprobe)

    @effort.setter
    def effort(self, value: int) -> None:
        self.index.nprobe = int(min(value, self.index.nlist))

    def add(self, vectors: np.ndarray, *, rows: np.ndarray | None = None) -> None:
        rows = np.arange(len(self), len(self) + len(vectors)) if rows is None else rows
        self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(rows, dtype=np.int64))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, rows = self.index.search(np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32), k)
        scores = np.where(rows >= 0, scores, -np.inf).astype(np.float32)
        return scores, rows.astype(np.int64)

    def params(self) -> dict[str, Any]:
        return {"nlist": int(self.index.nlist), "nprobe": self.effort}

    def save(self, path: Path) -> None:
        faiss = _import("faiss", "pip install 'musicrep[search]'")
        with atomic_path(path) as tmp:
            faiss.write_index(self.index, str(tmp))

    @classmethod
    def load(cls, path: Path, params: dict[str, Any], vectors: np.ndarray) -> FaissIvfIndex:
        faiss = _import("faiss", "pip install 'musicrep[search]'")
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise InputError(f"{path}: not a readable FAISS index ({str(exc).strip().splitlines()[-1]})") from exc
        loaded = cls(index)
        loaded.effort = int(params.get("nprobe", 16))
        return loaded


class UsearchHnswIndex:
    """USearch HNSW graph (inner product, float32): each query walks ``expansion_search`` candidates.

    Parameters
    ----------
    index : usearch.index.Index
        Rows are its keys.
    threads : int
        Workers that link added rows (0: one per core); a search uses one.
    """

    kind: ClassVar[str] = "usearch-hnsw"
    SEARCH_EFFORTS: ClassVar[tuple[int, ...]] = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
    CONNECTIVITY = 16
    EXPANSION_ADD = 128

    def __init__(self, index: Any, *, threads: int = 0) -> None:
        self.index = index
        self.threads = threads

    @classmethod
    def empty(cls, sample: np.ndarray, n_total: int, *, seed: int = 0, threads: int = 0) -> UsearchHnswIndex:
        """An empty graph of ``sample``'s dimension (HNSW has no training step)."""
        usearch = _import("usearch.index", "pip install usearch")
        index = usearch.Index(ndim=sample.shape[1], metric="ip", dtype="f32", connectivity=cls.CONNECTIVITY,
                              expansion_add=cls.EXPANSION_ADD, expansion_search=64)
        return cls(index, threads=threads)

    @staticmethod
    def sample_size(n_total: int) -> int:
        return 1

    def __len__(self) -> int:
        return len(self.index)

    @property
    def effort(self) -> int:
        return int(self.index.expansion_search)

    @effort.setter
    def effort(self, value: int) -> None:
        self.index.expansion_search = int(value)

    def add(self, vectors: np.ndarray, *, rows: np.ndarray | None = None) -> None:
        rows = np.arange(len(self), len(self) + len(vectors)) if rows is None else rows
        self.index.add(np.asarray(rows, dtype=np.uint64), np.ascontiguousarray(vectors, dtype=np.float32),
                       threads=self.threads)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        matches = self.index.search(queries, k, threads=1)
        keys, distances = np.atleast_2d(matches.keys), np.atleast_2d(matches.distances)
        # one query comes back as Matches (no counts), several as BatchMatches
        counts = np.atleast_1d(getattr(matches, "counts", len(matches)))
        for i, count in enumerate(counts):
            rows[i, :count] = keys[i, :count]
            scores[i, :count] = 1.0 - distances[i, :count]  # usearch's "ip" distance is 1 - inner product
        return scores, rows

    def params(self) -> dict[str, Any]:
        return {"connectivity": self.CONNECTIVITY, "expansion_add": self.EXPANSION_ADD,
                "expansion_search": self.effort}

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            self.index.save(str(tmp))

    @classmethod
    def load(cls, path: Path, params: dict[str, Any], vectors: np.ndarray) -> UsearchHnswIndex:
        usearch = _import("usearch.index", "pip install usearch")
        index = usearch.Index.restore(str(path))
        if index is None:
            raise InputError(f"{path}: not a readable USearch index")
        loaded = cls(index)
        loaded.effort = int(params.get("expansion_search", 64))
        return loaded


VECTOR_INDEXES: dict[str, type] = {"exact": ExactIndex, "faiss-ivf": FaissIvfIndex, "usearch-hnsw": UsearchHnswIndex}
"""Registry: kind (as ``index.json`` records it) -> class."""
ANN_KINDS = tuple(k for k in VECTOR_INDEXES if k != "exact")


def build_vector_index(vectors: np.ndarray, *, kind: str = "auto", exact_below: int = EXACT_BELOW,
                       target_recall: float = TARGET_RECALL, seed: int = 0, threads: int = 0) -> VectorIndex:
    """An index over unit rows: exact below ``exact_below`` rows, else ``kind`` calibrated to ``target_recall``.

    An approximate index is built without a sample of held-out rows first; they query it to
    calibrate its search effort (:func:`calibrate`) and are added afterwards, so every row is
    indexed and the calibration sees queries that are not in the index, as users' are.

    Parameters
    ----------
    vectors : np.ndarray [shape=(n, dim)], float32, unit rows
    kind : str
        ``"auto"`` (exact, or :data:`DEFAULT_ANN` from ``exact_below`` rows on), or a key of
        :data:`VECTOR_INDEXES` to force one.
    exact_below : int
        Row count from which ``"auto"`` builds an approximate index.
    target_recall : float
        recall@10 of held-out queries the search effort is calibrated to.
    seed : int
        Training sample, k-means and calibration queries.
    threads : int
        Workers of a USearch build (0: one per core); FAISS uses its OpenMP pool.

    Raises
    ------
    UsageError
        An unknown kind, or an approximate one on fewer than 2 rows.
    """
    if kind == "auto":
        kind = "exact" if len(vectors) < exact_below else DEFAULT_ANN
    if kind not in VECTOR_INDEXES:
        raise UsageError(f"unknown index kind {kind!r} (known: auto, {', '.join(VECTOR_INDEXES)})")
    if kind == "exact":
        return ExactIndex(vectors)
    n = len(vectors)
    if n < 2:
        raise UsageError(f"an approximate index ({kind}) needs at least 2 vectors (got {n})")
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(n, size=max(1, min(CALIBRATION_QUERIES, n // 10)), replace=False))
    kept = np.setdiff1d(np.arange(n), held)
    cls = VECTOR_INDEXES[kind]
    sample = np.sort(rng.choice(kept, size=min(len(kept), cls.sample_size(n)), replace=False))
    index = cls.empty(np.asarray(vectors[sample], dtype=np.float32), n, seed=seed, threads=threads)
    for first in range(0, len(kept), _ADD_BLOCK):  # bounded float32 copies of a memory map
        rows = kept[first:first + _ADD_BLOCK]
        index.add(np.asarray(vectors[rows], dtype=np.float32), rows=rows)
    calibrate(index, vectors, held, target_recall=target_recall)
    index.add(np.asarray(vectors[held], dtype=np.float32), rows=held)
    return index


def calibrate(index: Any, vectors: np.ndarray, queries: np.ndarray, *, target_recall: float = TARGET_RECALL,
              k: int = 10) -> float:
    """Set ``index.effort`` to the smallest of its ``SEARCH_EFFORTS`` whose recall@k reaches ``target_recall``.

    Parameters
    ----------
    index
        An approximate index holding every row of ``vectors`` but ``queries``.
    vectors : np.ndarray [shape=(n, dim)]
    queries : np.ndarray [shape=(m,)], int
        Rows of ``vectors`` not in ``index``: the calibration queries.

    Returns
    -------
    float
        The recall reached (the largest effort's, if none reaches the target).
    """
    held = set(queries.tolist())
    query_vectors = np.asarray(vectors[queries], dtype=np.float32)
    # the exact lists over the indexed rows: deep enough that k remain once held-out rows are dropped
    _, deep = exact_search(vectors, query_vectors, min(len(vectors), k + len(queries)))
    truth = np.array([[r for r in row if r not in held][:k] for row in deep])
    recall = 0.0
    for effort in index.SEARCH_EFFORTS:
        index.effort = effort
        _, found = index.search(query_vectors, k)
        recall = recall_at_k(found, truth, k)
        if recall >= target_recall:
            break
    logger.info("%s: search effort %d gives recall@%d %.3f on %d held-out rows", index.kind, index.effort, k,
                recall, len(queries))
    return recall


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean share of each query's true top ``k`` (``truth``, rows; -1 none) that ``found`` holds."""
    shares = []
    for got, want in zip(found, truth, strict=True):
        want_k = [r for r in want[:k] if r >= 0]
        if want_k:
            shares.append(len({int(r) for r in got if r >= 0}.intersection(want_k)) / len(want_k))
    return float(np.mean(shares)) if shares else 1.0


def load_vector_index(kind: str, path: Path, params: dict[str, Any], vectors: np.ndarray) -> VectorIndex:
    """The index ``kind`` saved at ``path`` (exact: over ``vectors``).

    Raises
    ------
    InputError
        Unknown kind, missing or unreadable file.
    """
    if kind not in VECTOR_INDEXES:
        raise InputError(f"{path}: unknown index kind {kind!r} (known: {', '.join(VECTOR_INDEXES)})")
    if kind != "exact" and not path.is_file():
        raise InputError(f"{path}: index file not found")
    index = VECTOR_INDEXES[kind].load(path, params, vectors)
    if len(index) != len(vectors):
        raise InputError(f"{path}: holds {len(index)} vectors, the index folder {len(vectors)}")
    return index


def _import(module: str, install: str) -> Any:
    """The library behind an index kind, or a one-line :class:`UsageError` that says how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UsageError(f"{module.split('.')[0]} is not installed ({install})") from exc
