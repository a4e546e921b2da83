"""The CNN of the CBMI 2019 multi-task experiments, after Kim et al. (2019).

A. Schindler, P. Knees. *Multi-Task Music Representation Learning from
Multi-Label Embeddings.* CBMI 2019 (arXiv 1909.07730); the architecture follows
T. Kim, J. Lee, J. Nam, *Comparison and Analysis of SampleCNN Architectures for
Audio Classification*, IEEE JSTSP 2019, as the original research code gives it.
"""

from __future__ import annotations

import torch
from torch import nn

from musicrep.models.layers import ConvBlock, scaled


class Kim2019(nn.Module):
    """conv 16 (5x5, stride 2); conv 32, 64, 64, 128 (3x3) each with 2x2 max-pooling; conv 128, 256;
    global max pooling; dense 256 + dropout 0.5; a linear ``embedding_dim`` output (128 in the paper).

    Input ``(batch, channels, n_mels, frames)``: random 216-frame crops (about 2.5 s) of the
    stored arrays in the paper; any length works (pooling rounds up, so short inputs never vanish).

    Parameters
    ----------
    channels : int
        Input channels (2: the stereo rule of the original preset).
    width : float
        Multiplies every layer's channel count (1.0: the paper's).
    embedding_dim : int
    dropout : float
    """

    def __init__(self, *, channels: int = 2, width: float = 1.0, embedding_dim: int = 128,
                 dropout: float = 0.5) -> None:
        super().__init__()
        c = [scaled(n, width) for n in (16, 32, 64, 64, 128, 128, 256)]
        self.features = nn.Sequential(
            ConvBlock(channels, c[0], kernel_size=5, stride=2),
            ConvBlock(c[0], c[1], pool=2),
            ConvBlock(c[1], c[2], pool=2),
            ConvBlock(c[2], c[3], pool=2),
            ConvBlock(c[3], c[4], pool=2),
            ConvBlock(c[4], c[5]),
            ConvBlock(c[5], c[6]),
        )
        self.dense = nn.Sequential(nn.Linear(c[6], scaled(256, width)), nn.ReLU(), nn.Dropout(dropout))
        self.out = nn.Linear(scaled(256, width), embedding_dim)
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, n_mels, frames)`` -> ``(batch, embedding_dim)``."""
        pooled = torch.amax(self.features(x), dim=(2, 3))
        return self.out(self.dense(pooled))
