"""The Lightning module: one shared encoder, one objective (and head) per task, validation by graded nDCG@10.

Lightning owns the loop: checkpoints, resume, early stopping, DDP, mixed
precision and logging; this module only says what a step computes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader

from musicrep.evaluation.retrieval import ndcg_at_k
from musicrep.models.encoder import MusicEncoder
from musicrep.training.data import (
    CropDataset,
    PartnerBatchSampler,
    TaskTargets,
    TripletBatchSampler,
    WindowDataset,
    collate_windows,
    mixup,
)
from musicrep.training.objectives import Objective, TaskBatch
from musicrep.training.recipe import Recipe


@dataclass
class Validation:
    """What validation compares the embeddings of the val tracks with."""

    relevance: np.ndarray
    """The first task's target vectors of the val tracks (rows with a vector only)."""
    rows: np.ndarray
    """Val store rows of those tracks."""
    artists: np.ndarray
    ceiling: float
    """nDCG@10 of the target vectors themselves used as embeddings."""


class EncoderModule(L.LightningModule):
    """Multi-task training of a :class:`~musicrep.models.encoder.MusicEncoder`.

    Parameters
    ----------
    recipe : Recipe
    encoder : MusicEncoder
        Its ``heads`` are the objectives' heads (shared modules), so the exported model keeps them.
    objectives : dict[str, Objective]
        Task name -> objective, in recipe order.
    targets : dict[str, TaskTargets]
        Task name -> targets aligned to the train store's rows.
    triplets : dict[str, dict[int, list[tuple[int, int]]]]
        ``offline`` tasks: anchor row -> (positive row, negative row) pairs.
    validation : Validation, optional
    artists : np.ndarray [shape=(train rows,)]
        Artist code of each train row (:func:`~musicrep.training.data.artist_codes`).
    """

    def __init__(self, recipe: Recipe, encoder: MusicEncoder, objectives: dict[str, Objective],
                 targets: dict[str, TaskTargets], triplets: dict[str, dict[int, list[tuple[int, int]]]],
                 validation: Validation | None, artists: np.ndarray) -> None:
        super().__init__()
        self.recipe = recipe
        self.encoder = encoder
        self.objectives = nn.ModuleDict(objectives)
        self.weights = {t.name: t.weight for t in recipe.tasks}
        self.triplets = triplets
        self.validation = validation
        for name, target in targets.items():
            self.register_buffer(f"vectors_{name}", torch.from_numpy(target.vectors), persistent=False)
            self.register_buffer(f"valid_{name}", torch.from_numpy(target.valid), persistent=False)
            if target.labels is not None:
                self.register_buffer(f"labels_{name}", torch.from_numpy(target.labels), persistent=False)
        self.register_buffer("artist_codes", torch.from_numpy(artists), persistent=False)
        self._val_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._mixup = torch.Generator().manual_seed(recipe.train.seed)
        self._clock: float | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def task_batch(self, name: str, rows: torch.Tensor) -> TaskBatch:
        """The targets of task ``name`` for the batch's store rows."""
        labels = getattr(self, f"labels_{name}", None)
        batch = TaskBatch(vectors=getattr(self, f"vectors_{name}")[rows], valid=getattr(self, f"valid_{name}")[rows],
                          labels=None if labels is None else labels[rows], tracks=rows,
                          artists=self.artist_codes[rows])
        if name in self.triplets:
            batch.triplets = _batch_triplets(self.triplets[name], rows.tolist(), rows.device)
        return batch

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> torch.Tensor:
        x, rows = batch
        x = mixup(x, self.recipe.augment.mixup, self._mixup) if self.recipe.augment.mixup else x
        embeddings = self.encoder(x)
        total = embeddings.new_zeros(())
        for name, objective in self.objectives.items():
            loss, stats = objective(embeddings, self.task_batch(name, rows))
            total = total + self.weights[name] * loss
            self.log(f"loss/{name}", loss, on_step=False, on_epoch=True, prog_bar=len(self.objectives) > 1,
                     batch_size=len(x), sync_dist=True)
            for key, value in stats.items():
                if value == value:  # NaN: not measurable in this batch
                    self.log(f"{key}/{name}", value, on_step=False, on_epoch=True, batch_size=len(x), sync_dist=True)
        self.log("loss", total, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(x), sync_dist=True)
        return total

    def on_train_batch_end(self, outputs, batch, batch_index: int) -> None:
        now = time.perf_counter()
        if self._clock is not None:
            self.log("samples_per_s", len(batch[0]) / max(now - self._clock, 1e-9), on_step=False, on_epoch=True,
                     prog_bar=True, batch_size=len(batch[0]))
        self._clock = now

    def on_train_epoch_start(self) -> None:
        self._clock = None

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch_index: int) -> None:
        windows, owners, rows = batch
        embeddings = self.encoder(windows).float()
        sums = torch.zeros(len(rows), embeddings.shape[1], device=embeddings.device).index_add_(0, owners, embeddings)
        counts = torch.bincount(owners, minlength=len(rows)).clamp_min(1).unsqueeze(1)
        self._val_outputs.append((rows.cpu(), (sums / counts).cpu()))

    def on_validation_epoch_end(self) -> None:
        if not self._val_outputs or self.validation is None:
            return
        rows = torch.cat([r for r, _ in self._val_outputs]).numpy()
        vectors = torch.cat([v for _, v in self._val_outputs]).numpy()
        self._val_outputs.clear()
        position = {int(r): i for i, r in enumerate(rows)}
        order = [position[int(r)] for r in self.validation.rows]  # every val track is embedded each time
        result = ndcg_at_k(vectors[order], self.validation.relevance, k=10, artists=self.validation.artists,
                           exclude_same_artist=True)
        self.log("val/ndcg@10", float(result.value), prog_bar=True, sync_dist=False)
        self.log("val/ndcg@10_ceiling", self.validation.ceiling, sync_dist=False)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        train = self.recipe.train
        temperature = [p for name, p in self.named_parameters() if name.endswith("log_temperature")]
        rest = [p for name, p in self.named_parameters() if not name.endswith("log_temperature")]
        groups = [{"params": rest}]
        if temperature:
            rates = [t.temperature_lr or train.lr for t in self.recipe.tasks if t.objective == "contrastive"]
            groups.append({"params": temperature, "lr": rates[0], "weight_decay": 0.0})
        return torch.optim.Adam(groups, lr=train.lr, weight_decay=train.weight_decay)


def _batch_triplets(by_anchor: dict[int, list[tuple[int, int]]], rows: list[int], device: torch.device
                    ) -> torch.Tensor:
    """(anchor, positive, negative) batch positions of the mined triplets whose three tracks are all in the batch."""
    position: dict[int, int] = {}
    for i, row in enumerate(rows):
        position.setdefault(row, i)
    found = [(position[a], position[p], position[n]) for a in position for p, n in by_anchor.get(a, ())
             if p in position and n in position]
    return torch.tensor(found, dtype=torch.long, device=device).reshape(-1, 3)


class TrainingData(L.LightningDataModule):
    """Train loader (anchors with partners, or triplet batches; sharded per DDP rank) and val loader
    (every window of each track).

    Parameters
    ----------
    train_dir, val_dir : Path
        Merged stores.
    recipe : Recipe
    partners : list of np.ndarray
        Per train row, its positives in the first task's space (:func:`~musicrep.training.data.positive_partners`).
    triplet_rows : np.ndarray [shape=(n, 3)], optional
        When the first task is ``offline``: batches of its triplets instead.
    """

    def __init__(self, train_dir: Path, val_dir: Path, recipe: Recipe, *, partners: list[np.ndarray],
                 triplet_rows: np.ndarray | None) -> None:
        super().__init__()
        self.train_dir, self.val_dir, self.recipe = train_dir, val_dir, recipe
        self.partners, self.triplet_rows = partners, triplet_rows

    def _loader(self, dataset, **options) -> DataLoader:
        requested = self.recipe.train.num_workers
        # -1: one loader process, leaving the other core of a 2-core machine to the network
        workers = requested if requested >= 0 else (1 if (os.cpu_count() or 1) > 1 else 0)
        return DataLoader(dataset, num_workers=workers, persistent_workers=workers > 0, **options)

    def train_dataloader(self) -> DataLoader:
        settings = self.recipe.train
        rank, world = self.trainer.global_rank, self.trainer.world_size
        if self.triplet_rows is not None:
            sampler = TripletBatchSampler(self.triplet_rows, n_rows=len(self.partners),
                                          batch_size=settings.batch_size, seed=settings.seed, rank=rank,
                                          world_size=world)
        else:
            sampler = PartnerBatchSampler(self.partners, batch_size=settings.batch_size,
                                          group_size=settings.group_size, seed=settings.seed, rank=rank,
                                          world_size=world)
        return self._loader(CropDataset(self.train_dir, settings.crop_frames, self.recipe.augment),
                            batch_sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader(WindowDataset(self.val_dir, self.recipe.train.crop_frames), batch_size=16,
                            shuffle=False, collate_fn=collate_windows)


class EpochReport(Callback):
    """Calls ``on_epoch(epoch, metrics)`` once per epoch on the main process, after validation."""

    def __init__(self, on_epoch: Callable[[int, dict[str, float]], None]) -> None:
        self.on_epoch = on_epoch

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.on_epoch(trainer.current_epoch + 1, {k: float(v) for k, v in trainer.callback_metrics.items()})
