"""Reusable layers; the architectures in this package are built from them.

Every architecture takes log-mel input shaped ``(batch, channels, n_mels, frames)``
(the stored ``(n_mels, frames, channels)`` arrays, channels moved first) and
returns one embedding per example.
"""

from __future__ import annotations

import torch
from torch import nn


class Standardize(nn.Module):
    """``(x - mean) / std`` per channel and mel band, with the train statistics as buffers.

    The statistics travel with the weights, so the exported model standardizes
    exactly as training did. Bands with zero spread are divided by one.

    Parameters
    ----------
    mean, std : torch.Tensor [shape=(n_mels, channels)]
        As ``stats.npz`` stores them.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.float().T.unsqueeze(-1).clone())  # (channels, n_mels, 1)
        self.register_buffer("std", torch.where(std > 0, std, torch.ones_like(std)).float().T.unsqueeze(-1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ConvBlock(nn.Module):
    """Conv2d -> BatchNorm -> ReLU, then an optional max-pool (``ceil_mode``, so short inputs never vanish).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride : int
    pool : int or tuple of int, optional
        Max-pool size (and stride); ``None`` for no pooling.
    """

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int = 3, stride: int = 1,
                 pool: int | tuple[int, int] | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
                              bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        self.pool = nn.MaxPool2d(pool, ceil_mode=True) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.norm(self.conv(x))))


def scaled(channels: int, width: float) -> int:
    """A layer's channel count at ``width`` times the paper's, at least 1."""
    return max(1, int(round(channels * width)))
