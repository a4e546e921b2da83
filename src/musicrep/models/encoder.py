"""The whole network a model folder holds: standardization, a registered backbone, one head per task.

Training builds it from a recipe, export saves its ``state_dict`` (safetensors)
and :func:`encoder_config` (``config.json``), and :func:`MusicEncoder.from_config`
rebuilds it exactly, so training and inference share one definition. The
windowing rule (:func:`window_starts`) is shared too: a track's vector is the
mean of its windows' embeddings, in training's validation and in
``musicrep.load(folder).embed(...)`` alike.

``config.json`` (format version 1)::

    {"format_version": 1, "musicrep_version": "0.1.0",
     "model": {"name": "kim2019", "params": {...}},      # models.MODELS name and its parameters
     "embedding_dim": 128, "window_frames": 216,          # the training crop = the inference window
     "n_mels": 128, "channels": 2,
     "extraction": {...},                                 # extract_config.json of the features it trained on
     "heads": {"<task>": {"kind": "projection", "space": "joint", "space_id": "...", "space_dim": 340,
                          "hidden": 340}
               | {"kind": "classification", "space": "genres", "space_id": "...", "tagset": "genres",
                  "labels": ["rock", ...]}},
     "tasks": [{"name": "<task>", "space": "joint", "objective": "triplet", "weight": 1.0}, ...]}
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from musicrep.errors import InputError
from musicrep.models import build_encoder
from musicrep.models.heads import HEADS
from musicrep.models.layers import Standardize

FORMAT_VERSION = 1


class MusicEncoder(nn.Module):
    """Standardize -> backbone -> embedding; ``heads[task]`` map embeddings into a task's space or labels.

    Parameters
    ----------
    backbone : nn.Module
        A registered architecture (:data:`musicrep.models.MODELS`).
    mean, std : torch.Tensor [shape=(n_mels, channels)]
        Train statistics of the log-mel input.
    heads : dict[str, nn.Module]
        Task name -> head.
    """

    def __init__(self, backbone: nn.Module, mean: torch.Tensor, std: torch.Tensor,
                 heads: dict[str, nn.Module] | None = None) -> None:
        super().__init__()
        self.standardize = Standardize(mean, std)
        self.backbone = backbone
        self.heads = nn.ModuleDict(heads or {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw log-mel ``(batch, channels, n_mels, frames)`` in dB -> embeddings ``(batch, embedding_dim)``."""
        return self.backbone(self.standardize(x))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MusicEncoder:
        """An untrained network shaped as ``config`` says (weights then come from ``load_state_dict``)."""
        try:
            model = config["model"]
            n_mels, channels = int(config["n_mels"]), int(config["channels"])
            backbone = build_encoder(model["name"], **model.get("params", {}))
            heads = {task: build_head(spec, int(config["embedding_dim"])) for task, spec in config["heads"].items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"model config is missing or has a malformed field ({exc})") from exc
        zeros = torch.zeros(n_mels, channels)
        return cls(backbone, zeros, torch.ones(n_mels, channels), heads)


def build_head(spec: dict[str, Any], embedding_dim: int) -> nn.Module:
    """A task head from its ``config.json`` entry."""
    kind = spec.get("kind")
    if kind == "projection":
        return HEADS[kind](embedding_dim, int(spec["space_dim"]), spec.get("hidden"))
    if kind == "classification":
        return HEADS[kind](embedding_dim, len(spec["labels"]))
    raise InputError(f"unknown head kind {kind!r} (known: {', '.join(HEADS)})")


def window_starts(n_frames: int, window: int, hop: int | None = None) -> np.ndarray:
    """Start frames of the windows over ``n_frames`` valid frames.

    Windows of ``window`` frames every ``hop`` frames (default: ``window``,
    back to back); when they do not reach the end, one more window ends on the
    last frame. Shorter input gets one window at 0 (padded by :func:`windows`).
    """
    hop = hop or window
    if n_frames <= window:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, n_frames - window + 1, hop, dtype=np.int64)
    if starts[-1] + window < n_frames:
        starts = np.append(starts, n_frames - window)
    return starts


def windows(array: np.ndarray, starts: np.ndarray, window: int, pad_value: float = -80.0) -> np.ndarray:
    """Cut windows from a stored ``(n_mels, frames, channels)`` array into network input.

    Returns
    -------
    np.ndarray [shape=(n_windows, channels, n_mels, window)], float32
        Frames past the end hold ``pad_value`` (the -80 dB floor).
    """
    n_mels, frames, channels = array.shape
    out = np.full((len(starts), channels, n_mels, window), pad_value, dtype=np.float32)
    for i, start in enumerate(starts):
        piece = np.asarray(array[:, start:start + window, :], dtype=np.float32)
        out[i, :, :, :piece.shape[1]] = piece.transpose(2, 0, 1)
    return out


@torch.no_grad()
def embed_windows(model: MusicEncoder, batch: np.ndarray, *, batch_size: int = 64,
                  device: torch.device | str = "cpu") -> np.ndarray:
    """Embeddings of network-input windows ``(n, channels, n_mels, frames)``, in eval mode, float32 ``(n, dim)``."""
    model.eval()
    out = [model(torch.from_numpy(batch[i:i + batch_size]).to(device)).float().cpu().numpy()
           for i in range(0, len(batch), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.backbone.embedding_dim), dtype=np.float32)
