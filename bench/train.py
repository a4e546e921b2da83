"""Benchmark: training throughput of ``kim2019`` on this machine, the share of step time spent waiting for
data, and the same network's forward/backward alone (the ceiling), in one run.

* **training**: the real loop (Lightning, our module, loaders, P x K batches of random crops from the
  memory-mapped store) on a demo run directory, timed per step by a callback: the wait for the batch (data)
  and the step itself (forward, losses, backward, optimizer);
* **ceiling**: forward + backward + Adam step of the same network on one batch already in memory.

Makes the run directory with ``musicrep demo --no-train`` when ``--run`` is not given.

Usage: ``python bench/train.py [--run RUN] [--tracks 300] [--steps 30] [--batch-size 64] [--width 1.0]
[--device auto]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def make_run(tracks: int) -> Path:
    run = Path(tempfile.mkdtemp(prefix="bench-train-")) / "run"
    script = Path(sys.executable).parent / "musicrep"
    subprocess.run([str(script), "demo", "--out", str(run), "--tracks", str(tracks), "--no-train"], check=True,
                   stdout=subprocess.DEVNULL)
    return run


def recipe_file(folder: Path, *, width: float, batch_size: int, epochs: int) -> Path:
    path = folder / "bench.toml"
    path.write_text(f"""
[model]
name = "kim2019"
width = {width}

[[tasks]]
space = "joint"
objective = "triplet"

[train]
epochs = {epochs}
batch_size = {batch_size}
lr = 1e-4
seed = 0
crop_frames = 216
patience = 0
val_every = 1000
""")
    return path


def training_rate(run: Path, recipe: Path, steps: int, device: str) -> dict[str, float]:
    """Samples/s and the data-wait share of the real training loop, steps after the first two (warm-up)."""
    from lightning.pytorch.callbacks import Callback

    from musicrep.training import run as training
    from musicrep.training.recipe import load_recipe

    timings: list[tuple[float, float, int]] = []

    class Clock(Callback):
        def __init__(self) -> None:
            self.ended = None
            self.started = None

        def on_train_batch_start(self, trainer, module, batch, index) -> None:
            self.started = time.perf_counter()
            if self.ended is not None:
                timings.append((self.started - self.ended, 0.0, len(batch[0])))

        def on_train_batch_end(self, trainer, module, outputs, batch, index) -> None:
            self.ended = time.perf_counter()
            if timings and timings[-1][1] == 0.0:
                wait, _, n = timings[-1]
                timings[-1] = (wait, self.ended - self.started, n)
            if len(timings) >= steps:
                trainer.should_stop = True

    original = training._trainer

    def with_clock(*args, **kwargs):
        trainer = original(*args, **kwargs)
        trainer.callbacks.append(Clock())
        return trainer

    training._trainer = with_clock
    loaded = load_recipe(recipe)
    out = recipe.parent / "out"
    training.train(loaded, training.RunPaths.of(run, out=out), device=device)
    timed = timings[2:]
    wait = sum(t[0] for t in timed)
    step = sum(t[1] for t in timed)
    samples = sum(t[2] for t in timed)
    return {"samples_per_s": samples / (wait + step), "data_share": wait / (wait + step), "steps": len(timed)}


def ceiling_rate(width: float, batch_size: int, steps: int, device: str) -> float:
    from musicrep.models import build_encoder

    target = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    model = build_encoder("kim2019", width=width).to(target)
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)
    batch = torch.randn(batch_size, 2, 128, 216, device=target)
    times = []
    for _ in range(steps + 2):
        start = time.perf_counter()
        loss = model(batch).pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if target.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return batch_size / (sum(times[2:]) / steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path)
    parser.add_argument("--tracks", type=int, default=300)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    run = args.run or make_run(args.tracks)
    folder = Path(tempfile.mkdtemp(prefix="bench-recipe-"))
    n_train = len((run / "partitions" / "train.csv").read_text().splitlines()) - 1
    epochs = -(-args.steps * args.batch_size // max(1, n_train)) + 2
    recipe = recipe_file(folder, width=args.width, batch_size=args.batch_size, epochs=epochs)
    trained = training_rate(run, recipe, args.steps, args.device)
    ceiling = ceiling_rate(args.width, args.batch_size, min(args.steps, 10), args.device)
    device = "cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    print(f"kim2019 width {args.width}, batch {args.batch_size}, {device}, {torch.get_num_threads()} threads, "
          f"{trained['steps']} timed steps")
    print(f"{'training (real loop)':<34}{trained['samples_per_s']:>10.1f} samples/s   "
          f"data wait {trained['data_share']:.1%} of step time (target < 10%)")
    print(f"{'forward/backward alone (ceiling)':<34}{ceiling:>10.1f} samples/s")
    print(f"{'training / ceiling':<34}{trained['samples_per_s'] / ceiling:>10.2f}")


if __name__ == "__main__":
    main()
