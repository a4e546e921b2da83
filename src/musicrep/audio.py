"""Audio file access: header probing now; decoding and segment rules later.

Everything goes through soundfile (libsndfile), which reads and writes wav,
flac, ogg/vorbis, ogg/opus and mp3 without any system package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from musicrep.errors import AudioError

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".m4a", ".aac", ".wma"}
)
MISSING = "audio file missing"


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says, without decoding it."""

    duration: float
    sample_rate: int
    channels: int
    format: str


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
        size = file.stat().st_size
    except FileNotFoundError as exc:
        raise AudioError(str(file), MISSING) from exc
    except OSError as exc:
        raise AudioError(str(file), f"cannot access audio file ({exc.strerror})") from exc
    if size == 0:
        raise AudioError(str(file), "empty file")
    try:
        info = sf.info(str(file))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
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
