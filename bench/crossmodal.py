"""Cross-modal search quality: tags -> audio and text -> audio precision@10 on a run's test split.

Builds the run's index (``musicrep index``, into ``--out``; the run is only read), then
every test track queries with its own tags (all tagsets) and, when it has one, its own
text (the album review, in its language), exactly as ``musicrep search --tags`` /
``--text`` project them (:func:`musicrep.search.spaces.tag_terms`, ``text_terms``,
``project_terms``); the candidates are the other test tracks, ranked by the cosine of
their audio in the query's space (the index's stored vectors: through the model's head,
or the linear map). A candidate is relevant when it shares a genre with the query track.
Next to each figure: the expected precision of a random ranking of the same candidates
(the share of relevant candidates, averaged over the queries), and the same with the
query's artist left out of the candidates. Track -> audio (``--track``) is the
reference of an audio query. Text queries are also broken down by the language of the
query text.

Usage: ``python bench/crossmodal.py [--run runs/demo] [--out /tmp/crossmodal-index] [--k 10]``
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from musicrep.data.manifest import normalize_name, read_manifest
from musicrep.search.index import AUDIO, build_index, open_space, read_description
from musicrep.search.spaces import project_terms, tag_terms, text_terms
from musicrep.tables import read_tidfile
from musicrep.targets.analyzers import TextDocument


def precision(scores: np.ndarray, relevant: np.ndarray, allowed: np.ndarray, k: int) -> tuple[float, float]:
    """Precision@k of ranking ``allowed`` candidates by ``scores`` (ties: lower row first), and a random
    ranking's expectation."""
    rows = np.flatnonzero(allowed)
    order = rows[np.lexsort((rows, -scores[rows]))][:k]
    return float(relevant[order].mean()), float(relevant[rows].mean())


def evaluate(queries: Sequence[tuple[int, np.ndarray]], candidates: np.ndarray, genres: list[set[str]],
             artists: list[str], k: int) -> dict[str, float]:
    """Mean precision@k and random expectation of ``(query row, query vector)`` pairs against ``candidates``
    (rows = test tracks), the query's own track excluded, then its artist too."""
    figures: dict[str, list[float]] = {"p": [], "random": [], "p_artist": [], "random_artist": []}
    n = len(candidates)
    for row, vector in queries:
        scores = candidates @ vector
        relevant = np.array([bool(genres[row] & genres[c]) for c in range(n)])
        others = np.arange(n) != row
        other_artists = np.array([artists[c] != artists[row] for c in range(n)])
        for suffix, allowed in (("", others), ("_artist", others & other_artists)):
            if relevant[allowed].any():
                p, random = precision(scores, relevant, allowed, k)
                figures["p" + suffix].append(p)
                figures["random" + suffix].append(random)
    return {name: float(np.mean(values)) if values else float("nan") for name, values in figures.items()} | {
        "queries": len(figures["p"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("/work/main/runs/demo"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/crossmodal-index"))
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    from musicrep.targets.space import load_space

    report = build_index(args.out, run=args.run)
    description = read_description(args.out)
    ids = pd.read_csv(args.out / "ids.csv", dtype=str)["track_id"].tolist()
    test = [t for t in read_tidfile(args.run / "partitions" / "test.csv").track_ids if t in set(ids)]
    position = {t: i for i, t in enumerate(ids)}
    rows = np.array([position[t] for t in test])
    frame = read_manifest(args.run / "manifest.parquet").frame.set_index("track_id").loc[test]
    genres = [set(g) for g in frame["tags_genres"]]
    artists = [normalize_name(a) or f"\0{i}" for i, a in enumerate(frame["artist"])]
    tagsets = description["tagsets"]
    print(f"{args.run}: {report.n_indexed} tracks indexed ({len(report.failed)} failed), {len(test)} test tracks; "
          f"relevant = shares a genre; candidates = the other test tracks")

    def space_queries(kind: str, document: Callable[[pd.Series], object | None]):
        name = description["queries"][kind]
        space = load_space(description["spaces"][name]["path"])
        vectors, _ = open_space(args.out, description, name)
        candidates = np.asarray(vectors[rows], dtype=np.float32)
        queries, languages = [], []
        for i, (_, track) in enumerate(frame.iterrows()):
            value = document(track)
            if value is None:
                continue
            terms = tag_terms(space, value) if kind == "tags" else text_terms(space, value.text)
            vector = project_terms(space.model, terms.terms)
            if vector is not None:
                queries.append((i, vector))
                languages.append(track["language"] or "?")
        entry = description["spaces"][name]
        via = entry["via"] if entry["via"] == "head" else f"linear (val cos {entry.get('val_cosine')})"
        return name, via, candidates, queries, languages

    lines = []
    tag_name, tag_via, tag_candidates, tag_queries, _ = space_queries(
        "tags", lambda t: [f"{s}:{tag}" for s in tagsets for tag in t[f"tags_{s}"]] or None)
    lines.append((f"tags -> audio ({tag_name}, {tag_via})", evaluate(tag_queries, tag_candidates, genres, artists,
                                                                       args.k)))
    text_name, text_via, text_candidates, text_queries, languages = space_queries(
        "text", lambda t: TextDocument(t["text"], t["language"]) if str(t["text"]).strip() else None)
    lines.append((f"text -> audio ({text_name}, {text_via})", evaluate(text_queries, text_candidates, genres,
                                                                         artists, args.k)))
    for language in sorted(set(languages)):
        chosen = [q for q, lang in zip(text_queries, languages, strict=True) if lang == language]
        lines.append((f"  text in {language}", evaluate(chosen, text_candidates, genres, artists, args.k)))
    audio, _ = open_space(args.out, description, AUDIO)
    audio_candidates = np.asarray(audio[rows], dtype=np.float32)
    lines.append(("track -> audio (reference)", evaluate(list(enumerate(audio_candidates)), audio_candidates,
                                                         genres, artists, args.k)))
    k = args.k
    print(f"{'query':<48}{'queries':>8}{f'P@{k}':>8}{'random':>8}{'ratio':>7}"
          f"{f'P@{k} other artists':>21}{'random':>8}{'ratio':>7}")
    for label, f in lines:
        print(f"{label:<48}{f['queries']:>8}{f['p']:>8.3f}{f['random']:>8.3f}{f['p'] / f['random']:>6.2f}x"
              f"{f['p_artist']:>21.3f}{f['random_artist']:>8.3f}{f['p_artist'] / f['random_artist']:>6.2f}x")


if __name__ == "__main__":
    main()
