"""Task heads on top of an embedding: kept in the exported model, because they are what
lets a tag or text query reach audio (projection) and what scores tags (classification)."""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """Embedding -> a target space (L2-normalized), in the manner of CLAP: Linear, ReLU, Linear.

    Parameters
    ----------
    embedding_dim, space_dim : int
    hidden : int, optional
        Hidden size (default: the larger of the two).
    """

    def __init__(self, embedding_dim: int, space_dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or max(embedding_dim, space_dim)
        self.net = nn.Sequential(nn.Linear(embedding_dim, hidden), nn.ReLU(), nn.Linear(hidden, space_dim))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.net(embedding), dim=-1)


class ClassificationHead(nn.Module):
    """Embedding -> one logit per label of a tagset (multi-label: a sigmoid per label)."""

    def __init__(self, embedding_dim: int, n_labels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(embedding_dim, n_labels)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.linear(embedding)


HEADS: dict[str, type[nn.Module]] = {"projection": ProjectionHead, "classification": ClassificationHead}
"""Registry: head kind (as stored in a model folder's ``config.json``) -> class."""
