"""Leak-free train/val/test partitions (stage 2).

Tracks are assigned by group (artist by default, so no artist is in two
splits), with group-aware multi-label stratification over one tagset: the
iterative stratification of Sechidis et al. (2011), applied to whole groups
instead of single tracks. Outputs use the original partition-file format
(``track_id,filename``, sorted by track id) so the original tools read them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from musicrep.errors import InputError, UsageError
from musicrep.fileio import ensure_dir, write_csv
from musicrep.manifest import Manifest, normalize_name, tag_column
from musicrep.sources import Problem

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
GROUPINGS = ("artist", "album", "none")
SUMMARY_FILE = "summary.csv"
PROBLEMS_FILE = "partition_problems.csv"


@dataclass(frozen=True)
class PartitionConfig:
    """How to split a manifest.

    Parameters
    ----------
    fractions : tuple of 3 floats
        Share of tracks for train, val and test; they sum to 1.
    group : {"artist", "album", "none"}
        Tracks of one group always share a split.
    stratify : str or None
        Tagset to stratify over; ``"auto"`` takes ``genres`` if present, else
        the first tagset, else nothing; ``None`` disables stratification.
    train_with_text : bool
        The original rule: groups with any reviewed track go to train/val
        (val being ``val_fraction`` of them), all others to test.
    val_fraction : float
        Share of the reviewed groups in val with ``train_with_text``.
    seed : int
        Seed of the tie-breaking order.
    """

    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    group: str = "artist"
    stratify: str | None = "auto"
    train_with_text: bool = False
    val_fraction: float = 0.01
    seed: int = 0

    def validate(self) -> None:
        """Raise :class:`UsageError` on impossible settings."""
        if len(self.fractions) != 3 or min(self.fractions) < 0:
            raise UsageError(f"--fractions needs three non-negative numbers (got {self.fractions})")
        if abs(sum(self.fractions) - 1.0) > 1e-6:
            raise UsageError(f"--fractions must sum to 1 (got {sum(self.fractions):g})")
        if self.group not in GROUPINGS:
            raise UsageError(f"--group must be one of {', '.join(GROUPINGS)} (got {self.group!r})")
        if not 0.0 < self.val_fraction < 1.0:
            raise UsageError(f"--val-fraction must be between 0 and 1 (got {self.val_fraction})")


@dataclass
class Partitions:
    """The split of every track plus what went wrong."""

    split: pd.Series
    """track_id -> "train" / "val" / "test" (tracks left out are absent)."""
    stratify: str | None
    problems: list[Problem] = field(default_factory=list)


def resolve_stratify(manifest: Manifest, stratify: str | None) -> str | None:
    """Apply the ``"auto"`` rule and check the tagset exists."""
    if stratify is None or stratify == "none":
        return None
    if stratify == "auto":
        if "genres" in manifest.tagsets:
            return "genres"
        return manifest.tagsets[0] if manifest.tagsets else None
    if stratify not in manifest.tagsets:
        raise UsageError(
            f"{manifest.path}: no tagset {stratify!r} to stratify over "
            f"(tagsets: {', '.join(manifest.tagsets) or 'none'})"
        )
    return stratify


def group_keys(manifest: Manifest, group: str) -> np.ndarray:
    """Integer group code per track; a track without the grouping field is its own group."""
    frame = manifest.frame
    if group == "none":
        keys = frame["track_id"]
    else:
        artist = frame["artist"].map(normalize_name)
        keys = artist if group == "artist" else artist + "\x1f" + frame["album"].map(normalize_name)
        keys = keys.where(artist != "", "\x00" + frame["track_id"])
    codes, _ = pd.factorize(keys)
    return codes


def partition(manifest: Manifest, config: PartitionConfig) -> Partitions:
    """Split a manifest into train/val/test.

    Parameters
    ----------
    manifest : Manifest
    config : PartitionConfig

    Returns
    -------
    Partitions
    """
    config.validate()
    stratify = resolve_stratify(manifest, config.stratify)
    groups = group_keys(manifest, config.group)
    labels = _label_matrix(manifest, stratify, groups)
    sizes = np.bincount(groups).astype(np.float64)
    rng = np.random.default_rng(config.seed)
    if config.train_with_text:
        has_text = (manifest.frame["text"].str.len() > 0).to_numpy()
        group_text = np.bincount(groups, weights=has_text) > 0
        assignment = np.full(len(sizes), 2, dtype=np.int8)
        pool = np.flatnonzero(group_text)
        fractions = np.array([1.0 - config.val_fraction, config.val_fraction, 0.0])
        assignment[pool] = _stratified_groups(labels[pool], sizes[pool], fractions, rng)
    else:
        assignment = _stratified_groups(labels, sizes, np.asarray(config.fractions), rng)
    split = pd.Series(
        np.asarray(SPLITS, dtype=object)[assignment[groups]],
        index=manifest.frame["track_id"].to_numpy(),
        name="split",
    )
    return Partitions(split=split, stratify=stratify)


def _label_matrix(manifest: Manifest, stratify: str | None, groups: np.ndarray) -> sparse.csr_matrix:
    """Sparse (groups x labels) count matrix of the stratification tagset."""
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    if stratify is None:
        return sparse.csr_matrix((n_groups, 0))
    tags = manifest.frame[tag_column(stratify)]
    lengths = tags.map(len).to_numpy()
    flat = pd.Series(np.concatenate([np.asarray(t, dtype=object) for t in tags if len(t)]
                                    or [np.array([], dtype=object)]))
    codes, _ = pd.factorize(flat)
    rows = np.repeat(groups, lengths)
    matrix = sparse.csr_matrix(
        (np.ones(len(codes)), (rows, codes)), shape=(n_groups, int(codes.max()) + 1 if len(codes) else 0)
    )
    matrix.sum_duplicates()
    return matrix


def _stratified_groups(
    labels: sparse.csr_matrix, sizes: np.ndarray, fractions: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Assign groups to splits: iterative stratification over groups.

    Groups are visited from the one holding the rarest label to those with
    only common labels (larger groups first within a label, ties shuffled),
    then groups without labels, largest first; each goes to the split with the
    largest unmet demand for its rarest label, ties broken by unmet size.
    """
    n_groups, n_labels = labels.shape
    open_splits = fractions > 0
    label_totals = np.asarray(labels.sum(axis=0)).ravel()
    wanted_labels = fractions[:, None] * label_totals[None, :]
    wanted_sizes = fractions * sizes.sum()
    have_labels = np.zeros((len(fractions), n_labels))
    have_sizes = np.zeros(len(fractions))

    rarity = np.where(label_totals > 0, label_totals, np.inf)
    rarest = np.full(n_groups, -1, dtype=np.int64)
    indptr, indices = labels.indptr, labels.indices
    nonempty = np.diff(indptr) > 0
    if n_labels:
        present = labels.copy()
        present.data[:] = 1.0
        row_rarity = present.multiply(1.0 / rarity[None, :]).tocsr()
        rarest[nonempty] = np.asarray(row_rarity[nonempty].argmax(axis=1)).ravel()
    rarest_total = np.full(n_groups, np.inf)
    rarest_total[rarest >= 0] = label_totals[rarest[rarest >= 0]]
    order = np.lexsort((rng.random(n_groups), -sizes, rarest_total))

    assignment = np.zeros(n_groups, dtype=np.int8)
    closed = np.where(open_splits, 0.0, -np.inf)
    for g in order:
        size_need = wanted_sizes - have_sizes + closed
        label = rarest[g]
        if label >= 0:
            need = wanted_labels[:, label] - have_labels[:, label] + closed
            best = need.max()
            choice = int(np.argmax(np.where(need >= best - 1e-9, size_need, -np.inf)))
            start, stop = indptr[g], indptr[g + 1]
            have_labels[choice, indices[start:stop]] += labels.data[start:stop]
        else:
            choice = int(np.argmax(size_need))
        have_sizes[choice] += sizes[g]
        assignment[g] = choice
    return assignment


def adopt_partitions(manifest: Manifest, files: list[Path]) -> Partitions:
    """Reuse published splits: original tidfiles (CSV) or MTG-Jamendo split TSVs.

    The split of each file is read from its name (``train``, ``val``/``valid``/
    ``validation``, ``test``). Ids unknown to the manifest and manifest tracks
    in no file are reported as problems; tracks listed twice keep the first.
    """
    known = set(manifest.frame["track_id"])
    split: dict[str, str] = {}
    problems: list[Problem] = []
    for file in files:
        name = split_of_file(file)
        for track_id in read_track_ids(file):
            if track_id not in known:
                problems.append(Problem(track_id, str(file), "track id not in the manifest"))
            elif track_id in split:
                problems.append(Problem(track_id, str(file), f"already in {split[track_id]} (kept there)"))
            else:
                split[track_id] = name
    for track_id in sorted(known - set(split)):
        problems.append(Problem(track_id, "", "in no adopted split file (left out)"))
    return Partitions(split=pd.Series(split, name="split", dtype=object), stratify=None, problems=problems)


def split_of_file(file: Path) -> str:
    """The split a partition file holds, from its name."""
    stem = Path(file).stem.lower()
    for token, name in (("train", "train"), ("validation", "val"), ("valid", "val"),
                        ("val", "val"), ("test", "test")):
        if token in stem:
            return name
    raise UsageError(f"{file}: cannot tell the split from the file name (needs train, val or test)")


def read_track_ids(file: Path) -> list[str]:
    """Track ids of a tidfile (CSV with a ``track_id`` column) or an MTG-Jamendo TSV."""
    path = Path(file)
    if not path.is_file():
        raise InputError(f"{path}: partition file not found")
    try:
        with path.open(encoding="utf-8") as handle:
            header = handle.readline().rstrip("\n\r")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read partition file ({exc})") from exc
    separator = "\t" if "\t" in header else ","
    columns = [c.strip() for c in header.split(separator)]
    id_column = next((c for c in columns if c.lower() in ("track_id", "tid", "trackid")), None)
    if id_column is None:
        raise InputError(f"{path}: no track_id column in the header (got {header[:80]!r})")
    if separator == "\t":
        # MTG-Jamendo rows carry a variable number of tab-separated tags: read the first column only.
        ids = [line.split("\t", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()[1:]]
        return [i for i in ids if i]
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=[id_column])
    return [i.strip() for i in frame[id_column] if i.strip()]


def summarize(manifest: Manifest, partitions: Partitions) -> pd.DataFrame:
    """Counts per split: tracks, artists, texts, and every label of every tagset.

    Returns
    -------
    pandas.DataFrame
        Columns ``tagset, label, train, val, test, total``; the first rows
        (tagset ``"*"``) count tracks, artists, tracks with text, and artists
        found in more than one split (the leak check).
    """
    frame = manifest.frame
    split = frame["track_id"].map(partitions.split)
    kept = split.notna().to_numpy()
    sub = frame[kept].assign(split=split[kept].to_numpy())
    rows = [
        _count_row("*", "tracks", sub["split"].value_counts()),
        _count_row("*", "artists", sub[sub.artist != ""].groupby("split")["artist"].nunique()),
        _count_row("*", "with text", sub[sub.text != ""]["split"].value_counts()),
    ]
    artist_splits = sub[sub.artist != ""].groupby(sub["artist"].map(normalize_name))["split"].nunique()
    leaking = artist_splits[artist_splits > 1].index
    shared = sub[sub["artist"].map(normalize_name).isin(leaking)].groupby("split")["artist"].nunique()
    rows.append(_count_row("*", "artists in several splits", shared))
    table = pd.DataFrame(rows)
    for tagset in manifest.tagsets:
        exploded = sub[[tag_column(tagset), "split"]].explode(tag_column(tagset)).dropna()
        if exploded.empty:
            continue
        counts = exploded.groupby([tag_column(tagset), "split"]).size().unstack(fill_value=0)
        counts = counts.reindex(columns=list(SPLITS), fill_value=0)
        counts["total"] = counts.sum(axis=1)
        counts = counts.sort_values("total", ascending=False).reset_index(names="label")
        counts.insert(0, "tagset", tagset)
        table = pd.concat([table, counts], ignore_index=True)
    for column in (*SPLITS, "total"):
        table[column] = table[column].fillna(0).astype(np.int64)
    return table[["tagset", "label", *SPLITS, "total"]]


def _count_row(tagset: str, label: str, counts: pd.Series) -> dict:
    row = {"tagset": tagset, "label": label}
    row.update({s: int(counts.get(s, 0)) for s in SPLITS})
    row["total"] = sum(row[s] for s in SPLITS)
    return row


def write_partitions(manifest: Manifest, partitions: Partitions, out_dir: str | Path) -> pd.DataFrame:
    """Write ``{train,val,test}.csv`` (track_id,filename sorted by id), ``summary.csv``
    and, when anything went wrong, ``partition_problems.csv``; return the summary."""
    out = ensure_dir(out_dir)
    frame = manifest.frame[["track_id", "audio_path"]].rename(columns={"audio_path": "filename"})
    split = frame["track_id"].map(partitions.split)
    for name in SPLITS:
        rows = frame[(split == name).to_numpy()].sort_values("track_id")
        write_csv(rows, out / f"{name}.csv")
    summary = summarize(manifest, partitions)
    write_csv(summary, out / SUMMARY_FILE)
    problems = pd.DataFrame(
        [(p.track_id, p.file, p.reason) for p in partitions.problems], columns=["track_id", "file", "reason"]
    )
    problems_path = out / PROBLEMS_FILE
    if len(problems):
        write_csv(problems, problems_path)
    elif problems_path.exists():
        problems_path.unlink()
    logger.info("wrote partitions to %s", out)
    return summary
