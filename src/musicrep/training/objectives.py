"""Objectives, registered by name; each is attached to one task (one target space).

Every objective takes the batch's embeddings and the batch's targets for its
task (:class:`TaskBatch`) and returns its loss plus a few statistics to log.

- ``triplet``: Euclidean (or cosine) triplet loss with margin, mined online
  inside the batch by relatedness in the task's space (CBMI 2019 / SAC 2020).
- ``offline``: the same loss on the triplets ``mine-triplets`` wrote.
- ``contrastive``: a projection head into the task's space and a symmetric
  InfoNCE loss against the batch's target vectors, with soft targets (CLAP's
  manner, beyond the papers).
- ``classification``: multi-label binary cross-entropy over the space's labels
  through a linear head (the auto-tagging objective of musicnn and peers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from musicrep.models.heads import ClassificationHead, ProjectionHead
from musicrep.training.recipe import TaskRecipe


@dataclass
class TaskBatch:
    """One task's targets for the rows of a batch.

    Parameters
    ----------
    vectors : torch.Tensor [shape=(batch, space_dim)]
        L2-normalized target vectors (zero where missing).
    valid : torch.Tensor [shape=(batch,)], bool
        The track has a vector in the space (tracks in ``missing.csv`` do not).
    labels : torch.Tensor [shape=(batch, n_labels)] or None
        Multi-hot labels of the space (tag spaces), for ``classification`` and ``negatives = "disjoint"``.
    triplets : torch.Tensor [shape=(n, 3)] or None
        ``offline``: (anchor, positive, negative) batch positions.
    tracks : torch.Tensor [shape=(batch,)] or None
        Which track each row is (a batch may hold two crops of one track: never its own positive).
    artists : torch.Tensor [shape=(batch,)] or None
        Artist codes, for ``exclude_same_artist``.
    """

    vectors: torch.Tensor
    valid: torch.Tensor
    labels: torch.Tensor | None = None
    triplets: torch.Tensor | None = None
    tracks: torch.Tensor | None = None
    artists: torch.Tensor | None = None


class Objective(nn.Module):
    """Base: ``forward(embeddings, targets) -> (loss, stats)``.

    Objectives with a head set ``self.head`` (a submodule; read it with :func:`head_of`): it is exported
    with the model.
    """

    def head_config(self) -> dict | None:
        """The head's entry of the model folder's ``config.json`` (without the space fields)."""
        return None


def head_of(objective: Objective) -> nn.Module | None:
    """The objective's head, or None (a class attribute would shadow the registered submodule)."""
    return objective._modules.get("head")


def pairwise_distances(embeddings: torch.Tensor, distance: str) -> torch.Tensor:
    """Euclidean distances (the original) or cosine distances ``1 - cos`` between all rows."""
    if distance == "cosine":
        unit = functional.normalize(embeddings, dim=1)
        return 1.0 - unit @ unit.T
    squared = (embeddings.unsqueeze(1) - embeddings.unsqueeze(0)).pow(2).sum(-1)
    return torch.sqrt(squared.clamp_min(1e-12))


def relation_masks(targets: TaskBatch, pos: float, neg: float, disjoint: bool, *,
                   other_artists: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive and negative pair masks of a batch by relatedness in the space.

    Positive: cosine >= ``pos``, another track; negative: cosine < ``neg``, and with
    ``disjoint`` also no shared label; with ``other_artists`` both only between
    different artists. Rows without a vector take part in neither.
    """
    related = targets.vectors @ targets.vectors.T
    both = targets.valid.unsqueeze(0) & targets.valid.unsqueeze(1)
    if targets.tracks is not None:
        same_track = targets.tracks.unsqueeze(0) == targets.tracks.unsqueeze(1)
    else:
        same_track = torch.eye(len(related), dtype=torch.bool, device=related.device)
    if other_artists and targets.artists is not None:
        both &= targets.artists.unsqueeze(0) != targets.artists.unsqueeze(1)
    positive = (related >= pos) & both & ~same_track
    negative = (related < neg) & both & ~same_track
    if disjoint and targets.labels is not None:
        negative &= (targets.labels @ targets.labels.T) == 0
    return positive, negative


def _negatives_sharing_a_label(targets: TaskBatch, negative: torch.Tensor) -> float:
    """Share of negative pairs that share a label of the space (how often thresholds split near-duplicates)."""
    if targets.labels is None or not negative.any():
        return float("nan")
    shared = (targets.labels @ targets.labels.T) > 0
    return float((shared & negative).sum() / negative.sum())


class TripletObjective(Objective):
    """Triplet loss ``max(0, d(a, p) - d(a, n) + margin)`` with online batch-hard or semi-hard mining.

    Batch-hard: the farthest positive and the closest negative of each anchor
    (Hermans et al. 2017). Semi-hard: the closest negative farther than the
    positive (FaceNet), else the closest one. Anchors without a positive or a
    negative in the batch do not count; their share is logged.
    """

    def __init__(self, task: TaskRecipe) -> None:
        super().__init__()
        self.task = task

    def forward(self, embeddings: torch.Tensor, targets: TaskBatch) -> tuple[torch.Tensor, dict[str, float]]:
        positive, negative = relation_masks(targets, self.task.pos, self.task.neg, self.task.negatives == "disjoint",
                                            other_artists=self.task.exclude_same_artist)
        distances = pairwise_distances(embeddings, self.task.distance)
        hardest_positive = torch.where(positive, distances, torch.full_like(distances, -math.inf)).amax(dim=1)
        if self.task.mining == "semi-hard":
            beyond = negative & (distances > hardest_positive.unsqueeze(1))
            pool = torch.where(beyond.any(dim=1, keepdim=True), beyond, negative)
        else:
            pool = negative
        closest_negative = torch.where(pool, distances, torch.full_like(distances, math.inf)).amin(dim=1)
        usable = positive.any(dim=1) & negative.any(dim=1)
        stats = {"valid_triplets": float(usable.float().mean()),
                 "label_sharing_negatives": _negatives_sharing_a_label(targets, negative)}
        if not usable.any():
            return embeddings.sum() * 0.0, stats
        losses = functional.relu(hardest_positive[usable] - closest_negative[usable] + self.task.margin)
        return losses.mean(), stats


class OfflineTripletObjective(Objective):
    """The triplet loss on the (anchor, positive, negative) rows ``mine-triplets`` chose, as they are in the batch."""

    def __init__(self, task: TaskRecipe) -> None:
        super().__init__()
        self.task = task

    def forward(self, embeddings: torch.Tensor, targets: TaskBatch) -> tuple[torch.Tensor, dict[str, float]]:
        if targets.triplets is None or len(targets.triplets) == 0:
            return embeddings.sum() * 0.0, {"valid_triplets": 0.0}
        distances = pairwise_distances(embeddings, self.task.distance)
        a, p, n = targets.triplets.T
        losses = functional.relu(distances[a, p] - distances[a, n] + self.task.margin)
        return losses.mean(), {"valid_triplets": float(len(targets.triplets)) / max(1, len(embeddings))}


class ContrastiveObjective(Objective):
    """Symmetric InfoNCE between projected audio and the batch's target vectors, with soft targets.

    Tracks whose target vectors are (near-)identical (cosine >= ``pos``) are not
    negatives of each other: each row's probability mass is spread over all of
    them. The temperature is learnable (its log is a parameter with its own
    learning rate) or fixed.
    """

    def __init__(self, task: TaskRecipe, embedding_dim: int, space_dim: int) -> None:
        super().__init__()
        self.task = task
        self.head = ProjectionHead(embedding_dim, space_dim)
        self.space_dim = space_dim
        log_temperature = torch.tensor(math.log(task.temperature))
        if task.learn_temperature:
            self.log_temperature = nn.Parameter(log_temperature)
        else:
            self.register_buffer("log_temperature", log_temperature)

    def head_config(self) -> dict:
        return {"kind": "projection", "space_dim": self.space_dim, "hidden": max(self.head.net[0].in_features,
                                                                                 self.space_dim)}

    def forward(self, embeddings: torch.Tensor, targets: TaskBatch) -> tuple[torch.Tensor, dict[str, float]]:
        valid = targets.valid
        if valid.sum() < 2:
            return embeddings.sum() * 0.0, {"temperature": float(self.log_temperature.detach().exp())}
        audio = self.head(embeddings[valid])
        text = targets.vectors[valid]
        logits = audio @ text.T / self.log_temperature.exp().clamp(min=1e-3)
        same = ((text @ text.T) >= self.task.pos).float()
        soft = same / same.sum(dim=1, keepdim=True)
        loss = 0.5 * (-(soft * logits.log_softmax(dim=1)).sum(dim=1).mean()
                      - (soft.T * logits.T.log_softmax(dim=1)).sum(dim=1).mean())
        return loss, {"temperature": float(self.log_temperature.detach().exp())}


class ClassificationObjective(Objective):
    """Multi-label binary cross-entropy over the space's labels through a linear head."""

    def __init__(self, task: TaskRecipe, embedding_dim: int, labels: list[str]) -> None:
        super().__init__()
        self.task = task
        self.labels = list(labels)
        self.head = ClassificationHead(embedding_dim, len(labels))

    def head_config(self) -> dict:
        return {"kind": "classification", "labels": self.labels}

    def forward(self, embeddings: torch.Tensor, targets: TaskBatch) -> tuple[torch.Tensor, dict[str, float]]:
        if targets.labels is None or not targets.valid.any():
            return embeddings.sum() * 0.0, {}
        logits = self.head(embeddings[targets.valid])
        return functional.binary_cross_entropy_with_logits(logits, targets.labels[targets.valid]), {}


OBJECTIVES: dict[str, type[Objective]] = {
    "triplet": TripletObjective,
    "offline": OfflineTripletObjective,
    "contrastive": ContrastiveObjective,
    "classification": ClassificationObjective,
}
"""Registry: objective name (as in recipes) -> class."""


def build_objective(task: TaskRecipe, *, embedding_dim: int, space_dim: int, labels: list[str]) -> Objective:
    """The objective of ``task``, with its head sized for the space."""
    cls = OBJECTIVES[task.objective]
    if cls is ContrastiveObjective:
        return cls(task, embedding_dim, space_dim)
    if cls is ClassificationObjective:
        return cls(task, embedding_dim, labels)
    return cls(task)
