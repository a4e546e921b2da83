"""Model folders: export and load, and :class:`Encoder`, the user-facing embedder (numpy in, numpy out).

A model folder holds three files::

    model.safetensors   the MusicEncoder's state_dict (contiguous CPU tensors)
    config.json         architecture, window, heads, tasks and every preprocessing parameter
                        (schema: musicrep.models.encoder), with musicrep_version and model_id
                        (SHA-256 of model.safetensors)
    MODEL_CARD.md       what the model is, how it was trained, how to use it

``load(folder).embed(path)`` decodes audio with the model's own extraction
parameters and averages the embeddings of its windows, exactly as the training
pipeline's store rows are windowed (:func:`musicrep.models.encoder.window_starts`).
Nothing here imports training code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import soxr
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from musicrep import __version__
from musicrep.errors import InputError, MusicrepError, UsageError
from musicrep.features.audio import probe, to_channels
from musicrep.features.audio import segment as cut_segment
from musicrep.features.extract import ExtractConfig, extract_with_length, stored_layout
from musicrep.features.frontend import TOP_DB, MelConfig, mel_front_end
from musicrep.fileio import atomic_path, ensure_dir, write_json
from musicrep.models.encoder import FORMAT_VERSION, MusicEncoder, embed_windows, window_starts, windows

logger = logging.getLogger(__name__)

WEIGHTS_FILE, CONFIG_FILE, CARD_FILE = "model.safetensors", "config.json", "MODEL_CARD.md"
REQUIRED_KEYS = ("model", "embedding_dim", "window_frames", "n_mels", "channels", "extraction", "heads")
FRONT_END_KEYS = ("sr", "n_fft", "hop_length", "n_mels", "fmin", "fmax", "mono")
"""Extraction parameters that change what a log-mel frame means: a store made otherwise cannot be embedded."""
SEGMENTS = ("model", "full")
FLOOR_DB = -TOP_DB


# ----------------------------------------------------------------------------------------------- export


def export_model(model: MusicEncoder, config: dict[str, Any], folder: str | os.PathLike[str], *,
                 card: str) -> Path:
    """Write a model folder: weights, ``config.json`` and ``MODEL_CARD.md``, each file atomically.

    Parameters
    ----------
    model : MusicEncoder
        Its ``state_dict`` is saved (moved to CPU, contiguous).
    config : dict
        ``config.json`` as :mod:`musicrep.models.encoder` describes it; ``format_version``,
        ``musicrep_version`` and ``model_id`` are filled in here.
    folder : path-like
        Created when missing; existing files are replaced.
    card : str
        The model card's text (Markdown); a generated section with the technical details is appended.

    Returns
    -------
    Path
        The folder.

    Raises
    ------
    UsageError
        ``config`` does not describe ``model`` (a tensor missing, unexpected or of another shape):
        such a folder could not be loaded.
    """
    out = ensure_dir(folder)
    config = {**config, "format_version": FORMAT_VERSION, "musicrep_version": __version__}
    config.pop("model_id", None)
    try:  # refuse what load would refuse
        extraction_config(config.get("extraction"), where="config")
        expected = build_model(config, where="config").state_dict()
    except InputError as exc:
        raise UsageError(f"cannot export: {exc}") from exc
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model.state_dict().items()}
    problem = _tensor_mismatch(expected, tensors)
    if problem:
        raise UsageError(f"the model does not match its config: {problem}")
    data = save_safetensors(tensors, metadata={"format": "pt", "musicrep_version": __version__})
    config["model_id"] = identity(data, config)
    # weights first, config.json last: a folder killed half-way fails load's model_id check, never loads wrong
    with atomic_path(out / WEIGHTS_FILE) as tmp:
        tmp.write_bytes(data)
    with atomic_path(out / CARD_FILE) as tmp:
        tmp.write_text(card.rstrip() + "\n\n" + _technical_details(config, tensors), encoding="utf-8")
    write_json(config, out / CONFIG_FILE)
    return out


def _technical_details(config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> str:
    n_params = sum(t.numel() for name, t in tensors.items() if t.is_floating_point() and "standardize" not in name)
    extraction = config["extraction"]
    heads = ", ".join(f"{task} ({spec.get('kind')}, {spec.get('space', '')})" for task, spec in config["heads"].items())
    lines = [
        "## Technical details (generated)", "",
        f"- model_id: `{config['model_id']}`",
        f"- architecture: `{config['model']['name']}` {json.dumps(config['model'].get('params', {}), sort_keys=True)}, "
        f"{n_params:,} parameters",
        f"- embedding: {config['embedding_dim']} dimensions, the mean over windows of {config['window_frames']} frames",
        f"- input: {config['n_mels']} mels x {config['channels']} channel(s) at {extraction.get('sr')} Hz, "
        f"n_fft {extraction.get('n_fft')}, hop {extraction.get('hop_length')}, segment {extraction.get('segment')}",
        f"- heads: {heads or 'none'}",
        f"- musicrep {config['musicrep_version']}; load with `musicrep.load(folder)` or "
        "`musicrep embed --model folder`",
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------- load


def identity(weights: bytes, config: dict[str, Any]) -> str:
    """``model_id``: SHA-256 of the weights and of every other field of ``config.json``, so that neither can
    change after export without load noticing (an edited sample rate or window would silently change vectors)."""
    digest = hashlib.sha256(weights)
    described = json.loads(json.dumps({k: v for k, v in config.items() if k != "model_id"}, default=str))
    digest.update(json.dumps(described, sort_keys=True).encode())  # as config.json will read back
    return digest.hexdigest()


def model_folder(path: str | os.PathLike[str]) -> Path:
    """The model folder of ``path``: the folder itself, or the folder of its ``config.json`` / ``model.safetensors``."""
    given = Path(path)
    if given.name in (CONFIG_FILE, WEIGHTS_FILE) and not given.is_dir():
        return given.parent
    return given


def read_config(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """``config.json`` of a model folder, checked (format version, required keys, extraction parameters).

    Raises
    ------
    InputError
        Missing or malformed file, a newer format, a missing key; names the file.
    """
    path = model_folder(folder) / CONFIG_FILE
    if not path.parent.is_dir():
        raise InputError(f"{path.parent}: model folder not found")
    if not path.is_file():
        raise InputError(f"{path}: not found (a model folder holds {WEIGHTS_FILE}, {CONFIG_FILE}, {CARD_FILE})")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: malformed JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    if not isinstance(config, dict):
        raise InputError(f"{path}: expected a JSON object, found {type(config).__name__}")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        what = "no format_version" if version is None else f"format_version {version!r}"
        raise InputError(f"{path}: {what}, this musicrep ({__version__}) reads format_version {FORMAT_VERSION}")
    missing = [key for key in REQUIRED_KEYS if key not in config]
    if missing:
        raise InputError(f"{path}: missing key(s) {', '.join(missing)}")
    for key in ("embedding_dim", "window_frames", "n_mels", "channels"):
        if isinstance(config[key], bool) or not isinstance(config[key], int) or config[key] < 1:
            raise InputError(f"{path}: {key} must be a positive integer (got {config[key]!r})")
    if not isinstance(config["model"], dict) or not isinstance(config["model"].get("name"), str):
        raise InputError(f"{path}: model must be an object with a name, e.g. "
                         '{"name": "kim2019", "params": {}}')
    if not isinstance(config["heads"], dict) or not all(isinstance(h, dict) for h in config["heads"].values()):
        raise InputError(f"{path}: heads must be an object of task name -> head description")
    extraction = extraction_config(config["extraction"], where=str(path))
    channels = 1 if extraction.mono else 2
    if (int(config["n_mels"]), int(config["channels"])) != (extraction.mel.n_mels, channels):
        raise InputError(f"{path}: n_mels {config['n_mels']} x channels {config['channels']} do not match the "
                         f"extraction's {extraction.mel.n_mels} x {channels}")
    return config


def extraction_config(data: Any, *, where: str) -> ExtractConfig:
    """An :class:`ExtractConfig` from a saved ``extract_config.json`` dict (front-end keys required, unknown
    keys refused)."""
    if not isinstance(data, dict):
        raise InputError(f"{where}: extraction must be an object of extraction parameters")
    mel_keys = {f.name for f in fields(MelConfig)}
    other_keys = {f.name for f in fields(ExtractConfig)} - {"mel"}
    unknown = sorted(set(data) - mel_keys - other_keys)
    if unknown:
        raise InputError(f"{where}: unknown extraction parameter {unknown[0]!r}")
    absent = [key for key in (*FRONT_END_KEYS, "segment") if key not in data]
    if absent:
        raise InputError(f"{where}: extraction lacks {', '.join(absent)}")
    try:
        config = ExtractConfig(mel=MelConfig(**{k: data[k] for k in mel_keys if k in data}),
                               **{k: data[k] for k in other_keys if k in data})
        config.validate()
    except (TypeError, UsageError) as exc:
        raise InputError(f"{where}: impossible extraction parameters ({str(exc).replace('--', '')})") from exc
    return config


def load(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> Encoder:
    """Load a model folder (or its ``config.json`` / ``model.safetensors``) as an :class:`Encoder`.

    A folder that also holds classifier files (``musicrep train-classifier``) loads as a
    :class:`~musicrep.inference.classifier.Classifier`, an Encoder that also classifies.

    Raises
    ------
    InputError
        A file is missing or malformed, the weights were replaced after export (``model_id``), or
        their tensors do not match the config (missing, unexpected, other shape); the same for the
        classifier files (``classifier_id``); names the file.
    """
    device = _device(device)
    folder = model_folder(path)
    config = read_config(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise InputError(f"{weights}: not found")
    data = weights.read_bytes()
    model_id = identity(data, config)
    if config.get("model_id") not in (None, model_id):
        raise InputError(f"{folder}: the weights and {CONFIG_FILE} are not those exported together (their identity "
                         f"{model_id[:12]}… is not the model_id {str(config['model_id'])[:12]}…: weights replaced, "
                         "config edited, or half-written?)")
    try:
        tensors = load_safetensors(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise InputError(f"{weights}: not a safetensors file ({exc})") from exc
    model = build_model(config, where=str(folder / CONFIG_FILE))
    problem = _tensor_mismatch(model.state_dict(), tensors)
    if problem:
        raise InputError(f"{weights}: does not match {CONFIG_FILE}: {problem}")
    model.load_state_dict(tensors, strict=True)
    model.to(device).eval()
    if device.type == "cpu":  # channels-last convolutions run ~1.5-2x faster with oneDNN; values equal to ~1e-7
        model.to(memory_format=torch.channels_last)
    encoder = Encoder(config=config, model=model, model_id=model_id, device=device, path=folder)
    from musicrep.inference import classifier  # (imports this module)

    if classifier.has_classifier(folder):  # a classification model: checked as strictly as the encoder
        return classifier.attach_classifier(encoder)
    return encoder


def _device(device: str | torch.device) -> torch.device:
    """A torch device that exists here, or a :class:`UsageError` naming it."""
    try:
        device = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise UsageError(f"unknown device {str(device)!r} ({exc})") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {device} requested, but CUDA is not available here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"device {device} requested, but MPS is not available here")
    return device


def build_model(config: dict[str, Any], *, where: str) -> MusicEncoder:
    """The untrained network ``config`` describes, checked: the backbone must give ``embedding_dim``."""
    try:
        model = MusicEncoder.from_config(config)
    except MusicrepError as exc:
        raise InputError(f"{where}: {exc}") from exc
    produced = getattr(model.backbone, "embedding_dim", None)
    if produced != int(config["embedding_dim"]):
        raise InputError(f"{where}: embedding_dim {config['embedding_dim']}, but the {config['model']['name']} "
                         f"backbone gives {produced}")
    return model


def _tensor_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str | None:
    """What differs between two state dicts (missing, unexpected, shape), in words; None when they match."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing:
        return f"missing tensor {missing[0]!r}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
    if unexpected:
        return (f"unexpected tensor {unexpected[0]!r}"
                + (f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""))
    for name, tensor in expected.items():
        if tuple(found[name].shape) != tuple(tensor.shape):
            return f"tensor {name!r} has shape {tuple(found[name].shape)}, the config implies {tuple(tensor.shape)}"
    return None


# ---------------------------------------------------------------------------------------------- Encoder


@dataclass
class Features:
    """Log-mel frames of one input as the model reads them."""

    array: np.ndarray
    """(n_mels, frames, channels), as stored by extraction (float32, or float16 at precision 16)."""
    valid: int
    """Frames of real audio (the rest is padding)."""
    offset: float
    """Seconds from the start of the audio to frame 0 (3.0 for the 3-14 s segment)."""
    name: str
    """The file, or a description of the array, for messages."""


@dataclass(repr=False, eq=False)
class Encoder:
    """An exported model, ready to embed audio files, arrays and merged feature stores.

    Attributes
    ----------
    config : dict
        ``config.json``.
    model : MusicEncoder
        In eval mode, on ``device``.
    model_id : str
        SHA-256 of ``model.safetensors``.
    device : torch.device
    path : Path
        The model folder.

    Examples
    --------
    >>> import musicrep  # doctest: +SKIP
    >>> encoder = musicrep.load("runs/demo/model")  # doctest: +SKIP
    >>> encoder.embed("song.mp3").shape  # doctest: +SKIP
    (128,)
    """

    config: dict[str, Any]
    model: MusicEncoder
    model_id: str
    device: torch.device
    path: Path

    def __post_init__(self) -> None:
        self.extraction = extraction_config(self.config["extraction"], where=str(self.path / CONFIG_FILE))

    def __repr__(self) -> str:
        return (f"Encoder({str(self.path)!r}, {self.config['model']['name']}, {self.embedding_dim} dims, "
                f"{self.sample_rate} Hz, model_id {self.model_id[:12]}, device {self.device})")

    @property
    def sample_rate(self) -> int:
        """The extraction's sample rate (Hz): what a file is decoded at and an array resampled to."""
        return int(self.extraction.mel.sr)

    @property
    def embedding_dim(self) -> int:
        return int(self.config["embedding_dim"])

    @property
    def window_frames(self) -> int:
        return int(self.config["window_frames"])

    @property
    def hop_seconds(self) -> float:
        """Seconds between frames."""
        return self.extraction.mel.hop_length / self.extraction.mel.sr

    # -- audio to frames

    def extract_config(self, segment: str = "model") -> ExtractConfig:
        """The extraction parameters ``segment`` uses: the model's own, or ``"full"`` (whole file, no crop or pad)."""
        if segment not in SEGMENTS:
            raise UsageError(f"segment must be one of {', '.join(SEGMENTS)} (got {segment!r})")
        if segment == "full":
            return replace(self.extraction, segment="full", crop=False, pad=False)
        return self.extraction

    def features(self, audio: str | os.PathLike[str] | np.ndarray, sr: int | None = None, *,
                 segment: str = "model", name: str | None = None) -> Features:
        """Log-mel frames of a file or an array, with the model's extraction parameters.

        A file is decoded exactly as ``musicrep extract`` with the model's ``extract_config``
        would (``segment="model"``: its segment rule, crop and pad), or whole (``"full"``).
        An array gets the same treatment after resampling to :attr:`sample_rate`.

        Raises
        ------
        AudioError
            The file cannot be decoded (names it).
        InputError
            An array without ``sr``, of an unusable shape or type, or with NaN / infinite samples.
        """
        config = self.extract_config(segment)
        if isinstance(audio, (str, os.PathLike)):
            array, _, valid = extract_with_length(audio, config)
            offset = _segment_offset(audio, config)
            return Features(array, valid, offset, name or str(audio))
        return self._array_features(audio, sr, config, name or "audio array")

    def _array_features(self, y: np.ndarray, sr: int | None, config: ExtractConfig, name: str) -> Features:
        y = _checked_array(y, sr, name)
        target = config.mel.sr
        if sr != target:
            n_out = int(np.ceil(y.shape[1] * target / sr))
            y = np.ascontiguousarray(soxr.resample(y.T, sr, target, quality="soxr_hq").T, dtype=np.float32)
            y = y[:, :n_out] if y.shape[1] >= n_out else np.pad(y, ((0, 0), (0, n_out - y.shape[1])))
        y = to_channels(y, config.mono)
        offset = 0.0
        if config.segment == "original":
            offset = _original_offset(y.shape[1], target)
            y = cut_segment(y, sr=target)
        db, _ = mel_front_end(config.mel).log_mel(y)
        array, valid = stored_layout(db, config)
        return Features(array, valid, offset, name)

    # -- frames to embeddings

    def window_batch(self, features: Features) -> tuple[np.ndarray, np.ndarray]:
        """Network input of every window over the valid frames, and the windows' start frames.

        Input shorter than one window is padded with the -80 dB floor, with a warning naming it.
        """
        window = self.window_frames
        if features.valid < window:
            logger.warning("%s: %.2f s of audio is shorter than one window (%.2f s): padded with the %.0f dB floor",
                           features.name, features.valid * self.hop_seconds, window * self.hop_seconds, FLOOR_DB)
        starts = window_starts(features.valid, window)
        return windows(features.array[:, :features.valid], starts, window, FLOOR_DB), starts

    @torch.inference_mode()
    def embed_batch(self, batch: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        """Embeddings of network-input windows ``(n, channels, n_mels, frames)``: float32 ``(n, embedding_dim)``.

        :func:`musicrep.models.encoder.embed_windows`, with the input laid out channels-last on the CPU.
        """
        return forward(self.model, batch, batch_size=batch_size, device=self.device)

    def embed_store(self, store: Any, *, batch_size: int = 64) -> tuple[np.ndarray, list[str]]:
        """One vector per row of a merged store (a folder or a :class:`~musicrep.features.merge.FeatureStore`),
        without decoding; see :func:`musicrep.inference.embed.embed_store`.

        Returns
        -------
        vectors : np.ndarray [shape=(n_rows, embedding_dim)], float32
        ids : list[str]
        """
        from musicrep.features.merge import FeatureStore
        from musicrep.inference.embed import embed_store

        return embed_store(self, store if isinstance(store, FeatureStore) else FeatureStore(store),
                           batch_size=batch_size)

    def embed_frames(self, audio: str | os.PathLike[str] | np.ndarray, sr: int | None = None, *,
                     segment: str = "model", batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of each window and the time of each window's center.

        Parameters
        ----------
        audio : path-like or np.ndarray [shape=(n,) or (channels, n)]
            A file, or float samples (``sr`` then required).
        sr : int, optional
            Sample rate of an array (resampled to :attr:`sample_rate` when different).
        segment : {"model", "full"}
            The model's segment rule (what it trained on) or the whole file.

        Returns
        -------
        vectors : np.ndarray [shape=(n_windows, embedding_dim)], float32
        times : np.ndarray [shape=(n_windows,)], float64
            Seconds from the start of the audio to each window's center.
        """
        features = self.features(audio, sr, segment=segment)
        batch, starts = self.window_batch(features)
        vectors = self.embed_batch(batch, batch_size=batch_size)
        times = features.offset + (starts + (self.window_frames - 1) / 2) * self.hop_seconds
        return vectors, times

    def embed(self, audio: str | os.PathLike[str] | np.ndarray, sr: int | None = None, *,
              segment: str = "model", batch_size: int = 64) -> np.ndarray:
        """One vector for a file or an array: the mean of its windows' embeddings.

        Returns
        -------
        np.ndarray [shape=(embedding_dim,)], float32

        See :meth:`embed_frames` for the parameters.
        """
        vectors, _ = self.embed_frames(audio, sr, segment=segment, batch_size=batch_size)
        return vectors.mean(axis=0).astype(np.float32)


@torch.inference_mode()
def forward(model: MusicEncoder, batch: np.ndarray, *, batch_size: int = 64,
            device: torch.device | str = "cpu") -> np.ndarray:
    """:func:`~musicrep.models.encoder.embed_windows`, with channels-last input on the CPU (as :func:`load` lays
    out the weights there)."""
    model.eval()
    if len(batch) == 0:
        return embed_windows(model, batch)
    out = []
    for first in range(0, len(batch), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(batch[first:first + batch_size], dtype=np.float32)).to(device)
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        out.append(model(x).float().cpu().numpy())
    return np.concatenate(out)


def _checked_array(y: Any, sr: int | None, name: str) -> np.ndarray:
    """``y`` as float32 ``(channels, n)``, or an :class:`InputError` saying what is wrong with it."""
    if sr is None:
        raise InputError(f"{name}: an array needs its sample rate (sr=...)")
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise InputError(f"{name}: sr must be a positive integer number of Hz (got {sr!r})")
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.floating):
        # float scale is free (the log-mel is in dB relative to each channel's maximum); integer PCM is ambiguous
        raise InputError(f"{name}: samples must be floating point (got dtype {y.dtype}; divide integer PCM by its "
                         "full scale, e.g. y / 32768)")
    if y.size == 0:
        raise InputError(f"{name}: no samples")
    if y.ndim == 1:
        y = y[None, :]
    if y.ndim != 2:
        raise InputError(f"{name}: expected shape (n,) or (channels, n), got {y.shape}")
    if y.shape[0] > y.shape[1]:
        raise InputError(f"{name}: shape {y.shape} looks like (n, channels); pass (channels, n) (transpose it)")
    if not np.isfinite(y).all():
        raise InputError(f"{name}: NaN or infinite samples")
    return np.ascontiguousarray(y, dtype=np.float32)


def _original_offset(n_samples: int, sr: int) -> float:
    """Start (s) of the original segment rule's cut: 3 s when the audio is longer than 14 s, else 0."""
    return 3.0 if n_samples > int(14.0 * sr) else 0.0


def _segment_offset(path: str | os.PathLike[str], config: ExtractConfig) -> float:
    """Where frame 0 of ``path``'s features lies in the file, as :func:`~musicrep.features.audio.load_segment` cuts."""
    if config.segment != "original":
        return 0.0
    info = probe(path)
    n_native = int(round(info.duration * info.sample_rate))
    n_target = n_native if info.sample_rate == config.mel.sr else int(np.ceil(n_native * config.mel.sr
                                                                            / info.sample_rate))
    return _original_offset(n_target, config.mel.sr)
