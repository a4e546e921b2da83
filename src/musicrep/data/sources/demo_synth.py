"""Synthesis of the demo collection's audio: tags you can hear.

Genre drives tempo, drum pattern and instrument timbres; style adds its own
colour (distortion, swing, syncopation, tempo); mood drives mode, brightness
and loudness; theme is only weakly audible; each artist has a consistent
timbre signature (formant, tilt, detune, reverb, panning). Everything is a
pure function of a :class:`TrackRecipe` and a seed, so the collection is
deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft
from scipy.signal import fftconvolve

_TABLE_SIZE = 2048


@dataclass(frozen=True)
class Instrument:
    """An additive instrument: harmonic rolloff, envelope, vibrato, distortion."""

    rolloff: float
    n_harmonics: int
    attack: float
    decay: float
    sustain: bool = False
    vibrato: float = 0.0
    odd_only: bool = False


INSTRUMENTS: dict[str, Instrument] = {
    "guitar": Instrument(rolloff=1.0, n_harmonics=14, attack=0.004, decay=0.7),
    "synth": Instrument(rolloff=1.0, n_harmonics=24, attack=0.01, decay=0.25, sustain=True),
    "square": Instrument(rolloff=1.0, n_harmonics=15, attack=0.005, decay=0.2, sustain=True, odd_only=True),
    "piano": Instrument(rolloff=1.6, n_harmonics=12, attack=0.003, decay=1.1),
    "strings": Instrument(rolloff=1.1, n_harmonics=12, attack=0.15, decay=0.4, sustain=True, vibrato=0.005),
    "keys": Instrument(rolloff=2.2, n_harmonics=6, attack=0.005, decay=0.9),
    "pluck": Instrument(rolloff=1.3, n_harmonics=12, attack=0.002, decay=0.35),
    "harpsichord": Instrument(rolloff=0.7, n_harmonics=20, attack=0.001, decay=0.3),
    "sax": Instrument(rolloff=1.5, n_harmonics=8, attack=0.04, decay=0.3, sustain=True, vibrato=0.008),
    "bass": Instrument(rolloff=1.8, n_harmonics=6, attack=0.005, decay=0.5),
    "sub": Instrument(rolloff=4.0, n_harmonics=2, attack=0.005, decay=0.9),
    "pad": Instrument(rolloff=1.4, n_harmonics=10, attack=0.4, decay=1.0, sustain=True, vibrato=0.002),
}


@dataclass(frozen=True)
class Sound:
    """Everything the synthesizer needs for one track (merged genre/style/mood/theme/artist)."""

    tempo: float
    drums: str  # "rock", "four", "swing", "hiphop", "trap", "break", "shaker", "none"
    lead: str
    bass: str  # instrument name or "none"
    pad: bool
    density: int  # lead notes per beat
    swing: float
    syncopation: float
    distortion: float
    minor: bool
    brightness: float  # cutoff of the harmonic rolloff, Hz
    loudness_db: float  # target RMS level
    tremolo: float
    reverb: float
    noise: float  # texture level (vinyl crackle, wind)
    root: int  # MIDI note of the tonic
    formant_hz: float
    formant_gain: float
    tilt: float
    detune_cents: float
    pan: float
    drum_level: float = 1.0
    eq: tuple[float, ...] = ()  # cosine coefficients (dB) of a gain curve over log frequency


def synthesize(sound: Sound, *, duration: float, sr: int, channels: int, seed: int) -> np.ndarray:
    """Render one track.

    Parameters
    ----------
    sound : Sound
        The recipe.
    duration : float
        Length in seconds.
    sr : int
        Sample rate in Hz.
    channels : int
        1 or 2.
    seed : int
        Seed of the melody, rhythm and noise.

    Returns
    -------
    y : np.ndarray [shape=(n, channels)], float32 in [-1, 1]
    """
    rng = np.random.default_rng(seed)
    n = max(1, int(round(duration * sr)))
    beat = 60.0 / sound.tempo
    left = np.zeros(n)
    right = np.zeros(n)

    scale = np.array([0, 2, 3, 5, 7, 8, 10] if sound.minor else [0, 2, 4, 5, 7, 9, 11])
    progression = rng.choice([[0, 4, 5, 3], [0, 3, 4, 0], [0, 5, 3, 4], [0, 2, 3, 4]])
    n_beats = int(np.ceil(duration / beat)) + 1

    lead = _voice(sound, rng, scale, progression, n_beats, beat)
    _render_notes(left, right, lead, INSTRUMENTS[sound.lead], sound, sr, pan=sound.pan, level=0.5)
    if sound.bass != "none":
        bass = [(i * beat, beat * 0.95, sound.root - 24 + scale[progression[(i // 4) % 4]])
                for i in range(n_beats)]
        _render_notes(left, right, bass, INSTRUMENTS[sound.bass], sound, sr, pan=0.0, level=0.45)
    if sound.pad:
        pad = []
        for bar in range(n_beats // 4 + 1):
            degree = progression[bar % 4]
            for step in (0, 2, 4):
                pitch = sound.root - 12 + scale[(degree + step) % 7] + 12 * ((degree + step) // 7)
                pad.append((bar * 4 * beat, 4 * beat, pitch))
        _render_notes(left, right, pad, INSTRUMENTS["pad"], sound, sr, pan=-sound.pan, level=0.18)
    if sound.distortion > 0:
        left = np.tanh(sound.distortion * left) / np.tanh(sound.distortion)
        right = np.tanh(sound.distortion * right) / np.tanh(sound.distortion)
    _render_drums(left, right, sound, rng, sr, beat, n_beats)
    if sound.tremolo > 0:
        t = np.arange(n) / sr
        wobble = 1.0 - 0.35 * (0.5 + 0.5 * np.sin(2 * np.pi * sound.tremolo * t))
        left *= wobble
        right *= wobble
    if sound.noise > 0:
        left += sound.noise * _texture(rng, n, sr)
        right += sound.noise * _texture(rng, n, sr)
    if sound.reverb > 0:
        left, right = _reverb(left, rng, sr, sound.reverb), _reverb(right, rng, sr, sound.reverb)

    if sound.eq:
        left, right = _equalize(left, sr, sound.eq), _equalize(right, sr, sound.eq)
    stereo = np.stack([left, right], axis=1)
    rms = np.sqrt(np.mean(stereo**2)) + 1e-12
    stereo *= 10 ** (sound.loudness_db / 20) / rms
    fade = min(n // 4, int(0.02 * sr))
    if fade > 0:
        ramp = np.linspace(0.0, 1.0, fade)[:, None]
        stereo[:fade] *= ramp
        stereo[-fade:] *= ramp[::-1]
    stereo = np.clip(stereo, -0.99, 0.99)
    if channels == 1:
        return stereo.mean(axis=1, keepdims=True).astype(np.float32)
    return stereo.astype(np.float32)


def _voice(
    sound: Sound, rng: np.random.Generator, scale: np.ndarray, progression: np.ndarray,
    n_beats: int, beat: float,
) -> list[tuple[float, float, int]]:
    """Lead notes ``(onset s, length s, MIDI pitch)`` following the chords."""
    notes = []
    step = beat / sound.density
    degree_walk = 0
    for i in range(n_beats * sound.density):
        onset = i * step
        if i % 2 == 1:
            onset += sound.swing * step
        if rng.random() < sound.syncopation:
            continue
        chord = progression[(i // (4 * sound.density)) % 4]
        degree_walk = int(np.clip(degree_walk + rng.integers(-2, 3), -3, 9))
        degree = chord + degree_walk
        pitch = sound.root + scale[degree % 7] + 12 * (degree // 7)
        notes.append((onset, step * (1.6 if INSTRUMENTS[sound.lead].sustain else 3.0), int(pitch)))
    return notes


def _wavetable(instrument: Instrument, freq: float, sound: Sound, sr: int) -> np.ndarray:
    """One band-limited cycle of the instrument at ``freq``, coloured by the artist and mood."""
    k = np.arange(1, instrument.n_harmonics + 1)
    if instrument.odd_only:
        k = k[k % 2 == 1]
    partial_hz = k * freq
    amps = k ** -(instrument.rolloff + sound.tilt)
    amps = amps * np.exp(-partial_hz / sound.brightness)
    amps = amps * (1.0 + sound.formant_gain * np.exp(-0.5 * ((partial_hz - sound.formant_hz) / 250.0) ** 2))
    amps[partial_hz >= 0.45 * sr] = 0.0
    phase = 2 * np.pi * np.arange(_TABLE_SIZE) / _TABLE_SIZE
    table = (amps[:, None] * np.sin(k[:, None] * phase[None, :])).sum(axis=0)
    peak = np.abs(table).max()
    return table / peak if peak > 0 else table


def _render_notes(
    left: np.ndarray, right: np.ndarray, notes: list[tuple[float, float, int]],
    instrument: Instrument, sound: Sound, sr: int, *, pan: float, level: float,
) -> None:
    n = len(left)
    gain_l, gain_r = level * np.sqrt(0.5 - pan / 2), level * np.sqrt(0.5 + pan / 2)
    detune = 2 ** (sound.detune_cents / 1200)
    tables: dict[int, np.ndarray] = {}
    for onset, length, pitch in notes:
        start = int(onset * sr)
        if start >= n:
            continue
        stop = min(n, start + int((length + instrument.decay * (0.3 if instrument.sustain else 1.0)) * sr))
        t = np.arange(stop - start) / sr
        freq = 440.0 * 2 ** ((pitch - 69) / 12)
        table = tables.get(pitch)
        if table is None:
            table = tables[pitch] = _wavetable(instrument, freq, sound, sr)
        inst_freq = freq * detune * (1 + instrument.vibrato * np.sin(2 * np.pi * 5.5 * t))
        phase = np.cumsum(inst_freq) / sr
        wave = table[((phase * _TABLE_SIZE).astype(np.int64)) % _TABLE_SIZE]
        env = np.minimum(1.0, t / instrument.attack)
        if instrument.sustain:
            env *= np.where(t < length, 1.0, np.exp(-(t - length) / (0.3 * instrument.decay)))
        else:
            env *= np.exp(-t / instrument.decay)
        wave *= env
        left[start:stop] += gain_l * wave
        right[start:stop] += gain_r * wave


_PATTERNS: dict[str, dict[str, list[float]]] = {
    # hits per bar, in beats (4 beats a bar)
    "rock": {"kick": [0, 2, 2.5], "snare": [1, 3], "hat": [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]},
    "four": {"kick": [0, 1, 2, 3], "snare": [1, 3], "hat": [0.5, 1.5, 2.5, 3.5]},
    "swing": {"kick": [0], "snare": [], "hat": [0, 1, 1.67, 2, 3, 3.67]},
    "hiphop": {"kick": [0, 0.75, 2.5], "snare": [1, 3], "hat": [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]},
    "trap": {"kick": [0, 1.75, 2.5], "snare": [2], "hat": [i / 4 for i in range(16)]},
    "break": {"kick": [0, 1.25, 2.5], "snare": [1, 3, 3.75], "hat": [i / 2 for i in range(8)]},
    "shaker": {"kick": [0, 2], "snare": [], "hat": [i / 2 for i in range(8)]},
    "none": {"kick": [], "snare": [], "hat": []},
}


def _render_drums(
    left: np.ndarray, right: np.ndarray, sound: Sound, rng: np.random.Generator,
    sr: int, beat: float, n_beats: int,
) -> None:
    pattern = _PATTERNS[sound.drums]
    if not any(pattern.values()):
        return
    t = np.arange(int(0.35 * sr)) / sr
    kick = np.sin(2 * np.pi * (50 * t + 60 * (1 - np.exp(-t / 0.04)) * 0.04)) * np.exp(-t / 0.12)
    snare = (0.6 * rng.standard_normal(len(t)) + 0.4 * np.sin(2 * np.pi * 190 * t)) * np.exp(-t / 0.07)
    hat = np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t / 0.02) * 0.35
    shots = {"kick": (kick, 0.9, 0.0), "snare": (snare, 0.5, 0.1), "hat": (hat, 0.3, 0.3)}
    n = len(left)
    for name, hits in pattern.items():
        shot, level, pan = shots[name]
        for bar in range(n_beats // 4 + 1):
            for hit in hits:
                offset = (hit % 1.0) * sound.swing if name == "hat" else 0.0
                start = int((bar * 4 + hit + offset) * beat * sr)
                if start >= n:
                    continue
                stop = min(n, start + len(shot))
                accent = sound.drum_level * level * (0.8 + 0.2 * rng.random())
                left[start:stop] += accent * np.sqrt(0.5 - pan / 2) * shot[: stop - start]
                right[start:stop] += accent * np.sqrt(0.5 + pan / 2) * shot[: stop - start]


def _texture(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Low, slowly varying noise (wind, vinyl surface)."""
    noise = rng.standard_normal(n)
    kernel = np.ones(max(1, sr // 2000)) / max(1, sr // 2000)
    return np.convolve(noise, kernel, mode="same")


def _reverb(x: np.ndarray, rng: np.random.Generator, sr: int, amount: float) -> np.ndarray:
    t = np.arange(int(0.8 * sr)) / sr
    impulse = rng.standard_normal(len(t)) * np.exp(-t / (0.15 + 0.5 * amount))
    impulse /= np.sqrt(np.sum(impulse**2))
    wet = fftconvolve(x, impulse)[: len(x)]
    return (1 - amount) * x + amount * wet


def _equalize(x: np.ndarray, sr: int, coefficients: tuple[float, ...]) -> np.ndarray:
    """Apply a smooth gain curve: sum of cosines (dB) over log frequency, 50 Hz to 11 kHz.

    The production colour of a mood (dark = heavy lows, bright = airy highs)
    that shapes the whole spectral envelope, not only its slope.
    """
    n_fft = sp_fft.next_fast_len(len(x), real=True)  # odd lengths with large prime factors are slow
    spectrum = sp_fft.rfft(x, n=n_fft)
    freqs = sp_fft.rfftfreq(n_fft, 1.0 / sr)
    position = np.clip(np.log(np.maximum(freqs, 50.0) / 50.0) / np.log(11025.0 / 50.0), 0.0, 1.0)
    gain_db = 1.4 * sum(c * np.cos(np.pi * (k + 1) * position) for k, c in enumerate(coefficients))
    return sp_fft.irfft(spectrum * 10 ** (gain_db / 20), n=n_fft)[: len(x)]
