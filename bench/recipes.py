"""Compare objectives and recipes on the demo's validation split, on common ground, in one run.

Each variant trains on the same demo run directory (inputs shared by symlinks) for the same number of
epochs; then every model embeds the val store and is scored by nDCG@10 with the query's artist excluded,
graded by cosine in the joint tag space and in the text space, next to the same network untrained (the
validation figure training logs), log-mel statistics (mean and std over time per band and channel: a
handcrafted vector from the stored features) and random vectors.

Usage: ``python bench/recipes.py --run RUN [--epochs 6] [--only NAME ...]`` (RUN: ``musicrep demo --no-train``)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

MODEL = '[model]\nname = "{model}"\nwidth = 0.5\n'
TRAIN = "[train]\nepochs = {epochs}\nbatch_size = 64\nlr = {lr}\nseed = 0\ncrop_frames = 216\npatience = 0\n"
COSINE = 'distance = "cosine"\nmining = "semi-hard"\nmargin = 0.2\n'


def task(space: str, objective: str, weight: float = 1.0, extra: str = "", name: str = "") -> str:
    named = f'name = "{name}"\n' if name else ""
    return f'[[tasks]]\nspace = "{space}"\nobjective = "{objective}"\nweight = {weight}\n{named}{extra}'


VARIANTS: dict[str, tuple[str, str, float]] = {
    # name: (model, tasks, lr)
    "single-task triplet, paper settings (cbmi2019-single)": ("kim2019", task("joint", "triplet"), 1e-4),
    "offline triplets (mine-triplets)": ("kim2019", task("joint", "offline"), 1e-4),
    "single-task triplet, cosine semi-hard": ("kim2019", task("joint", "triplet", extra=COSINE), 1e-3),
    "single-task contrastive": ("kim2019", task("joint", "contrastive"), 1e-3),
    "single-task classification": ("kim2019", task("joint", "classification"), 1e-3),
    "multi-task triplets, paper settings (cbmi2019-multitask)": (
        "kim2019", "".join(task(s, "triplet") for s in ("joint", "genres", "styles", "moods", "themes")), 1e-4),
    "multi-task, demo recipe": ("kim2019", "".join([
        task("joint", "contrastive"), *(task(s, "triplet", 0.5, COSINE) for s in ("genres", "styles", "moods")),
        task("genres", "classification", 0.5, name="genre-tags")]), 1e-3),
    "cross-modal text, CRNN triplet (sac2020-crossmodal)": ("crnn", task("text", "triplet"), 1e-4),
    "cross-modal text, contrastive": ("kim2019", task("text", "contrastive"), 1e-3),
}


def linked_run(source: Path, folder: Path) -> Path:
    run = folder / "run"
    run.mkdir(parents=True)
    for name in ("manifest.parquet", "partitions", "features", "targets"):
        (run / name).symlink_to(source / name)
    return run


def scores(vectors: np.ndarray, ids: list[str], source: Path) -> dict[str, float]:
    from musicrep.data.manifest import read_manifest
    from musicrep.evaluation.retrieval import ndcg_at_k
    from musicrep.targets.space import load_space

    artists = read_manifest(source / "manifest.parquet").frame.set_index("track_id")["artist"]
    out = {}
    for space_name in ("joint", "text"):
        space = load_space(source / "targets" / space_name)
        row = space.row_of()
        keep = [i for i, t in enumerate(ids) if t in row]
        relevance = np.asarray(space.vectors)[[row[ids[i]] for i in keep]]
        names = np.array([artists.get(ids[i], "") for i in keep], dtype=object)
        out[space_name] = ndcg_at_k(vectors[keep], relevance, k=10, artists=names).value
    return out


def handcrafted(source: Path) -> tuple[np.ndarray, list[str]]:
    from musicrep.features.merge import FeatureStore

    store = FeatureStore(source / "features" / "val")
    rows = []
    for i in range(len(store)):
        x = np.asarray(store.features[i], dtype=np.float32)[:, : int(store.index.valid_frames.iloc[i])]
        rows.append(np.concatenate([x.mean(axis=1).ravel(), x.std(axis=1).ravel()]))
    matrix = np.array(rows)
    return (matrix - matrix.mean(0)) / (matrix.std(0) + 1e-6), store.index.track_id.tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    from musicrep.features.merge import FeatureStore
    from musicrep.inference.embed import embed_store
    from musicrep.inference.hub import load

    source = args.run.resolve()
    work = Path(tempfile.mkdtemp(prefix="bench-recipes-"))
    script = Path(sys.executable).parent / "musicrep"
    base, ids = handcrafted(source)
    rows = [("log-mel statistics (handcrafted)", base.shape[1], scores(base, ids, source), None)]
    rng = np.random.default_rng(0)
    rows.append(("random vectors", 128, scores(rng.normal(size=(len(ids), 128)), ids, source), None))
    for number, (name, (model, tasks, lr)) in enumerate(VARIANTS.items()):
        if args.only and not any(o in name for o in args.only):
            continue
        folder = work / f"v{number}"
        run = linked_run(source, folder)
        recipe = folder / "recipe.toml"
        recipe.write_text(MODEL.format(model=model) + tasks + TRAIN.format(epochs=args.epochs, lr=lr))
        done = subprocess.run([str(script), "train", "--config", str(recipe), "--run", str(run)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{name}: failed: {done.stderr.strip().splitlines()[-1:]}", flush=True)
            continue
        encoder = load(run / "model")
        vectors, embedded = embed_store(encoder, FeatureStore(source / "features" / "val"))
        untrained = encoder.config.get("validation", {}).get("untrained_ndcg@10")
        rows.append((name, encoder.embedding_dim, scores(np.asarray(vectors), list(embedded), source), untrained))
        print(f"{name}: joint {rows[-1][2]['joint']:.3f} text {rows[-1][2]['text']:.3f}", flush=True)
    print(f"\nval split of {source}, {args.epochs} epochs each, nDCG@10 with the query's artist excluded\n")
    print("| method | dim | nDCG@10, joint tag space | nDCG@10, text space | same network untrained (first task) |")
    print("|---|---:|---:|---:|---:|")
    for name, dim, figures, untrained in rows:
        shown = "" if untrained is None else f"{untrained:.3f}"
        print(f"| {name} | {dim} | {figures['joint']:.3f} | {figures['text']:.3f} | {shown} |")


if __name__ == "__main__":
    main()
