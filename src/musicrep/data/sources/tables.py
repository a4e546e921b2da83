"""Cells of the metadata tables that sources are given (read with :func:`musicrep.tables.read_table`)."""

from __future__ import annotations


def text_cell(value: object) -> str:
    """A metadata cell as clean text ('' for missing)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()
