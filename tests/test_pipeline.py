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
                 "features/test/store.json", "features/stats.npz"):
        assert (run / path).is_file(), path
    done = json.loads((run / "done" / "align.json").read_text())
    assert done["config_hash"] == config_hash({"source": "demo", "tracks": 60, "seed": 0})
    train_before = (run / "partitions" / "train.csv").read_bytes()

    log = pd.read_csv(run / "features" / "extract_log.csv", keep_default_na=False)
    failed = log[log.status == "failed"]
    assert len(failed) >= 2 and "anchors have a positive" in first.stdout  # the broken files, expected

    again = run_cli("demo", "--out", run, "--tracks", "60")
    assert again.exit_code == 0
    assert "align: already done (skipped)" in again.stdout and "partition: already done (skipped)" in again.stdout

    (run / "partitions" / "train.csv").unlink()  # a lost output makes its stage run again
    repaired = run_cli("demo", "--out", run, "--tracks", "60")
    assert "align: already done" in repaired.stdout and "partition: done" in repaired.stdout
    assert (run / "partitions" / "train.csv").read_bytes() == train_before

    forced = run_cli("demo", "--out", run, "--tracks", "60", "--force", "--jobs", "2")
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

    from musicrep.manifest import Manifest, write_manifest

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


def test_align_demo_exit_code_and_problem_file(demo):
    problems = pd.read_csv(demo.report.problems_path)
    assert set(problems.track_id) == {p.track_id for p in demo.report.problems}
    assert set(problems.action) == {"kept", "dropped"}
