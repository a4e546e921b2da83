"""Leak-free train/val/test partitions (stage 2).

Tracks are assigned by group (artist by default, so no artist is in two
splits), with group-aware multi-label stratification over one tagset: the
iterative stratification of Sechidis et al. (2011), applied to whole groups
instead of single tracks. Outputs use the original partition-file format
(``track_id,filename``, sorted by track id) so the original tools read them.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from musicrep.data.manifest import Manifest, normalize_name, tag_column
from musicrep.data.sources import Problem
from musicrep.errors import UsageError
from musicrep.fileio import ensure_dir, write_csv
from musicrep.tables import read_tidfile

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
GROUPINGS = ("artist", "album", "none")
SUMMARY_FILE = "summary.csv"
PROBLEMS_FILE = "partition_problems.csv"
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
_EPS = 1e-9
_MAX_REPAIRS = 200
"""Most moves or swaps of the repair pass (:meth:`_Tally.repair`); it usually needs a handful."""
_EXACT_MAX_STATES = 1_000_000
"""Most split totals the exact search (:func:`_exact_sizes`) keeps, all groups together."""


@dataclass(frozen=True)
class PartitionConfig:
    """How to split a manifest.

    Parameters
    ----------
    fractions : tuple of 3 floats
        Share of tracks for train, val and test; they sum to 1. Not used
        with ``train_with_text`` (a warning says so when they differ from the
        default).
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

    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    group: str = "artist"
    stratify: str | None = "auto"
    train_with_text: bool = False
    val_fraction: float = 0.01
    seed: int = 0

    def validate(self) -> None:
        """Raise :class:`UsageError` on impossible settings."""
        if len(self.fractions) != 3 or not all(math.isfinite(f) and f >= 0 for f in self.fractions):
            raise UsageError(f"--fractions needs three finite non-negative numbers (got {self.fractions})")
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
    empty_splits: list[str] = field(default_factory=list)
    """Why a requested split is empty (too few groups), one line each; the CLI prints them and exits 1."""


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

    Whole groups go to splits. Sizes come first: the total deviation
    ``sum(|size - fraction * n_tracks|)`` over the splits is the least whole
    groups allow whenever the exact search fits (up to about 15 groups of any
    size, or a few hundred tracks: :func:`_exact_sizes`), and otherwise no
    single move or swap of two groups lowers it (:meth:`_Tally.repair`).
    Stratification decides which groups go where among the choices that
    keep the sizes as good. Every requested split (fraction > 0) gets at
    least one group when there are enough groups; when there are not,
    :attr:`Partitions.empty_splits` says so.

    With ``config.train_with_text`` the original rule applies and
    ``config.fractions`` is not used; a warning says so when they differ from
    :data:`DEFAULT_FRACTIONS`.

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
    units = "track(s)" if config.group == "none" else f"{config.group} group(s)"
    if config.train_with_text:
        if tuple(config.fractions) != DEFAULT_FRACTIONS:
            logger.warning(
                "--fractions %s is not used with --train-with-text: the original rule puts every %s "
                "without review text in test and the others in train/val (--val-fraction %g of them in val)",
                ",".join(f"{f:g}" for f in config.fractions), config.group if config.group != "none" else "track",
                config.val_fraction,
            )
        has_text = (manifest.frame["text"].str.len() > 0).to_numpy()
        group_text = np.bincount(groups, weights=has_text) > 0
        assignment = np.full(len(sizes), 2, dtype=np.int8)
        pool = np.flatnonzero(group_text)
        fractions = np.array([1.0 - config.val_fraction, config.val_fraction, 0.0])
        assignment[pool] = _stratified_groups(labels[pool], sizes[pool], fractions, rng)
        empty = _empty_split_notes(assignment[pool], fractions, f"{units} with reviewed text")
        if len(sizes) and len(pool) == len(sizes):
            empty.append(f"test is empty: all {len(sizes)} {units} have reviewed text (--train-with-text)")
    else:
        fractions = np.asarray(config.fractions, dtype=np.float64)
        assignment = _stratified_groups(labels, sizes, fractions, rng)
        empty = _empty_split_notes(assignment, fractions, units)
    split = pd.Series(
        np.asarray(SPLITS, dtype=object)[assignment[groups]],
        index=manifest.frame["track_id"].to_numpy(),
        name="split",
    )
    return Partitions(split=split, stratify=stratify, empty_splits=empty)


def _empty_split_notes(assignment: np.ndarray, fractions: np.ndarray, what: str) -> list[str]:
    """One line naming the requested splits that got no group, if any."""
    counts = np.bincount(assignment, minlength=len(SPLITS))
    empty = [SPLITS[s] for s in range(len(SPLITS)) if fractions[s] > 0 and counts[s] == 0]
    if not empty:
        return []
    requested = int((fractions > 0).sum())
    subject = f"{empty[0]} is" if len(empty) == 1 else f"{', '.join(empty[:-1])} and {empty[-1]} are"
    return [f"{subject} empty: {len(assignment)} {what} for {requested} requested splits"]


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
    """Assign groups to splits: iterative stratification over groups, then sizes made as exact as possible.

    1. Spread (:meth:`_Tally.spread_labels`): rarest label first, a label with
       enough groups puts its smallest ones into the requested splits that
       lack it, all but the largest split, so rare labels reach val and test.
    2. Stratify: the other groups are visited from the one holding the rarest
       label to those with only common labels (larger groups first within a
       label, ties shuffled), then groups without labels, largest first. Each
       goes to a split it *fits* (adding it leaves the split no farther from
       its target size): the one with the largest unmet demand for the
       group's rarest label, ties broken by unmet size; a group that fits
       nowhere goes to the split with the largest unmet size.
    3. Every requested split still empty gets a group where there are enough
       (:meth:`_Tally.fill_empty`).
    4. Sizes (:func:`_exact_sizes`): when the exact search fits, the
       assignment with the least total size deviation that costs the least
       changes to step 3's (each group moved counts, more when its labels
       suffer: :meth:`_Tally.change_costs`).
    5. Otherwise repair (:meth:`_Tally.repair`): groups move, or two swap,
       between a split above its target and one below while that lowers the
       total size deviation (a large group visited late in step 2 no longer
       spoils it), and step 4 is tried again from there.

    Returns
    -------
    np.ndarray [shape=(n_groups,), dtype=int8]
        Split index per group.
    """
    tally = _Tally(labels, sizes, fractions)
    rarest = _rarest_labels(labels, tally.label_totals)
    rarest_total = np.full(len(sizes), np.inf)
    rarest_total[rarest >= 0] = tally.label_totals[rarest[rarest >= 0]]
    order = np.lexsort((rng.random(len(sizes)), -sizes, rarest_total))
    tally.spread_labels()
    order = order[tally.assignment[order] < 0]
    for g, size, label in zip(order.tolist(), sizes[order].tolist(), rarest[order].tolist(), strict=True):
        unmet = {s: tally.unmet(s) for s in tally.requested}
        fits = [s for s in tally.requested if 2.0 * unmet[s] >= size - _EPS]
        if not fits:
            choice = max(tally.requested, key=unmet.__getitem__)
        elif label < 0 or len(fits) == 1:
            choice = max(fits, key=unmet.__getitem__)
        else:
            need = tally.wanted_labels[:, label] - tally.have_labels[:, label]
            choice = max(fits, key=lambda s: (round(float(need[s]), 9), unmet[s]))
        tally.add(g, choice)
    tally.fill_empty(rng)
    exact = _exact_sizes(sizes, fractions, tally.assignment, tally.change_costs())
    if exact is None and tally.repair(rng):
        exact = _exact_sizes(sizes, fractions, tally.assignment, tally.change_costs())
    return tally.assignment if exact is None else exact


def _exact_sizes(
    sizes: np.ndarray, fractions: np.ndarray, proposal: np.ndarray, costs: np.ndarray | None = None,
    max_states: int | None = None,
) -> np.ndarray | None:
    """The assignment with the least total size deviation that costs the least changes to ``proposal``.

    The total deviation is ``sum(|size - fraction * n_tracks|)`` over the
    splits. A dynamic program over the split totals reachable with whole
    groups (largest groups first) keeps, for each combination of totals, the
    cheapest way there. Totals that cannot end with a deviation within
    ``proposal``'s are dropped (more than half of it above a target, or more
    than half below the targets even if all the groups left joined), which
    loses no better assignment, so the search is exact. Among the final
    totals it takes the most non-empty requested splits, then the least
    deviation, then the least cost.

    Parameters
    ----------
    sizes : np.ndarray [shape=(n_groups,)]
        Tracks per group (whole numbers).
    fractions : np.ndarray [shape=(n_splits,)]
    proposal : np.ndarray [shape=(n_groups,)]
        Split per group; a requested split is empty only when there are fewer
        groups than requested splits.
    costs : np.ndarray [shape=(n_groups, n_splits)] or None
        Cost of placing each group in each split, 0 in its ``proposal`` split;
        default 1 for every group moved.
    max_states : int or None
        Give up (return None) once more totals than this were kept over all
        groups; default :data:`_EXACT_MAX_STATES`.

    Returns
    -------
    np.ndarray [shape=(n_groups,), dtype=int8] or None
        None when ``proposal`` cannot be improved on (no deviation beyond
        rounding to whole tracks), nothing beats it, or the search does not
        fit.
    """
    max_states = _EXACT_MAX_STATES if max_states is None else max_states
    requested = np.flatnonzero(fractions > 0)
    wanted = (fractions * sizes.sum())[requested]
    have = np.bincount(proposal, weights=sizes, minlength=len(fractions))[requested]
    bound = float(np.abs(have - wanted).sum())
    if len(requested) < 2 or bound <= 1e-6:
        return None
    if bound <= _rounding_deviation(wanted, int(np.gcd.reduce(sizes.astype(np.int64)))) + 1e-6:
        return None
    limits = np.floor(wanted + bound / 2 + 1e-6).astype(np.int64)
    strides = np.r_[np.cumprod(np.r_[1, limits[:-2] + 1]), 0].astype(np.int64)  # key: totals but the last
    order = np.argsort(-sizes, kind="stable")
    remaining = sizes.sum() - np.cumsum(sizes[order])
    if costs is None:
        costs = (np.arange(len(fractions))[None, :] != proposal[:, None]).astype(np.float64)
    totals, keys, paid = np.zeros((1, len(requested)), dtype=np.int64), np.zeros(1, dtype=np.int64), np.zeros(1)
    parents, choices, kept = [], [], 0
    for g, rest in zip(order.tolist(), remaining.tolist(), strict=True):
        size = int(sizes[g])
        gaps = np.maximum(wanted - rest - totals, 0.0)  # below target even if all the groups left joined
        gap = gaps.sum(axis=1)
        found = []
        for r, split in enumerate(requested.tolist()):
            grown = totals[:, r] + size
            short = gap - gaps[:, r] + np.maximum(wanted[r] - rest - grown, 0.0)
            parent = np.flatnonzero((grown <= limits[r]) & (2.0 * short <= bound + 1e-6))
            found.append((keys[parent] + size * strides[r], paid[parent] + costs[g, split], parent, r))
        key, cost, parent = (np.concatenate([f[i] for f in found]) for i in range(3))
        choice = np.concatenate([np.full(len(f[2]), f[3], dtype=np.int8) for f in found])
        by_key = np.argsort(key, kind="stable")  # merges the sorted runs
        start = np.r_[True, key[by_key[1:]] != key[by_key[:-1]]]
        segment = np.cumsum(start) - 1
        cheapest = np.minimum.reduceat(cost[by_key], np.flatnonzero(start))
        at_min = np.flatnonzero(cost[by_key] <= cheapest[segment])
        first = by_key[at_min[np.r_[True, segment[at_min[1:]] != segment[at_min[:-1]]]]]  # per key the cheapest
        parent, choice = parent[first].astype(np.int32), choice[first]
        totals = totals[parent]
        totals[np.arange(len(first)), choice] += size
        keys, paid = key[first], cost[first]
        parents.append(parent)
        choices.append(choice)
        kept += len(first)
        if kept > max_states:
            return None
    deviation = np.round(np.abs(totals - wanted).sum(axis=1), 9)
    state = int(np.lexsort((np.round(paid, 9), deviation, -(totals > 0).sum(axis=1)))[0])
    if deviation[state] >= round(bound, 9):
        return None
    assignment = np.empty(len(sizes), dtype=np.int8)
    for g, parent, choice in zip(order[::-1].tolist(), parents[::-1], choices[::-1], strict=True):
        assignment[g] = requested[choice[state]]
        state = int(parent[state])
    return assignment


def _rounding_deviation(wanted: np.ndarray, step: int) -> float:
    """The least total deviation from ``wanted`` of split sizes that are multiples of ``step`` (whole tracks)."""
    units = wanted / step
    low = np.floor(units + 1e-9)
    up = int(round(units.sum() - low.sum()))  # this many splits round up, those nearest the next multiple
    rest = np.sort(units - low)
    return float(step * (rest[: len(rest) - up].sum() + (1.0 - rest[len(rest) - up:]).sum()))


def _rarest_labels(labels: sparse.csr_matrix, label_totals: np.ndarray) -> np.ndarray:
    """Per group, the index of its rarest label (-1 for a group without labels)."""
    rarest = np.full(labels.shape[0], -1, dtype=np.int64)
    nonempty = np.diff(labels.indptr) > 0
    if labels.shape[1]:
        rarity = np.where(label_totals > 0, label_totals, np.inf)
        present = labels.copy()
        present.data[:] = 1.0
        row_rarity = present.multiply(1.0 / rarity[None, :]).tocsr()
        rarest[nonempty] = np.asarray(row_rarity[nonempty].argmax(axis=1)).ravel()
    return rarest


class _Tally:
    """Sizes and label counts per split while groups are assigned (-1: not yet)."""

    def __init__(self, labels: sparse.csr_matrix, sizes: np.ndarray, fractions: np.ndarray) -> None:
        self.labels, self.sizes, self.fractions = labels, sizes, fractions
        self.requested = [int(s) for s in np.flatnonzero(fractions > 0)]
        # plain Python floats for the sizes: numpy calls on 3-element arrays cost more than the work
        self.wanted = (fractions * sizes.sum()).tolist()
        self.have = [0.0] * len(fractions)
        self.label_totals = np.asarray(labels.sum(axis=0)).ravel()
        self.wanted_labels = fractions[:, None] * self.label_totals[None, :]
        self.have_labels = np.zeros((len(fractions), labels.shape[1]))
        self.assignment = np.full(labels.shape[0], -1, dtype=np.int8)

    def unmet(self, split: int) -> float:
        return self.wanted[split] - self.have[split]

    def add(self, group: int, split: int) -> None:
        old = int(self.assignment[group])
        start, stop = self.labels.indptr[group], self.labels.indptr[group + 1]
        columns, counts = self.labels.indices[start:stop], self.labels.data[start:stop]
        if old >= 0:
            self.have[old] -= self.sizes[group]
            self.have_labels[old, columns] -= counts
        self.have[split] += self.sizes[group]
        self.have_labels[split, columns] += counts
        self.assignment[group] = split

    def spread_labels(self) -> None:
        """Rarest label first: its smallest groups go to the requested splits lacking it.

        Every lacking split but the largest gets one, smallest split first,
        when the label has a group left for each (and one more for the largest
        split if that lacks it too, to get in the stratification pass) and the
        group fits whole in the split's unmet size. The cost is at most one
        group per label and split, the smallest there is.
        """
        by_label = self.labels.tocsc()
        largest = max(self.requested, key=lambda s: self.fractions[s], default=0)
        for label in np.argsort(self.label_totals, kind="stable").tolist():
            lacking = [s for s in self.requested if s != largest and self.have_labels[s, label] == 0]
            if not lacking or self.label_totals[label] == 0:
                continue
            groups = by_label.indices[by_label.indptr[label]:by_label.indptr[label + 1]]
            free = groups[self.assignment[groups] < 0]
            if len(free) < len(lacking) + int(self.have_labels[largest, label] == 0):
                continue
            smallest = free[np.argsort(self.sizes[free], kind="stable")[:len(lacking)]]
            for split, group in zip(sorted(lacking, key=lambda s: self.fractions[s]), smallest.tolist(), strict=True):
                if self.sizes[group] <= self.unmet(split) + _EPS:
                    self.add(group, split)

    def fill_empty(self, rng: np.random.Generator) -> None:
        """Move one group into each requested split left empty, while another split holds several.

        Splits are filled largest fraction first. The group moved is the
        smallest one of a split holding several groups; among equals, the one
        whose labels the empty split needs most relative to its own split, then
        one from the split furthest above its target size, then a seeded draw.
        Stops when no split holds two groups (fewer groups than requested splits).
        """
        n_splits = len(self.fractions)
        for target in sorted(self.requested, key=lambda s: -self.fractions[s]):
            counts = np.bincount(self.assignment, minlength=n_splits)
            if counts[target] > 0:
                continue
            movable = np.flatnonzero(counts[self.assignment] >= 2)
            if len(movable) == 0:
                return
            donors = self.assignment[movable]
            need = self.wanted_labels - self.have_labels
            gain = np.asarray(self.labels[movable].multiply(need[target][None, :] - need[donors]).sum(axis=1)).ravel()
            over = -np.array([self.unmet(s) for s in range(n_splits)])[donors]
            pick = np.lexsort((rng.random(len(movable)), -over, -gain, self.sizes[movable]))
            self.add(int(movable[pick[0]]), target)

    def change_costs(self) -> np.ndarray:
        """Cost of moving each group alone to each split, for :func:`_exact_sizes` (0 where it is).

        One per group moved plus its :meth:`label_harm` (labels lost, then the
        change of the label deviation), never below 0.1.
        """
        costs = np.zeros((len(self.sizes), len(self.fractions)))
        groups = np.arange(len(self.sizes))
        for target in self.requested:
            lost, change = self.label_harm(groups, self.assignment, target)
            costs[:, target] = np.maximum(0.1, 1.0 + lost + change)
        costs[groups, self.assignment] = 0.0
        return costs

    def repair(self, rng: np.random.Generator, max_moves: int = _MAX_REPAIRS) -> int:
        """Move a group, or swap two, from a split above its target size to one below while that helps.

        Each step takes the transfer that lowers the total size deviation the
        most: a group of the split above (never its last one) moved, or
        swapped for a smaller group of the split below; a move before a swap
        when they help equally. Among the groups that do it equally well, the
        one whose move harms the labels least (:meth:`_best_group`). At most
        ``max_moves`` steps, each lowering the deviation; returns how many.
        When it stops before that, no single move or swap lowers the
        deviation: a split above its target that holds two groups or more is
        above it by less than its smallest group, and when every split above
        its target does, the total deviation is at most 4/3 of the largest of
        their smallest groups (1.33 tracks where they hold one-track groups).
        """
        for step in range(max_moves):
            members = {s: np.flatnonzero(self.assignment == s) for s in self.requested}
            options = []
            for s, t in itertools.permutations(self.requested, 2):
                above, below = self.have[s] - self.wanted[s], self.wanted[t] - self.have[t]
                if above <= _EPS or below <= _EPS:
                    continue
                xs, ys = np.unique(self.sizes[members[s]]), np.unique(self.sizes[members[t]])
                if len(members[s]) > 1:
                    options.append((round(float(_transfer_gain(xs, above, below).min()), 9), 0, s, t))
                net = (xs[:, None] - ys[None, :]).ravel()
                if (net > 0).any():
                    options.append((round(float(_transfer_gain(net[net > 0], above, below).min()), 9), 1, s, t))
            gain, kind, s, t = min(options, default=(0.0, 0, 0, 0))
            if gain >= -_EPS:
                return step
            above, below = self.have[s] - self.wanted[s], self.wanted[t] - self.have[t]
            sizes_s, sizes_t = self.sizes[members[s]], self.sizes[members[t]]
            if kind == 0:
                best = np.round(_transfer_gain(sizes_s, above, below), 9) <= gain
                self.add(self._best_group(members[s][best], s, t, rng), t)
                continue
            xs, ys = np.unique(sizes_s), np.unique(sizes_t)
            net = xs[:, None] - ys[None, :]
            best = (net > 0) & (np.round(_transfer_gain(net, above, below), 9) <= gain)
            group = self._best_group(members[s][np.isin(sizes_s, xs[best.any(axis=1)])], s, t, rng)
            net = self.sizes[group] - sizes_t
            best = (net > 0) & (np.round(_transfer_gain(net, above, below), 9) <= gain)
            self.add(group, t)
            self.add(self._best_group(members[t][best], t, s, rng), s)
        return max_moves

    def _best_group(self, candidates: np.ndarray, source: int, target: int, rng: np.random.Generator) -> int:
        """Among groups of ``source``, the one whose move to ``target`` harms the labels least (:meth:`label_harm`)."""
        lost, change = self.label_harm(candidates, source, target)
        return int(candidates[np.lexsort((rng.random(len(candidates)), np.round(change, 9), lost))[0]])

    def label_harm(self, groups: np.ndarray, source: int | np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
        """What moving each of ``groups`` alone from ``source`` (one split, or one per group) to ``target`` does.

        Returns
        -------
        lost : np.ndarray [shape=(n,)]
            Labels ``source`` no longer has (the group held them alone there)
            less labels ``target`` gains (it had none).
        change : np.ndarray [shape=(n,)]
            Change of ``sum(|have - wanted| / label_total)`` over both splits
            and the group's labels: below 0 when the move balances them.
        """
        block = self.labels[groups]
        rows = np.repeat(np.arange(len(groups)), np.diff(block.indptr))
        cols, counts = block.indices, block.data
        source = np.broadcast_to(source, len(groups))[rows]
        alone = self.have_labels[source, cols] <= counts + _EPS
        lost = alone.astype(np.float64) - (self.have_labels[target, cols] == 0)
        off = self.have_labels - self.wanted_labels
        off_source, off_target = off[source, cols], off[target, cols]
        change = (np.abs(off_source - counts) - np.abs(off_source)
                  + np.abs(off_target + counts) - np.abs(off_target)) / np.maximum(self.label_totals[cols], 1.0)
        return (np.bincount(rows, weights=lost, minlength=len(groups)),
                np.bincount(rows, weights=change, minlength=len(groups)))


def _transfer_gain(net: np.ndarray, above: float, below: float) -> np.ndarray:
    """Change of the total deviation when ``net`` tracks go from a split ``above`` its target to one ``below`` it."""
    return np.abs(above - net) - above + np.abs(net - below) - below


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
        listed = read_tidfile(file)
        problems += [Problem(p.track_id, f"{file}:{p.line}", p.reason) for p in listed.problems]
        for track_id in listed.track_ids:
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
