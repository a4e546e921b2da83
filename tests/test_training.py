"""Training: recipes, objectives, and short real runs on the demo run directory (loss, export, seeds,
resume after SIGKILL, DDP on CPU)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from conftest import run_cli, run_musicrep
from musicrep.errors import UsageError
from musicrep.training.objectives import (
    ClassificationObjective,
    ContrastiveObjective,
    TaskBatch,
    TripletObjective,
)
from musicrep.training.recipe import TaskRecipe, load_recipe, recipe_from_dict

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

TINY = """
[model]
name = "kim2019"
width = 0.25
embedding_dim = 32

[[tasks]]
space = "joint"
objective = "triplet"

[[tasks]]
space = "genres"
objective = "contrastive"
weight = 0.5

[[tasks]]
space = "genres"
name = "genre-tags"
objective = "classification"
weight = 0.5

[train]
epochs = {epochs}
batch_size = 16
lr = 1e-3
seed = 0
crop_frames = 64
num_workers = {workers}
"""


def tiny_recipe(tmp_path: Path, *, epochs: int = 1, workers: int = 0, extra: str = "") -> Path:
    path = tmp_path / "tiny.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TINY.format(epochs=epochs, workers=workers) + extra)
    return path


def copy_run(demo_run: Path, tmp_path: Path) -> Path:
    """A fresh run directory sharing the fixture's inputs (symlinks), so runs do not see each other's outputs."""
    run = tmp_path / "run"
    run.mkdir(parents=True)
    for name in ("manifest.parquet", "partitions", "features", "targets"):
        (run / name).symlink_to(demo_run / name)
    return run


# --------------------------------------------------------------------------- recipes


def test_shipped_recipes_load():
    for name in ("demo", "cbmi2019-multitask", "cbmi2019-single", "sac2020-crossmodal"):
        recipe = load_recipe(CONFIGS / f"{name}.toml")
        assert recipe.tasks and recipe.train.crop_frames == 216
    assert load_recipe(CONFIGS / "sac2020-crossmodal.toml").tasks[0].space == "text"
    assert {t.space for t in load_recipe(CONFIGS / "cbmi2019-multitask.toml").tasks} == {
        "joint", "genres", "styles", "moods", "themes"}


def test_recipe_errors_name_the_key_and_the_file(tmp_path):
    base = {"model": {"name": "kim2019"}, "tasks": [{"space": "joint"}]}
    assert recipe_from_dict(base).tasks[0].objective == "triplet"
    cases = [
        ({**base, "train": {"epoch": 3}}, r"x.toml: unknown key 'epoch' in \[train\]"),
        ({**base, "train": {"epochs": "3"}}, r"x.toml: train.epochs must be int \(got '3'\)"),
        ({**base, "train": {"lr": True}}, r"train.lr must be float"),
        ({**base, "model": {"name": "kim2019", "depth": 3}}, r"unknown key 'depth' in \[model\]"),
        ({**base, "tasks": [{"space": "joint", "objective": "magic"}]}, r"tasks.objective must be one of"),
        ({**base, "tasks": [{"objective": "triplet"}]}, r"\[tasks\[0\]\] .*space"),
        ({**base, "optimizer": {}}, r"unknown section \[optimizer\]"),
        ({**base, "tasks": [{"space": "joint"}, {"space": "joint"}]}, r"two tasks are named 'joint'"),
        ({**base, "tasks": [{"space": "joint", "temperature": 0.1}]},
         r"x.toml: 'temperature' in \[tasks\[0\]\] does not apply to the triplet objective"),
        ({**base, "model": {"name": "resnet"}}, r"x.toml: \[model\] unknown model 'resnet'"),
    ]
    for data, message in cases:
        with pytest.raises(UsageError, match=message):
            recipe_from_dict(data, source="x.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nname=")
    result = run_cli("train", "--config", bad, "--run", tmp_path)
    assert result.exit_code == 2 and "bad.toml: not valid TOML" in result.stderr


def test_a_space_that_is_not_there_lists_the_spaces(demo_run, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[model]\nname = "kim2019"\n[[tasks]]\nspace = "instruments"\n')
    result = run_cli("train", "--config", recipe, "--run", copy_run(demo_run, tmp_path))
    assert result.exit_code == 2
    assert "names space 'instruments', which is not in" in result.stderr
    assert "genres, joint, moods, styles, text, themes" in result.stderr


# --------------------------------------------------------------------------- objectives


def _targets(vectors, labels=None) -> TaskBatch:
    vectors = torch.nn.functional.normalize(torch.tensor(vectors, dtype=torch.float32), dim=1)
    return TaskBatch(vectors=vectors, valid=torch.ones(len(vectors), dtype=torch.bool),
                     labels=None if labels is None else torch.tensor(labels, dtype=torch.float32))


def test_batch_hard_triplet_loss_by_hand():
    # rows 0,1 related (same target), row 2 unrelated; embeddings on a line
    targets = _targets([[1, 0], [1, 0], [0, 1]])
    embeddings = torch.tensor([[0.0], [3.0], [1.0]])
    loss, stats = TripletObjective(TaskRecipe(space="x"))(embeddings, targets)
    # anchor 0: d(a,p)=3, d(a,n)=1 -> 3; anchor 1: d=3, d(a,n)=2 -> 2; anchor 2 has no positive
    assert loss.item() == pytest.approx((3 - 1 + 1 + 3 - 2 + 1) / 2, rel=1e-4)
    assert stats["valid_triplets"] == pytest.approx(2 / 3)
    cosine = TripletObjective(TaskRecipe(space="x", distance="cosine"))
    assert cosine(torch.tensor([[1.0, 0], [1.0, 0], [-1.0, 0]]), targets)[0].item() == pytest.approx(0.0, abs=1e-6)


def test_disjoint_negatives_measure_and_remove_label_sharing_pairs():
    # rows 0 and 2 share the label "a" but their target vectors are far apart: a threshold negative
    targets = _targets([[1, 0], [1, 0], [0.3, 1], [0, 1]], labels=[[1, 1, 0], [1, 1, 0], [1, 0, 1], [0, 0, 1]])
    embeddings = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    _, plain = TripletObjective(TaskRecipe(space="x"))(embeddings, targets)
    assert 0 < plain["label_sharing_negatives"] < 1
    _, disjoint = TripletObjective(TaskRecipe(space="x", negatives="disjoint"))(embeddings, targets)
    assert disjoint["label_sharing_negatives"] == 0.0


def test_contrastive_soft_targets_and_temperature():
    targets = _targets([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    objective = ContrastiveObjective(TaskRecipe(space="x", objective="contrastive"), embedding_dim=3, space_dim=3)
    loss, stats = objective(torch.randn(4, 3), targets)
    assert loss.item() > 0 and stats["temperature"] == pytest.approx(0.07, rel=1e-5)
    assert objective.log_temperature.requires_grad
    fixed = ContrastiveObjective(TaskRecipe(space="x", learn_temperature=False), embedding_dim=3, space_dim=3)
    assert not any("temperature" in name for name, _ in fixed.named_parameters())
    # rows 0 and 1 share a target: each puts half its mass on the other, so swapping them changes nothing
    with torch.no_grad():
        for layer in objective.head.net:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.copy_(torch.eye(3))
                layer.bias.zero_()
    aligned = objective(targets.vectors.clone(), targets)[0]
    swapped = objective(targets.vectors[[1, 0, 2, 3]].clone(), targets)[0]
    assert aligned.item() == pytest.approx(swapped.item(), rel=1e-5)


def test_classification_is_binary_cross_entropy_over_labels():
    objective = ClassificationObjective(TaskRecipe(space="x", objective="classification"), embedding_dim=4,
                                        labels=["a", "b"])
    targets = _targets([[1, 0], [0, 1]], labels=[[1, 0], [0, 1]])
    embeddings = torch.randn(2, 4)
    loss, _ = objective(embeddings, targets)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(objective.head(embeddings), targets.labels)
    assert loss.item() == pytest.approx(expected.item())


# --------------------------------------------------------------------------- real runs


def test_training_learns_exports_and_loads(demo_run, tmp_path):
    import musicrep

    run = copy_run(demo_run, tmp_path)
    result = run_cli("train", "--config", tiny_recipe(tmp_path, epochs=6), "--run", run)
    assert result.exit_code == 0, result.stderr
    assert "epoch 6:" in result.stdout and "val nDCG@10" in result.stdout
    metrics = pd.read_csv(run / "logs" / "csv" / "metrics.csv")
    losses = metrics.dropna(subset=["loss"])["loss"].to_numpy()
    assert len(losses) == 6 and losses[-3:].mean() < losses[0]  # training loss falls
    for name in ("model.safetensors", "config.json", "MODEL_CARD.md"):
        assert (run / "model" / name).is_file()
    assert list((run / "logs" / "tensorboard").glob("events.*"))
    # last.ckpt is the last epoch whatever validation did (the best one is kept beside it)
    assert torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["epoch"] == 5
    assert len(list((run / "checkpoints").glob("best-*.ckpt"))) == 1
    zero = run_cli("train", "--config", tiny_recipe(tmp_path, epochs=1), "--run", run, "--epochs", "0")
    assert zero.exit_code == 2 and "--epochs must be at least 1 (got 0)" in zero.stderr
    encoder = musicrep.load(run / "model")
    assert set(encoder.config["heads"]) == {"genres", "genre-tags"}
    assert encoder.config["heads"]["genre-tags"]["kind"] == "classification"
    learned = encoder.config["heads"]["genres"]["temperature"]  # exported as learned, not the initial 0.07
    assert 0 < learned and learned != pytest.approx(0.07, abs=1e-6)
    assert encoder.config["validation"]["checkpoint"].startswith("best-")
    store_track = pd.read_csv(run / "features" / "test" / "index.csv", dtype=str).track_id.iloc[0]
    frame = pd.read_parquet(run / "manifest.parquet").set_index("track_id")
    audio = read_audio_root(run) / frame.loc[store_track, "audio_path"]
    vector = encoder.embed(audio)
    assert vector.shape == (32,) and np.isfinite(vector).all()
    assert "nDCG@10" in (run / "model" / "MODEL_CARD.md").read_text()


def read_audio_root(run: Path) -> Path:
    from musicrep.data.manifest import read_manifest

    return read_manifest(run / "manifest.parquet").audio_root


def test_same_recipe_and_seed_give_the_same_weights(demo_run, tmp_path):
    weights = []
    for name in ("a", "b"):
        run = copy_run(demo_run, tmp_path / name)
        assert run_cli("train", "--config", tiny_recipe(tmp_path / name, workers=1), "--run", run).exit_code == 0
        weights.append(load_file(run / "model" / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


@pytest.mark.slow
def test_resume_after_sigkill(demo_run, tmp_path):
    run = copy_run(demo_run, tmp_path)
    recipe = tiny_recipe(tmp_path, epochs=4)
    script = Path(sys.executable).parent / "musicrep"
    proc = subprocess.Popen([str(script), "train", "--config", str(recipe), "--run", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not last.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert last.is_file(), proc.stderr.read().decode() if proc.poll() is not None else "no checkpoint in time"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (run / "model" / "model.safetensors").exists()
    done = torch.load(last, map_location="cpu", weights_only=False)["epoch"] + 1
    assert done < 4
    resumed = run_musicrep("train", "--config", recipe, "--run", run, "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    epochs = [int(line.split(":")[0].split()[1]) for line in resumed.stdout.splitlines() if line.startswith("epoch ")]
    assert epochs == list(range(done + 1, 5))  # it went on where it stopped, not from epoch 1
    assert (run / "model" / "model.safetensors").is_file()


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(demo_run, tmp_path):
    import musicrep

    run = copy_run(demo_run, tmp_path)
    result = run_musicrep("train", "--config", tiny_recipe(tmp_path), "--run", run, "--device", "cpu",
                          "--devices", "2", timeout=600)
    assert result.exit_code == 0, result.stderr[-3000:]
    encoder = musicrep.load(run / "model")
    assert encoder.embed(np.zeros(22050 * 3, dtype=np.float32) + 0.01, sr=22050).shape == (32,)


def test_a_store_with_nan_is_refused_naming_the_track(demo_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    for name in ("manifest.parquet", "partitions", "targets"):
        (run / name).symlink_to(demo_run / name)
    shutil.copytree(demo_run / "features" / "train", run / "features" / "train")
    (run / "features" / "val").symlink_to(demo_run / "features" / "val")
    (run / "features" / "stats.npz").symlink_to(demo_run / "features" / "stats.npz")
    features = np.load(run / "features" / "train" / "features.npy", mmap_mode="r+")
    features[3, 5, 7, 0] = np.nan
    features.flush()
    track = pd.read_csv(run / "features" / "train" / "index.csv", dtype=str).track_id.iloc[3]
    result = run_cli("train", "--config", tiny_recipe(tmp_path), "--run", run)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {run / 'features' / 'train'}/features.npy: non-finite values in row 3 (track {track}); "
        "extract and merge it again"]


def test_augmentation_masks_and_gain_stay_within_the_floor():
    from musicrep.training.data import augment_crop, mixup
    from musicrep.training.recipe import AugmentRecipe

    crop = np.random.default_rng(0).uniform(-60, 0, size=(128, 216, 2)).astype(np.float32)
    out = augment_crop(crop.copy(), AugmentRecipe(time_mask=20, freq_mask=10, gain_db=6),
                       np.random.default_rng(1), floor=-80.0)
    assert out.min() >= -80.0 and not np.array_equal(out, crop)
    masked_bands = (out == -80.0).all(axis=(1, 2)).sum()
    masked_frames = (out == -80.0).all(axis=(0, 2)).sum()
    assert masked_bands <= 10 and masked_frames <= 20 and masked_bands + masked_frames > 0
    batch = torch.from_numpy(np.stack([crop.transpose(2, 0, 1)] * 4))
    assert torch.equal(mixup(batch, 0.0, torch.Generator().manual_seed(0)), batch)
    quiet = batch - torch.tensor([0.0, 10.0, 20.0, 30.0]).view(4, 1, 1, 1)  # same crop, 0-30 dB quieter
    mixed = mixup(quiet, 1.0, torch.Generator().manual_seed(0))
    assert (mixed >= quiet).all() and not torch.equal(mixed, quiet)  # in dB the louder bin wins
