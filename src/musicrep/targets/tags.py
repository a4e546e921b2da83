"""Tag spaces (CBMI 2019): TF-IDF + LSI over tags, one joint space and one per tagset."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from musicrep.data.manifest import Manifest, tag_column
from musicrep.errors import UsageError
from musicrep.fileio import ensure_dir, write_csv
from musicrep.targets.analyzers import TagAnalyzer
from musicrep.targets.space import build_space

logger = logging.getLogger(__name__)

JOINT = "joint"


@dataclass
class SpacesReport:
    """The space folders written and what was left out."""

    spaces: list[Path] = field(default_factory=list)
    dropped_tags: dict[str, list[str]] = field(default_factory=dict)
    unknown_train_ids: list[str] = field(default_factory=list)


def train_mask(manifest: Manifest, train_ids: list[str]) -> tuple[np.ndarray, list[str]]:
    """Boolean mask of the training rows, and the given ids the manifest does not know."""
    ids = set(train_ids)
    mask = manifest.frame["track_id"].isin(ids).to_numpy()
    unknown = sorted(ids - set(manifest.frame["track_id"]))
    if not mask.any():
        raise UsageError("none of the training track ids is in the manifest")
    return mask, unknown


def embed_tags(
    manifest: Manifest, train_ids: list[str], out_dir: str | Path, *, tagsets: list[str] | None = None,
    dims: int = 340, min_tag_count: int = 1, seed: int = 0, on_progress: Callable[[int, int], None] | None = None,
) -> SpacesReport:
    """Build the joint tag space and one space per tagset, fitted on the training tracks.

    Parameters
    ----------
    manifest : Manifest
    train_ids : list[str]
        Track ids of the partition the spaces are fitted on (all tracks are projected).
    out_dir : path-like
        Receives ``joint/`` and ``<tagset>/`` space folders.
    tagsets : list[str], optional
        Default: every tagset of the manifest.
    dims : int
        LSI dimensions (340 as in the original), capped by the vocabulary.
    min_tag_count : int
        Tags used by fewer training tracks are dropped and listed in ``dropped_tags.csv``.
    on_progress : callable, optional
        Called with (spaces built, spaces to build) after each space.
    """
    chosen = list(tagsets or manifest.tagsets)
    if not chosen:
        raise UsageError(f"{manifest.path}: the manifest has no tagsets")
    unknown_sets = [t for t in chosen if t not in manifest.tagsets]
    if unknown_sets:
        raise UsageError(f"{manifest.path}: no tagset {', '.join(map(repr, unknown_sets))} "
                         f"(tagsets: {', '.join(manifest.tagsets) or 'none'})")
    if min_tag_count < 1:
        raise UsageError(f"--min-tag-count must be at least 1 (got {min_tag_count})")
    if dims < 1:
        raise UsageError(f"--dims must be at least 1 (got {dims})")
    out = ensure_dir(out_dir)
    frame = manifest.frame
    train, unknown = train_mask(manifest, train_ids)
    report = SpacesReport(unknown_train_ids=unknown)
    for tagset in chosen:
        if not frame.loc[train, tag_column(tagset)].map(len).any():
            raise UsageError(f"{manifest.path}: tagset {tagset!r} has no tags in the training partition")
    spaces = [(JOINT, chosen)] + [(t, [t]) for t in chosen]
    for name, sets in spaces:
        analyzer = TagAnalyzer(tagsets=sets)
        counts = Counter(term for doc in analyzer.documents(frame[train])[0] for term in doc)
        dropped = sorted(t for t, c in counts.items() if c < min_tag_count)
        if len(dropped) == len(counts):
            raise UsageError(f"{name}: --min-tag-count {min_tag_count} drops every tag (the most used one is on "
                             f"{max(counts.values(), default=0)} of the {int(train.sum())} training tracks)")
        folder = build_space(frame, train, analyzer, out_dir=out, name=name, dims=dims, min_df=min_tag_count,
                             seed=seed, flags=("--min-tag-count", "max_df"),
                             params={"tagsets": sets, "min_tag_count": min_tag_count, "seed": seed,
                                     "manifest": str(manifest.path.resolve()) if manifest.path else None})
        write_csv(pd.DataFrame({"term": dropped, "train_count": [counts[t] for t in dropped]}),
                  folder / "dropped_tags.csv")
        if dropped:
            logger.warning("%s: %d tag(s) below --min-tag-count %d dropped (listed in %s)",
                           name, len(dropped), min_tag_count, folder / "dropped_tags.csv")
        report.spaces.append(folder)
        report.dropped_tags[name] = dropped
        if on_progress is not None:
            on_progress(len(report.spaces), len(spaces))
    return report
