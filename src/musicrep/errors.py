"""The one error root of musicrep and its specific kinds.

The CLI turns every :class:`MusicrepError` into one line and an exit code;
anything else is a bug and shows a traceback only with ``--log-level debug``.
"""

from __future__ import annotations


class MusicrepError(Exception):
    """Root of every error musicrep raises on purpose."""


class UsageError(MusicrepError):
    """Bad options, bad configuration or a stage that cannot run (exit 2)."""


class InputError(MusicrepError):
    """An input file is missing, unreadable or malformed (exit 2 when fatal)."""


class AudioError(MusicrepError):
    """One audio file cannot be used (recorded per item, the run goes on).

    Parameters
    ----------
    path : str
        The file.
    reason : str
        What is wrong, e.g. ``"empty file"``.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
