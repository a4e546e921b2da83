"""Audio file access: header probing, decoding (a whole file or only the segment), channel layout.

Everything goes through soundfile (libsndfile), which reads and writes wav,
flac, ogg/vorbis, ogg/opus and mp3 without any system package. Containers
libsndfile does not know (m4a/aac, wma, webm, ...) fall back to PyAV (FFmpeg's
decoders, the optional ``musicrep[ffmpeg]`` extra); without it they fail with
"unsupported format".

The C decoders print warnings straight to the process's stderr (libmpg123:
"Illegal Audio-MPEG-Header", "Xing stream size off", ...). Every decoder call
here runs inside a :func:`musicrep.features.stderr_capture.capture_stderr` window, and
the text goes to the innermost :func:`decoder_output` block of the thread (or,
outside one, to this module's logger as a warning), never straight to stderr.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from musicrep.errors import AudioError
from musicrep.features.stderr_capture import Captured, capture_stderr, summarize

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".m4a", ".aac", ".wma"}
)
MISSING = "audio file missing"
FALLBACK_EXTENSIONS = frozenset({".m4a", ".mp4", ".aac", ".wma", ".webm", ".mka", ".ac3", ".ape", ".wv"})
"""Decoded through PyAV when libsndfile does not recognise them."""


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says, without decoding it."""

    duration: float
    sample_rate: int
    channels: int
    format: str
    decoder: str = "soundfile"
    """``soundfile`` or ``pyav`` (the fallback)."""


@dataclass
class DecoderOutput:
    """What the C decoders printed during a :func:`decoder_output` block, one text per decoder call."""

    texts: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """The first distinct lines as one line (``""`` when the decoders said nothing),
        see :func:`musicrep.features.stderr_capture.summarize`."""
        return summarize("".join(self.texts))


_SEEK_PRIMING = re.compile(r"^.*part2_3_length \(\d+\) too large for available bit count \(\d+\)\s*$", re.MULTILINE)
"""What libmpg123 says about the frames it decodes without their bit reservoir after a seek, on intact files too."""

_active_output: ContextVar[DecoderOutput | None] = ContextVar("musicrep_decoder_output", default=None)


@contextmanager
def decoder_output() -> Iterator[DecoderOutput]:
    """Collect what the decoders print while this thread probes or decodes inside the block.

    Examples
    --------
    >>> with decoder_output() as output:  # doctest: +SKIP
    ...     y = load("truncated.mp3")
    >>> output.summary()  # doctest: +SKIP
    'Warning: Xing stream size off by more than 1%, fuzzy seeking may be even more fuzzy than by design!'
    """
    output = DecoderOutput()
    token = _active_output.set(output)
    try:
        yield output
    finally:
        _active_output.reset(token)


@contextmanager
def _decoding(file: Path, *, seeking: bool = False) -> Iterator[None]:
    """One decoder call's window: what it prints goes to the active :class:`DecoderOutput`, else to the log.

    With ``seeking`` (the call seeks before decoding), libmpg123's complaints
    about the frames it primes the decoder with are dropped: they come from
    the seek, not from the file.
    """
    captured = Captured()
    try:
        with capture_stderr() as captured:
            yield
    finally:
        text = _SEEK_PRIMING.sub("", captured.text) if seeking else captured.text
        if text.strip():
            output = _active_output.get()
            if output is not None:
                output.texts.append(text)
            else:
                logger.warning("%s: the decoder printed: %s", file, summarize(text))


def format_from_path(path: str | os.PathLike[str]) -> str:
    """Lower-case file extension without the dot (``"mp3"``), the format when not probed."""
    return Path(path).suffix.lower().lstrip(".")


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Read the header of an audio file.

    Parameters
    ----------
    path : path-like
        The audio file.

    Returns
    -------
    AudioInfo
        Duration in seconds, sample rate, channel count and container format
        (lower-case, e.g. ``"wav"``, ``"flac"``, ``"ogg"``, ``"mp3"``).

    Raises
    ------
    AudioError
        The file is missing, empty or not a readable audio file; the message
        names the file.
    """
    file = Path(path)
    try:
        status = file.stat()
    except FileNotFoundError as exc:
        raise AudioError(str(file), MISSING) from exc
    except OSError as exc:
        raise AudioError(str(file), f"cannot access audio file ({exc.strerror})") from exc
    if stat.S_ISDIR(status.st_mode):
        raise AudioError(str(file), "is a directory, not an audio file")
    if status.st_size == 0:
        raise AudioError(str(file), "empty file")
    try:
        with _decoding(file):
            info = sf.info(str(file))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        if file.suffix.lower() in FALLBACK_EXTENSIONS:
            return _probe_pyav(file)
        raise AudioError(str(file), f"not a readable audio file ({_reason(exc)})") from exc
    if info.samplerate <= 0 or info.frames <= 0:
        raise AudioError(str(file), "audio header reports no samples")
    return AudioInfo(
        duration=info.frames / info.samplerate,
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        format=str(info.format).lower(),
    )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[-1] if text else type(exc).__name__
    message = message.split(": ", 1)[-1] if "Error opening" in message else message
    # libsndfile says "does not exist" for an existing file whose format it cannot recognise
    if "does not exist or is not a regular file" in message or "Format not recognised" in message:
        return "format not recognised"
    return message.rstrip(".")


def to_stereo(y: np.ndarray) -> np.ndarray:
    """Two channels from any layout (``(channels, n)`` or ``(n,)``).

    Mono is duplicated; more than two channels are mixed down: left is the
    mean of the even-numbered channels (0, 2, ...), right of the odd ones.
    """
    if y.ndim == 1:
        return np.stack([y, y])
    if y.shape[0] == 1:
        return np.concatenate([y, y])
    if y.shape[0] == 2:
        return y
    return np.stack([y[0::2].mean(axis=0), y[1::2].mean(axis=0)]).astype(y.dtype)


def to_channels(y: np.ndarray, mono: bool = False) -> np.ndarray:
    """The stored channel layout: :func:`to_stereo`, or with ``mono`` the mean of all channels
    (``librosa.to_mono``) as one channel."""
    if not mono:
        return to_stereo(y)
    return y.reshape(1, -1) if y.ndim == 1 else y.mean(axis=0, keepdims=True, dtype=np.float32)


def load(path: str | os.PathLike[str], *, sr: int = 22050, mono: bool = False) -> np.ndarray:
    """Decode a whole file as float32 and resample it (soxr HQ), as ``librosa.load(sr=sr, mono=False)``.

    Returns
    -------
    y : np.ndarray [shape=(2, n)], float32
        ``(1, n)`` with ``mono`` (see :func:`to_channels`).

    Raises
    ------
    AudioError
        Missing, empty, unreadable or undecodable file.
    """
    file = Path(path)
    info = probe(file)  # one clear message for missing, empty or unrecognised files
    y = _read(file, info, 0, None)
    native_sr = info.sample_rate
    if native_sr != sr:
        n_out = int(np.ceil(y.shape[1] * sr / native_sr))
        y = soxr.resample(y.T, native_sr, sr, quality="soxr_hq").T
        y = _fix_length(np.ascontiguousarray(y, dtype=np.float32), n_out)
    return to_channels(y, mono)


def _fix_length(y: np.ndarray, size: int) -> np.ndarray:
    if y.shape[1] >= size:
        return y[:, :size]
    return np.pad(y, ((0, 0), (0, size - y.shape[1])))


def segment(y: np.ndarray, *, sr: int = 22050, long_after: float = 14.0, start: float = 3.0,
            stop: float = 14.0, short_length: float = 11.0) -> np.ndarray:
    """The original segment rule: 3-14 s if strictly longer than 14 s, else the first 11 s."""
    if y.shape[-1] > int(long_after * sr):
        return y[..., int(start * sr):int(stop * sr)]
    return y[..., :int(short_length * sr)]


_RESAMPLE_MARGIN = 0.1  # seconds decoded beyond each end so the resampler's edges fall outside the segment


def load_segment(path: str | os.PathLike[str], *, sr: int = 22050, mono: bool = False, long_after: float = 14.0,
                 start: float = 3.0, stop: float = 14.0, short_length: float = 11.0) -> np.ndarray:
    """Decode and resample only the segment :func:`segment` would cut from :func:`load`'s output.

    The read starts on a native sample that maps exactly onto a target
    sample, with a margin on both sides, so the result matches resampling
    the whole file to well below 0.01 dB after the log-mel.

    Returns
    -------
    y : np.ndarray [shape=(2, n)], float32
        ``(1, n)`` with ``mono`` (see :func:`to_channels`).
    """
    file = Path(path)
    info = probe(file)
    native_sr = info.sample_rate
    n_native = int(round(info.duration * native_sr))
    n_target = int(np.ceil(n_native * sr / native_sr)) if native_sr != sr else n_native
    if n_target > int(long_after * sr):
        first, last = int(start * sr), int(stop * sr)
    else:
        first, last = 0, min(int(short_length * sr), n_target)
    if native_sr == sr:
        return to_channels(_read(file, info, first, last), mono)
    step = native_sr // np.gcd(native_sr, sr)  # native samples per whole number of target samples
    margin = int(_RESAMPLE_MARGIN * native_sr)
    read_from = max(0, (first * native_sr // sr - margin) // step * step)
    read_to = min(n_native, int(np.ceil(last * native_sr / sr)) + margin)
    chunk = _read(file, info, read_from, read_to)
    resampled = soxr.resample(chunk.T, native_sr, sr, quality="soxr_hq").T
    offset = read_from * sr // native_sr
    y = np.ascontiguousarray(resampled[:, first - offset:last - offset], dtype=np.float32)
    return to_channels(_fix_length(y, last - first), mono)


def _read(file: Path, info: AudioInfo, start: int, stop: int | None) -> np.ndarray:
    """Native-rate samples ``start:stop`` (``None``: to the end) as float32 ``(channels, n)``."""
    if info.decoder == "pyav":
        data = _decode_pyav(file)[:, start:stop]
    else:
        try:
            with _decoding(file, seeking=start > 0), sf.SoundFile(str(file)) as handle:
                handle.seek(start)
                frames = -1 if stop is None else max(0, stop - start)
                data = handle.read(frames, dtype="float32", always_2d=True).T
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise AudioError(str(file), f"cannot decode ({_reason(exc)})") from exc
    if data.shape[1] == 0:
        raise AudioError(str(file), "no samples decoded")
    return data


def _pyav(file: Path):
    try:
        import av
    except ImportError as exc:
        raise AudioError(str(file), f"unsupported format ({file.suffix.lower()}: install musicrep[ffmpeg] "
                                    "to decode it through PyAV)") from exc
    return av


def _probe_pyav(file: Path) -> AudioInfo:
    av = _pyav(file)
    try:
        with _decoding(file), av.open(str(file)) as container:
            if not container.streams.audio:
                raise AudioError(str(file), "unsupported format (no audio stream)")
            stream = container.streams.audio[0]
            seconds = (float(stream.duration * stream.time_base) if stream.duration is not None
                       else (container.duration or 0) / av.time_base)
            rate, channels = int(stream.rate or 0), int(stream.channels or 0)
    except av.FFmpegError as exc:
        raise AudioError(str(file), f"unsupported format ({exc.strerror or exc})") from exc
    if rate <= 0 or channels <= 0 or seconds <= 0:
        raise AudioError(str(file), "audio header reports no samples")
    return AudioInfo(duration=seconds, sample_rate=rate, channels=channels, format=format_from_path(file),
                     decoder="pyav")


def _decode_pyav(file: Path) -> np.ndarray:
    """The first audio stream, whole, as FFmpeg decodes it (float32, planar)."""
    av = _pyav(file)
    try:
        with _decoding(file), av.open(str(file)) as container:
            stream = container.streams.audio[0]
            planar = av.AudioResampler(format="fltp")  # sample format only: rate and layout kept
            chunks = [out.to_ndarray() for frame in container.decode(stream) for out in planar.resample(frame)]
    except av.FFmpegError as exc:
        raise AudioError(str(file), f"cannot decode ({exc.strerror or exc})") from exc
    return np.concatenate(chunks, axis=1) if chunks else np.zeros((1, 0), dtype=np.float32)
