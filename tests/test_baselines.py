"""Baselines: handcrafted features (hand-checked spectra, the valid-frames rule, real stores), random vectors.

The untrained network needs a trained model folder: it is tested in test_evaluate.py.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from musicrep.errors import InputError
from musicrep.evaluation.baselines import (
    N_MFCC,
    fit_standardizer,
    frame_features,
    handcrafted_names,
    handcrafted_store,
    handcrafted_vector,
    mel_frequencies,
    random_vectors,
)
from musicrep.features.merge import FeatureStore

FREQS = mel_frequencies(128, sr=22050)
NAMES = [name.removeprefix("mean_") for name in handcrafted_names()[: len(handcrafted_names()) // 2]]


def feature(features: np.ndarray, name: str) -> np.ndarray:
    return features[NAMES.index(name)]


def test_names_and_shape():
    names = handcrafted_names()
    assert len(names) == 2 * (2 * N_MFCC + 5 + 6) == 102
    assert len(set(names)) == len(names)
    assert names[0] == "mean_mfcc0" and names[len(names) // 2] == "std_mfcc0"
    assert FREQS.shape == (128,) and np.all(np.diff(FREQS) > 0) and FREQS[-1] < 22050 / 2


def test_flat_spectrum_by_hand():
    # every band at -20 dB, for 5 frames, 2 identical channels
    flat = np.full((128, 5, 2), -20.0)
    features = frame_features(flat, FREQS)
    assert features.shape == (len(NAMES), 5)
    np.testing.assert_allclose(feature(features, "centroid_hz"), FREQS.mean())
    np.testing.assert_allclose(feature(features, "flatness"), 1.0)
    np.testing.assert_allclose(feature(features, "loudness_db"), -20.0)
    np.testing.assert_allclose(feature(features, "contrast0_db"), 0.0, atol=1e-9)
    mfcc = features[:N_MFCC]
    np.testing.assert_allclose(mfcc[0], -20.0 * np.sqrt(128), rtol=1e-9)  # orthonormal DCT of a constant
    np.testing.assert_allclose(mfcc[1:], 0.0, atol=1e-9)
    np.testing.assert_allclose(features[N_MFCC:2 * N_MFCC], 0.0, atol=1e-9)  # nothing changes over time
    # the 85 % roll-off of equal bands is the first band where 85 % of them are reached
    np.testing.assert_allclose(feature(features, "rolloff_hz"), FREQS[int(np.ceil(0.85 * 128)) - 1])


def test_one_loud_band_by_hand():
    spectrum = np.full((128, 3, 1), -80.0)
    spectrum[40] = 0.0  # one band 80 dB above the floor
    features = frame_features(spectrum, FREQS)
    power = 10 ** (spectrum[:, 0, 0] / 10)
    np.testing.assert_allclose(feature(features, "centroid_hz"), FREQS @ power / power.sum())
    assert abs(feature(features, "centroid_hz")[0] - FREQS[40]) < 0.01 * FREQS[40]
    assert feature(features, "bandwidth_hz")[0] < 0.2 * FREQS[40]
    assert feature(features, "rolloff_hz")[0] == FREQS[40]
    assert feature(features, "flatness")[0] < 0.01
    band = 40 // (128 // 6 + 1)  # the sub-band holding bin 40 (array_split: the first ones one bin longer)
    assert feature(features, f"contrast{band}_db")[0] > 10 and feature(features, "contrast5_db")[0] == 0.0


def test_channels_are_mixed_in_power():
    rng = np.random.default_rng(0)
    left = rng.uniform(-80, 0, size=(128, 7))
    stereo = np.stack([left, left], axis=2)
    np.testing.assert_allclose(frame_features(stereo, FREQS), frame_features(left[:, :, None], FREQS))
    quiet_right = np.stack([left, np.full_like(left, -200.0)], axis=2)  # silence halves the power: -3 dB
    np.testing.assert_allclose(feature(frame_features(quiet_right, FREQS), "loudness_db"),
                               feature(frame_features(left[:, :, None], FREQS), "loudness_db") - 10 * np.log10(2),
                               atol=1e-6)


def test_only_valid_frames_count():
    rng = np.random.default_rng(1)
    music = rng.uniform(-60, 0, size=(128, 300, 2)).astype(np.float16)
    padded = np.concatenate([music, np.full((128, 580, 2), -80.0, dtype=np.float16)], axis=1)
    vector = handcrafted_vector(padded, 300, FREQS)
    assert vector.shape == (102,) and vector.dtype == np.float32
    np.testing.assert_array_equal(vector, handcrafted_vector(music, 300, FREQS))
    garbage = padded.copy()
    garbage[:, 300:] = rng.uniform(-80, 0, size=(128, 580, 2))
    np.testing.assert_array_equal(vector, handcrafted_vector(garbage, 300, FREQS))  # padding is never read
    assert not np.array_equal(vector, handcrafted_vector(garbage, 880, FREQS))
    np.testing.assert_array_equal(vector, handcrafted_vector(padded, 300, FREQS))  # deterministic
    assert np.isfinite(handcrafted_vector(padded, 0, FREQS)).all()  # no valid frame: the first one, not NaN


def test_store_rows_and_bad_rows(demo_run, tmp_path):
    store = FeatureStore(demo_run / "features" / "test")
    vectors, ids = handcrafted_store(store)
    assert vectors.shape == (len(store), 102) and ids == store.index.track_id.tolist()
    assert np.isfinite(vectors).all()
    assert np.unique(vectors, axis=0).shape[0] == len(store)  # tracks differ
    row = 3
    expected = handcrafted_vector(store.get(row), int(store.index.valid_frames[row]),
                                  mel_frequencies(store.features.shape[1], sr=22050))
    np.testing.assert_array_equal(vectors[row], expected)
    calls = []
    handcrafted_store(store, on_progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (len(store), len(store))

    broken = tmp_path / "broken"
    shutil.copytree(demo_run / "features" / "test", broken)
    array = np.load(broken / "features.npy", mmap_mode="r+")
    array[2, 5, 7, 0] = np.nan
    array.flush()
    del array
    with pytest.raises(InputError, match=rf"broken/features.npy: non-finite values in row 2 \(track {ids[2]}\)"):
        handcrafted_store(FeatureStore(broken))
    normalized = tmp_path / "normalized"
    shutil.copytree(demo_run / "features" / "test", normalized)
    params = json.loads((normalized / "store.json").read_text())
    (normalized / "store.json").write_text(json.dumps({**params, "normalized": True}))
    with pytest.raises(InputError, match="normalized features"):
        handcrafted_store(FeatureStore(normalized))


def test_standardizer():
    train = np.array([[1.0, 5.0], [3.0, 5.0]])
    mean, scale = fit_standardizer(train)
    np.testing.assert_array_equal(mean, [2.0, 5.0])
    np.testing.assert_array_equal(scale, [1.0, 1.0])  # std 1, and 1 where nothing varies
    np.testing.assert_array_equal((train - mean) / scale, [[-1.0, 0.0], [1.0, 0.0]])


def test_random_vectors_are_seeded_per_stream():
    a = random_vectors(50, 16, seed=0, stream="test")
    assert a.shape == (50, 16) and a.dtype == np.float32
    np.testing.assert_array_equal(a, random_vectors(50, 16, seed=0, stream="test"))
    assert not np.array_equal(a, random_vectors(50, 16, seed=0, stream="train"))
    assert not np.array_equal(a, random_vectors(50, 16, seed=1, stream="test"))
    assert abs(float(a.std()) - 1.0) < 0.1
