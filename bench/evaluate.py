"""Benchmark: the retrieval metrics of ``musicrep evaluate`` on 100,000 x 128 embeddings with 20 genres.

Every test track queries all the others; P@k, MAP@k and nDCG@k for k = 1, 5, 10, 20, 50 under both
candidate rules (artist filtered and not), from one call of
:func:`musicrep.evaluation.retrieval.retrieval_metrics`. The collection is synthetic and seeded:
20 genre centres plus noise (10% of the tracks get a second genre), 10 tracks per artist (one genre
per artist, so the filter matters), graded relevance in a 28-d tag space (genres and 8 moods).

Measured, each in a fresh interpreter (time and peak RSS, ``bench/common.py``):

* ours on all ``--n`` tracks (target: under 2 minutes and 2 GB on 2 cores);
* ours on the first ``--subset`` tracks;
* a plain scikit-learn / numpy reference on the same subset: ``cosine_similarity`` for 1,000
  queries at a time, brought to the metric's 2^-24 grid (without it, the few pairs of candidates
  closer than 6e-8 would be ordered otherwise than the documented tie rule says), a stable
  ``argsort`` per rule, P@k / AP@k by their definitions, nDCG@k with ``sklearn.metrics.ndcg_score``
  (on the queries that have a relevant candidate).

Checks that ours and the reference agree on every figure (to 1e-6: the reference does not round
relevances to the 2^-24 grid) and prints the time and memory ratios.

Usage: ``python bench/evaluate.py [--n 100000] [--subset 10000] [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import measure  # noqa: E402

KS = (1, 5, 10, 20, 50)
GENRES, MOODS, PER_ARTIST, DIMS = 20, 8, 10, 128

OURS = """
import json
import numpy as np
from musicrep.evaluation.retrieval import retrieval_metrics
folder, n = {folder!r}, {n}
emb = np.load(folder + "/emb.npy", mmap_mode="r")[:n]
labels = np.load(folder + "/labels.npy", mmap_mode="r")[:n]
artists = np.load(folder + "/artists.npy", mmap_mode="r")[:n]
relevance = np.load(folder + "/relevance.npy", mmap_mode="r")[:n]
scores = retrieval_metrics(emb, labels=np.asarray(labels), relevance={{"joint": relevance}}, ks={ks!r},
                           artists=np.asarray(artists))
print("FIGURES " + json.dumps({{rule: {{name: [r.value, r.queries, r.skipped] for name, r in results.items()}}
                               for rule, results in scores.items()}}))
"""

REFERENCE = """
import json
import numpy as np
from sklearn.metrics import ndcg_score
from sklearn.metrics.pairwise import cosine_similarity
folder, n, ks = {folder!r}, {n}, {ks!r}
emb = np.load(folder + "/emb.npy")[:n].astype(np.float64)
labels = np.load(folder + "/labels.npy")[:n].astype(np.float64)
artists = np.load(folder + "/artists.npy")[:n]
relevance = np.load(folder + "/relevance.npy")[:n].astype(np.float64)
depth = max(ks)
out = {{}}
for rule in ("artist_filtered", "unfiltered"):
    precision = {{k: [] for k in ks}}
    average = {{k: [] for k in ks}}
    ndcg = {{k: [] for k in ks}}
    for first in range(0, n, 1000):  # (not "start": bench/common.py times with that name)
        rows = np.arange(first, min(first + 1000, n))
        sim = cosine_similarity(emb[rows], emb)
        gain = np.clip(cosine_similarity(relevance[rows], relevance), 0, None)
        excluded = (artists[rows, None] == artists[None, :]) if rule == "artist_filtered" else np.zeros_like(sim, bool)
        excluded[np.arange(len(rows)), rows] = True
        sim = np.trunc(sim * 2.0 ** 24)  # the metric's tie rule: similarities on the 2^-24 grid, ties by index
        sim[excluded] = -np.inf
        gain[excluded] = 0.0
        relevant = (labels[rows] @ labels.T > 0) & ~excluded
        order = np.argsort(-sim, axis=1, kind="stable")[:, :depth]
        hits = np.take_along_axis(relevant, order, axis=1)
        count = relevant.sum(axis=1)
        scored = count > 0
        for k in ks:
            top = hits[:, :k]
            precision[k] += list(top.sum(axis=1)[scored] / k)
            at = np.cumsum(top, axis=1) / np.arange(1, k + 1)
            average[k] += list(((at * top).sum(axis=1) / np.minimum(count, k))[scored])
        has_gain = gain.max(axis=1) > 2.0 ** -25
        # ties to the lower index (ndcg_score would average tied gains): a fraction below one grid step
        score = np.where(excluded, -1e9, sim + 1.0 - np.arange(n) / (n + 1.0))[has_gain]
        for k in ks:
            if has_gain.any():
                ndcg[k].append((ndcg_score(gain[has_gain], score, k=k), int(has_gain.sum())))
    figures = {{}}
    for k in ks:
        figures[f"precision@{{k}}"] = float(np.mean(precision[k]))
        figures[f"map@{{k}}"] = float(np.mean(average[k]))
        figures[f"ndcg_joint@{{k}}"] = float(sum(v * w for v, w in ndcg[k]) / sum(w for _, w in ndcg[k]))
    out[rule] = figures
print("FIGURES " + json.dumps(out))
"""


def write_collection(folder: Path, n: int) -> None:
    """The synthetic collection, seeded (skipped when already there)."""
    if all((folder / f"{name}.npy").is_file() for name in ("emb", "labels", "artists", "relevance")) and \
            np.load(folder / "emb.npy", mmap_mode="r").shape[0] >= n:
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    artists = np.arange(n) // PER_ARTIST
    genre = rng.integers(0, GENRES, size=n // PER_ARTIST + 1)[artists]
    second = np.where(rng.random(n) < 0.1, rng.integers(0, GENRES, size=n), -1)
    mood = rng.integers(0, MOODS, size=n)
    labels = np.zeros((n, GENRES), dtype=bool)
    labels[np.arange(n), genre] = True
    labels[np.flatnonzero(second >= 0), second[second >= 0]] = True
    centres = rng.standard_normal((GENRES, DIMS))
    artist_colour = rng.standard_normal((n // PER_ARTIST + 1, DIMS))[artists]
    emb = 0.35 * centres[genre] + 0.25 * artist_colour + rng.standard_normal((n, DIMS))
    relevance = np.concatenate([labels, np.eye(MOODS, dtype=bool)[mood]], axis=1).astype(np.float32)
    np.save(folder / "emb.npy", emb.astype(np.float32))
    np.save(folder / "labels.npy", labels)
    np.save(folder / "artists.npy", artists)
    np.save(folder / "relevance.npy", relevance)


def figures(result: dict) -> dict:
    line = next(x for x in result["stdout"].splitlines() if x.startswith("FIGURES "))
    return json.loads(line[len("FIGURES "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--subset", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=Path("bench/out/evaluate"))
    args = parser.parse_args()
    write_collection(args.out, max(args.n, args.subset))
    folder = str(args.out.resolve())
    load_before = os.getloadavg()[0]
    full = measure(OURS.format(folder=folder, n=args.n, ks=KS))
    ours = measure(OURS.format(folder=folder, n=args.subset, ks=KS))
    reference = measure(REFERENCE.format(folder=folder, n=args.subset, ks=KS))
    ours_figures, reference_figures = figures(ours), figures(reference)
    worst, where = max((abs(ours_figures[rule][name][0] - value), f"{name}, {rule.replace('_', '-')}")
                       for rule, values in reference_figures.items() for name, value in values.items())
    cores = os.cpu_count() or 1
    print(f"retrieval metrics, {DIMS}-d, {GENRES} genres, {PER_ARTIST} tracks per artist, "
          f"k = {', '.join(map(str, KS))}, P@k + MAP@k + nDCG@k, artist filtered and unfiltered; {cores} cores, "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"  ours, {args.n:>7,} tracks: {full['seconds']:7.1f} s, peak RSS {full['peak_gb']:.2f} GB "
          f"(target: < 120 s, < 2 GB: {'met' if full['seconds'] < 120 and full['peak_gb'] < 2 else 'NOT met'})")
    print(f"  ours, {args.subset:>7,} tracks: {ours['seconds']:7.1f} s, peak RSS {ours['peak_gb']:.2f} GB")
    print(f"  reference, {args.subset:>7,}: {reference['seconds']:7.1f} s, peak RSS {reference['peak_gb']:.2f} GB "
          f"(scikit-learn cosine_similarity + argsort + ndcg_score, 1,000 queries at a time)")
    print(f"  reference / ours on {args.subset:,}: {reference['seconds'] / ours['seconds']:.1f}x the time, "
          f"{reference['peak_gb'] / ours['peak_gb']:.1f}x the memory")
    print(f"  largest difference of {sum(len(v) for v in reference_figures.values())} figures: {worst:.1e} "
          f"({where}; {'agree' if worst < 1e-6 else 'DISAGREE'})")
    filtered = figures(full)["artist_filtered"]
    print(f"  {args.n:,} tracks, artist filtered: P@10 {filtered['precision@10'][0]:.3f}, MAP@10 "
          f"{filtered['map@10'][0]:.3f}, nDCG@10 {filtered['ndcg_joint@10'][0]:.3f} over "
          f"{filtered['precision@10'][1]:,} queries ({filtered['precision@10'][2]} skipped)")


if __name__ == "__main__":
    main()
