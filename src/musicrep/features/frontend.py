"""Log-mel spectrograms with the original parameters (parity with librosa 0.11).

Pure functions: audio array in, dB array out. The original preset: 22,050 Hz,
n_fft 1024, hop 256, periodic Hann window, centered frames with zero padding,
128 Slaney mel bands, power-to-dB per channel with ref = that channel's
maximum over the whole segment, floor -80 dB below it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from scipy import fft as sp_fft
from scipy import sparse

AMIN = 1e-10
TOP_DB = 80.0


@dataclass(frozen=True)
class MelConfig:
    """Parameters of the log-mel front end (librosa's names)."""

    sr: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def hz_to_mel(frequencies: np.ndarray) -> np.ndarray:
    """Slaney mel scale (linear below 1 kHz, logarithmic above), as librosa with ``htk=False``."""
    frequencies = np.asarray(frequencies, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = frequencies / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    above = frequencies >= min_log_hz
    mels = np.where(above, min_log_mel + np.log(np.maximum(frequencies, min_log_hz) / min_log_hz) / logstep, mels)
    return mels


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


def mel_filterbank(config: MelConfig) -> np.ndarray:
    """Slaney-normalized triangular filters.

    Returns
    -------
    weights : np.ndarray [shape=(n_mels, 1 + n_fft // 2)], float32
    """
    fmax = config.fmax if config.fmax is not None else config.sr / 2.0
    fft_freqs = np.fft.rfftfreq(config.n_fft, 1.0 / config.sr)  # right for odd n_fft too
    mel_f = mel_to_hz(np.linspace(hz_to_mel(config.fmin), hz_to_mel(fmax), config.n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(np.float32)


@dataclass(frozen=True)
class MelFrontEnd:
    """A log-mel front end ready to run: the parameters plus what is built once from them.

    Build it once per process with :func:`mel_front_end` and reuse it for every
    track (building the filterbank costs about as much as 10% of one track).
    """

    config: MelConfig
    filterbank: sparse.csr_matrix
    """Slaney filters, shape (n_mels, 1 + n_fft // 2): each band spans a few bins, so sparse."""
    window: np.ndarray
    """Periodic Hann window, float32."""

    def log_mel(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log-mel dB of every channel, laid out as stored, and which channels were digital silence.

        Returns
        -------
        db : np.ndarray [shape=(n_mels, frames, channels)], float32
        silent : np.ndarray [shape=(channels,)], bool

        See :func:`mel_power` and :func:`power_to_db`.
        """
        return power_to_db(mel_power(y, self))


@lru_cache(maxsize=8)
def mel_front_end(config: MelConfig) -> MelFrontEnd:
    """The :class:`MelFrontEnd` of ``config`` (memoized: configs are frozen, front ends read-only)."""
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(config.n_fft) / config.n_fft)).astype(np.float32)
    return MelFrontEnd(config, sparse.csr_matrix(mel_filterbank(config)), window)


_BLOCK_FRAMES = 2048  # frames per FFT block: bounds memory on full-length tracks, one block for the original segment


def mel_power(y: np.ndarray, front_end: MelFrontEnd) -> np.ndarray:
    """Mel power spectrogram of each channel (centered frames, zero padding, as librosa).

    Frames are taken in blocks, windowed into a ``(n_fft, frames, channels)``
    buffer, transformed with one real FFT along the first axis and projected
    on the sparse filterbank, which leaves the result directly in the stored
    layout. The cost is the FFT; memory stays bounded whatever the length.

    Parameters
    ----------
    y : np.ndarray [shape=(channels, n)], float32
    front_end : MelFrontEnd

    Returns
    -------
    S : np.ndarray [shape=(n_mels, 1 + n // hop_length, channels)], float32
    """
    config = front_end.config
    channels = y.shape[0]
    pad = config.n_fft // 2
    padded = np.pad(np.asarray(y, dtype=np.float32), ((0, 0), (pad, pad)))
    n_frames = 1 + (padded.shape[1] - config.n_fft) // config.hop_length
    frames = np.lib.stride_tricks.sliding_window_view(padded, config.n_fft, axis=1)[:, :: config.hop_length]
    frames = frames[:, :n_frames].transpose(2, 1, 0)  # (n_fft, frames, channels) view
    window = front_end.window[:, None, None]
    out = np.empty((front_end.filterbank.shape[0], n_frames, channels), dtype=np.float32)
    for begin in range(0, n_frames, _BLOCK_FRAMES):
        block = np.multiply(frames[:, begin:begin + _BLOCK_FRAMES], window)
        spectrum = sp_fft.rfft(block, axis=0, overwrite_x=True)
        power = spectrum.real**2
        power += spectrum.imag**2
        width = block.shape[1]
        out[:, begin:begin + width] = (front_end.filterbank @ power.reshape(power.shape[0], -1)).reshape(-1, width,
                                                                                                         channels)
    return out


def _channel_max(array: np.ndarray) -> np.ndarray:
    """Maximum of each channel (last axis); strided 1-D reductions beat ``max(axis=(0, 1))`` tenfold here."""
    flat = array.reshape(-1)
    channels = array.shape[-1]
    return np.array([flat[c::channels].max() for c in range(channels)], dtype=array.dtype)


_DB_PER_NEPER = np.float32(10.0 / np.log(10.0))  # 10 log10(x) = (10 / ln 10) ln(x); ln is SIMD in numpy, log10 is not


def power_to_db(power: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dB per channel (last axis) with ref = that channel's maximum, floored 80 dB below it.

    A digitally silent channel (maximum power <= 1e-10) gets the -80 dB floor
    everywhere, where librosa's ``ref=np.max`` would give 0 dB.

    Parameters
    ----------
    power : np.ndarray [shape=(..., channels)], float32

    Returns
    -------
    db : np.ndarray, same shape as ``power``, float32
    silent : np.ndarray [shape=(channels,)], bool
    """
    channels = power.shape[-1]
    peak = _channel_max(power)
    silent = peak <= AMIN
    db = np.empty(power.shape, dtype=np.float32)  # C order: the flat views below write into it
    np.maximum(power, np.float32(AMIN), out=db)
    np.log(db, out=db)
    db *= _DB_PER_NEPER
    ref = (_DB_PER_NEPER * np.log(np.maximum(peak, np.float32(AMIN)))).astype(np.float32)
    top = _channel_max(db)
    flat = db.reshape(-1)
    for channel in range(channels):
        # per-channel scalars on strided 1-D views: broadcasting a (channels,) operand runs inner loops of length 2
        values = flat[channel::channels]
        values -= ref[channel]
        np.maximum(values, top[channel] - ref[channel] - np.float32(TOP_DB), out=values)
    if silent.any():
        db[..., silent] = -TOP_DB
    return db, silent
