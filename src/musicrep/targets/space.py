"""A target space on disk: TF-IDF vocabulary + LSI projection + the projected vectors.

One layout for every space (tags or text), so training and serving can
identify and reuse them::

    DIR/<space>/model.json    kind, analyzer parameters, vocabulary, idf, space_id
    DIR/<space>/svd.npz       components (dims x vocabulary), singular values
    DIR/<space>/vectors.npy   float32, L2-normalized, one row per track with data
    DIR/<space>/ids.csv       row,track_id
    DIR/<space>/missing.csv   track_id,reason (tracks without data get no vector)

No pickles: everything is JSON, CSV or numpy. ``space_id`` is the SHA-256 of
the fitted model (vocabulary, idf, parameters and the SVD arrays).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from musicrep.errors import InputError, UsageError
from musicrep.fileio import atomic_path, ensure_dir, write_csv
from musicrep.targets.analyzers import Analyzer, make_analyzer

logger = logging.getLogger(__name__)

FILES = ("model.json", "svd.npz", "vectors.npy", "ids.csv", "missing.csv")
FORMAT_VERSION = 1


@dataclass
class LsiModel:
    """A fitted TF-IDF -> truncated SVD projection.

    Parameters
    ----------
    analyzer : Analyzer
        Turns one document into its terms (tags or text tokens).
    vocabulary : list[str]
        Terms, in column order.
    idf : np.ndarray [shape=(n_terms,)]
        Inverse document frequencies fitted on the training partition.
    components : np.ndarray [shape=(dims, n_terms)]
        The SVD's right singular vectors.
    singular_values : np.ndarray [shape=(dims,)]
    """

    analyzer: Analyzer
    vocabulary: list[str]
    idf: np.ndarray
    components: np.ndarray
    singular_values: np.ndarray

    @property
    def dims(self) -> int:
        """Dimensions of the space."""
        return int(self.components.shape[0])

    def tfidf(self, documents: Sequence[object]) -> sparse.csr_matrix:
        """TF-IDF rows (L2-normalized) of documents, with the fitted vocabulary and idf."""
        vectorizer = TfidfVectorizer(analyzer=self.analyzer, vocabulary={t: i for i, t in enumerate(self.vocabulary)},
                                     dtype=np.float32)
        vectorizer.idf_ = self.idf
        return vectorizer.transform(documents)

    def project(self, documents: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
        """Project documents exactly as the training items were.

        Identical documents (tracks sharing a tag set or an album review) are
        projected once.

        Returns
        -------
        vectors : np.ndarray [shape=(n, dims)], float32, L2-normalized rows
        has_terms : np.ndarray [shape=(n,)], bool
            False where a document has no term of the vocabulary (its row is zero
            and must not be used as a vector).
        """
        keys = np.empty(len(documents), dtype=object)
        keys[:] = [tuple(d) if isinstance(d, list) else d for d in documents]
        codes, uniques = pd.factorize(keys)
        vectors, has_terms = self._project_unique(list(uniques))
        return vectors[codes], has_terms[codes]

    def _project_unique(self, documents: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
        matrix = self.tfidf(documents)
        raw = np.asarray(matrix @ self.components.T, dtype=np.float32)
        norms = np.linalg.norm(raw, axis=1)
        has_terms = (matrix.getnnz(axis=1) > 0) & (norms > 0)
        raw[has_terms] /= norms[has_terms, None]
        raw[~has_terms] = 0.0
        return raw, has_terms


def fit_lsi(
    documents: Sequence[object], analyzer: Analyzer, *, dims: int, min_df: int | float = 1,
    max_df: float = 1.0, max_features: int | None = None, seed: int = 0, name: str = "space",
    flags: tuple[str, str] = ("min_df", "max_df"), unit: str = "training documents",
) -> LsiModel:
    """Fit TF-IDF and a truncated SVD on the training documents.

    ``dims`` is capped by the vocabulary size and the number of documents, with a warning.

    Parameters
    ----------
    flags : (str, str)
        How the caller's user names ``min_df`` and ``max_df`` (``--min-df``), for messages.
    unit : str
        What the documents are, for messages (``distinct training texts``).

    Raises
    ------
    UsageError
        No term survives: the documents have none, or ``min_df`` / ``max_df`` prune them all.
    """
    if dims < 1:
        raise UsageError(f"{name}: --dims must be at least 1 (got {dims})")
    vectorizer = TfidfVectorizer(analyzer=analyzer, min_df=min_df, max_df=max_df, max_features=max_features,
                                 dtype=np.float32)
    try:
        matrix = vectorizer.fit_transform(documents)
    except ValueError as exc:  # no term at all, or none left after min_df / max_df
        if not any(analyzer(document) for document in documents):
            raise UsageError(f"{name}: the {len(documents)} {unit} have no term (only stop words or words "
                             f"shorter than the analyzer keeps)") from exc
        raise UsageError(f"{name}: {len(documents)} {unit}; {flags[0]} {min_df} / {flags[1]} {max_df} leave no "
                         f"term (lower {flags[0]} or raise {flags[1]})") from exc
    vocabulary = [None] * len(vectorizer.vocabulary_)
    for term, column in vectorizer.vocabulary_.items():
        vocabulary[column] = term
    # randomized SVD allows as many components as terms (arpack would need one fewer)
    limit = min(len(vocabulary), matrix.shape[0])
    if limit < 1:
        raise UsageError(f"{name}: vocabulary of {len(vocabulary)} term(s) over {matrix.shape[0]} document(s) "
                         "is too small for a space")
    if dims > limit:
        logger.warning("%s: --dims %d capped to %d (vocabulary %d terms, %d training documents)",
                       name, dims, limit, len(vocabulary), matrix.shape[0])
        dims = limit
    if len(vocabulary) == 1:  # a one-term space is one axis (TruncatedSVD needs two terms)
        components = np.ones((1, 1), dtype=np.float32)
        singular_values = np.array([np.sqrt(matrix.multiply(matrix).sum())], dtype=np.float32)
    else:
        svd = TruncatedSVD(n_components=dims, algorithm="randomized", n_iter=7, random_state=seed)
        # a tiny space (one document, every term once) has zero variance: its explained_variance_ratio_,
        # which is not used here, divides by zero
        with np.errstate(divide="ignore", invalid="ignore"):
            svd.fit(matrix)
        components, singular_values = svd.components_, svd.singular_values_
    return LsiModel(analyzer=analyzer, vocabulary=vocabulary, idf=vectorizer.idf_.astype(np.float64),
                    components=components.astype(np.float32), singular_values=singular_values.astype(np.float32))


@dataclass
class Space:
    """A loaded target space."""

    path: Path
    name: str
    space_id: str
    model: LsiModel
    vectors: np.ndarray
    ids: pd.Series  # row -> track_id
    missing: pd.DataFrame
    params: dict

    def unknown_ids(self, track_ids: Sequence[str]) -> list[str]:
        """The ids of ``track_ids`` this space has never seen: neither a vector nor a row in ``missing.csv``."""
        known = set(self.ids) | set(self.missing["track_id"])
        return [t for t in track_ids if t not in known]

    def row_of(self) -> dict[str, int]:
        """track_id -> row of :attr:`vectors`."""
        return {t: i for i, t in enumerate(self.ids)}


def build_space(
    frame: pd.DataFrame, train: np.ndarray, analyzer: Analyzer, *, out_dir: Path, name: str, dims: int,
    params: dict, fit_unique: bool = False, min_df: int | float = 1, max_df: float = 1.0,
    max_features: int | None = None, seed: int = 0, flags: tuple[str, str] = ("min_df", "max_df"),
) -> Path:
    """Fit a space on the training rows of ``frame``, project every row, write the folder.

    Parameters
    ----------
    frame : pandas.DataFrame
        Manifest rows (every track gets a vector or a row in ``missing.csv``).
    train : np.ndarray [shape=(n,)], bool
        Rows the TF-IDF and SVD are fitted on.
    fit_unique : bool
        Fit on distinct training documents (texts shared by an album count once).
    flags : (str, str)
        The options that set ``min_df`` and ``max_df``, named in messages (:func:`fit_lsi`).
    """
    documents, missing_rows = analyzer.documents(frame)
    has_data = np.ones(len(frame), dtype=bool)
    has_data[list(missing_rows)] = False
    fit_rows = np.flatnonzero(train & has_data)
    fit_docs = [documents[i] for i in fit_rows]
    if fit_unique:
        fit_docs = list(dict.fromkeys(fit_docs))
    if not fit_docs:
        raise UsageError(f"{name}: no training track has data for this space")
    model = fit_lsi(fit_docs, analyzer, dims=dims, min_df=min_df, max_df=max_df, max_features=max_features,
                    seed=seed, name=name, flags=flags,
                    unit="distinct training texts" if fit_unique else "training tracks")
    ids = frame["track_id"].to_numpy(dtype=object)
    missing = {ids[row]: reason for row, reason in missing_rows.items()}
    rows = np.flatnonzero(has_data)
    return write_space(out_dir, name, model, ids[rows], [documents[i] for i in rows], missing,
                       {**params, "n_train_documents": len(fit_docs)})


def write_space(
    out_dir: Path, name: str, model: LsiModel, track_ids: Sequence[str], documents: Sequence[object],
    missing: dict[str, str], params: dict,
) -> Path:
    """Project every document, write the space folder, return it.

    Documents without any vocabulary term are listed in ``missing.csv`` and get no vector.
    """
    folder = ensure_dir(Path(out_dir) / name)
    vectors, has_terms = model.project(documents)
    ids = np.asarray(track_ids, dtype=object)
    missing = dict(missing)
    for track_id in ids[~has_terms]:
        missing[track_id] = "no term of the fitted vocabulary"
    with atomic_path(folder / "svd.npz") as tmp:
        with tmp.open("wb") as handle:
            np.savez(handle, components=model.components, singular_values=model.singular_values)
    with atomic_path(folder / "vectors.npy") as tmp:
        with tmp.open("wb") as handle:
            np.save(handle, vectors[has_terms])
    write_csv(pd.DataFrame({"row": np.arange(int(has_terms.sum())), "track_id": ids[has_terms]}), folder / "ids.csv")
    write_csv(pd.DataFrame(sorted(missing.items()), columns=["track_id", "reason"]), folder / "missing.csv")
    description = {
        "format_version": FORMAT_VERSION, "name": name, "dims": model.dims,
        "analyzer": model.analyzer.to_dict(), "params": params,
        "vocabulary": model.vocabulary, "idf": model.idf.tolist(),
    }
    description["space_id"] = _space_id(description, folder / "svd.npz")
    with atomic_path(folder / "model.json") as tmp:
        tmp.write_text(json.dumps(description, ensure_ascii=False))
    return folder


def _space_id(description: dict, svd_path: Path) -> str:
    digest = hashlib.sha256(json.dumps({k: v for k, v in description.items() if k != "space_id"},
                                       sort_keys=True, ensure_ascii=False).encode())
    digest.update(svd_path.read_bytes())
    return digest.hexdigest()


def load_space(path: str | Path) -> Space:
    """Load a space folder and check that its files belong together.

    Raises
    ------
    InputError
        A file is missing or unreadable, or the files do not match each other.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"{folder}: space folder not found")
    absent = [f for f in FILES if not (folder / f).is_file()]
    if absent:
        raise InputError(f"{folder}: missing {', '.join(absent)} (not a complete space folder)")
    try:
        description = json.loads((folder / "model.json").read_text())
        with np.load(folder / "svd.npz", allow_pickle=False) as svd:
            components, singular_values = svd["components"], svd["singular_values"]
        vectors = np.load(folder / "vectors.npy", mmap_mode="r", allow_pickle=False)
        ids = pd.read_csv(folder / "ids.csv", dtype={"track_id": str}, keep_default_na=False)
        missing = pd.read_csv(folder / "missing.csv", dtype=str, keep_default_na=False)
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{folder}: unreadable space file ({exc})") from exc
    if _space_id(description, folder / "svd.npz") != description.get("space_id"):
        raise InputError(f"{folder}: model.json and svd.npz do not match (space_id differs)")
    n_terms = len(description["vocabulary"])
    if components.shape != (description["dims"], n_terms) or len(description["idf"]) != n_terms:
        raise InputError(f"{folder}: svd.npz shape {components.shape} does not match "
                         f"{description['dims']} dims x {n_terms} terms")
    if vectors.ndim != 2 or vectors.shape != (len(ids), description["dims"]):
        raise InputError(f"{folder}: vectors.npy shape {vectors.shape} does not match ids.csv "
                         f"({len(ids)} rows) and {description['dims']} dims")
    model = LsiModel(analyzer=make_analyzer(description["analyzer"]), vocabulary=description["vocabulary"],
                     idf=np.asarray(description["idf"], dtype=np.float64), components=components,
                     singular_values=singular_values)
    return Space(path=folder, name=description["name"], space_id=description["space_id"], model=model,
                 vectors=vectors, ids=ids["track_id"], missing=missing, params=description["params"])
