"""``musicrep evaluate``: retrieval and tagging metrics of embeddings next to honest baselines, and a report.

Inputs (from a run directory, each overridable)::

    RUN/embeddings/{train,val,test}/   the run's model (method "model"); more with --embeddings NAME=DIR
    RUN/manifest.parquet               tags (labels) and artists
    RUN/partitions/{train,val,test}.csv
    RUN/targets/joint/, text/          graded relevance of nDCG; the oracle
    RUN/features/{train,val,test}/     merged log-mel stores: the handcrafted and untrained baselines
    RUN/model/                         the untrained baseline's architecture, seed and input statistics
    RUN/logs/csv/**/metrics.csv        training curves (when present)

An embeddings folder (``vectors.npy`` + ``ids.csv``, the layout ``musicrep embed``
writes) holds either every split (one folder) or one sub-folder per split.

Protocol
--------
- Methods, evaluated alike in one table: every embeddings folder given, and the
  baselines (:mod:`musicrep.evaluation.baselines`): ``handcrafted`` (standardized
  with train statistics), ``untrained``, ``random`` and, for retrieval only, the
  ``oracle`` that ranks by the joint tag-space vectors (an upper bound).
- The same tracks for every method: a split's tracks are those of its partition
  that every method has a vector for; the others are listed with the reason.
- Retrieval (test split, :mod:`musicrep.evaluation.retrieval`): each test track
  queries the other test tracks by cosine similarity; P@k and MAP@k with binary
  relevance (shares a label of the tagset), nDCG@k graded by cosine in the joint
  tag space and in the text space (``nDCG_text``; tracks without a text are
  relevant to nothing there). Both candidate rules (artist filtered, unfiltered),
  all ``k`` from one ranking per method. Queries without a relevant candidate are
  counted as skipped, never scored 0.
- Probes (:func:`musicrep.evaluation.probes.probe_tagset`): per tagset,
  standardized on train, chosen on val, scored on test; not for the oracle.
- Report (:mod:`musicrep.evaluation.report`): ``metrics.json``, ``report.md`` and
  the figures, in ``RUN/report/`` or ``out``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicrep import __version__
from musicrep.data.manifest import normalize_name, read_manifest, tag_column
from musicrep.errors import InputError, UsageError
from musicrep.evaluation.baselines import random_vectors
from musicrep.evaluation.retrieval import DEFAULT_KS, RULES, graded_metrics, label_metrics, rank
from musicrep.fileio import ensure_dir
from musicrep.tables import read_tidfile

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
BASELINES = ("handcrafted", "untrained", "random", "oracle")
RELEVANCE_SPACES = {"joint": "nDCG", "text": "nDCG_text"}
"""Target spaces that grade nDCG, and the metric names they give (``nDCG@10``, ``nDCG_text@10``)."""
MODEL_METHOD = "model"
FORMAT_VERSION = 1
StepProgress = Callable[[str, int, int], None]
"""``(step, done, total)``: e.g. ``("rank model", 512, 6000)``."""


@dataclass
class EvaluationInputs:
    """Where evaluation reads from (:meth:`resolve` fills them from a run directory)."""

    manifest: Path
    partitions: Path
    embeddings: dict[str, Path]
    targets: Path | None = None
    features: Path | None = None
    model: Path | None = None
    logs: Path | None = None
    run: Path | None = None

    @classmethod
    def resolve(cls, run: str | Path | None = None, *, embeddings: Mapping[str, str | Path] | None = None,
                manifest: str | Path | None = None, partitions: str | Path | None = None,
                targets: str | Path | None = None, features: str | Path | None = None,
                model: str | Path | None = None) -> EvaluationInputs:
        """The inputs of a run directory, each replaced by the one given.

        Raises
        ------
        UsageError
            No manifest or partitions, nothing to evaluate, a method name taken twice or by a baseline.
        InputError
            The run directory does not exist.
        """
        root = Path(run) if run is not None else None
        if root is not None and not root.is_dir():
            raise InputError(f"{root}: run directory not found")

        def pick(given: str | Path | None, default: str) -> Path | None:
            if given is not None:
                return Path(given)
            return root / default if root is not None and (root / default).exists() else None

        found = {"manifest": pick(manifest, "manifest.parquet"), "partitions": pick(partitions, "partitions")}
        for option, path in found.items():
            if path is None:
                raise UsageError(f"--{option} is needed (or --run with a run directory that holds it)")
        methods: dict[str, Path] = {}
        if root is not None and (root / "embeddings").is_dir():
            methods[MODEL_METHOD] = root / "embeddings"
        for name, folder in (embeddings or {}).items():
            if not name or name in methods or name in BASELINES:
                raise UsageError(f"--embeddings {name}={folder}: the name {name!r} is "
                                 + ("empty" if not name else "taken (names: the run's 'model', the baselines "
                                    f"{', '.join(BASELINES)}, and each --embeddings once)"))
            methods[name] = Path(folder)
        if not methods:
            where = f"{root / 'embeddings'} is missing (run musicrep embed)" if root is not None else "no --run"
            raise UsageError(f"nothing to evaluate: {where} and no --embeddings NAME=DIR given")
        logs = root / "logs" if root is not None and (root / "logs").is_dir() else None
        return cls(manifest=found["manifest"], partitions=found["partitions"], embeddings=methods,
                   targets=pick(targets, "targets"), features=pick(features, "features"), model=pick(model, "model"),
                   logs=logs, run=root)


@dataclass
class Method:
    """One row of the table: vectors per split (``(ids, vectors)``), and whether it is probed."""

    name: str
    kind: str
    """``"embeddings"`` or ``"baseline"``."""
    description: str
    splits: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict)
    probed: bool = True

    @property
    def dim(self) -> int:
        return int(next(iter(self.splits.values()))[1].shape[1])


@dataclass
class Collection:
    """What the manifest and the partitions say about the tracks."""

    frame: pd.DataFrame
    manifest: Path
    partitions_dir: Path
    partitions: dict[str, list[str]]
    """Split -> track ids, in partition order."""
    tagsets: list[str]


# ------------------------------------------------------------------------------------------- evaluate


def evaluate(
    run: str | Path | None = None, *, embeddings: Mapping[str, str | Path] | None = None,
    manifest: str | Path | None = None, partitions: str | Path | None = None, targets: str | Path | None = None,
    features: str | Path | None = None, model: str | Path | None = None, out: str | Path | None = None,
    tagsets: Sequence[str] = ("genres",), probe_tagsets: Sequence[str] | None = None,
    ks: Sequence[int] = DEFAULT_KS, baselines: Sequence[str] | None = None, probes: bool = True,
    artist_filter: bool = True, seed: int | None = None, device: str = "cpu", batch_size: int = 64,
    plots: bool = True, on_progress: StepProgress | None = None,
) -> dict[str, Any]:
    """Evaluate embeddings and baselines on a run's test split, write the report, return the metrics.

    Parameters
    ----------
    run : path-like, optional
        A run directory; its files are the defaults of the options below.
    embeddings : dict[str, path-like], optional
        More methods: name -> embeddings folder (every split, or ``train/ val/ test/`` sub-folders).
    manifest, partitions, targets, features, model : path-like, optional
        Override (or, without ``run``, give) the run's files (see the module docstring).
    out : path-like, optional
        Report folder; default ``RUN/report``. Created first: an unwritable folder fails before any work.
    tagsets : sequence of str
        Tagsets of retrieval's binary relevance (``genres`` by default).
    probe_tagsets : sequence of str, optional
        Tagsets probed; default every tagset of the manifest.
    ks : sequence of int
        List lengths of the retrieval metrics.
    baselines : sequence of str, optional
        Among :data:`BASELINES`; default every baseline the inputs allow (the others are noted). Named
        explicitly, a baseline whose inputs are missing is an error.
    probes : bool
        Fit the classification probes (the slow part on big collections).
    artist_filter : bool
        The headline rule of the main table: artist filtered (default) or unfiltered. Both are reported.
    seed : int, optional
        Of the untrained network, the random vectors, the probes and the map; default the model's recipe seed.
    device, batch_size
        For embedding the stores with the untrained network.
    plots : bool
        Write the PNG figures.
    on_progress : callable, optional
        ``(step, done, total)`` during long steps.

    Returns
    -------
    dict
        The contents of ``metrics.json`` (schema in :mod:`musicrep.evaluation.report`).

    Raises
    ------
    UsageError, InputError
        One line naming the file and the problem.
    """
    from musicrep.evaluation.report import write_report

    ks = _checked_ks(ks)
    inputs = EvaluationInputs.resolve(run, embeddings=embeddings, manifest=manifest, partitions=partitions,
                                      targets=targets, features=features, model=model)
    out_dir = ensure_dir(Path(out) if out is not None else _default_out(inputs))
    progress = on_progress or (lambda step, done, total: None)
    collection = read_collection(inputs.manifest, inputs.partitions)
    tagsets = _checked_tagsets(tagsets, collection, "--tagset")
    probe_tagsets = _checked_tagsets(collection.tagsets if probe_tagsets is None else probe_tagsets, collection,
                                     "--probe-tagsets")
    seed = _seed(seed, inputs.model)
    wanted = _checked_baselines(baselines, inputs)
    methods = [read_method(name, folder, collection, inputs.partitions) for name, folder in inputs.embeddings.items()]
    notes = [f"baseline {name} not computed: {reason}" for name, reason in wanted["missing"].items()]
    methods += _baselines(wanted["computed"], inputs, seed=seed, device=device, batch_size=batch_size,
                          progress=progress)
    ids, left_out = evaluation_tracks(collection, methods)
    test_ids = ids["test"]
    relevance, relevance_info = _relevance(inputs.targets, test_ids)
    if "random" in wanted["computed"]:  # drawn for the evaluated tracks, so they never decide which those are
        dim = _model_dim(inputs.model) or methods[0].dim
        methods.append(Method("random", "baseline", f"Gaussian vectors (seed {seed})",
                              {s: (ids[s], random_vectors(len(ids[s]), dim, seed=seed, stream=s)) for s in SPLITS}))
    if "oracle" in wanted["computed"]:
        methods.append(Method("oracle", "baseline", "the joint tag-space vectors themselves (an upper bound; not "
                              "probed)", {"test": (list(test_ids), relevance["joint"])}, probed=False))
    aligned = {m.name: _aligned(m, ids) for m in methods}
    labels = {t: {s: _labels(collection, t, ids[s]) for s in SPLITS} for t in sorted({*tagsets, *probe_tagsets})}
    artists = _artists(collection.frame, test_ids)
    problems: list[str] = []

    results: dict[str, Any] = {}
    for method in methods:
        entry: dict[str, Any] = {"dim": method.dim, "kind": method.kind, "description": method.description}
        entry["retrieval"] = _retrieval(aligned[method.name]["test"], {t: labels[t]["test"] for t in tagsets},
                                        relevance, artists, ks, progress=lambda d, t, m=method.name: progress(
                                            f"rank {m}", d, t))
        entry["probes"] = (_probes(method, aligned[method.name], labels, probe_tagsets, seed, problems, progress)
                           if probes and method.probed else {})
        results[method.name] = entry
    metrics = {
        "format_version": FORMAT_VERSION, "musicrep_version": __version__,
        "inputs": {"run": _text(inputs.run), "manifest": str(inputs.manifest), "partitions": str(inputs.partitions),
                   "targets": _text(inputs.targets), "features": _text(inputs.features), "model": _text(inputs.model),
                   "embeddings": {name: str(path) for name, path in inputs.embeddings.items()}},
        "settings": {"ks": list(ks), "tagsets": list(tagsets), "probe_tagsets": list(probe_tagsets) if probes else [],
                     "rules": list(RULES), "headline_rule": RULES[0] if artist_filter else RULES[1], "seed": seed,
                     "map": "t-SNE (scikit-learn)"},
        "splits": {s: {"partition": len(collection.partitions[s]), "tracks": len(ids[s]), "left_out": left_out[s]}
                   for s in SPLITS},
        "relevance": relevance_info,
        "labels": {t: _label_summary(labels[t]) for t in labels},
        "methods": results,
        "notes": notes,
        "problems": problems,
    }
    map_method = next((m for m in methods if m.kind == "embeddings"), methods[0])
    progress("report", 0, 1)  # the t-SNE map takes a while on big test splits
    return write_report(_json_safe(metrics), out_dir, logs=inputs.logs, plots=plots,
                        map_vectors=aligned[map_method.name]["test"], map_labels=labels[tagsets[0]]["test"],
                        map_method=map_method.name, seed=seed)


def _default_out(inputs: EvaluationInputs) -> Path:
    if inputs.run is None:
        raise UsageError("--out is needed without --run (where to write the report)")
    return inputs.run / "report"


# ------------------------------------------------------------------------------------------- reading


def read_collection(manifest: Path, partitions: Path) -> Collection:
    """The manifest and the three partitions; every partition track must be in the manifest.

    Raises
    ------
    InputError
        A file is missing or unreadable, or a partition lists a track the manifest does not know (names both).
    """
    loaded = read_manifest(manifest)
    known = set(loaded.frame["track_id"])
    lists = {}
    for split in SPLITS:
        path = Path(partitions) / f"{split}.csv"
        if not path.is_file():
            raise InputError(f"{path}: partition not found (musicrep partition writes train.csv, val.csv, test.csv)")
        listed = read_tidfile(path).track_ids
        stray = [t for t in listed if t not in known]
        if stray:
            raise InputError(f"{path}: track {stray[0]!r} is not in the manifest {manifest}" + _more(stray))
        lists[split] = listed
    return Collection(frame=loaded.frame, manifest=Path(manifest), partitions_dir=Path(partitions), partitions=lists,
                      tagsets=list(loaded.tagsets))


def read_method(name: str, folder: str | Path, collection: Collection, partitions: Path) -> Method:
    """An embeddings folder as a method: one folder for every split, or ``train/ val/ test/`` sub-folders.

    Raises
    ------
    InputError
        Names the file: not an embeddings folder, a track the manifest or the partitions do not know,
        a track twice, NaN or infinite values, splits of other widths, a width ``embed_config.json``
        does not state, no test vectors.
    """
    from musicrep.evaluation.probes import check_widths, split_vectors
    from musicrep.inference.embed import read_embeddings

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: embeddings folder not found")
    per_split = [s for s in SPLITS if (folder / s / "vectors.npy").is_file()]
    splits = {}
    if per_split:
        for split in per_split:
            vectors, ids, config = read_embeddings(folder / split)
            _check_embeddings(folder / split, vectors, ids.tolist(), config, collection)
            splits[split] = split_vectors(vectors, ids.tolist(), partitions / f"{split}.csv", source=folder / split,
                                          split=split)
    elif (folder / "vectors.npy").is_file():
        vectors, ids, config = read_embeddings(folder)
        ids = ids.tolist()
        _check_embeddings(folder, vectors, ids, config, collection)
        split_of = {t: s for s in SPLITS for t in collection.partitions[s]}
        stray = [t for t in ids if t not in split_of]
        if stray:
            raise InputError(f"{folder / 'ids.csv'}: track {stray[0]!r} is in no partition of {partitions}"
                             + _more(stray))
        for split in SPLITS:
            rows = [i for i, t in enumerate(ids) if split_of[t] == split]
            if rows:
                splits[split] = split_vectors(np.asarray(vectors[rows]), [ids[i] for i in rows],
                                              partitions / f"{split}.csv", source=folder, split=split)
    else:
        raise InputError(f"{folder}: no vectors.npy, nor train/ val/ test/ folders holding one (not an embeddings "
                         "folder)")
    if "test" not in splits:
        raise InputError(f"{folder}: no vectors of test tracks (listed in {partitions / 'test.csv'})")
    check_widths(splits)
    probed = all(s in splits for s in SPLITS)
    if not probed:
        logger.warning("%s: no %s vectors: method %s is not probed", folder,
                       " or ".join(s for s in SPLITS if s not in splits), name)
    return Method(name=name, kind="embeddings", description=str(folder),
                  splits={s: (v.ids, v.vectors) for s, v in splits.items()}, probed=probed)


def _check_embeddings(folder: Path, vectors: np.ndarray, ids: list[str], config: dict[str, Any],
                      collection: Collection) -> None:
    known = set(collection.frame["track_id"])
    stray = [t for t in ids if t not in known]
    if stray:
        raise InputError(f"{folder / 'ids.csv'}: track {stray[0]!r} is not in the manifest {collection.manifest}"
                         + _more(stray))
    stated = config.get("embedding_dim")
    if stated is not None and int(stated) != vectors.shape[1]:
        raise InputError(f"{folder / 'vectors.npy'}: {vectors.shape[1]} dimensions, but embed_config.json says "
                         f"embedding_dim {stated}")


def evaluation_tracks(collection: Collection, methods: Sequence[Method]
                      ) -> tuple[dict[str, list[str]], dict[str, list[dict[str, str]]]]:
    """Per split, the partition's tracks every method holding that split has a vector for (partition order),
    and the others with the reason.

    Raises
    ------
    UsageError
        Fewer than two test tracks remain.
    """
    ids, left_out = {}, {}
    for split in SPLITS:
        holders = [m for m in methods if split in m.splits]
        have = [(m, set(m.splits[split][0])) for m in holders]
        kept, dropped = [], []
        for track_id in collection.partitions[split]:
            missing = [m for m, present in have if track_id not in present]
            if not missing:
                kept.append(track_id)
            elif len(missing) == len(have):
                dropped.append({"track_id": track_id, "reason": "no vector in any method (failed extraction?)"})
            else:
                dropped.append({"track_id": track_id, "reason": f"no vector in {missing[0].name} "
                                                                f"({missing[0].description})"})
        ids[split], left_out[split] = kept, dropped
    if len(ids["test"]) < 2:
        raise UsageError(f"{collection.partitions_dir / 'test.csv'}: {len(ids['test'])} test track(s) with a vector "
                         "in every method; retrieval needs at least 2")
    return ids, left_out


def _aligned(method: Method, ids: dict[str, list[str]]) -> dict[str, np.ndarray]:
    out = {}
    for split, (method_ids, vectors) in method.splits.items():
        row = {t: i for i, t in enumerate(method_ids)}
        out[split] = np.asarray(vectors, dtype=np.float32)[[row[t] for t in ids[split]]]
    return out


def _labels(collection: Collection, tagset: str, ids: list[str]) -> list[list[str]]:
    from musicrep.evaluation.probes import labels_of

    return labels_of(collection.frame, tagset, ids, source=collection.manifest)


def _artists(frame: pd.DataFrame, ids: list[str]) -> list[str]:
    """Normalized artist names (as training's batches and validation compare them); empty: its own artist."""
    artist = frame.set_index("track_id")["artist"]
    return [normalize_name(a) if isinstance(a, str) else "" for a in artist.reindex(ids).tolist()]


def _relevance(targets: Path | None, ids: list[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Target-space vectors of the test tracks (zeros where a track has none), for each space there is."""
    from musicrep.targets.space import load_space

    vectors, info = {}, {}
    for name in RELEVANCE_SPACES:
        folder = targets / name if targets is not None else None
        if folder is None or not (folder / "model.json").is_file():
            info[name] = {"available": False}
            continue
        space = load_space(folder)
        row = space.row_of()
        array = np.zeros((len(ids), space.model.dims), dtype=np.float32)
        present = [i for i, t in enumerate(ids) if t in row]
        array[present] = np.asarray(space.vectors)[[row[ids[i]] for i in present]]
        vectors[name] = array
        info[name] = {"available": True, "space": str(folder), "dims": int(space.model.dims),
                      "tracks_with_vector": len(present), "tracks": len(ids)}
    return vectors, info


def _label_summary(labels: dict[str, list[list[str]]]) -> dict[str, Any]:
    counts = {s: pd.Series([x for row in labels[s] for x in row], dtype=object).value_counts() for s in SPLITS}
    test = counts["test"]
    elsewhere = set(counts["train"].index) | set(counts["val"].index)
    return {"test_counts": {str(k): int(v) for k, v in test.sort_index().items()},
            "single_in_test": sorted(str(k) for k, v in test.items() if v < 2),
            "only_in_test": sorted(str(k) for k in test.index if k not in elsewhere),
            "test_tracks_without_label": int(sum(1 for row in labels["test"] if not row))}


# ------------------------------------------------------------------------------------------- baselines


def _checked_baselines(baselines: Sequence[str] | None, inputs: EvaluationInputs) -> dict[str, Any]:
    unknown = [b for b in (baselines or ()) if b not in BASELINES]
    if unknown:
        raise UsageError(f"unknown baseline {unknown[0]!r} (baselines: {', '.join(BASELINES)})")
    stores = None
    if inputs.features is None:
        stores = "no --features (merged train/ val/ test/ stores)"
    elif not all((inputs.features / s / "features.npy").is_file() for s in SPLITS):
        stores = f"{inputs.features} lacks merged train/ val/ test/ stores"
    missing = {}
    if stores:
        missing["handcrafted"] = stores
    if inputs.model is None:
        missing["untrained"] = "no --model"
    elif stores:
        missing["untrained"] = stores
    if inputs.targets is None:
        missing["oracle"] = "no --targets"
    elif not (inputs.targets / "joint" / "model.json").is_file():
        missing["oracle"] = f"{inputs.targets / 'joint'}: no joint tag space"
    if baselines is None:
        return {"computed": [b for b in BASELINES if b not in missing], "missing": missing}
    for name in baselines:
        if name in missing:
            raise UsageError(f"baseline {name}: {missing[name]}")
    return {"computed": list(dict.fromkeys(baselines)), "missing": {}}


def _baselines(names: Sequence[str], inputs: EvaluationInputs, *, seed: int, device: str, batch_size: int,
               progress: StepProgress) -> list[Method]:
    """The baselines computed from the stores (handcrafted, untrained)."""
    from musicrep.evaluation.baselines import fit_standardizer, handcrafted_store, untrained_encoder
    from musicrep.features.merge import FeatureStore
    from musicrep.inference.embed import embed_store

    methods = []
    if "handcrafted" in names:
        raw = {}
        for split in SPLITS:
            store = FeatureStore(inputs.features / split)
            vectors, ids = handcrafted_store(store, on_progress=lambda d, t, s=split: progress(
                f"handcrafted {s}", d, t))
            raw[split] = (ids, vectors)
        mean, scale = fit_standardizer(raw["train"][1])
        methods.append(Method("handcrafted", "baseline", "MFCC + spectral statistics (mean, std over valid frames) "
                              "of the stored log-mel, standardized on train",
                              {s: (ids, ((v - mean) / scale).astype(np.float32)) for s, (ids, v) in raw.items()}))
    if "untrained" in names:
        encoder = untrained_encoder(inputs.model, seed=seed, device=device)
        splits = {}
        for split in SPLITS:
            vectors, ids = embed_store(encoder, FeatureStore(inputs.features / split), batch_size=batch_size,
                                       on_progress=lambda d, t, s=split: progress(f"untrained {s}", d, t))
            splits[split] = (ids, vectors)
        methods.append(Method("untrained", "baseline", f"{encoder.config['model']['name']} with its initial random "
                              f"weights (seed {seed}), the trained model's input statistics", splits))
    return methods


def _model_dim(model: Path | None) -> int | None:
    if model is None:
        return None
    from musicrep.inference.hub import read_config

    return int(read_config(model)["embedding_dim"])


def _seed(seed: int | None, model: Path | None) -> int:
    if seed is not None:
        return int(seed)
    if model is not None and (model / "config.json").is_file():
        from musicrep.inference.hub import read_config

        return int((read_config(model).get("recipe") or {}).get("train", {}).get("seed", 0))
    return 0


# ------------------------------------------------------------------------------------------- metrics


def _retrieval(vectors: np.ndarray, labels: dict[str, list[list[str]]], relevance: dict[str, np.ndarray],
               artists: list[str], ks: tuple[int, ...], *, progress: Callable[[int, int], None]
               ) -> dict[str, dict[str, dict[str, Any]]]:
    """``{tagset: {rule: {"P@k", "MAP@k", "nDCG@k", "nDCG_text@k", "queries", "skipped", ...}}}``."""
    rankings = rank(vectors, depth=max(ks), artists=artists, rules=RULES, on_progress=progress)
    graded = {rule: {} for rule in RULES}
    for rule, ranking in rankings.items():
        for space, vectors_of_space in relevance.items():
            name = RELEVANCE_SPACES[space]
            results = graded_metrics(ranking, vectors_of_space, ks=ks, metric=name)
            for k in ks:
                graded[rule][f"{name}@{k}"] = results[f"{name}@{k}"].value
            first = results[f"{name}@{ks[0]}"]
            graded[rule][f"{name}_queries"], graded[rule][f"{name}_skipped"] = first.queries, first.skipped
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for tagset, tagset_labels in labels.items():
        out[tagset] = {}
        for rule, ranking in rankings.items():
            results = label_metrics(ranking, tagset_labels, ks=ks)
            entry: dict[str, Any] = {}
            for k in ks:
                entry[f"P@{k}"] = results[f"precision@{k}"].value
                entry[f"MAP@{k}"] = results[f"map@{k}"].value
            entry.update(graded[rule])
            first = results[f"precision@{ks[0]}"]
            entry["queries"], entry["skipped"] = first.queries, first.skipped
            out[tagset][rule] = entry
    return out


def _probes(method: Method, vectors: dict[str, np.ndarray], labels: dict[str, dict[str, list[list[str]]]],
            tagsets: Sequence[str], seed: int, problems: list[str], progress: StepProgress) -> dict[str, Any]:
    from musicrep.evaluation.probes import probe_tagset

    out: dict[str, Any] = {}
    for done, tagset in enumerate(tagsets):
        progress(f"probes {method.name}", done, len(tagsets))
        try:
            result = probe_tagset({s: vectors[s] for s in SPLITS}, labels[tagset], tagset=tagset, seed=seed)
        except InputError as exc:
            problems.append(f"probe {method.name} / {tagset}: {exc}")
            out[tagset] = {"error": str(exc)}
            continue
        out[tagset] = {**result.metrics, "kind": result.kind, "chosen": result.chosen,
                       "unscorable": [list(pair) for pair in result.unscorable],
                       "per_label": result.per_label.to_dict(orient="records"), "counts": result.counts}
    progress(f"probes {method.name}", len(tagsets), len(tagsets))
    return out


# ------------------------------------------------------------------------------------------- checks


def _checked_ks(ks: Sequence[int]) -> tuple[int, ...]:
    values = tuple(ks)
    if not values or any(isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1 for k in values):
        raise UsageError(f"--k must be positive integers like 1,5,10,20,50 (got {','.join(map(str, values))})")
    return tuple(sorted({int(k) for k in values}))


def _checked_tagsets(tagsets: Sequence[str], collection: Collection, option: str) -> list[str]:
    chosen = list(dict.fromkeys(tagsets))
    if not chosen:
        raise UsageError(f"{option}: give at least one tagset")
    for tagset in chosen:
        if tag_column(tagset) not in collection.frame.columns:
            raise UsageError(f"{option} {tagset}: not a tagset of {collection.manifest} "
                             f"(tagsets: {', '.join(collection.tagsets) or 'none'})")
    return chosen


def _more(items: Sequence[Any]) -> str:
    return f" ({len(items) - 1} more)" if len(items) > 1 else ""


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _json_safe(value: Any) -> Any:
    """NaN and infinity as None, numpy scalars as Python numbers: strict JSON that any tool reads."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value
