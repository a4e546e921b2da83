from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from musicrep.errors import UsageError
from musicrep.extract import ExtractConfig, extract
from musicrep.merge import FeatureStore, merge
from musicrep.store import read_track


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


def test_merge_streams_arrays_in_order_with_stats(extracted):
    root, tid, kinds, extract_report = extracted
    report = merge(root / "train.csv", root / "padded", root / "store", crop=True, pad=True)
    features = np.load(root / "store" / "features.npy", mmap_mode="r")
    index = pd.read_csv(root / "store" / "index.csv")
    ok = [t for t in tid.track_id if t != kinds["empty"]]
    assert features.shape == (len(ok), 128, 880, 2) == report.shape
    assert list(index.track_id) == ok  # tidfile order, the failed track left out and listed
    assert report.left_out == [(kinds["empty"], "no extracted array (failed or not extracted)")]
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
    normalized = store.normalized(store.get(1).astype(np.float32))
    assert abs(float(normalized.mean())) < 5

    normal = merge(root / "val.csv", root / "padded", root / "val", crop=True, pad=True, normalize=True,
                   stats_from=root / "store" / "stats.npz")
    assert normal.n_tracks == 4
    stored = np.load(root / "val" / "features.npy")
    np.testing.assert_allclose(stored[0], store.normalized(read_track(root / "padded", ok[0]).astype(np.float32)),
                               atol=1e-5)


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

    from musicrep.store import track_path, write_track

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
