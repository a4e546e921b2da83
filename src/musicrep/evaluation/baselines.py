"""Baselines a learned representation must beat, computed from what a run already holds.

``handcrafted``
    MFCC and spectral statistics, the mean and the standard deviation of each
    frame-level feature over a track's *valid* frames (padding never counts):
    what SAC 2020 compared with. Computed from the stored log-mel (no second
    decode): the channels are averaged in power, the MFCC are the orthonormal
    DCT-II of the dB mel spectrum (librosa's ``mfcc(S=...)``), and the spectral
    shape (centroid, bandwidth, 85% roll-off, flatness, loudness, contrast in
    six mel sub-bands) is taken over the mel bands' centre frequencies. See
    :func:`handcrafted_names`. Standardize the vectors with the train split's
    statistics (:func:`fit_standardizer`) before cosine retrieval: centroids in
    Hz would otherwise drown the MFCC.
``untrained``
    The trained model's network with the random weights it started from: the
    architecture and seed of its recipe (:func:`untrained_encoder`), with the
    trained model's input standardization, so both read the same scaled input.
    What the architecture gives before any learning.
``random``
    Seeded Gaussian vectors of the model's dimension (:func:`random_vectors`):
    the chance level of every metric.
``oracle``
    The joint tag-space vectors themselves (for retrieval only): an upper bound
    that no audio model reaches (see :mod:`musicrep.evaluation.evaluate`).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.fft
import torch

from musicrep.errors import InputError
from musicrep.features.frontend import hz_to_mel, mel_to_hz
from musicrep.features.merge import FeatureStore
from musicrep.inference.hub import Encoder, load
from musicrep.models import build_encoder
from musicrep.models.encoder import MusicEncoder

logger = logging.getLogger(__name__)

N_MFCC = 20
CONTRAST_BANDS = 6
ROLLOFF = 0.85
CONTRAST_SHARE = 0.2
"""Share of a sub-band's mel bins averaged for its peak and for its valley (contrast = peak - valley, dB)."""
POWER_FLOOR = 1e-10
"""-100 dB: below the stored -80 dB floor, keeps logarithms finite."""

ProgressFn = Callable[[int, int], None]


def handcrafted_names(n_mfcc: int = N_MFCC, n_bands: int = CONTRAST_BANDS) -> list[str]:
    """Names of the handcrafted vector's dimensions: each frame-level feature's ``mean_*`` then ``std_*``."""
    frame = ([f"mfcc{i}" for i in range(n_mfcc)] + [f"delta_mfcc{i}" for i in range(n_mfcc)]
             + ["centroid_hz", "bandwidth_hz", "rolloff_hz", "flatness", "loudness_db"]
             + [f"contrast{b}_db" for b in range(n_bands)])
    return [f"mean_{name}" for name in frame] + [f"std_{name}" for name in frame]


def mel_frequencies(n_mels: int, *, sr: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Centre frequencies (Hz) of the mel bands, as the front end's filterbank places them (Slaney scale)."""
    top = fmax if fmax is not None else sr / 2.0
    return mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(top), n_mels + 2))[1:-1]


def frame_features(log_mel: np.ndarray, frequencies: np.ndarray, *, n_mfcc: int = N_MFCC,
                   n_bands: int = CONTRAST_BANDS) -> np.ndarray:
    """Frame-level MFCC and spectral shape of a stored log-mel.

    Parameters
    ----------
    log_mel : np.ndarray [shape=(n_mels, frames, channels)]
        dB, as the feature store holds it (only the frames to describe).
    frequencies : np.ndarray [shape=(n_mels,)]
        The bands' centre frequencies (:func:`mel_frequencies`).

    Returns
    -------
    np.ndarray [shape=(n_features, frames)], float64
        Rows in :func:`handcrafted_names` order (without the mean/std prefix).
    """
    db = np.asarray(log_mel, dtype=np.float64)
    power = np.maximum(np.mean(10.0 ** (db / 10.0), axis=2), POWER_FLOOR)  # channels mixed in power
    mono_db = 10.0 * np.log10(power)
    mfcc = scipy.fft.dct(mono_db, type=2, norm="ortho", axis=0)[:n_mfcc]
    delta = np.gradient(mfcc, axis=1) if mfcc.shape[1] > 1 else np.zeros_like(mfcc)
    total = power.sum(axis=0)
    weights = power / total
    centroid = frequencies @ weights
    bandwidth = np.sqrt(np.maximum(((frequencies[:, None] - centroid) ** 2 * weights).sum(axis=0), 0.0))
    reached = np.cumsum(power, axis=0) >= ROLLOFF * total
    rolloff = frequencies[np.argmax(reached, axis=0)]
    flatness = np.exp(np.log(power).mean(axis=0)) / power.mean(axis=0)
    loudness = 10.0 * np.log10(power.mean(axis=0))
    contrast = [_contrast(band) for band in np.array_split(mono_db, n_bands, axis=0)]
    return np.vstack([mfcc, delta, centroid, bandwidth, rolloff, flatness, loudness, *contrast])


def _contrast(band_db: np.ndarray) -> np.ndarray:
    """Peak minus valley (dB) of one sub-band per frame: means of its loudest and quietest bins."""
    ordered = np.sort(band_db, axis=0)
    count = max(1, int(round(CONTRAST_SHARE * len(ordered))))
    return ordered[-count:].mean(axis=0) - ordered[:count].mean(axis=0)


def handcrafted_vector(log_mel: np.ndarray, valid_frames: int, frequencies: np.ndarray) -> np.ndarray:
    """One track's handcrafted vector: mean and std of :func:`frame_features` over its valid frames.

    Parameters
    ----------
    log_mel : np.ndarray [shape=(n_mels, frames, channels)]
        A stored row, padding included.
    valid_frames : int
        Frames of real audio; the rest is padding and is not looked at (at least one frame is).
    frequencies : np.ndarray [shape=(n_mels,)]

    Returns
    -------
    np.ndarray [shape=(2 * n_features,)], float32
    """
    valid = max(1, min(int(valid_frames), log_mel.shape[1]))
    features = frame_features(log_mel[:, :valid], frequencies)
    return np.concatenate([features.mean(axis=1), features.std(axis=1)]).astype(np.float32)


def handcrafted_store(store: FeatureStore, *, on_progress: ProgressFn | None = None
                      ) -> tuple[np.ndarray, list[str]]:
    """The handcrafted vector of every row of a merged store (raw dB), in the store's order.

    Returns
    -------
    vectors : np.ndarray [shape=(len(store), 2 * n_features)], float32
    ids : list[str]

    Raises
    ------
    InputError
        A normalized store (the statistics need dB), or a row with NaN or infinite values (names it).
    """
    if store.params.get("normalized"):
        raise InputError(f"{store.path}: holds normalized features; the handcrafted baseline needs raw dB "
                         "(merge without --normalize)")
    extract = store.params.get("extract_config") or {}
    n_mels = store.features.shape[1]
    frequencies = mel_frequencies(n_mels, sr=int(extract.get("sr", 22050)), fmin=float(extract.get("fmin") or 0.0),
                                  fmax=extract.get("fmax"))
    ids = store.index.track_id.tolist()
    vectors = np.zeros((len(ids), len(handcrafted_names())), dtype=np.float32)
    for row, valid in enumerate(store.index.valid_frames.tolist()):
        array = np.asarray(store.features[row])
        if not np.isfinite(array).all():
            raise InputError(f"{store.path}/features.npy: non-finite values in row {row} (track {ids[row]})")
        vectors[row] = handcrafted_vector(array, int(valid), frequencies)
        if on_progress is not None:
            on_progress(row + 1, len(ids))
    return vectors, ids


def fit_standardizer(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale per dimension of the train vectors (scale 1 where a dimension does not vary)."""
    train = np.asarray(train, dtype=np.float64)
    mean = train.mean(axis=0) if len(train) else np.zeros(train.shape[1])
    std = train.std(axis=0) if len(train) else np.ones(train.shape[1])
    return mean, np.where(std > 0, std, 1.0)


def untrained_encoder(model_dir: str | Path, *, seed: int | None = None, device: str = "cpu") -> Encoder:
    """The network of a model folder with the random weights training started from.

    The backbone is built as training builds it (the recipe's architecture after
    ``torch.manual_seed(seed)``, in a forked random state so nothing else is
    disturbed); the input standardization is copied from the trained model.

    Parameters
    ----------
    model_dir : path-like
        An exported model folder.
    seed : int, optional
        Default: the recipe's ``train.seed`` recorded in ``config.json`` (0 when absent).

    Returns
    -------
    Encoder
        Without heads; ``model_id`` says ``untrained-<seed>-`` and the trained model's id.
    """
    with torch.random.fork_rng(devices=[]):  # loading builds a network too: neither touches the caller's state
        trained = load(model_dir, device=device)
        config = trained.config
        if seed is None:
            seed = int((config.get("recipe") or {}).get("train", {}).get("seed", 0))
        torch.manual_seed(seed)
        backbone = build_encoder(config["model"]["name"], **config["model"].get("params", {}))
    shape = (int(config["n_mels"]), int(config["channels"]))
    network = MusicEncoder(backbone, torch.zeros(shape), torch.ones(shape), {})
    network.standardize.load_state_dict(trained.model.standardize.state_dict())
    network.to(trained.device).eval()
    if trained.device.type == "cpu":  # as hub.load lays out weights: channels-last runs faster with oneDNN
        network.to(memory_format=torch.channels_last)
    return Encoder(config={**config, "heads": {}}, model=network, model_id=f"untrained-{seed}-{trained.model_id}",
                   device=trained.device, path=trained.path)


def random_vectors(n: int, dim: int, *, seed: int, stream: str) -> np.ndarray:
    """``n`` standard normal vectors of ``dim`` dimensions, float32, from ``(seed, stream)``.

    ``stream`` (e.g. the split's name) gives each split its own reproducible vectors.
    """
    rng = np.random.default_rng([seed, zlib.crc32(stream.encode("utf-8"))])
    return rng.standard_normal((n, dim)).astype(np.float32)
