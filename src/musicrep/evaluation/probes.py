"""Classification probes on frozen embeddings: how much of a tagset a linear or a small non-linear
classifier reads off the vectors.

Protocol (:func:`probe_tagset`)
-------------------------------
- Standardized on train (mean and standard deviation per dimension), fitted on train,
  hyper-parameters chosen on val, scored once on test.
- Kind: a tagset is **single-label** when no track carries more than one of its labels and at
  least :data:`SINGLE_LABEL_COVERAGE` of the train tracks carry one (genres of the demo), **multi-label**
  otherwise. A tagset that most tracks lack (the demo's themes: half the tracks have none) is
  multi-label: leaving every untagged track out would discard half the data, while "no theme
  tagged" is a fair negative.
- Multi-label: one logistic regression per label (``C`` in :data:`LOGISTIC_C`) and one
  multi-output MLP (:data:`MLP_GRID`); a track without any label of the tagset is a negative
  for every label. Validation score: macro ROC-AUC over the labels with a positive and a
  negative in val. Test metrics: macro ROC-AUC and PR-AUC (average precision) over the
  labels with a positive and a negative in test.
- Single-label: a multinomial logistic regression and an MLP with a softmax; tracks without a
  label are left out (counted). Validation score: macro-F1 over the labels present in val
  (accuracy rewards whatever class is most frequent; macro-F1 asks every label to be found).
  Test metrics: accuracy and macro-F1 over the test tracks whose label the probe knows.
- Labels that cannot be scored are listed with the reason, never dropped: ``only in test: never
  in train`` (and the like), ``no negative in train``, ``no positive in test``, ``no negative in
  test``. A label with a single positive in test is scored (the issue's rule: a positive and a
  negative); ``per_label`` shows its count.
- Ties of the validation score go to the first candidate of the grid, which runs from the
  simplest (strongest regularization, logistic before MLP) to the most flexible.

Reading a run (:func:`read_split`, :func:`labels_of`)
-----------------------------------------------------
``RUN/embeddings/<split>/`` holds the vectors, ``RUN/partitions/<split>.csv`` says which tracks
belong to the split and ``RUN/manifest.parquet`` their tags. Vectors with NaN, splits of other
widths, embedded tracks that the partition does not list and tracks the manifest does not know
are refused with one line naming the file; partition tracks without a vector (failed extraction)
are counted.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicrep.data.manifest import tag_column
from musicrep.errors import InputError
from musicrep.inference.classifier import FittedProbe
from musicrep.inference.embed import read_embeddings
from musicrep.tables import read_tidfile

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
MULTI, SINGLE = "multi-label", "single-label"
SINGLE_LABEL_COVERAGE = 0.9
"""Share of tracks that must carry a label for a tagset of at most one label per track to count as single-label."""


def label_kind(rows: Sequence[Sequence[str]], train: Sequence[Sequence[str]] | None = None) -> str:
    """:data:`SINGLE` when no row holds more than one distinct label and enough rows hold one, else :data:`MULTI`.

    ``train``: the rows whose coverage counts (default ``rows``): what the probe learns from decides.

    >>> label_kind([["rock"], ["jazz"], ["rock"]]), label_kind([["love"], [], [], ["war"]])
    ('single-label', 'multi-label')
    """
    if not rows or max(len(set(row)) for row in rows) > 1:
        return MULTI
    sizes = [len(set(row)) for row in (rows if train is None else train)]
    return SINGLE if sizes and sum(sizes) >= SINGLE_LABEL_COVERAGE * len(sizes) else MULTI
LOGISTIC_C = (0.01, 0.1, 1.0, 10.0)
"""Inverse L2 strength of the logistic regressions, strongest regularization first."""
MLP_GRID = tuple({"hidden_layer_sizes": (hidden,), "alpha": alpha} for hidden in (32, 128) for alpha in (1.0, 0.1))
"""One hidden ReLU layer, L2 ``alpha``; L-BFGS (full batch: deterministic and fast at probe sizes)."""
MAX_ITER = 300
"""L-BFGS iterations per fit: bounded, so one tagset takes seconds."""
SMALL = 4_000_000
"""Train matrices up to this many values are fitted with one BLAS thread: threads cost more than they bring on
such small products (two tagsets on 71 x 32 vectors: 2.7 s on one thread, 7-20 s with two threads on 2 busy
cores)."""

__all__ = ["FittedProbe", "ProbeResult", "SplitVectors", "labels_of", "probe_tagset", "read_split",
           "fit_probe", "read_splits", "score_labels", "split_vectors", "validation_score"]


@dataclass
class ProbeResult:
    """The probe of one tagset: test metrics, per-label scores, unscorable labels, the chosen model."""

    tagset: str
    kind: str
    """``"multi-label"`` or ``"single-label"``."""
    metrics: dict[str, float]
    """Multi-label: ``roc_auc``, ``pr_auc`` (macro over scorable labels); single-label: ``accuracy``, ``macro_f1``.
    NaN when nothing could be scored."""
    per_label: pd.DataFrame
    """Columns ``label, n_train, n_val, n_test`` and ``roc_auc, pr_auc`` (multi) or ``f1`` (single); every label
    of the tagset, NaN where it could not be scored."""
    unscorable: list[tuple[str, str]]
    """``(label, reason)``."""
    chosen: dict[str, Any]
    """``{"model": "logistic"|"mlp", "params": {...}, "val_score": float, "val_metric": str}``."""
    probe: FittedProbe
    counts: dict[str, Any] = field(default_factory=dict)
    """Tracks per split, and the tracks left out: without a label (single-label), or whose label the probe does
    not know (single-label test tracks)."""


# ---------------------------------------------------------------------------------------------- probe


def probe_tagset(vectors: dict[str, np.ndarray], labels: dict[str, Sequence[Sequence[str]]], *, tagset: str,
                 seed: int = 0) -> ProbeResult:
    """Fit, choose and score the probes of one tagset (the protocol is in the module docstring).

    Parameters
    ----------
    vectors : dict[str, np.ndarray [shape=(n_split, dim)]]
        Keyed ``"train"``, ``"val"``, ``"test"``.
    labels : dict[str, sequence of sequences of str]
        The labels of each row of ``vectors[split]`` (empty for a track without one).
    tagset : str
        For messages and the result.
    seed : int
        The MLPs' initialization.

    Returns
    -------
    ProbeResult

    Raises
    ------
    InputError
        Names the tagset: a split missing, rows and labels of different lengths, NaN or infinite
        values, splits of different widths, or nothing to learn (no label in train, or a single one
        that every track carries).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> names = ["a", "b"] * 20
    >>> X = {s: rng.normal(size=(40, 4)) + np.array([[3.0 * (n == "a"), 0, 0, 0] for n in names])
    ...      for s in SPLITS}
    >>> result = probe_tagset(X, {s: [[n] for n in names] for s in SPLITS}, tagset="genres")
    >>> result.kind, result.metrics["accuracy"] > 0.9
    ('single-label', True)
    """
    data = _checked(vectors, labels, tagset)
    kind = label_kind([row for split in SPLITS for row in data[split][1]], data["train"][1])
    names = sorted({label for split in SPLITS for row in data[split][1] for label in row})
    counts_of = {split: _label_counts(data[split][1]) for split in SPLITS}
    per_label = pd.DataFrame({"label": names, **{f"n_{s}": [counts_of[s].get(n, 0) for n in names] for s in SPLITS}})
    counts: dict[str, Any] = {"tracks": {s: len(data[s][1]) for s in SPLITS}}
    if kind == SINGLE:
        kept = {s: [i for i, row in enumerate(data[s][1]) if row] for s in SPLITS}
        counts["left_out_without_label"] = {s: len(data[s][1]) - len(kept[s]) for s in SPLITS}
        data = {s: (data[s][0][kept[s]], [data[s][1][i] for i in kept[s]]) for s in SPLITS}
    fitted, unscorable = _fitted_labels(kind, names, counts_of, len(data["train"][1]), tagset)
    x_train, truth_train = data["train"]
    mean, scale = _standardizer(x_train)
    standardized = {s: (data[s][0] - mean) / scale for s in SPLITS}
    y_train = _targets(kind, fitted, truth_train)

    candidates = []
    for model, params in _grid():
        probe = fit_probe(model, params, kind=kind, labels=fitted, x=standardized["train"], y=y_train, mean=mean,
                          scale=scale, seed=seed)
        score = validation_score(kind, fitted, data["val"][1], probe.scores(data["val"][0]))
        candidates.append((score, model, params, probe))
    scored_on_val = [c for c in candidates if np.isfinite(c[0])]
    if scored_on_val:
        val_score, model, params, probe = max(scored_on_val, key=lambda c: c[0])  # ties: the first, the simplest
    else:
        val_score, model, params, probe = candidates[0]
        logger.warning("tagset %s: no label can be scored on val; the simplest probe (%s %s) is kept", tagset,
                       model, params)
    test_metrics, scored, test_unscorable = score_labels(kind, fitted, data["test"][1],
                                                        probe.scores(data["test"][0]), split="test")
    for column in _metric_columns(kind):
        per_label[column] = [scored.get(name, {}).get(column, np.nan) for name in names]
    if kind == SINGLE:
        counts["left_out_unknown_label"] = {"test": sum(row[0] not in set(fitted) for row in data["test"][1])}
    chosen = {"model": model, "params": _plain(params), "val_score": float(val_score),
              "val_metric": "roc_auc" if kind == MULTI else "macro_f1"}
    return ProbeResult(tagset=tagset, kind=kind, metrics=test_metrics, per_label=per_label,
                       unscorable=unscorable + test_unscorable, chosen=chosen, probe=probe, counts=counts)


def _grid() -> list[tuple[str, dict[str, Any]]]:
    return [("logistic", {"C": c}) for c in LOGISTIC_C] + [("mlp", dict(p)) for p in MLP_GRID]


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """JSON-friendly parameters (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def _checked(vectors: dict[str, np.ndarray], labels: dict[str, Sequence[Sequence[str]]], tagset: str
             ) -> dict[str, tuple[np.ndarray, list[list[str]]]]:
    """Vectors as float64 and labels as lists per split, or an InputError naming the tagset."""
    out = {}
    width = None
    for split in SPLITS:
        if split not in vectors or split not in labels:
            raise InputError(f"tagset {tagset}: no {split} split (vectors and labels need train, val and test)")
        x = np.asarray(vectors[split], dtype=np.float64)
        rows = [[str(label) for label in row] for row in labels[split]]
        if x.ndim != 2 or len(x) != len(rows):
            raise InputError(f"tagset {tagset}: {split} has vectors of shape {x.shape} for {len(rows)} label rows")
        if len(x) == 0:
            raise InputError(f"tagset {tagset}: the {split} split has no tracks")
        if not np.isfinite(x).all():
            row = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
            raise InputError(f"tagset {tagset}: {split} row {row} has NaN or infinite values")
        if width is not None and x.shape[1] != width:
            raise InputError(f"tagset {tagset}: {split} vectors have {x.shape[1]} dimensions, train {width}")
        width = x.shape[1]
        out[split] = (x, rows)
    return out


def _label_counts(rows: list[list[str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        for label in set(row):
            counts[label] = counts.get(label, 0) + 1
    return counts


def _fitted_labels(kind: str, names: list[str], counts: dict[str, dict[str, int]], n_train: int, tagset: str
                   ) -> tuple[list[str], list[tuple[str, str]]]:
    """The labels a probe can learn, and the others with their reason."""
    fitted, unscorable = [], []
    for name in names:
        if counts["train"].get(name, 0) == 0:
            where = " and ".join(s for s in ("val", "test") if counts[s].get(name, 0))
            unscorable.append((name, f"only in {where}: never in train"))
        elif kind == MULTI and counts["train"][name] == n_train:
            unscorable.append((name, "no negative in train: every train track has it"))
        else:
            fitted.append(name)
    if not fitted or (kind == SINGLE and len(fitted) < 2):
        found = ", ".join(f"{n} ({counts['train'].get(n, 0)})" for n in names) or "none"
        raise InputError(f"tagset {tagset}: nothing to learn: train tracks carry "
                         f"{'too few labels' if fitted else 'no usable label'} (labels in train: {found})")
    return fitted, unscorable


def _standardizer(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Train mean and standard deviation per dimension (1 where a dimension is constant, as scikit-learn)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0)] = 1.0
    return mean, scale


def _targets(kind: str, fitted: list[str], truth: list[list[str]]) -> np.ndarray:
    """Multi-hot ``(n, n_labels)`` (multi-label) or class indices ``(n,)`` (single-label; -1 for unknown)."""
    column = {name: i for i, name in enumerate(fitted)}
    if kind == SINGLE:
        return np.array([column.get(row[0], -1) for row in truth], dtype=np.int64)
    y = np.zeros((len(truth), len(fitted)), dtype=np.int64)
    for i, row in enumerate(truth):
        for label in row:
            if label in column:
                y[i, column[label]] = 1
    return y


def fit_probe(model: str, params: dict[str, Any], *, kind: str, labels: Sequence[str], x: np.ndarray,
              y: np.ndarray, mean: np.ndarray, scale: np.ndarray, seed: int = 0) -> FittedProbe:
    """Fit one candidate of the grid on standardized train vectors and return it as plain arrays.

    Parameters
    ----------
    model : {"logistic", "mlp"}
    params : dict
        ``{"C": ...}`` (logistic) or ``{"hidden_layer_sizes": (...), "alpha": ...}`` (mlp).
    kind : {"multi-label", "single-label"}
    labels : sequence of str
        The label of each output.
    x : np.ndarray [shape=(n, dim)]
        ``(vectors - mean) / scale``.
    y : np.ndarray
        Multi-hot ``(n, n_labels)`` (multi-label; every column with a positive and a negative) or class
        indices ``(n,)`` into ``labels`` (single-label; at least two classes).
    mean, scale : np.ndarray [shape=(dim,)]
        The standardizer, kept in the probe so that :meth:`FittedProbe.scores` reads raw vectors.

    Returns
    -------
    FittedProbe
        Its ``scores`` equal the estimator's ``predict_proba`` (single-label: over ``labels``; multi-label:
        the positive class of each label).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(limits=1 if x.size <= SMALL else None):
        warnings.simplefilter("ignore", ConvergenceWarning)  # iterations are bounded on purpose
        if model == "logistic" and kind == MULTI:
            estimators = [LogisticRegression(C=params["C"], max_iter=MAX_ITER).fit(x, y[:, j])
                          for j in range(y.shape[1])]
            weights = [np.concatenate([e.coef_.T for e in estimators], axis=1)]
            biases = [np.concatenate([e.intercept_ for e in estimators])]
        elif model == "logistic":
            estimator = LogisticRegression(C=params["C"], max_iter=MAX_ITER).fit(x, y)
            weights, biases = [estimator.coef_.T.copy()], [estimator.intercept_.copy()]
        else:
            estimator = MLPClassifier(solver="lbfgs", max_iter=MAX_ITER, random_state=seed, **params)
            estimator.fit(x, y[:, 0] if (kind == MULTI and y.shape[1] == 1) else y)
            weights = [w.copy() for w in estimator.coefs_]
            biases = [b.copy() for b in estimator.intercepts_]
    if kind == SINGLE and weights[-1].shape[1] == 1:
        # scikit-learn's binary case is one logit for class 1: softmax([0, z]) = [1 - sigmoid(z), sigmoid(z)]
        weights[-1] = np.concatenate([np.zeros_like(weights[-1]), weights[-1]], axis=1)
        biases[-1] = np.concatenate([np.zeros_like(biases[-1]), biases[-1]])
    return FittedProbe(labels=list(labels), kind=kind, mean=mean, scale=scale, weights=weights, biases=biases,
                       output="softmax" if kind == SINGLE else "sigmoid", model=model, params=_plain(params))


# ---------------------------------------------------------------------------------------------- scores


def _metric_columns(kind: str) -> tuple[str, ...]:
    return ("roc_auc", "pr_auc") if kind == MULTI else ("f1",)


def score_labels(kind: str, labels: Sequence[str], truth: Sequence[Sequence[str]], scores: np.ndarray, *,
                 split: str = "test") -> tuple[dict[str, float], dict[str, dict[str, float]], list[tuple[str, str]]]:
    """Score a classifier's outputs against the true labels of one split.

    Parameters
    ----------
    kind : {"multi-label", "single-label"}
    labels : sequence of str
        The classifier's labels, one per column of ``scores``.
    truth : sequence of sequences of str
        True labels per row (single-label: rows without a label, or whose label is not in ``labels``,
        are left out of accuracy and macro-F1).
    scores : np.ndarray [shape=(n, len(labels))]
    split : str
        For the reasons (``"no positive in test"``).

    Returns
    -------
    metrics : dict[str, float]
        ``roc_auc`` and ``pr_auc`` (multi-label; macro over the labels with a positive and a negative),
        or ``accuracy``, ``macro_f1`` and one-vs-rest ``roc_auc`` (single-label; macro over the labels
        with a positive, ROC-AUC only where another label is present too). NaN when no label can be scored.
    per_label : dict[str, dict[str, float]]
        Label -> ``{"roc_auc", "pr_auc"}`` or ``{"f1", "roc_auc"}``, for the scored labels.
    unscorable : list[tuple[str, str]]
        The other labels, with the reason.
    """
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

    scores = np.asarray(scores, dtype=np.float64)
    labels = list(labels)
    if scores.shape != (len(truth), len(labels)):
        raise InputError(f"{split}: scores of shape {scores.shape} for {len(truth)} tracks and {len(labels)} labels")
    sets = [set(row) for row in truth]
    per_label: dict[str, dict[str, float]] = {}
    unscorable: list[tuple[str, str]] = []
    if kind == MULTI:
        for j, name in enumerate(labels):
            y = np.array([name in row for row in sets], dtype=np.int64)
            if y.sum() == 0:
                unscorable.append((name, f"no positive in {split}"))
            elif y.sum() == len(y):
                unscorable.append((name, f"no negative in {split}"))
            else:
                per_label[name] = {"roc_auc": float(roc_auc_score(y, scores[:, j])),
                                   "pr_auc": float(average_precision_score(y, scores[:, j]))}
        metrics = {m: _mean([v[m] for v in per_label.values()]) for m in ("roc_auc", "pr_auc")}
        return metrics, per_label, unscorable
    column = {name: j for j, name in enumerate(labels)}
    rows = [i for i, row in enumerate(truth) if len(row) == 1 and row[0] in column]
    y_true = np.array([column[truth[i][0]] for i in rows], dtype=np.int64)
    y_pred = scores[rows].argmax(axis=1) if rows else np.zeros(0, dtype=np.int64)
    present = sorted(set(y_true.tolist()))
    for j, name in enumerate(labels):
        if j not in present:
            unscorable.append((name, f"no positive in {split}"))
    if present:
        f1s = f1_score(y_true, y_pred, labels=present, average=None, zero_division=0)
        per_label = {labels[j]: {"f1": float(f)} for j, f in zip(present, f1s, strict=True)}
        for j in present:  # one-vs-rest ROC-AUC too: comparable with multi-label tagsets, and blind to thresholds
            if len(present) > 1:
                per_label[labels[j]]["roc_auc"] = float(roc_auc_score(y_true == j, scores[rows, j]))
    metrics = {"accuracy": float((y_true == y_pred).mean()) if rows else float("nan"),
               "macro_f1": _mean([v["f1"] for v in per_label.values()]),
               "roc_auc": _mean([v["roc_auc"] for v in per_label.values() if "roc_auc" in v])}
    return metrics, per_label, unscorable


def validation_score(kind: str, labels: Sequence[str], truth: Sequence[Sequence[str]], scores: np.ndarray) -> float:
    """The number that chooses among candidates on val: macro ROC-AUC (multi-label) or macro-F1 (single-label)."""
    metrics, _, _ = score_labels(kind, labels, truth, scores, split="val")
    return metrics["roc_auc" if kind == MULTI else "macro_f1"]


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


# -------------------------------------------------------------------------------------- reading a run


@dataclass
class SplitVectors:
    """The vectors of one split's tracks, in the embeddings folder's order."""

    split: str
    ids: list[str]
    vectors: np.ndarray
    """float32 (n, dim), all finite."""
    not_embedded: list[str]
    """Tracks the partition lists that have no vector (failed extraction or embedding), in partition order."""
    source: Path
    """The embeddings folder."""


def read_split(embeddings_dir: str | Path, partition: str | Path, *, split: str | None = None) -> SplitVectors:
    """The vectors of one split from an embeddings folder, checked against its partition file.

    Parameters
    ----------
    embeddings_dir : path-like
        ``vectors.npy`` + ``ids.csv`` (+ ``failed.csv``, ``embed_config.json``), as ``musicrep embed`` writes.
    partition : path-like
        The split's tidfile (``RUN/partitions/<split>.csv``).
    split : str, optional
        Its name (default: the partition file's stem).

    Raises
    ------
    InputError
        Names the file: not an embeddings folder, NaN or infinite values (and the track), an embedded
        track the partition does not list (another split's or another run's embeddings), a track
        with two vectors, or no vector at all for the split's tracks.
    """
    folder = Path(embeddings_dir)
    vectors, ids, _ = read_embeddings(folder)
    return split_vectors(vectors, ids.tolist(), partition, source=folder, split=split)


def split_vectors(vectors: np.ndarray, ids: Sequence[str], partition: str | Path, *, source: str | Path,
                  split: str | None = None) -> SplitVectors:
    """Check vectors of a split's tracks (from a folder or just embedded) against the split's partition file.

    ``source`` names where the vectors come from in messages (an embeddings folder or a feature store).
    Raises :class:`InputError` as :func:`read_split` says.
    """
    source, partition = Path(source), Path(partition)
    listed = read_tidfile(partition).track_ids
    members = set(listed)
    ids = list(ids)
    seen: set[str] = set()
    for track_id in ids:
        if track_id in seen:
            raise InputError(f"{source}: track {track_id!r} has two vectors")
        seen.add(track_id)
    stray = [t for t in ids if t not in members]
    if stray:
        raise InputError(f"{source}: track {stray[0]!r} is not in {partition}"
                         + (f" ({len(stray) - 1} more)" if len(stray) > 1 else "")
                         + " (embeddings of another split or run?)")
    if not ids:
        raise InputError(f"{source}: no vectors (none of the {len(listed)} tracks of {partition} was embedded)")
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or len(array) != len(ids):
        raise InputError(f"{source}: vectors of shape {array.shape} for {len(ids)} tracks")
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise InputError(f"{source}: NaN or infinite values in row {int(bad[0])} (track {ids[int(bad[0])]!r})"
                         + (f" and {len(bad) - 1} more rows" if len(bad) > 1 else ""))
    return SplitVectors(split=split or partition.stem, ids=ids, vectors=array,
                        not_embedded=[t for t in listed if t not in seen], source=source)


def read_splits(embeddings_root: str | Path, partitions_dir: str | Path, *, splits: Sequence[str] = SPLITS
                ) -> dict[str, SplitVectors]:
    """:func:`read_split` of ``embeddings_root/<split>`` against ``partitions_dir/<split>.csv`` for each split;
    splits of different widths are refused (naming the folder)."""
    out = {split: read_split(Path(embeddings_root) / split, Path(partitions_dir) / f"{split}.csv", split=split)
           for split in splits}
    check_widths(out)
    return out


def check_widths(splits: dict[str, SplitVectors], expected: int | None = None) -> None:
    """Raise :class:`InputError` naming the folder unless every split has ``expected`` (default: the first
    split's) width."""
    items = list(splits.values())
    if not items:
        return
    expected = items[0].vectors.shape[1] if expected is None else expected
    for item in items:
        if item.vectors.shape[1] != expected:
            raise InputError(f"{item.source}: vectors of {item.vectors.shape[1]} dimensions, expected {expected}")


def labels_of(manifest: pd.DataFrame, tagset: str, ids: Sequence[str], *, source: str | Path = "the manifest"
              ) -> list[list[str]]:
    """The labels of a tagset for each of ``ids``, in order.

    Parameters
    ----------
    manifest : pandas.DataFrame
        A manifest frame (``track_id`` and ``tags_<tagset>`` columns), e.g. ``read_manifest(path).frame``.
    tagset : str
    ids : sequence of str
    source : str or Path
        The manifest's file, for messages.

    Returns
    -------
    list[list[str]]
        One list per id (empty when the track has no label of the tagset; duplicates removed, order kept).

    Raises
    ------
    InputError
        The tagset is not in the manifest (the known ones listed), or an id is not (names the first).
    """
    column = tag_column(tagset)
    if column not in manifest.columns:
        known = sorted(c[len("tags_"):] for c in manifest.columns if c.startswith("tags_"))
        raise InputError(f"{source}: no tagset {tagset!r} (tagsets: {', '.join(known) or 'none'})")
    tags = dict(zip(manifest["track_id"].tolist(), manifest[column].tolist(), strict=True))
    missing = [t for t in ids if t not in tags]
    if missing:
        raise InputError(f"{source}: track {missing[0]!r} is not in the manifest"
                         + (f" ({len(missing) - 1} more)" if len(missing) > 1 else ""))
    return [list(dict.fromkeys(str(label) for label in tags[t])) for t in ids]
