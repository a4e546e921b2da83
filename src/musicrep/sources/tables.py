"""Reading the metadata tables that sources are given (CSV or JSON lines)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from musicrep.errors import InputError

JSON_LINES_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})


def read_table(path: Path, *, required_any: tuple[str, ...] = (), required_all: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a CSV or JSON-lines metadata file as strings.

    Parameters
    ----------
    path : Path
        ``.jsonl``/``.ndjson``/``.json`` are JSON lines; anything else is CSV.
    required_any : tuple of str
        At least one of these columns must be present.
    required_all : tuple of str
        All of these columns must be present.

    Raises
    ------
    InputError
        Missing or unreadable file, or a required column missing; names the file.
    """
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        if path.suffix.lower() in JSON_LINES_SUFFIXES:
            frame = pd.read_json(path, lines=True, dtype=False)
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot parse ({str(exc).splitlines()[0] if str(exc) else exc})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required_all if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing required column(s) {', '.join(missing)}")
    if required_any and not any(c in frame.columns for c in required_any):
        raise InputError(f"{path}: needs a column named {' or '.join(required_any)}")
    return frame


def text_cell(value: object) -> str:
    """A metadata cell as clean text ('' for missing)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()
