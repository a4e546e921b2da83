from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from musicrep.errors import UsageError
from musicrep.features.extract import ExtractConfig, extract
from musicrep.features.merge import FeatureStore, merge
from musicrep.features.store import read_track


@pytest.fixture(scope="module")
def extracted(demo, tmp_path_factory):
    root = tmp_path_factory.mktemp("merge")
    frame = demo.manifest.frame
    kinds = {k: t for t, k in demo.report.expected_problems.items()}
    playable = frame[~frame.track_id.isin(list(kinds.values())) & frame.duration.notna()]
    picked = pd.concat([playable[playable.duration < 9].head(3), playable[playable.duration > 14].head(5),
                        frame[frame.track_id == kinds["empty"]]])
    tid = picked[["track_id", "audio_path"]].rename(columns={"audio_path": "filename"})
    tid.to_csv(root / "train.csv", index=False)
    tid.head(4).to_csv(root / "val.csv", index=False)
    report = extract(tid, root / "padded", ExtractConfig(crop=True, pad=True), audio_root=demo.manifest.audio_root)
    extract(tid, root / "natural", ExtractConfig(), audio_root=demo.manifest.audio_root)
    return root, tid, kinds, report


def test_merge_streams_arrays_in_order_with_stats(extracted, demo):
    root, tid, kinds, extract_report = extracted
    empty_path = demo.manifest.audio_file(tid.set_index("track_id").filename[kinds["empty"]])
    report = merge(root / "train.csv", root / "padded", root / "store", crop=True, pad=True)
    features = np.load(root / "store" / "features.npy", mmap_mode="r")
    index = pd.read_csv(root / "store" / "index.csv")
    ok = [t for t in tid.track_id if t != kinds["empty"]]
    assert features.shape == (len(ok), 128, 880, 2) == report.shape
    assert list(index.track_id) == ok  # tidfile order, the failed track left out and listed
    assert report.left_out == [(kinds["empty"], f"latest extraction failed: {empty_path}: empty file")]
    for row, track_id in enumerate(ok):
        np.testing.assert_array_equal(features[row], read_track(root / "padded", track_id))
    frames = {r.track_id: r.frames for r in extract_report.results}
    assert list(index.valid_frames) == [min(frames[t], 880) for t in ok]
    assert (index.valid_frames < 880).any()
    # statistics over the valid (non-padded) frames only, float64
    valid = np.concatenate([read_track(root / "padded", t)[:, :v].astype(np.float64)
                            for t, v in zip(index.track_id, index.valid_frames, strict=True)], axis=1)
    with np.load(root / "store" / "stats.npz") as stats:
        np.testing.assert_allclose(stats["mean"], valid.mean(axis=1), rtol=1e-9)
        np.testing.assert_allclose(stats["std"], valid.std(axis=1), rtol=1e-6)
        assert stats["mean"].dtype == np.float64 and stats["mean"].shape == (128, 2)

    store = FeatureStore(root / "store")
    assert len(store) == len(ok) and store.row(ok[1]) == 1
    np.testing.assert_array_equal(store.get(ok[1]), features[1])
    crop = store.random_crop(ok[0], 216, np.random.default_rng(0))
    assert crop.shape == (128, 216, 2)
    # normalization checked against statistics computed here, independently of merge's accumulator
    mean, std = valid.mean(axis=1)[:, None, :], valid.std(axis=1)[:, None, :]
    expected = (features[1].astype(np.float64) - mean) / std
    np.testing.assert_allclose(store.normalized(store.get(1).astype(np.float32)), expected, atol=1e-4)

    normal = merge(root / "val.csv", root / "padded", root / "val", crop=True, pad=True, normalize=True,
                   stats_from=root / "store" / "stats.npz")
    assert normal.n_tracks == 4
    stored = np.load(root / "val" / "features.npy")
    np.testing.assert_allclose(stored[0], (read_track(root / "padded", ok[0]).astype(np.float64) - mean) / std,
                               atol=1e-4)


def test_unequal_lengths_need_crop_and_pad(extracted):
    root, tid, kinds, _ = extracted
    with pytest.raises(UsageError, match=r"add --crop --pad to bring them to 880"):
        merge(root / "train.csv", root / "natural", root / "x")
    with pytest.raises(UsageError, match=r"add --pad to bring them to 880"):
        merge(root / "train.csv", root / "natural", root / "x", crop=True)
    report = merge(root / "train.csv", root / "natural", root / "cropped", crop=True, pad=True)
    assert report.shape[1:] == (128, 880, 2)
    # --crop alone on long tracks (948 natural frames): cut to 880, nothing padded
    long = tid[~tid.track_id.isin(list(kinds.values()))].iloc[3:]
    long.to_csv(root / "long.csv", index=False)
    cropped = merge(root / "long.csv", root / "natural", root / "long", crop=True)
    assert cropped.shape == (len(long), 128, 880, 2)
    assert (pd.read_csv(root / "long" / "index.csv").valid_frames == 880).all()


def test_merge_refuses_mixed_extractions_and_mismatched_stats(extracted, tmp_path):
    import shutil

    from musicrep.features.store import track_path, write_track

    root, tid, kinds, _ = extracted
    source = tmp_path / "mixed"
    shutil.copytree(root / "padded", source)
    ok = [t for t in tid.track_id if t != kinds["empty"]]
    write_track(source, ok[-1], read_track(source, ok[-1])[:, :, :1])  # one mono array among stereo ones
    with pytest.raises(UsageError, match=r"1 channels, but .* has 128 x 2 \(arrays of two extractions"):
        merge(root / "train.csv", source, tmp_path / "m", crop=True, pad=True)
    assert track_path(source, ok[-1]).is_file()

    np.savez(tmp_path / "mono_stats.npz", mean=np.zeros((128, 1)), std=np.ones((128, 1)))
    result = run_cli("merge", "--tidfile", root / "val.csv", "--src", root / "padded", "--dst", tmp_path / "v",
                     "--crop", "--pad", "--normalize", "--stats-from", tmp_path / "mono_stats.npz")
    assert result.exit_code == 2 and "statistics of shape (128, 1), but the store has 128 mels x 2" in result.stderr


def test_empty_partition_gets_an_empty_store(extracted, tmp_path):
    root, *_ = extracted
    pd.DataFrame({"track_id": [], "filename": []}).to_csv(tmp_path / "empty.csv", index=False)
    report = merge(tmp_path / "empty.csv", root / "padded", tmp_path / "e", crop=True, pad=True)
    assert report.shape == (0, 128, 880, 2) and report.stats_path is None
    assert np.load(tmp_path / "e" / "features.npy").shape == (0, 128, 880, 2)


def test_merge_cli(extracted):
    root, *_ = extracted
    result = run_cli("merge", "--tidfile", root / "train.csv", "--src", root / "padded", "--dst", root / "cli",
                     "--crop", "--pad", "--log-level", "info")
    assert result.exit_code == 1 and "1 left out" in result.stdout
    result = run_cli("merge", "--tidfile", root / "train.csv", "--src", root, "--dst", root / "cli2")
    assert result.exit_code == 2 and "not an extract folder" in result.stderr


def test_merge_takes_only_tracks_whose_latest_extraction_succeeded(extracted, demo, tmp_path):
    import shutil

    root, tid, kinds, _ = extracted
    source = tmp_path / "src"
    shutil.copytree(root / "padded", source)
    ok = [t for t in tid.track_id if t != kinds["empty"]]
    stale, unknown = ok[0], ok[1]
    # a later run fails on `stale` (its audio is now an empty file): its old array must not be merged
    (tmp_path / "empty.mp3").write_bytes(b"")
    again = pd.DataFrame({"track_id": [stale], "filename": [str(tmp_path / "empty.mp3")]})
    assert extract(again, source, ExtractConfig(crop=True, pad=True)).failed
    # a padded array whose valid frames the logs do not know (written before logs had frames) must not be counted
    for log_path in [source / "extract_log.csv", *(source / "logs").glob("extract-*.csv")]:
        log = pd.read_csv(log_path, dtype=str, keep_default_na=False)
        log.loc[log.track_id == unknown, "frames"] = ""
        log.to_csv(log_path, index=False)

    report = merge(root / "train.csv", source, tmp_path / "store", crop=True, pad=True)
    reasons = dict(report.left_out)
    assert reasons[stale] == f"latest extraction failed: {tmp_path / 'empty.mp3'}: empty file"
    assert reasons[unknown].startswith("valid frames unknown")
    merged = pd.read_csv(tmp_path / "store" / "index.csv", dtype=str).track_id.tolist()
    assert merged == [t for t in ok if t not in (stale, unknown)]
    assert set(pd.read_csv(tmp_path / "store" / "left_out.csv").track_id) == {kinds["empty"], stale, unknown}
    # the statistics are those of the merged tracks' valid frames only
    index = pd.read_csv(tmp_path / "store" / "index.csv", dtype={"track_id": str})
    valid = np.concatenate([read_track(source, t)[:, :v].astype(np.float64)
                            for t, v in zip(index.track_id, index.valid_frames, strict=True)], axis=1)
    with np.load(tmp_path / "store" / "stats.npz") as stats:
        np.testing.assert_allclose(stats["mean"], valid.mean(axis=1), rtol=1e-9)


def test_merge_tidfile_rows_that_cannot_be_used_are_left_out(extracted, tmp_path):
    root, tid, kinds, _ = extracted
    ok = [t for t in tid.track_id if t != kinds["empty"]]
    rows = [f"{ok[0]},a.mp3", "../../escape,x.mp3", f"{ok[1]},b.mp3", f"{ok[1]},c.mp3", f"{ok[2]},d.mp3",
            f"{ok[2]},d.mp3", "never-extracted,e.mp3"]
    (tmp_path / "odd.csv").write_text("\ufefftrack_id,filename\n" + "\n".join(rows) + "\n", encoding="utf-8")
    report = merge(tmp_path / "odd.csv", root / "padded", tmp_path / "store", crop=True, pad=True)
    reasons = dict(report.left_out)
    assert reasons["../../escape"].startswith("tidfile line 3: unsafe track id")
    assert reasons[ok[1]] == "tidfile line 5: listed twice with different files: line 4 ('b.mp3') and line 5 ('c.mp3')"
    assert reasons["never-extracted"].startswith("not in extract_log.csv")
    assert pd.read_csv(tmp_path / "store" / "index.csv").track_id.tolist() == [ok[0], ok[2]]
    assert not list(tmp_path.glob("*.npy")) and not (root / "escape").exists()


def test_merge_reads_the_run_log_of_a_killed_extraction(extracted, tmp_path):
    import shutil

    from musicrep.features.store import track_path

    root, tid, kinds, _ = extracted
    source = tmp_path / "src"
    shutil.copytree(root / "padded", source)
    ok = [t for t in tid.track_id if t != kinds["empty"]]
    stale = ok[0]
    # a later run, SIGKILLed before it rewrote extract_log.csv, had failed on `stale` (its run log says so);
    # its array is still there, as a run of an older musicrep (which kept the arrays of failed tracks) left it
    (source / "logs" / "extract-29990101T000000000000Z.csv").write_text(
        f"track_id,status,message,frames\n{stale},failed,x.mp3: empty file,\n{ok[1]},ok,,7")
    assert track_path(source, stale).is_file()
    log = pd.read_csv(source / "extract_log.csv", dtype=str, keep_default_na=False).set_index("track_id")
    assert log.loc[stale, "status"] == "ok"  # extract_log.csv alone still says ok
    report = merge(root / "train.csv", source, tmp_path / "store", crop=True, pad=True)
    reasons = dict(report.left_out)
    assert reasons[stale] == "latest extraction failed: x.mp3: empty file"
    merged = pd.read_csv(tmp_path / "store" / "index.csv", dtype={"track_id": str}).set_index("track_id")
    assert stale not in merged.index
    assert merged.loc[ok[2], "valid_frames"] == int(log.loc[ok[2], "frames"])
    # the cut-off last row of the killed run is ignored: ok[1] keeps the frames of extract_log.csv
    assert merged.loc[ok[1], "valid_frames"] == int(log.loc[ok[1], "frames"])

    # a folder whose only log is a killed first run's run log still merges
    (source / "extract_log.csv").unlink()
    again = merge(root / "train.csv", source, tmp_path / "store2", crop=True, pad=True)
    assert dict(again.left_out)[stale] == "latest extraction failed: x.mp3: empty file"
    shutil.rmtree(source / "logs")
    with pytest.raises(Exception, match="extract_log.csv: not found"):
        merge(root / "train.csv", source, tmp_path / "store3", crop=True, pad=True)


@pytest.mark.parametrize("frames", ["0", "-3"])
def test_merge_frames_must_be_positive(extracted, tmp_path, frames):
    root, *_ = extracted
    result = run_cli("merge", "--tidfile", root / "train.csv", "--src", root / "padded", "--dst", tmp_path / "s",
                     "--crop", "--pad", "--frames", frames)
    assert result.exit_code == 2 and result.stderr.strip() == f"error: --frames must be positive (got {frames})"
    assert not (tmp_path / "s").exists()
