"""The convolutional-recurrent encoder of the SAC 2020 cross-modal experiments.

A. Schindler, S. Gordea, P. Knees. *Unsupervised Cross-Modal Audio
Representation Learning from Unstructured Multilingual Text.* SAC 2020
(arXiv 2003.12265), which used a CRNN in the family of K. Choi, G. Fazekas,
M. Sandler, K. Cho, *Convolutional Recurrent Neural Networks for Music
Classification*, ICASSP 2017: conv blocks that pool frequency away, a GRU
over time, pooling over its outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from musicrep.models.layers import ConvBlock, scaled


class CRNN(nn.Module):
    """Four conv blocks (64, 128, 128, 128 channels; pools (2,2), (4,2), (4,2), (4,1) over
    mels x frames), frequency averaged away, a GRU over the remaining time steps,
    mean and max over its outputs, a linear ``embedding_dim`` output.

    Parameters
    ----------
    channels : int
    width : float
        Multiplies the conv channels and the GRU size.
    embedding_dim : int
    gru_hidden : int
        GRU size per direction at width 1.
    gru_layers : int
    bidirectional : bool
    dropout : float
        Before the output layer.
    """

    def __init__(self, *, channels: int = 2, width: float = 1.0, embedding_dim: int = 128, gru_hidden: int = 128,
                 gru_layers: int = 2, bidirectional: bool = True, dropout: float = 0.3) -> None:
        super().__init__()
        c = [scaled(n, width) for n in (64, 128, 128, 128)]
        self.features = nn.Sequential(
            ConvBlock(channels, c[0], pool=(2, 2)),
            ConvBlock(c[0], c[1], pool=(4, 2)),
            ConvBlock(c[1], c[2], pool=(4, 2)),
            ConvBlock(c[2], c[3], pool=(4, 1)),
        )
        hidden = scaled(gru_hidden, width)
        self.gru = nn.GRU(c[3], hidden, num_layers=gru_layers, batch_first=True, bidirectional=bidirectional)
        directions = 2 if bidirectional else 1
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(2 * directions * hidden, embedding_dim)
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, n_mels, frames)`` -> ``(batch, embedding_dim)``."""
        steps = self.features(x).mean(dim=2).transpose(1, 2)  # (batch, time, conv channels)
        outputs, _ = self.gru(steps)
        pooled = torch.cat([outputs.mean(dim=1), outputs.amax(dim=1)], dim=1)
        return self.out(self.dropout(pooled))
