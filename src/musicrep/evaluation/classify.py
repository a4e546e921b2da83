"""``musicrep train-classifier``: an encoder + a run directory -> a classification model folder.

For each tagset, :func:`~musicrep.evaluation.probes.probe_tagset` fits and chooses a probe on the
encoder's frozen embeddings of the run's train and val splits (and scores it on test). Where the
encoder was trained with a ``classification`` head on that tagset's space (labels ``"genres:rock"``),
the head is scored on val the same way, and the better of the two is kept (the head only when it is
strictly better; the probe's score is the best of a grid chosen on the same val split, so it is an
optimistic estimate and the head has to beat it). Per-label thresholds are chosen on val: the
score that maximizes the label's F1 (one label against the rest); a label without a positive in val
keeps :data:`~musicrep.inference.classifier.DEFAULT_THRESHOLD`.

Inputs: ``RUN/embeddings/{train,val,test}/`` when ``embed_config.json`` says this encoder (its
``model_id``) made them, otherwise the merged stores ``RUN/features/{split}/`` embedded now;
``RUN/partitions/{split}.csv`` and ``RUN/manifest.parquet`` for the labels. The output folder is
the encoder's files plus ``classifier.safetensors`` and ``classifier.json``
(:mod:`musicrep.inference.classifier`), so ``musicrep.load(folder)`` gives a
:class:`~musicrep.inference.classifier.Classifier`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musicrep.data.manifest import read_manifest
from musicrep.errors import InputError, UsageError
from musicrep.evaluation.probes import (
    MULTI,
    SPLITS,
    SplitVectors,
    check_widths,
    labels_of,
    probe_tagset,
    read_split,
    score_labels,
    split_vectors,
    validation_score,
)
from musicrep.fileio import atomic_path, ensure_dir
from musicrep.inference.classifier import (
    CLASSIFIER_CONFIG,
    DEFAULT_THRESHOLD,
    FittedProbe,
    TagsetClassifier,
    write_classifier_files,
)
from musicrep.inference.hub import CARD_FILE, CONFIG_FILE, WEIGHTS_FILE, Encoder, load

logger = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]
THRESHOLD_RULE = f"the score that maximizes the label's F1 on val (one label against the rest); {DEFAULT_THRESHOLD} " \
                 "for a label without a positive in val"


@dataclass
class TagsetReport:
    """What was kept for one tagset, and why."""

    tagset: str
    kind: str
    labels: list[str]
    kept: str
    """``"probe"`` or ``"head"``."""
    model: str
    """``"logistic"``, ``"mlp"``, or the head's task name."""
    val_metric: str
    probe_val: float
    head: str | None
    head_val: float | None
    head_note: str
    """Why a classification head of this space was not compared (empty when it was, or when there is none)."""
    test: dict[str, float]
    unscorable: list[tuple[str, str]]
    default_thresholds: list[str]
    """Labels whose threshold validation could not choose."""

    @property
    def kept_val(self) -> float:
        """The validation score of what was kept."""
        return float(self.head_val if self.kept == "head" and self.head_val is not None else self.probe_val)

    @property
    def chance(self) -> float:
        """What guessing scores on the validation metric: ROC-AUC 0.5, macro-F1 about one over the labels."""
        return 0.5 if self.val_metric == "roc_auc" else 1.0 / max(len(self.labels), 1)

    @property
    def near_chance(self) -> bool:
        """The kept classifier barely beats guessing on val (ROC-AUC below 0.6, macro-F1 below 1.5x chance): its
        labels are hardly readable from these embeddings, and its scores should not be trusted."""
        margin = self.chance + 0.1 if self.val_metric == "roc_auc" else 1.5 * self.chance
        return not self.kept_val >= margin  # NaN (nothing scorable on val) counts as near chance


@dataclass
class ClassifierReport:
    """What ``musicrep train-classifier`` wrote."""

    out_dir: Path
    classifier_id: str
    tagsets: list[TagsetReport]
    sources: dict[str, str]
    """Split -> where its vectors came from (an embeddings folder or a feature store)."""
    not_embedded: dict[str, list[str]] = field(default_factory=dict)
    """Split -> partition tracks without a vector (failed extraction)."""


def _check_out(out: Path) -> None:
    """Refuse an ``--out`` that holds anything but an earlier classifier folder: replacing its files would
    silently destroy what is there (another encoder's weights, embeddings, a report)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: is a file; --out is the classifier folder to write")
    if out.is_dir() and any(out.iterdir()) and not (out / CLASSIFIER_CONFIG).is_file():
        raise UsageError(f"{out}: exists and is not a classifier folder (no {CLASSIFIER_CONFIG}); "
                         "give a new or empty folder, or an earlier classifier to replace")


def train_classifier(model_dir: str | Path, run_dir: str | Path, out_dir: str | Path, *,
                     tagsets: Sequence[str] = ("genres",), seed: int = 0, device: str = "cpu", batch_size: int = 64,
                     on_progress: ProgressFn | None = None) -> ClassifierReport:
    """Fit the classifier of each tagset on an encoder's frozen embeddings and export a classifier folder.

    Parameters
    ----------
    model_dir : path-like
        The encoder's model folder.
    run_dir : path-like
        A run directory: ``manifest.parquet``, ``partitions/``, and ``embeddings/`` or ``features/``.
    out_dir : path-like
        The classifier folder (created; its files replaced). Not the encoder's own folder.
    tagsets : sequence of str
        Manifest tagsets, one classifier each.
    seed : int
        The probes' MLP initialization.
    on_progress : callable, optional
        ``(split, done, total)`` while a split's store is embedded.

    Raises
    ------
    UsageError
        No tagset, ``out_dir`` is the encoder's folder, a split with neither this encoder's embeddings nor a
        feature store, a store the encoder cannot read.
    InputError
        Unreadable or inconsistent inputs (names the file), a tagset with nothing to learn.
    """
    tagsets = list(dict.fromkeys(tagsets))
    if not tagsets:
        raise UsageError("give at least one --tagset")
    run, out = Path(run_dir), Path(out_dir)
    encoder = load(model_dir, device=device)
    if out.resolve() == encoder.path.resolve():
        raise UsageError(f"{out}: this is the encoder's folder; write the classifier to another --out")
    _check_out(out)
    manifest_path = run / "manifest.parquet"
    manifest = read_manifest(manifest_path)
    unknown = [t for t in tagsets if t not in manifest.tagsets]
    if unknown:  # before any embedding
        raise InputError(f"{manifest_path}: no tagset {unknown[0]!r} (tagsets: {', '.join(manifest.tagsets)})")
    frame = manifest.frame
    splits, sources = _split_vectors(encoder, run, batch_size=batch_size, on_progress=on_progress)
    vectors = {split: splits[split].vectors for split in SPLITS}
    for split, item in splits.items():
        if item.not_embedded:  # (the report carries them; the CLI says so)
            logger.info("%s: %d of its tracks have no vector (failed extraction?), left out",
                        run / "partitions" / f"{split}.csv", len(item.not_embedded))
    classifiers, reports = [], []
    for tagset in tagsets:
        truth = {split: labels_of(frame, tagset, splits[split].ids, source=manifest_path) for split in SPLITS}
        classifier, report = _tagset_classifier(encoder, tagset, vectors, truth, seed=seed)
        classifiers.append(classifier)
        reports.append(report)
    out = ensure_dir(out)
    _copy_encoder(encoder, out, _card_section(reports, run, splits))
    classifier_id = write_classifier_files(out, classifiers, encoder_model_id=encoder.model_id)
    load(out)  # what was written loads (identities, shapes) before anyone relies on it
    return ClassifierReport(out_dir=out, classifier_id=classifier_id, tagsets=reports, sources=sources,
                            not_embedded={s: item.not_embedded for s, item in splits.items() if item.not_embedded})


# ---------------------------------------------------------------------------------------------- inputs


def _split_vectors(encoder: Encoder, run: Path, *, batch_size: int, on_progress: ProgressFn | None
                   ) -> tuple[dict[str, SplitVectors], dict[str, str]]:
    """Each split's vectors: the run's embeddings when this encoder made them, else its store embedded now."""
    from musicrep.features.merge import FeatureStore

    splits, sources = {}, {}
    for split in SPLITS:
        partition = run / "partitions" / f"{split}.csv"
        folder, store_dir = run / "embeddings" / split, run / "features" / split
        made_by = _embedded_by(folder)
        if made_by == encoder.model_id:
            splits[split] = read_split(folder, partition, split=split)
            sources[split] = str(folder)
            continue
        if not (store_dir / "store.json").is_file():
            why = "none" if made_by is None else f"those of another model ({made_by[:12]}…)"
            raise UsageError(f"{run}: no {split} vectors of this model: {folder} holds {why} and there is no "
                             f"feature store {store_dir} to embed")
        if made_by is not None:
            logger.info("%s: made by another model; embedding %s with %s", folder, store_dir, encoder.path)

        def progress(done: int, total: int, split: str = split) -> None:
            if on_progress is not None:
                on_progress(split, done, total)

        from musicrep.inference.embed import embed_store

        array, ids = embed_store(encoder, FeatureStore(store_dir), batch_size=batch_size, on_progress=progress)
        splits[split] = split_vectors(array, ids, partition, source=store_dir, split=split)
        sources[split] = str(store_dir)
    check_widths(splits, encoder.embedding_dim)
    return splits, sources


def _embedded_by(folder: Path) -> str | None:
    """The model_id in an embeddings folder's ``embed_config.json`` (None when there is none)."""
    path = folder / "embed_config.json"
    if not path.is_file():
        return None
    try:
        model_id = json.loads(path.read_text(encoding="utf-8")).get("model_id")
    except (OSError, ValueError, AttributeError) as exc:
        raise InputError(f"{path}: unreadable ({exc})") from exc
    return model_id if isinstance(model_id, str) else None


# ---------------------------------------------------------------------------------------------- tagset


def _tagset_classifier(encoder: Encoder, tagset: str, vectors: dict[str, np.ndarray],
                       truth: dict[str, list[list[str]]], *, seed: int) -> tuple[TagsetClassifier, TagsetReport]:
    result = probe_tagset(vectors, truth, tagset=tagset, seed=seed)
    kept, test, unscorable = result.probe, result.metrics, list(result.unscorable)
    metric = result.chosen["val_metric"]
    head_name, head_val, note = None, None, ""
    for name, head in head_probes(encoder, tagset, result.probe):
        if isinstance(head, str):
            note = head
            continue
        head_name = name
        head_val = validation_score(result.kind, head.labels, truth["val"], head.scores(vectors["val"]))
        if np.isfinite(head_val) and head_val > result.chosen["val_score"]:
            kept = head  # over the probe's labels: the same labels are unscorable on test
            test, _, _ = score_labels(result.kind, head.labels, truth["test"], head.scores(vectors["test"]))
        break  # one head per space is what training exports
    thresholds, defaults = choose_thresholds(result.kind, kept.labels, truth["val"], kept.scores(vectors["val"]))
    report = TagsetReport(
        tagset=tagset, kind=result.kind, labels=list(kept.labels), kept="head" if kept.model == "head" else "probe",
        model=head_name if kept.model == "head" else kept.model, val_metric=metric,
        probe_val=float(result.chosen["val_score"]), head=head_name,
        head_val=None if head_val is None else float(head_val), head_note=note, test=test, unscorable=unscorable,
        default_thresholds=defaults)
    info = {
        "selection": {"val_metric": metric, "kept": report.kept,
                      "probe": {"model": result.chosen["model"], "params": result.chosen["params"],
                                "val_score": report.probe_val},
                      "head": None if head_name is None else {"name": head_name, "val_score": report.head_val},
                      "head_note": note},
        "test": test, "unscorable": [list(u) for u in unscorable], "per_label": _per_label_records(result),
        "threshold_rule": THRESHOLD_RULE, "default_thresholds": defaults, "counts": result.counts,
    }
    return TagsetClassifier(tagset=tagset, probe=kept, thresholds=thresholds, info=info), report


def _per_label_records(result: Any) -> list[dict[str, Any]]:
    frame = result.per_label.astype(object).where(result.per_label.notna(), None)
    return frame.to_dict(orient="records")


def head_probes(encoder: Encoder, tagset: str, probe: FittedProbe) -> list[tuple[str, FittedProbe | str]]:
    """The encoder's classification heads on ``tagset``'s space as probes over ``probe``'s labels (in its order),
    or, for a head that cannot stand in for the probe, the reason in words.

    A head's labels are named ``"<tagset>:<label>"`` (the tag space's vocabulary) or plain.
    """
    out: list[tuple[str, FittedProbe | str]] = []
    for name, spec in encoder.config["heads"].items():
        if spec.get("kind") != "classification" or spec.get("space") != tagset:
            continue
        names = [str(label).removeprefix(f"{tagset}:") for label in spec.get("labels", [])]
        column = {label: j for j, label in enumerate(names)}
        lacking = [label for label in probe.labels if label not in column]
        if lacking:
            out.append((name, f"head {name} has no output for {', '.join(lacking[:5])}"
                              + (f" and {len(lacking) - 5} more" if len(lacking) > 5 else "")))
            continue
        linear = encoder.model.heads[name].linear
        columns = [column[label] for label in probe.labels]
        weight = linear.weight.detach().cpu().double().numpy()[columns].T.copy()
        bias = linear.bias.detach().cpu().double().numpy()[columns].copy()
        dim = weight.shape[0]
        out.append((name, FittedProbe(labels=list(probe.labels), kind=probe.kind, mean=np.zeros(dim),
                                      scale=np.ones(dim), weights=[weight], biases=[bias], output="sigmoid",
                                      model="head", params={"head": name})))
    return out


def choose_thresholds(kind: str, labels: Sequence[str], truth: Sequence[Sequence[str]], scores: np.ndarray
                      ) -> tuple[np.ndarray, list[str]]:
    """Per label, the val score at which predicting "score >= threshold" has the best F1 (one label against the
    rest; single-label: over the tracks with a label); :data:`DEFAULT_THRESHOLD` for a label without a positive.

    Returns
    -------
    thresholds : np.ndarray [shape=(n_labels,)], float64
    defaults : list[str]
        The labels that got the default.
    """
    from sklearn.metrics import precision_recall_curve

    rows = [i for i, row in enumerate(truth) if kind == MULTI or len(row) == 1]
    thresholds = np.full(len(labels), DEFAULT_THRESHOLD, dtype=np.float64)
    defaults = []
    for j, label in enumerate(labels):
        y = np.array([label in truth[i] for i in rows], dtype=np.int64)
        if y.sum() == 0:
            defaults.append(label)
            continue
        precision, recall, cuts = precision_recall_curve(y, scores[rows, j])
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        thresholds[j] = float(cuts[int(np.argmax(f1[:-1]))])  # the last point has no threshold
    return thresholds, defaults


# ---------------------------------------------------------------------------------------------- export


def _copy_encoder(encoder: Encoder, out: Path, card_section: str) -> None:
    """The encoder's weights and config.json (bytes unchanged: its model_id holds), and its card plus a classifier
    section. Stale classifier files are left for :func:`write_classifier_files` to replace (JSON last)."""
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        with atomic_path(out / name) as tmp:
            tmp.write_bytes((encoder.path / name).read_bytes())
    card = encoder.path / CARD_FILE
    text = card.read_text(encoding="utf-8") if card.is_file() else f"# {encoder.config['model']['name']} encoder\n"
    text = text.split("\n## Classifier (generated)", 1)[0]  # a classifier folder as the encoder: one section
    with atomic_path(out / CARD_FILE) as tmp:
        tmp.write_text(text.rstrip() + "\n\n" + card_section, encoding="utf-8")


def _card_section(reports: list[TagsetReport], run: Path, splits: dict[str, SplitVectors]) -> str:
    sizes = ", ".join(f"{split} {len(splits[split].ids)}" for split in SPLITS)
    lines = [
        "## Classifier (generated)", "",
        f"Fitted by `musicrep train-classifier` on this encoder's frozen embeddings of `{run}` ({sizes} tracks): "
        "standardized on train, chosen on val, scored on test.", "",
        "| tagset | kind | labels | kept | val metric | probe (val) | head (val) | test |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        head = "none" if r.head is None else f"{r.head} {r.head_val:.3f}"
        if r.head_note:
            head = r.head_note
        test = ", ".join(f"{k} {v:.3f}" for k, v in r.test.items())
        lines.append(f"| {r.tagset} | {r.kind} | {len(r.labels)} | {r.kept}: {r.model} | {r.val_metric} | "
                     f"{r.probe_val:.3f} | {head} | {test} |")
    lines += ["", f"Thresholds: {THRESHOLD_RULE}.", ""]
    for r in reports:
        if r.unscorable:
            listed = "; ".join(f"{label} ({reason})" for label, reason in r.unscorable)
            lines.append(f"- {r.tagset}: not scored on test: {listed}")
        if r.default_thresholds:
            lines.append(f"- {r.tagset}: default threshold for {', '.join(r.default_thresholds)}")
    lines += ["", "Use: `musicrep classify --model FOLDER song.mp3` or "
              "`musicrep.load(FOLDER).classify(\"song.mp3\")`."]
    return "\n".join(lines) + "\n"
