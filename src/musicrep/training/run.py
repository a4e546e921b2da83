"""``musicrep train``: a run directory's feature stores and target spaces -> a trained, exported encoder.

Reads ``RUN/features/{train,val}/`` (merged stores, raw dB), ``RUN/features/stats.npz``,
``RUN/targets/<space>/`` per task and ``RUN/manifest.parquet`` (artists, for the
artist-filtered validation); writes ``RUN/checkpoints/`` (``last.ckpt`` every
epoch, the best by validation nDCG@10), ``RUN/logs/`` (CSV + TensorBoard) and
``RUN/model/`` (:mod:`musicrep.inference.hub`'s model folder).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from musicrep import __version__
from musicrep.errors import InputError, UsageError
from musicrep.evaluation.retrieval import ndcg_at_k
from musicrep.features.merge import FeatureStore
from musicrep.models import build_encoder
from musicrep.models.encoder import FORMAT_VERSION, MusicEncoder
from musicrep.targets.space import Space, load_space
from musicrep.training.data import align_targets, artist_codes, positive_partners, store_track_ids
from musicrep.training.objectives import build_objective, head_of
from musicrep.training.recipe import Recipe

logger = logging.getLogger(__name__)

VAL_METRIC = "val/ndcg@10"


@dataclass
class RunPaths:
    """Where training reads and writes (the run-directory layout, each place overridable)."""

    features: Path
    targets: Path
    out: Path
    manifest: Path | None

    @classmethod
    def of(cls, run: Path | None, *, features: Path | None = None, targets: Path | None = None,
           out: Path | None = None, manifest: Path | None = None) -> RunPaths:
        if run is None and None in (features, targets, out):
            raise UsageError("--run, or all of --features, --targets and --out, are needed")
        run = Path(run) if run is not None else None
        default_manifest = run / "manifest.parquet" if run is not None else None
        return cls(features=Path(features or run / "features"), targets=Path(targets or run / "targets"),
                   out=Path(out or run), manifest=manifest or default_manifest)


@dataclass
class TrainReport:
    """What training produced."""

    model_dir: Path
    best_checkpoint: Path | None
    epochs: int
    metrics: dict[str, float] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    """Best val nDCG@10, the untrained network's and the ceiling (as in the model folder's config.json)."""


def train(recipe: Recipe, paths: RunPaths, *, device: str = "auto", devices: int = 1, resume: bool = False,
          on_epoch: Callable[[int, dict[str, float]], None] | None = None, max_epochs: int | None = None
          ) -> TrainReport:
    """Train ``recipe`` on a run directory and export the model folder.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}
    devices : int
        Processes (DDP when more than one; gloo on CPU).
    resume : bool
        Continue from ``checkpoints/last.ckpt`` (a run killed at any moment resumes there); without it an
        earlier run's checkpoints are replaced.
    on_epoch : callable, optional
        ``(epoch, metrics)`` after each epoch, on the main process.
    max_epochs : int, optional
        Overrides ``recipe.train.epochs``.
    """
    import lightning as L

    from musicrep.inference.hub import export_model

    if not logger.isEnabledFor(logging.INFO):
        # Lightning narrates devices and tips at INFO through its own handlers: warnings only, unless asked
        for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
            logging.getLogger(name).setLevel(logging.WARNING)

    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device must be auto, cpu or cuda (got {device!r})")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available here")
    if devices < 1:
        raise UsageError(f"--devices must be at least 1 (got {devices})")
    settings = recipe.train
    if max_epochs is not None and max_epochs < 1:
        raise UsageError(f"--epochs must be at least 1 (got {max_epochs})")
    epochs = max_epochs or settings.epochs
    L.seed_everything(settings.seed, workers=True, verbose=False)
    stores = {name: _open_store(paths.features / name) for name in ("train", "val")}
    train_ids = store_track_ids(stores["train"].path)
    val_ids = store_track_ids(stores["val"].path)
    spaces = _load_spaces(recipe, paths.targets)
    targets = {t.name: align_targets(spaces[t.name], train_ids, t.name, with_labels=True) for t in recipe.tasks}
    for task in recipe.tasks:
        if not targets[task.name].valid.any():
            raise UsageError(f"{paths.targets / task.space}: no training track has a vector in this space")
        if task.objective == "classification" and targets[task.name].labels is None:
            raise UsageError(f"{recipe.path}: task {task.name}: classification needs a tag space ({task.space} is "
                             f"a {spaces[task.name].model.analyzer.kind} space)")

    torch.manual_seed(settings.seed)
    backbone = build_encoder(recipe.model["name"], **recipe.model["params"])
    model_config = _model_config(recipe, stores["train"], spaces, embedding_dim=int(backbone.embedding_dim))
    mean, std = _statistics(paths.features, stores["train"])
    objectives = {t.name: build_objective(t, embedding_dim=backbone.embedding_dim,
                                          space_dim=spaces[t.name].model.dims,
                                          labels=targets[t.name].label_names) for t in recipe.tasks}
    heads = {name: head_of(objective) for name, objective in objectives.items() if head_of(objective) is not None}
    encoder = MusicEncoder(backbone, torch.from_numpy(mean), torch.from_numpy(std), heads)
    model_config["heads"] = {name: {**objectives[name].head_config(), "space": spaces[name].name,
                                    "space_id": spaces[name].space_id} for name in heads}
    artist_names = _artists(paths.manifest, spaces)
    validation = _validation(recipe, spaces, val_ids, artist_names, stores["val"])
    triplets = {t.name: _triplets(paths.targets / t.triplets, train_ids) for t in recipe.tasks
                if t.objective == "offline"}

    from musicrep.training.module import EncoderModule, TrainingData

    artists = artist_codes(train_ids, artist_names)
    module = EncoderModule(recipe, encoder, objectives, targets, triplets, validation, artists)
    first = recipe.tasks[0]
    partners = positive_partners(targets[first.name], pos=first.pos,
                                 artists=artists if first.exclude_same_artist else None)
    data = TrainingData(stores["train"].path, stores["val"].path, recipe, partners=partners,
                        triplet_rows=_triplet_rows(triplets[first.name]) if first.name in triplets else None)
    trainer = _trainer(recipe, paths.out, device=device, devices=devices, epochs=epochs,
                       validate=validation is not None, on_epoch=on_epoch, resume=resume)
    last = paths.out / "checkpoints" / "last.ckpt"
    resuming = resume and last.is_file()
    if resume and not resuming:
        logger.warning("%s: no checkpoint to resume from: training starts from the first epoch", last)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*sync_dist=True.*")
        warnings.filterwarnings("ignore", message=".*treespec.*LeafSpec.*")
        # a new run replaces the earlier run's logs and checkpoints on purpose (--resume continues them)
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        untrained = _untrained_score(trainer, module, data) if validation is not None and not resuming else None
        trainer.fit(module, datamodule=data, ckpt_path=str(last) if resuming else None)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    best_path = Path(best) if best else (last if last.is_file() else None)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if not trainer.is_global_zero:
        return TrainReport(paths.out / "model", best_path, trainer.current_epoch, metrics)
    if best_path is not None:
        checkpoint = torch.load(best_path, map_location="cpu", weights_only=False)
        module.load_state_dict(checkpoint["state_dict"], strict=False)
        model_config["validation"] = {"checkpoint": best_path.name, **_validation_figures(checkpoint, metrics)}
    for name, objective in module.objectives.items():  # the temperature the contrastive head learned
        if name in model_config["heads"] and hasattr(objective, "log_temperature"):
            model_config["heads"][name]["temperature"] = float(objective.log_temperature.detach().exp())
    model_config["validation"] = {**model_config.get("validation", {}),
                                  "ceiling_ndcg@10": validation.ceiling if validation else None}
    if untrained is not None:
        model_config["validation"]["untrained_ndcg@10"] = untrained
        metrics["untrained_ndcg@10"] = untrained
    folder = export_model(module.encoder.cpu(), model_config, paths.out / "model",
                          card=_model_card(recipe, model_config, paths, trainer.current_epoch))
    return TrainReport(folder, best_path, trainer.current_epoch, metrics, model_config["validation"])


def _untrained_score(trainer, module, data) -> float:
    """Validation nDCG@10 of the network before any step: the same architecture and seed, untrained."""
    results = trainer.validate(module, datamodule=data, verbose=False)
    return float(results[0][VAL_METRIC]) if results and VAL_METRIC in results[0] else float("nan")


def _open_store(path: Path) -> FeatureStore:
    store = FeatureStore(path)
    if store.params.get("normalized"):
        raise UsageError(f"{path}: a normalized store (merged with --normalize); training standardizes itself and "
                         "needs the raw-dB store")
    _check_finite(store)
    return store


def _check_finite(store: FeatureStore, rows_per_read: int = 256) -> None:
    """Refuse a store holding NaN or infinity (one streaming pass): it would silently poison every step."""
    for start in range(0, len(store), rows_per_read):
        block = np.asarray(store.features[start:start + rows_per_read])
        bad = ~np.isfinite(block).reshape(len(block), -1).all(axis=1)
        if bad.any():
            row = start + int(np.flatnonzero(bad)[0])
            raise InputError(f"{store.path}/features.npy: non-finite values in row {row} "
                             f"(track {store.index.track_id.iloc[row]}); extract and merge it again")


def _load_spaces(recipe: Recipe, targets_dir: Path) -> dict[str, Space]:
    available = sorted(p.name for p in targets_dir.iterdir() if (p / "model.json").is_file()) \
        if targets_dir.is_dir() else []
    spaces = {}
    for task in recipe.tasks:
        if not (targets_dir / task.space / "model.json").is_file():
            raise UsageError(f"{recipe.path}: task {task.name!r} names space {task.space!r}, which is not in "
                             f"{targets_dir} (spaces there: {', '.join(available) or 'none'})")
        spaces[task.name] = load_space(targets_dir / task.space)
    return spaces


def _statistics(features_dir: Path, store: FeatureStore) -> tuple[np.ndarray, np.ndarray]:
    """Train mean and std per mel band and channel (``features/stats.npz``, else the train store's)."""
    for path in (features_dir / "stats.npz", store.path / "stats.npz"):
        if path.is_file():
            with np.load(path) as stats:
                mean, std = stats["mean"].astype(np.float32), stats["std"].astype(np.float32)
            if mean.shape != (store.features.shape[1], store.features.shape[3]):
                raise InputError(f"{path}: statistics of shape {mean.shape} do not fit the store "
                                 f"{store.features.shape[1:]}")
            return mean, std
    raise InputError(f"{features_dir}: no stats.npz (merge writes it with the train store)")


def _model_config(recipe: Recipe, store: FeatureStore, spaces: dict[str, Space], *,
                  embedding_dim: int) -> dict[str, Any]:
    extraction = dict(store.params.get("extract_config") or {})
    if not extraction:
        raise InputError(f"{store.path}/store.json: no extract_config (not merged by musicrep merge?)")
    return {
        "format_version": FORMAT_VERSION,
        "musicrep_version": __version__,
        "model": {"name": recipe.model["name"], "params": dict(recipe.model["params"])},
        "embedding_dim": embedding_dim,
        "window_frames": recipe.train.crop_frames,
        "n_mels": int(store.features.shape[1]),
        "channels": int(store.features.shape[3]),
        "extraction": extraction,
        "tasks": [{"name": t.name, "space": t.space, "space_id": spaces[t.name].space_id, "objective": t.objective,
                   "weight": t.weight} for t in recipe.tasks],
        "recipe": recipe.to_dict(),
    }


def _validation(recipe: Recipe, spaces: dict[str, Space], val_ids: list[str], artists: pd.Series,
                store: FeatureStore):
    """The first task's space vectors of the val tracks and their artists (None when val is empty)."""
    from musicrep.training.module import Validation

    first = recipe.tasks[0]
    targets = align_targets(spaces[first.name], val_ids, first.name, with_labels=False)
    rows = np.flatnonzero(targets.valid)
    if len(rows) < 2:
        logger.warning("%s: fewer than two validation tracks with a %s vector: no validation, the last epoch is "
                       "exported", store.path, first.space)
        return None
    # artists as the batches and partitions see them: normalized names, a track without one its own artist
    names = artist_codes([val_ids[r] for r in rows], artists)
    relevance = targets.vectors[rows]
    ceiling = ndcg_at_k(relevance, relevance, k=10, artists=names, exclude_same_artist=True).value
    return Validation(relevance=relevance, rows=rows, artists=names, ceiling=float(ceiling))


def _artists(manifest: Path | None, spaces: dict[str, Space]) -> pd.Series:
    """track_id -> artist, from the run's manifest (else the one the spaces were built from)."""
    from musicrep.data.manifest import read_manifest

    first = next(iter(spaces.values()))
    source = manifest if manifest is not None and Path(manifest).is_file() else first.params.get("manifest")
    if not source or not Path(source).is_file():
        raise InputError(f"{manifest}: manifest not found (the artists are needed for artist-filtered batches "
                         "and validation)")
    return read_manifest(source).frame.set_index("track_id")["artist"]


def _triplets(path: Path, train_ids: list[str]) -> dict[int, list[tuple[int, int]]]:
    if not path.is_file():
        raise UsageError(f"{path}: no triplets file for the offline objective (run mine-triplets first)")
    table = pd.read_parquet(path, columns=["anchor", "positive", "negative"])
    row = {t: i for i, t in enumerate(train_ids)}
    by_anchor: dict[int, list[tuple[int, int]]] = {}
    for a, p, n in table.itertuples(index=False):
        if a in row and p in row and n in row:
            by_anchor.setdefault(row[a], []).append((row[p], row[n]))
    return by_anchor


def _triplet_rows(by_anchor: dict[int, list[tuple[int, int]]]) -> np.ndarray:
    rows = [(a, p, n) for a, pairs in by_anchor.items() for p, n in pairs]
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def _validation_figures(checkpoint: dict[str, Any], metrics: dict[str, float]) -> dict[str, float]:
    """The best validation figure and its epoch, from the checkpoint's own record of it."""
    for callback in checkpoint.get("callbacks", {}).values():
        if isinstance(callback, dict) and callback.get("monitor") == VAL_METRIC and callback.get("best_model_score"):
            return {"ndcg@10": float(callback["best_model_score"]), "epoch": int(checkpoint.get("epoch", -1)) + 1}
    return {"ndcg@10": metrics.get(VAL_METRIC, float("nan"))}


def _model_card(recipe: Recipe, config: dict[str, Any], paths: RunPaths, epochs: int) -> str:
    validation = config.get("validation", {})
    tasks = "\n".join(f"| {t['name']} | {t['space']} | {t['objective']} | {t['weight']:g} |" for t in config["tasks"])
    score = validation.get("ndcg@10")
    ceiling = validation.get("ceiling_ndcg@10")
    return f"""# musicrep model: {recipe.model['name']} ({config['embedding_dim']}-d)

Trained with musicrep {__version__} from recipe `{recipe.path}` for {epochs} epoch(s).

## Data
- features: `{paths.features}` (log-mel: {config['extraction'].get('sr')} Hz, n_fft {config['extraction'].get('n_fft')},
  hop {config['extraction'].get('hop_length')}, {config['n_mels']} mels, {config['channels']} channel(s))
- targets: `{paths.targets}`
- input windows: {config['window_frames']} frames; a track's vector is the mean over its windows

## Tasks
| task | space | objective | weight |
|---|---|---|---|
{tasks}

## Validation (val split, query's artist excluded)
- nDCG@10, graded by cosine in the `{config['tasks'][0]['space']}` space: {_figure(score)}
- the same network untrained (same seed): {_figure(validation.get('untrained_ndcg@10'))}
- ceiling (the target vectors themselves as embeddings): {_figure(ceiling)}

## Use
```python
import musicrep
encoder = musicrep.load("{paths.out / 'model'}")
vector = encoder.embed("song.mp3")
```
"""


def _figure(value: Any) -> str:
    return "n/a" if value is None or value != value else f"{float(value):.3f}"


def _trainer(recipe: Recipe, out: Path, *, device: str, devices: int, epochs: int, validate: bool,
             on_epoch: Callable[[int, dict[str, float]], None] | None, resume: bool):
    import lightning as L
    from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from musicrep.training.module import EpochReport

    checkpoints = out / "checkpoints"
    if not resume and checkpoints.is_dir():  # a new run starts over; --resume continues
        for old in checkpoints.glob("*.ckpt"):
            old.unlink()
    monitor = VAL_METRIC if validate else "loss"
    mode = "max" if validate else "min"
    # the best by the monitored figure, and last.ckpt after every epoch whatever the figure did (resume)
    callbacks: list[Callback] = [
        ModelCheckpoint(dirpath=checkpoints, filename="best-{epoch:03d}", monitor=monitor, mode=mode, save_top_k=1),
        ModelCheckpoint(dirpath=checkpoints, filename="last", monitor=None, save_top_k=1,
                        enable_version_counter=False, save_on_train_epoch_end=True),
    ]
    if validate and recipe.train.patience > 0:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=recipe.train.patience))
    if on_epoch is not None:
        callbacks.append(EpochReport(on_epoch))
    accelerator = {"auto": "auto", "cpu": "cpu", "cuda": "gpu"}[device]
    return L.Trainer(
        max_epochs=epochs, accelerator=accelerator, devices=devices,
        strategy="ddp" if devices > 1 else "auto", precision=recipe.train.precision, deterministic=True,
        default_root_dir=out, logger=[CSVLogger(out / "logs", name="", version="csv"),
                                      TensorBoardLogger(out / "logs", name="", version="tensorboard")],
        callbacks=callbacks, check_val_every_n_epoch=recipe.train.val_every,
        num_sanity_val_steps=0, enable_progress_bar=False, enable_model_summary=False,
        use_distributed_sampler=False, log_every_n_steps=1,
    )
