from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import run_cli, run_musicrep
from musicrep.pipeline import config_hash


@pytest.mark.slow
def test_demo_command_end_to_end(tmp_path):
    run = tmp_path / "run"
    first = run_musicrep("demo", "--out", run, "--tracks", "60", "--jobs", "2")
    assert first.exit_code == 0, first.stderr
    assert "0 unexpected" in first.stdout and "expected:" in first.stdout
    for path in ("manifest.parquet", "manifest_problems.csv", "config.toml", "partitions/train.csv",
                 "partitions/val.csv", "partitions/test.csv", "partitions/summary.csv",
                 "done/align.json", "done/partition.json", "done/extract.json", "done/targets.json",
                 "done/triplets.json", "features/extract_log.csv", "features/extract_config.json",
                 "targets/joint/vectors.npy", "targets/text/model.json", "targets/triplets.parquet",
                 "done/merge.json", "features/train/features.npy", "features/val/index.csv",
                 "features/test/store.json", "features/stats.npz", "done/train.json", "done/embed.json",
                 "model/model.safetensors", "model/config.json", "model/MODEL_CARD.md", "checkpoints/last.ckpt",
                 "embeddings/train/vectors.npy", "embeddings/val/ids.csv", "embeddings/test/embed_config.json",
                 "done/evaluate.json", "report/metrics.json", "report/report.md", "done/index.json",
                 "index/index.json"):
        assert (run / path).is_file(), path
    done = json.loads((run / "done" / "align.json").read_text())
    assert done["config_hash"] == config_hash({"source": "demo", "tracks": 60, "seed": 0})
    train_before = (run / "partitions" / "train.csv").read_bytes()

    # at 60 tracks every split holds whole artists, none shared, and each reaches its merged store
    splits = {name: pd.read_csv(run / "partitions" / f"{name}.csv", dtype=str) for name in ("train", "val", "test")}
    artists = pd.read_parquet(run / "manifest.parquet").set_index("track_id")["artist"]
    assert all(len(frame) > 0 for frame in splits.values()), {k: len(v) for k, v in splits.items()}
    by_split = {name: set(artists[frame.track_id]) for name, frame in splits.items()}
    assert not (by_split["train"] & by_split["val"] or by_split["train"] & by_split["test"]
                or by_split["val"] & by_split["test"])
    for name, frame in splits.items():
        index = pd.read_csv(run / "features" / name / "index.csv", dtype={"track_id": str})
        assert len(index) > 0 and set(index.track_id) <= set(frame.track_id)

    log = pd.read_csv(run / "features" / "extract_log.csv", keep_default_na=False)
    failed = log[log.status == "failed"]
    assert len(failed) >= 2 and "anchors have a positive" in first.stdout  # the broken files, expected

    assert "training (" in first.stdout and "the same network untrained" in first.stdout
    # every track of every split is embedded, in the store's order
    for name in ("train", "val", "test"):
        ids = pd.read_csv(run / "embeddings" / name / "ids.csv", dtype=str)
        index = pd.read_csv(run / "features" / name / "index.csv", dtype=str)
        assert ids.track_id.tolist() == index.track_id.tolist()

    # it ends with the evaluation table, the index and the command that serves it
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    assert {"model", "handcrafted", "untrained", "random", "oracle"} <= set(metrics["methods"])
    assert "| model " in first.stdout and "| handcrafted " in first.stdout
    assert first.stdout.strip().splitlines()[-1].startswith(f"serve it: musicrep serve --index {run / 'index'}")
    assert "-inf" not in first.stdout and " nan " not in first.stdout

    again = run_cli("demo", "--out", run, "--tracks", "60")
    assert again.exit_code == 0
    assert "align: already done (skipped)" in again.stdout and "partition: already done (skipped)" in again.stdout
    assert "train: already done (skipped)" in again.stdout and "embed: already done (skipped)" in again.stdout
    assert "evaluate: already done (skipped)" in again.stdout and "index: already done (skipped)" in again.stdout

    (run / "partitions" / "train.csv").unlink()  # a lost output makes its stage run again
    repaired = run_cli("demo", "--out", run, "--tracks", "60", "--no-train")
    assert "align: already done" in repaired.stdout and "partition: done" in repaired.stdout
    assert (run / "partitions" / "train.csv").read_bytes() == train_before

    forced = run_cli("demo", "--out", run, "--tracks", "60", "--force", "--jobs", "2", "--no-train")
    assert "align: done" in forced.stdout and forced.exit_code == 0
    assert (run / "partitions" / "train.csv").read_bytes() == train_before  # deterministic


def test_info_on_demo(demo, tmp_path):
    result = run_cli("info", demo.report.manifest_path)
    assert result.exit_code == 0, result.stderr
    assert f"{len(demo.manifest)} tracks" in result.stdout
    for text in ("tagset coverage", "top genres", "languages", "durations", "formats", "missing audio: 0"):
        assert text in result.stdout


def test_info_reports_missing_audio(demo, tmp_path):
    import shutil

    from musicrep.data.manifest import Manifest, write_manifest

    frame = demo.manifest.frame.head(5).copy()
    audio = tmp_path / "audio"
    for path in frame.audio_path[:4]:
        (audio / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(demo.manifest.audio_file(path), audio / path)
    write_manifest(Manifest(frame, demo.manifest.tagsets, audio), tmp_path / "m.parquet")
    result = run_cli("info", tmp_path / "m.parquet")
    assert result.exit_code == 1
    assert "missing audio: 1" in result.stdout and frame.audio_path.iloc[4] in result.stderr
    assert run_cli("info", tmp_path / "m.parquet", "--no-audio-check").exit_code == 0


def test_align_demo_exit_code_and_problem_file(demo, tmp_path):
    problems = pd.read_csv(demo.report.problems_path)
    assert set(problems.track_id) == {p.track_id for p in demo.report.problems}
    assert set(problems.action) == {"kept", "dropped"}
    # the demo's deliberately broken files are problems: align finishes with exit 1 and lists them
    result = run_musicrep("align", "--source", "demo", "--tracks", "50", "--jobs", "2", "--out", tmp_path / "a")
    assert result.exit_code == 1, result.stderr
    listed = pd.read_csv(tmp_path / "a" / "manifest_problems.csv")
    assert len(listed) > 0 and all(row.track_id in result.stderr for row in listed.head(5).itertuples())


def test_a_failed_align_leaves_no_output_folder(tmp_path):
    for source in (["--source", "msd-amg", "--labels", tmp_path / "labels.h5"],
                   ["--source", "jamendo", "--tsv", tmp_path / "split.tsv"],
                   ["--source", "folder"]):
        result = run_musicrep("align", *source, "--audio-root", tmp_path / "no-audio", "--out", tmp_path / "out")
        assert result.exit_code == 2
        assert result.stderr.strip().splitlines() == [
            f"error: {tmp_path / 'no-audio'}: audio folder not found (--audio-root)"], source
        assert not (tmp_path / "out").exists()
    (tmp_path / "labels.h5").write_bytes(b"not hdf5")
    (tmp_path / "no-audio").mkdir()
    broken = run_musicrep("align", "--source", "msd-amg", "--labels", tmp_path / "labels.h5",
                          "--audio-root", tmp_path / "no-audio", "--out", tmp_path / "out")
    assert broken.exit_code == 2 and "labels.h5" in broken.stderr
    assert not (tmp_path / "out").exists()
