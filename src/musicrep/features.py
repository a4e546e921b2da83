"""Log-mel spectrograms with the original parameters (parity with librosa 0.11).

Pure functions: audio array in, dB array out. The original preset: 22,050 Hz,
n_fft 1024, hop 256, periodic Hann window, centered frames with zero padding,
128 Slaney mel bands, power-to-dB per channel with ref = that channel's
maximum over the whole segment, floor -80 dB below it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import fft as sp_fft

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
    fft_freqs = np.linspace(0.0, config.sr / 2.0, 1 + config.n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(config.fmin), hz_to_mel(fmax), config.n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(np.float32)


def mel_power(y: np.ndarray, config: MelConfig, filterbank: np.ndarray | None = None) -> np.ndarray:
    """Mel power spectrogram of each channel.

    Parameters
    ----------
    y : np.ndarray [shape=(channels, n)], float32
    config : MelConfig
    filterbank : np.ndarray, optional
        Precomputed :func:`mel_filterbank` (reuse it across tracks).

    Returns
    -------
    S : np.ndarray [shape=(channels, n_mels, 1 + n // hop_length)], float32
    """
    weights = mel_filterbank(config) if filterbank is None else filterbank
    pad = config.n_fft // 2
    padded = np.pad(np.asarray(y, dtype=np.float32), ((0, 0), (pad, pad)))
    n_frames = 1 + (padded.shape[1] - config.n_fft) // config.hop_length
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(config.n_fft) / config.n_fft)).astype(np.float32)
    out = np.empty((y.shape[0], weights.shape[0], n_frames), dtype=np.float32)
    for channel in range(y.shape[0]):
        frames = np.lib.stride_tricks.sliding_window_view(padded[channel], config.n_fft)[:: config.hop_length]
        spectrum = sp_fft.rfft(frames[:n_frames] * window, axis=1)
        power = spectrum.real**2 + spectrum.imag**2
        out[channel] = weights @ power.T
    return out


def power_to_db(power: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dB per channel with ref = that channel's maximum, floored 80 dB below it.

    A digitally silent channel (maximum power <= 1e-10) gets the -80 dB floor
    everywhere, where librosa's ``ref=np.max`` would give 0 dB.

    Returns
    -------
    db : np.ndarray, same shape as ``power``, float32
    silent : np.ndarray [shape=(channels,)], bool
    """
    out = np.empty_like(power, dtype=np.float32)
    silent = np.zeros(power.shape[0], dtype=bool)
    for channel in range(power.shape[0]):
        peak = float(power[channel].max())
        if peak <= AMIN:
            out[channel] = -TOP_DB
            silent[channel] = True
            continue
        log_spec = np.log10(np.maximum(power[channel], np.float32(AMIN)))
        log_spec *= np.float32(10.0)
        log_spec -= np.float32(10.0 * np.log10(peak))
        np.maximum(log_spec, log_spec.max() - np.float32(TOP_DB), out=out[channel])
    return out, silent
