"""The HEAR 2021 API (https://hearbenchmark.com/hear-api.html) over an exported model folder.

``musicrep.hear`` is the module path the HEAR evaluation kit imports::

    model = musicrep.hear.load_model("runs/demo/model")
    embeddings, timestamps = musicrep.hear.get_timestamp_embeddings(audio, model)
    scene = musicrep.hear.get_scene_embeddings(audio, model)

Audio is mono float32 at ``model.sample_rate`` (the model's extraction rate), shaped
``(n_sounds, n_samples)``; it is laid out in the model's channels by its rule (mono
duplicated to stereo, or kept mono). Frames are the log-mel of the whole sound (the
``segment="full"`` rule, dB relative to the sound's own maximum).

- Timestamp embeddings: one window of ``window_frames`` frames centered on each timestamp,
  every ``floor(50 ms / hop)`` frames from 0 to the last frame (46.4 ms at 22,050 Hz, hop 256),
  the frames beyond either end of the sound at the -80 dB floor.
- Scene embeddings: the mean over the windows of the whole sound, as
  :meth:`musicrep.inference.hub.Encoder.embed` with ``segment="full"``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from musicrep.errors import InputError
from musicrep.features.audio import to_channels
from musicrep.features.frontend import mel_front_end
from musicrep.inference.hub import FLOOR_DB, Encoder, forward, load
from musicrep.models.encoder import window_starts, windows

HEAR_SAMPLE_RATES = (16000, 22050, 44100, 48000)
MAX_TIMESTAMP_GAP = 0.05
"""Seconds: the HEAR rules ask for timestamp embeddings at most 50 ms apart."""
_CHUNK_WINDOWS = 256  # timestamp windows built at once (bounds memory on long sounds)


class HearModel(nn.Module):
    """An exported model as the HEAR API wants it: a :class:`torch.nn.Module` with integer sizes.

    Move it with ``.to(device)``; audio may live on any device, embeddings come back on the audio's.

    Attributes
    ----------
    sample_rate : int
    scene_embedding_size, timestamp_embedding_size : int
    """

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        if encoder.sample_rate not in HEAR_SAMPLE_RATES:
            raise InputError(f"{encoder.path}: the model's sample rate {encoder.sample_rate} Hz is not one HEAR "
                             f"allows ({', '.join(map(str, HEAR_SAMPLE_RATES))})")
        self.network = encoder.model
        self.extraction = encoder.extraction
        self.model_id = encoder.model_id
        self.sample_rate = int(encoder.sample_rate)
        self.window_frames = int(encoder.window_frames)
        self.scene_embedding_size = int(encoder.embedding_dim)
        self.timestamp_embedding_size = int(encoder.embedding_dim)
        self.eval()

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Scene embeddings (see :func:`get_scene_embeddings`)."""
        return get_scene_embeddings(audio, self)

    def log_mel(self, y: np.ndarray) -> np.ndarray:
        """``(n_mels, frames, channels)`` dB of one mono sound in the model's channel layout."""
        db, _ = mel_front_end(self.extraction.mel).log_mel(to_channels(y, self.extraction.mono))
        return db

    def embed(self, batch: np.ndarray, batch_size: int = 64) -> np.ndarray:
        return forward(self.network, batch, batch_size=batch_size, device=self.device)


def load_model(model_file_path: str = "") -> HearModel:
    """The model of an exported folder (or of its ``config.json`` / ``model.safetensors``), on the CPU.

    musicrep ships no weights and downloads nothing: the path is required.

    Raises
    ------
    InputError
        Empty path, an unreadable model folder, or a sample rate HEAR does not allow.
    """
    if not str(model_file_path).strip():
        raise InputError("load_model needs model_file_path: the folder of a model exported by musicrep "
                         "(model.safetensors + config.json); musicrep ships no weights and downloads nothing")
    return HearModel(load(os.fspath(model_file_path)))


def _checked_audio(audio: torch.Tensor, model: HearModel) -> np.ndarray:
    if not isinstance(model, HearModel):
        raise InputError(f"model must come from musicrep.hear.load_model (got {type(model).__name__})")
    if not isinstance(audio, torch.Tensor) or audio.ndim != 2:
        shape = tuple(audio.shape) if hasattr(audio, "shape") else type(audio).__name__
        raise InputError(f"audio must be a tensor (n_sounds, n_samples) at {model.sample_rate} Hz (got {shape})")
    if not audio.is_floating_point():
        raise InputError(f"audio must hold float samples (got {audio.dtype})")
    if audio.shape[1] == 0:
        raise InputError("audio has no samples")
    y = audio.detach().to("cpu", torch.float32).numpy()
    if not np.isfinite(y).all():
        raise InputError("audio holds NaN or infinite samples")
    return y


def timestamp_frames(n_samples: int, model: HearModel) -> np.ndarray:
    """The frame of each timestamp: every ``floor(50 ms / hop)`` frames (at least 1), from 0 to the last frame."""
    mel = model.extraction.mel
    n_frames = 1 + n_samples // mel.hop_length
    step = max(1, int(MAX_TIMESTAMP_GAP * mel.sr // mel.hop_length))
    return np.arange(0, n_frames, step, dtype=np.int64)


def _centered_windows(db: np.ndarray, frames: np.ndarray, window: int) -> Iterator[np.ndarray]:
    """Network input of a ``window``-frame window centered on each frame, in chunks; floor beyond both ends."""
    half = window // 2
    padded = np.pad(db, ((0, 0), (half, window - half), (0, 0)), constant_values=FLOOR_DB)
    for first in range(0, len(frames), _CHUNK_WINDOWS):
        yield windows(padded, frames[first:first + _CHUNK_WINDOWS], window, FLOOR_DB)


@torch.no_grad()
def get_timestamp_embeddings(audio: torch.Tensor, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """One embedding per timestamp of each sound.

    Parameters
    ----------
    audio : torch.Tensor [shape=(n_sounds, n_samples)], float
        Mono, at ``model.sample_rate``.
    model : HearModel

    Returns
    -------
    embeddings : torch.Tensor [shape=(n_sounds, n_timestamps, timestamp_embedding_size)], float32
    timestamps : torch.Tensor [shape=(n_sounds, n_timestamps)], float32
        Milliseconds: evenly spaced, at most 50 ms apart, the same for every sound.
    """
    y = _checked_audio(audio, model)
    frames = timestamp_frames(y.shape[1], model)
    out = np.empty((len(y), len(frames), model.timestamp_embedding_size), dtype=np.float32)
    for i, sound in enumerate(y):
        db = model.log_mel(sound)
        first = 0
        for batch in _centered_windows(db, frames, model.window_frames):
            out[i, first:first + len(batch)] = model.embed(batch)
            first += len(batch)
    mel = model.extraction.mel
    times = (frames * (1000.0 * mel.hop_length / mel.sr)).astype(np.float32)
    timestamps = np.broadcast_to(times, (len(y), len(frames))).copy()
    return torch.from_numpy(out).to(audio.device), torch.from_numpy(timestamps).to(audio.device)


@torch.no_grad()
def get_scene_embeddings(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    """One embedding per sound: the mean over the windows of the whole sound (short sounds: one floor-padded window).

    Returns
    -------
    torch.Tensor [shape=(n_sounds, scene_embedding_size)], float32
    """
    y = _checked_audio(audio, model)
    window = model.window_frames
    batches = []
    for sound in y:
        db = model.log_mel(sound)
        batches.append(windows(db, window_starts(db.shape[1], window), window, FLOOR_DB))
    vectors = model.embed(np.concatenate(batches))
    scene = vectors.reshape(len(y), -1, vectors.shape[1]).mean(axis=1).astype(np.float32)
    return torch.from_numpy(scene).to(audio.device)
