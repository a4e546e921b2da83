"""Source adapters: one module per collection, registered by name.

A source turns a collection (audio files plus tags and/or text, in whatever
layout the collection uses) into :class:`SourceRecords`: a manifest frame
whose tags are not normalized yet and whose audio fields may be unprobed,
plus the problems it met on the way. :func:`musicrep.data.align.align` does the
rest (normalization, id checks, audio checks, writing).

Add a source by writing a dataclass with a ``collect`` method and naming it
in :data:`SOURCES`; its fields are the source's options (``--audio-root``,
``--labels``, ...), checked by :func:`make_source`.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from musicrep.errors import UsageError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one track or input file.

    ``action`` is ``"dropped"`` (the track is not in the manifest) or
    ``"kept"`` (it is, but a later stage will fail on it).
    """

    track_id: str
    file: str
    reason: str
    action: str = "dropped"


@dataclass
class SourceRecords:
    """What a source found: a raw manifest frame and the problems met."""

    frame: pd.DataFrame
    tagsets: list[str]
    audio_root: Path
    problems: list[Problem] = field(default_factory=list)
    expected_problems: dict[str, str] = field(default_factory=dict)
    """Track ids with deliberate defects and their kind (the demo collection)."""


class Source(Protocol):
    """A collection adapter; its dataclass fields are its options."""

    def collect(self, out_dir: Path, *, on_progress: ProgressFn | None = None) -> SourceRecords:
        """Read (or, for the demo, write) the collection; ``out_dir`` is the align output."""
        ...


ProgressFn = Callable[[int, int], None]
"""Progress callback: ``(done, total)``."""

SOURCES: dict[str, str] = {
    "demo": "musicrep.data.sources.demo:DemoSource",
    "folder": "musicrep.data.sources.folder:FolderSource",
    "jamendo": "musicrep.data.sources.jamendo:JamendoSource",
    "msd-amg": "musicrep.data.sources.msd_amg:MsdAmgSource",
}
"""Registry: source name -> ``module:class`` of its dataclass (imported on use)."""


def source_names() -> list[str]:
    """Names of the registered sources."""
    return sorted(SOURCES)


def source_class(name: str) -> type:
    """The dataclass registered as ``name``."""
    if name not in SOURCES:
        raise UsageError(f"unknown source {name!r} (choose from {', '.join(source_names())})")
    module_name, class_name = SOURCES[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def make_source(name: str, **options: Any) -> Source:
    """Build the source ``name`` from options; ``None`` values mean "not given".

    Raises
    ------
    UsageError
        Unknown source, an option the source does not take, or a missing one.
    """
    cls = source_class(name)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    given = {k: v for k, v in options.items() if v is not None and v != () and v != []}
    extra = sorted(set(given) - set(fields))
    if extra:
        flags = ", ".join("--" + k.replace("_", "-") for k in extra)
        raise UsageError(f"source {name!r} does not take {flags}")
    missing = [
        f.name
        for f in fields.values()
        if f.name not in given
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
    ]
    if missing:
        flags = ", ".join("--" + k.replace("_", "-") for k in missing)
        raise UsageError(f"source {name!r} needs {flags}")
    return cls(**given)
