"""Classification models: an exported encoder plus one small classifier per tagset on its embeddings.

A classifier folder is a model folder (:mod:`musicrep.inference.hub`) with two more files::

    classifier.safetensors   per tagset: the train standardizer and the layers of its probe
                             (``<tagset>.mean``, ``<tagset>.scale``, ``<tagset>.layers.<i>.weight`` (in, out),
                             ``<tagset>.layers.<i>.bias``), float64
    classifier.json          per tagset: kind, label names, per-label thresholds, output function, how the
                             classifier was chosen and scored; ``encoder_model_id`` (the encoder's model_id) and
                             ``classifier_id`` (SHA-256 of classifier.safetensors and of every other field)

``musicrep.load(folder)`` returns a :class:`Classifier` (an :class:`~musicrep.inference.hub.Encoder` that also
classifies) when both files are there. Nothing is pickled: the forward pass of a probe is numpy
(standardize, ReLU hidden layers, then a sigmoid per label or a softmax over labels), the same for a
scikit-learn logistic regression, a scikit-learn MLP and an encoder's own classification head.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors

from musicrep import __version__
from musicrep.errors import InputError, UsageError
from musicrep.fileio import atomic_path, write_json
from musicrep.inference.hub import Encoder, identity

logger = logging.getLogger(__name__)

CLASSIFIER_WEIGHTS, CLASSIFIER_CONFIG = "classifier.safetensors", "classifier.json"
CLASSIFIER_FILES = (CLASSIFIER_WEIGHTS, CLASSIFIER_CONFIG)
FORMAT_VERSION = 1
KINDS = ("multi-label", "single-label")
OUTPUTS = ("sigmoid", "softmax")
DEFAULT_THRESHOLD = 0.5
"""Threshold of a label that validation cannot choose one for (no positive in val)."""


# ---------------------------------------------------------------------------------------------- probe


@dataclass
class FittedProbe:
    """A fitted classifier on embeddings, as plain arrays: standardizer + layers + label names.

    ``scores(X) = output(relu(... relu(((X - mean) / scale) @ W0 + b0) ...) @ Wn + bn)``.

    Attributes
    ----------
    labels : list[str]
        One output column per label.
    kind : {"multi-label", "single-label"}
    mean, scale : np.ndarray [shape=(embedding_dim,)]
        The train standardizer (``scale`` 1 where a dimension is constant).
    weights : list[np.ndarray]
        ``(in, out)`` per layer; hidden layers are followed by ReLU.
    biases : list[np.ndarray]
        ``(out,)`` per layer.
    output : {"sigmoid", "softmax"}
        A probability per label (multi-label) or a distribution over labels (single-label).
    model : str
        What was fitted: ``"logistic"``, ``"mlp"`` or ``"head"`` (an encoder's classification head).
    params : dict
        Its hyper-parameters.
    """

    labels: list[str]
    kind: str
    mean: np.ndarray
    scale: np.ndarray
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    output: str
    model: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def input_dim(self) -> int:
        return int(self.mean.shape[0])

    def check(self, where: str) -> None:
        """Raise :class:`InputError` (naming ``where``) unless the arrays chain into ``len(labels)`` outputs."""
        if self.kind not in KINDS:
            raise InputError(f"{where}: kind must be one of {', '.join(KINDS)} (got {self.kind!r})")
        if self.output not in OUTPUTS:
            raise InputError(f"{where}: output must be one of {', '.join(OUTPUTS)} (got {self.output!r})")
        if not self.labels or len(set(self.labels)) != len(self.labels):
            raise InputError(f"{where}: labels must be distinct and at least one")
        if not self.weights or len(self.weights) != len(self.biases):
            raise InputError(f"{where}: {len(self.weights)} weight and {len(self.biases)} bias arrays")
        if self.mean.ndim != 1 or self.scale.shape != self.mean.shape:
            raise InputError(f"{where}: mean {self.mean.shape} and scale {self.scale.shape} must be equal vectors")
        width = self.input_dim
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            if weight.ndim != 2 or weight.shape[0] != width or bias.shape != (weight.shape[1],):
                raise InputError(f"{where}: layer {i} has weight {weight.shape} and bias {bias.shape} after a "
                                 f"layer of width {width}")
            width = weight.shape[1]
        if width != len(self.labels):
            raise InputError(f"{where}: the last layer gives {width} outputs for {len(self.labels)} labels")
        arrays = [self.mean, self.scale, *self.weights, *self.biases]
        if not all(np.isfinite(a).all() for a in arrays) or not (self.scale > 0).all():
            raise InputError(f"{where}: NaN, infinite or non-positive scale values")

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """Probabilities of embeddings.

        Parameters
        ----------
        vectors : np.ndarray [shape=(n, embedding_dim) or (embedding_dim,)]

        Returns
        -------
        np.ndarray [shape=(n, n_labels) or (n_labels,)], float64
            Sigmoid per label (multi-label: independent) or softmax over labels (rows sum to 1).
        """
        x = np.asarray(vectors, dtype=np.float64)
        single = x.ndim == 1
        x = np.atleast_2d(x)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise InputError(f"embeddings of shape {np.shape(vectors)}: this classifier reads {self.input_dim} "
                             "dimensions")
        x = (x - self.mean) / self.scale
        for weight, bias in zip(self.weights[:-1], self.biases[:-1], strict=True):
            x = np.maximum(x @ weight + bias, 0.0)
        logits = x @ self.weights[-1] + self.biases[-1]
        if self.output == "softmax":
            logits = logits - logits.max(axis=1, keepdims=True)
            out = np.exp(logits)
            out /= out.sum(axis=1, keepdims=True)
        else:
            out = _sigmoid(logits)
        return out[0] if single else out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function, without overflow warnings for large negative logits."""
    out = np.empty_like(z)
    positive = z >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-z[positive]))
    e = np.exp(z[~positive])
    out[~positive] = e / (1.0 + e)
    return out


# ------------------------------------------------------------------------------------------ the files


@dataclass
class TagsetClassifier:
    """The classifier of one tagset in a classifier folder: the probe, its thresholds and how it was chosen."""

    tagset: str
    probe: FittedProbe
    thresholds: np.ndarray
    """(n_labels,) float64: a label is predicted when its score is at least its threshold."""
    info: dict[str, Any] = field(default_factory=dict)
    """Selection, validation and test scores, unscorable labels (classifier.json's record, for the card)."""

    @property
    def labels(self) -> list[str]:
        return self.probe.labels


def write_classifier_files(folder: str | os.PathLike[str], classifiers: Sequence[TagsetClassifier], *,
                           encoder_model_id: str) -> str:
    """Write ``classifier.safetensors`` then ``classifier.json`` (atomically; the JSON last, with the identity,
    so a folder killed half-way is refused by :func:`read_classifier`, never loaded wrong).

    Returns
    -------
    str
        The ``classifier_id``.
    """
    folder = Path(folder)
    if not classifiers or len({item.tagset for item in classifiers}) != len(classifiers):
        raise UsageError("a classifier folder needs one classifier per tagset, at least one")
    tensors: dict[str, np.ndarray] = {}
    tagsets: dict[str, Any] = {}
    for item in classifiers:
        probe = item.probe
        probe.check(f"classifier of {item.tagset}")
        if item.thresholds.shape != (len(probe.labels),):
            raise UsageError(f"{item.tagset}: {item.thresholds.shape} thresholds for {len(probe.labels)} labels")
        arrays = [probe.mean, probe.scale] + [a for pair in zip(probe.weights, probe.biases, strict=True) for a in pair]
        tensors.update(zip(_tensor_names(item), arrays, strict=True))
        tagsets[item.tagset] = {
            "kind": probe.kind, "labels": list(probe.labels), "thresholds": [float(t) for t in item.thresholds],
            "output": probe.output, "n_layers": len(probe.weights), "model": probe.model, "params": probe.params,
            **{k: v for k, v in item.info.items() if k not in _TAGSET_KEYS},
        }
    # one metadata key: safetensors writes metadata in hash order, and equal probes should give equal bytes (and id)
    data = save_safetensors({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in tensors.items()},
                            metadata={"format": "np"})
    description = {"format_version": FORMAT_VERSION, "musicrep_version": __version__,
                   "encoder_model_id": encoder_model_id, "tagsets": tagsets, "order": list(tagsets)}
    description = _strict_json(json.loads(json.dumps(description, default=str)))  # as it will read back
    classifier_id = identity(data, description)
    with atomic_path(folder / CLASSIFIER_WEIGHTS) as tmp:
        tmp.write_bytes(data)
    write_json({**description, "classifier_id": classifier_id}, folder / CLASSIFIER_CONFIG)
    return classifier_id


_TAGSET_KEYS = ("kind", "labels", "thresholds", "output", "n_layers", "model", "params")


def _strict_json(value: Any) -> Any:
    """``value`` with NaN and infinities as null (strict JSON, which other tools read)."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict_json(v) for v in value]
    return value


def has_classifier(folder: str | os.PathLike[str]) -> bool:
    """True when ``folder`` holds either classifier file (then both must be there and agree)."""
    return any((Path(folder) / name).exists() for name in CLASSIFIER_FILES)


def read_classifier(folder: str | os.PathLike[str], *, encoder_model_id: str
                    ) -> tuple[dict[str, TagsetClassifier], str]:
    """The tagset classifiers of a classifier folder, checked.

    Raises
    ------
    InputError
        A file is missing or malformed, the files were edited or replaced after export
        (``classifier_id``), they were fitted on another encoder (``encoder_model_id``), or their
        arrays do not chain into the labels; names the file.
    """
    folder = Path(folder)
    config_path, weights_path = folder / CLASSIFIER_CONFIG, folder / CLASSIFIER_WEIGHTS
    for path in (config_path, weights_path):
        if not path.is_file():
            raise InputError(f"{path}: not found (a classifier folder holds {' and '.join(CLASSIFIER_FILES)})")
    try:
        description = json.loads(config_path.read_text(encoding="utf-8"))
        data = weights_path.read_bytes()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{config_path}: cannot read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{config_path}: malformed JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    if not isinstance(description, dict) or not isinstance(description.get("tagsets"), dict):
        raise InputError(f"{config_path}: expected a JSON object with tagsets")
    if description.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{config_path}: format_version {description.get('format_version')!r}, this musicrep "
                         f"({__version__}) reads format_version {FORMAT_VERSION}")
    expected = identity(data, {k: v for k, v in description.items() if k != "classifier_id"})
    if description.get("classifier_id") != expected:
        raise InputError(f"{folder}: {CLASSIFIER_WEIGHTS} and {CLASSIFIER_CONFIG} are not those exported together "
                         f"(their identity {expected[:12]}… is not the classifier_id "
                         f"{str(description.get('classifier_id'))[:12]}…: edited, replaced or half-written?)")
    if description.get("encoder_model_id") != encoder_model_id:
        raise InputError(f"{config_path}: fitted on the encoder {str(description.get('encoder_model_id'))[:12]}…, "
                         f"this folder's encoder is {encoder_model_id[:12]}… (classifier files copied next to "
                         "another model?)")
    try:
        tensors = load_safetensors(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise InputError(f"{weights_path}: not a safetensors file ({exc})") from exc
    order = description.get("order")
    if not isinstance(order, list) or sorted(map(str, order)) != sorted(description["tagsets"]):
        raise InputError(f"{config_path}: order must list the tagsets")
    classifiers = {}
    for tagset in order:  # the order they were asked for (the JSON object's keys are sorted)
        record = description["tagsets"][tagset]
        if not isinstance(record, dict):
            raise InputError(f"{config_path}: tagset {tagset} must be an object")
        classifiers[tagset] = _tagset_classifier(tagset, record, tensors, where=f"{config_path}, tagset {tagset}")
    unused = sorted(set(tensors) - {name for item in classifiers.values() for name in _tensor_names(item)})
    if unused:
        raise InputError(f"{weights_path}: unexpected tensor {unused[0]!r}")
    return classifiers, description["classifier_id"]


def _tensor_names(item: TagsetClassifier) -> list[str]:
    return [f"{item.tagset}.{name}" for name in _layer_names(len(item.probe.weights))]


def _layer_names(n_layers: int) -> list[str]:
    return ["mean", "scale"] + [f"layers.{i}.{p}" for i in range(n_layers) for p in ("weight", "bias")]


def _tagset_classifier(tagset: str, record: Any, tensors: dict[str, np.ndarray], *, where: str
                       ) -> TagsetClassifier:
    try:
        n_layers = int(record["n_layers"])
        absent = [name for name in _layer_names(n_layers) if f"{tagset}.{name}" not in tensors]
        if absent:
            raise InputError(f"{where}: {CLASSIFIER_WEIGHTS} lacks {tagset}.{absent[0]}")
        probe = FittedProbe(
            labels=[str(label) for label in record["labels"]], kind=record["kind"],
            mean=tensors[f"{tagset}.mean"], scale=tensors[f"{tagset}.scale"],
            weights=[tensors[f"{tagset}.layers.{i}.weight"] for i in range(n_layers)],
            biases=[tensors[f"{tagset}.layers.{i}.bias"] for i in range(n_layers)],
            output=record["output"], model=str(record["model"]), params=dict(record.get("params") or {}))
        thresholds = np.asarray(record["thresholds"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{where}: missing or malformed field ({exc})") from exc
    probe.check(where)
    if thresholds.shape != (len(probe.labels),) or not np.isfinite(thresholds).all():
        raise InputError(f"{where}: {thresholds.shape[0] if thresholds.ndim else 0} finite thresholds expected for "
                         f"{len(probe.labels)} labels")
    info = {k: v for k, v in record.items() if k not in _TAGSET_KEYS}
    return TagsetClassifier(tagset=tagset, probe=probe, thresholds=thresholds, info=info)


# ----------------------------------------------------------------------------------------- Classifier


@dataclass
class LabelScore:
    """One label of a tagset for one input: its score and whether it reaches the label's threshold."""

    label: str
    score: float
    threshold: float
    above_threshold: bool

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": self.score, "threshold": self.threshold,
                "above_threshold": self.above_threshold}


@dataclass(repr=False, eq=False)
class Classifier(Encoder):
    """An :class:`~musicrep.inference.hub.Encoder` with a classifier per tagset on its embeddings.

    Everything an Encoder does (``embed``, ``embed_store``, ...) works unchanged, with the same
    ``model_id``; :meth:`classify` and :meth:`scores` add the labels.

    Attributes
    ----------
    classifiers : dict[str, TagsetClassifier]
        Tagset -> its probe, thresholds and record.
    classifier_id : str

    Examples
    --------
    >>> import musicrep  # doctest: +SKIP
    >>> classifier = musicrep.load("runs/demo/classifier")  # doctest: +SKIP
    >>> classifier.classify("song.mp3", top=2)["genres"][0].label  # doctest: +SKIP
    'rock'
    """

    classifiers: dict[str, TagsetClassifier]
    classifier_id: str

    def __repr__(self) -> str:
        return (f"Classifier({str(self.path)!r}, tagsets {', '.join(self.classifiers)}, {self.embedding_dim} dims, "
                f"model_id {self.model_id[:12]}, classifier_id {self.classifier_id[:12]}, device {self.device})")

    @property
    def tagsets(self) -> list[str]:
        return list(self.classifiers)

    @property
    def labels(self) -> dict[str, list[str]]:
        """Tagset -> label names, in score order."""
        return {tagset: item.labels for tagset, item in self.classifiers.items()}

    @property
    def thresholds(self) -> dict[str, np.ndarray]:
        """Tagset -> per-label thresholds (chosen on validation)."""
        return {tagset: item.thresholds for tagset, item in self.classifiers.items()}

    def scores_of_embeddings(self, vectors: np.ndarray) -> dict[str, np.ndarray]:
        """Tagset -> probabilities ``(n, n_labels)`` (or ``(n_labels,)`` for one vector) of embeddings."""
        return {tagset: item.probe.scores(vectors) for tagset, item in self.classifiers.items()}

    def scores(self, audio: str | os.PathLike[str] | np.ndarray, sr: int | None = None, *,
               segment: str = "model") -> dict[str, np.ndarray]:
        """Tagset -> ``(n_labels,)`` probabilities of a file or an array (see :meth:`Encoder.embed`)."""
        return self.scores_of_embeddings(self.embed(audio, sr, segment=segment))

    def classify(self, audio: str | os.PathLike[str] | np.ndarray, sr: int | None = None, *, top: int = 3,
                 segment: str = "model") -> dict[str, list[LabelScore]]:
        """The ``top`` labels of each tagset for a file or an array, best first.

        Parameters
        ----------
        audio : path-like or np.ndarray [shape=(n,) or (channels, n)]
            A file, or float samples (``sr`` then required).
        top : int
            Labels per tagset (all of them when the tagset has fewer).

        Returns
        -------
        dict[str, list[LabelScore]]
        """
        check_top(top)
        return self.top_labels(self.scores(audio, sr, segment=segment), top=top)

    def top_labels(self, scores: dict[str, np.ndarray], *, top: int = 3) -> dict[str, list[LabelScore]]:
        """The ``top`` labels of one input's scores per tagset (ties: label order)."""
        check_top(top)
        out = {}
        for tagset, values in scores.items():
            item = self.classifiers[tagset]
            order = np.argsort(-np.asarray(values), kind="stable")[:top]
            out[tagset] = [LabelScore(item.labels[i], float(values[i]), float(item.thresholds[i]),
                                      bool(values[i] >= item.thresholds[i])) for i in order]
        return out


def check_top(top: int) -> None:
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise UsageError(f"top must be a positive number of labels (got {top!r})")


def attach_classifier(encoder: Encoder) -> Classifier:
    """The :class:`Classifier` of an encoder loaded from a classifier folder (reads and checks its files)."""
    classifiers, classifier_id = read_classifier(encoder.path, encoder_model_id=encoder.model_id)
    for tagset, item in classifiers.items():
        if item.probe.input_dim != encoder.embedding_dim:
            raise InputError(f"{encoder.path / CLASSIFIER_CONFIG}: tagset {tagset} reads {item.probe.input_dim} "
                             f"dimensions, the encoder gives {encoder.embedding_dim}")
    base = {f.name: getattr(encoder, f.name) for f in fields(Encoder)}
    return Classifier(**base, classifiers=classifiers, classifier_id=classifier_id)


# ------------------------------------------------------------------------------------------ many files


@dataclass
class FileLabels:
    """The top labels of one file."""

    path: Path
    labels: dict[str, list[LabelScore]]

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path),
                "labels": {tagset: [s.to_dict() for s in scores] for tagset, scores in self.labels.items()}}


@dataclass
class ClassifyReport:
    """What :func:`classify_files` found: results in input order and the files that failed, with reasons."""

    results: list[FileLabels]
    failed: list[tuple[Path, str]]

    def to_dict(self, classifier: Classifier) -> dict[str, Any]:
        return {"model": str(classifier.path), "model_id": classifier.model_id,
                "classifier_id": classifier.classifier_id, "files": [r.to_dict() for r in self.results],
                "failed": [{"path": str(path), "reason": reason} for path, reason in self.failed]}


def classify_files(classifier: Classifier, files: Sequence[str | os.PathLike[str]], *, top: int = 3,
                   segment: str = "model", batch_size: int = 64,
                   on_progress: Callable[[int, int], None] | None = None) -> ClassifyReport:
    """Classify audio files (windows of several files batched); a file that cannot be used is recorded with its
    reason and the others go on. A file listed twice is classified once."""
    from musicrep.inference.embed import embed_files, tracks_from_audio

    check_top(top)
    tracks = tracks_from_audio(files)
    path_of = dict(tracks)
    embedded = embed_files(classifier, tracks, segment=segment, batch_size=batch_size, on_progress=on_progress)
    scores = classifier.scores_of_embeddings(embedded.matrix(classifier.embedding_dim))
    done = {}
    for row, track_id in enumerate(embedded.ids):
        done[track_id] = FileLabels(path_of[track_id], classifier.top_labels(
            {tagset: values[row] for tagset, values in scores.items()}, top=top))
    failed = dict(embedded.failed)
    return ClassifyReport(results=[done[t] for t, _ in tracks if t in done],
                          failed=[(path, failed[t]) for t, path in tracks if t in failed])
