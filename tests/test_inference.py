"""Model folders (export, load, refusals), Encoder.embed against the training pipeline's path, `musicrep embed`."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from conftest import demo_metadata, run_cli, write_tone
from musicrep.errors import AudioError, InputError, UsageError
from musicrep.features.extract import ExtractConfig, extract, extract_with_length
from musicrep.features.merge import FeatureStore, merge
from musicrep.inference.embed import embed_store, read_embeddings, tracks_from_audio
from musicrep.inference.hub import export_model, load
from musicrep.models.encoder import MusicEncoder, embed_windows, window_starts, windows

WINDOW = 216


def model_config(extraction: ExtractConfig | None = None, *, width: float = 0.25, window: int = WINDOW,
                 name: str = "kim2019") -> dict:
    """config.json of a narrow network (kim2019 by default) with a projection and a classification head."""
    extraction = extraction or ExtractConfig()
    return {
        "model": {"name": name, "params": {"width": width, "channels": 1 if extraction.mono else 2}},
        "embedding_dim": 128, "window_frames": window,
        "n_mels": extraction.mel.n_mels, "channels": 1 if extraction.mono else 2,
        "extraction": extraction.to_dict(),
        "heads": {"joint": {"kind": "projection", "space": "joint", "space_id": "s1", "space_dim": 24, "hidden": 32},
                  "genres": {"kind": "classification", "space": "genres", "space_id": "s2", "tagset": "genres",
                             "labels": ["rock", "jazz", "pop"]}},
        "tasks": [{"name": "joint", "space": "joint", "objective": "triplet", "weight": 1.0},
                  {"name": "genres", "space": "genres", "objective": "bce", "weight": 0.5}],
    }


def untrained_model(config: dict, seed: int = 0) -> MusicEncoder:
    """Deterministic random weights; statistics and BatchNorm running statistics set as training would leave
    them (roughly), so that the output depends on the input as a trained network's does."""
    torch.manual_seed(seed)
    model = MusicEncoder.from_config(config)
    with torch.no_grad():
        model.standardize.mean.uniform_(-45.0, -35.0)
        model.standardize.std.uniform_(12.0, 18.0)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None  # cumulative averages over the calibration batches
        model.train()
        channels, n_mels, window = config["channels"], config["n_mels"], config["window_frames"]
        for _ in range(2):
            model(torch.randn(8, channels, n_mels, window) * 15.0 - 40.0)
    return model.eval()


def make_model_folder(folder: Path, extraction: ExtractConfig | None = None, **kw) -> Path:
    config = model_config(extraction, **kw)
    return export_model(untrained_model(config), config, folder, card="# Test model\n\nRandom weights.")


MODEL_EXTRACTION = ExtractConfig(crop=True, pad=True)
"""The original preset as stores are made for training: 3-14 s segment, cropped and padded to 880 frames."""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return make_model_folder(tmp_path_factory.mktemp("model") / "model", MODEL_EXTRACTION)


def write_music(path: Path, *, seconds: float, sr: int, channels: int, seed: int = 0) -> Path:
    """A real audio file whose spectrum changes every 0.25 s (random notes and noise), so windows differ."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    step = int(0.25 * sr)
    freqs = np.repeat(rng.uniform(80, 4000, size=n // step + 1), step)[:n]
    gains = np.repeat(rng.uniform(0.05, 0.4, size=n // step + 1), step)[:n]
    y = gains * np.sin(2 * np.pi * np.cumsum(freqs) / sr) + 0.01 * rng.standard_normal(n) * (t % 1.0)
    y = np.stack([np.roll(y, 37 * c) for c in range(channels)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr, subtype={"mp3": "MPEG_LAYER_III", "ogg": "VORBIS"}.get(path.suffix.lstrip(".")))
    return path


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory) -> dict[str, Path]:
    """Real files: several formats, rates, channel counts; < 14 s, > 14 s, shorter than one window."""
    root = tmp_path_factory.mktemp("audio")
    return {
        "long_wav": write_music(root / "long.wav", seconds=16.0, sr=22050, channels=2, seed=1),
        "mid_flac": write_music(root / "mid.flac", seconds=6.0, sr=44100, channels=1, seed=2),
        "long_ogg": write_music(root / "long.ogg", seconds=15.0, sr=48000, channels=2, seed=3),
        "mid_mp3": write_music(root / "mid.mp3", seconds=5.0, sr=44100, channels=2, seed=4),
        "short_wav": write_tone(root / "short.wav", seconds=1.2, sr=16000, channels=1, freq=440.0),
        "six_channels": write_music(root / "six.wav", seconds=9.0, sr=32000, channels=6, seed=5),
    }


def pipeline_vector(model_dir: Path, path: Path, extraction: ExtractConfig) -> np.ndarray:
    """The training pipeline's path: extract_with_length -> window_starts/windows -> embed_windows -> mean."""
    config = json.loads((model_dir / "config.json").read_text())
    network = MusicEncoder.from_config(config)
    from safetensors.torch import load_file

    network.load_state_dict(load_file(model_dir / "model.safetensors"))
    array, _, valid = extract_with_length(path, extraction)
    starts = window_starts(valid, config["window_frames"])
    batch = windows(array[:, :valid], starts, config["window_frames"])
    return embed_windows(network, batch).mean(axis=0)


# ------------------------------------------------------------------------------------------ model folder


def test_export_writes_the_folder_and_load_rebuilds_it(model_dir):
    assert sorted(p.name for p in model_dir.iterdir()) == ["MODEL_CARD.md", "config.json", "model.safetensors"]
    config = json.loads((model_dir / "config.json").read_text())
    import hashlib

    from musicrep.inference.hub import identity

    assert config["model_id"] == identity((model_dir / "model.safetensors").read_bytes(), config)
    assert config["model_id"] != hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()
    assert config["format_version"] == 1 and config["musicrep_version"]
    card = (model_dir / "MODEL_CARD.md").read_text()
    assert card.startswith("# Test model") and config["model_id"] in card
    encoder = load(model_dir)
    assert (encoder.sample_rate, encoder.embedding_dim, encoder.window_frames) == (22050, 128, 216)
    assert encoder.model_id == config["model_id"] and not encoder.model.training
    reference = untrained_model(model_config(MODEL_EXTRACTION))
    for name, tensor in reference.state_dict().items():
        torch.testing.assert_close(encoder.model.state_dict()[name], tensor, rtol=0, atol=0)
    assert set(encoder.model.heads) == {"joint", "genres"}
    # the same folder through musicrep.load, and through the path of either file
    import musicrep

    assert musicrep.load(model_dir / "config.json").model_id == load(model_dir / "model.safetensors").model_id


def test_musicrep_import_stays_light():
    import subprocess
    import sys

    code = "import sys, musicrep; assert callable(musicrep.load); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_inference_never_imports_training_or_lightning():
    import subprocess
    import sys

    code = ("import sys, musicrep.inference.embed, musicrep.hear; "
            "print(sorted(m for m in sys.modules if m.startswith(('musicrep.training', 'lightning', "
            "'pytorch_lightning'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_export_refuses_a_config_that_does_not_describe_the_model(tmp_path):
    config = model_config()
    model = untrained_model(config)
    other = {**config, "heads": {}}
    with pytest.raises(UsageError, match="does not match its config"):
        export_model(model, other, tmp_path / "m", card="x")


def _copy(model_dir: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("config.json", "model.safetensors", "MODEL_CARD.md"):
        (dst / name).write_bytes((model_dir / name).read_bytes())
    return dst


def test_load_refusals_name_the_file_and_the_problem(model_dir, tmp_path):
    with pytest.raises(InputError, match="model folder not found"):
        load(tmp_path / "nothing")
    broken = _copy(model_dir, tmp_path / "missing_weights")
    (broken / "model.safetensors").unlink()
    with pytest.raises(InputError, match=r"missing_weights/model.safetensors: not found"):
        load(broken)
    no_config = _copy(model_dir, tmp_path / "no_config")
    (no_config / "config.json").unlink()
    with pytest.raises(InputError, match=r"no_config/config.json: not found"):
        load(no_config)
    bad_json = _copy(model_dir, tmp_path / "bad_json")
    (bad_json / "config.json").write_text('{"format_version": 1,')
    with pytest.raises(InputError, match=r"bad_json/config.json: malformed JSON \(line 1"):
        load(bad_json)
    newer = _copy(model_dir, tmp_path / "newer")
    config = json.loads((model_dir / "config.json").read_text())
    (newer / "config.json").write_text(json.dumps({**config, "format_version": 2}))
    with pytest.raises(InputError, match=r"newer/config.json: format_version 2, this musicrep .* reads "
                                         r"format_version 1"):
        load(newer)
    unknown = _copy(model_dir, tmp_path / "unknown")
    (unknown / "config.json").write_text(json.dumps({**config, "extraction": {**config["extraction"], "sr2": 1}}))
    with pytest.raises(InputError, match=r"unknown extraction parameter 'sr2'"):
        load(unknown)
    replaced = _copy(model_dir, tmp_path / "replaced")
    data = bytearray((replaced / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (replaced / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"replaced: the weights and config.json are not those exported together"):
        load(replaced)
    edited = _copy(model_dir, tmp_path / "edited")  # a valid but edited front end would silently change vectors
    (edited / "config.json").write_text(json.dumps({**config, "extraction": {**config["extraction"], "sr": 16000}}))
    with pytest.raises(InputError, match=r"edited: the weights and config.json are not those exported together"):
        load(edited)
    garbage = _copy(model_dir, tmp_path / "garbage")
    (garbage / "model.safetensors").write_bytes(b"not a safetensors file")
    (garbage / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "model_id"}))
    with pytest.raises(InputError, match=r"garbage/model.safetensors: not a safetensors file"):
        load(garbage)


MOODS = {"kind": "classification", "space": "moods", "space_id": "s3", "tagset": "moods", "labels": ["sad", "calm"]}


@pytest.mark.parametrize(("change", "message"), [
    ({"heads": {}}, r"unexpected tensor 'heads\.genres\.linear\.bias' and 5 more"),
    ({"model": {"name": "kim2019", "params": {"width": 0.5}}},
     r"tensor 'backbone.features.0.conv.weight' has shape \(4, 2, 5, 5\), the config implies \(8, 2, 5, 5\)"),
    ({"heads": {**model_config()["heads"], "moods": MOODS}}, r"missing tensor 'heads.moods.linear.bias' and 1 more"),
])
def test_weights_that_do_not_match_the_config_are_refused(model_dir, tmp_path, change, message):
    folder = _copy(model_dir, tmp_path / "m")
    config = {k: v for k, v in json.loads((model_dir / "config.json").read_text()).items() if k != "model_id"}
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(InputError, match=r"m/model.safetensors: does not match config.json: " + message):
        load(folder)


def test_inconsistent_config_is_refused(model_dir, tmp_path):
    folder = _copy(model_dir, tmp_path / "m")
    config = {k: v for k, v in json.loads((model_dir / "config.json").read_text()).items() if k != "model_id"}
    (folder / "config.json").write_text(json.dumps({**config, "embedding_dim": 64}))
    with pytest.raises(InputError, match=r"m/config.json: embedding_dim 64, but the kim2019 backbone gives 128"):
        load(folder)
    (folder / "config.json").write_text(json.dumps({**config, "channels": 1}))
    with pytest.raises(InputError, match=r"m/config.json: n_mels 128 x channels 1 do not match the extraction's "
                                         r"128 x 2"):
        load(folder)
    (folder / "config.json").write_text(json.dumps({**config, "model": {"name": "resnet"}}))
    with pytest.raises(InputError, match=r"m/config.json: unknown model 'resnet'"):
        load(folder)
    (folder / "config.json").write_text(json.dumps({**config, "model": "kim2019"}))
    with pytest.raises(InputError, match=r"m/config.json: model must be an object with a name"):
        load(folder)
    (folder / "config.json").write_text(json.dumps({**config, "window_frames": "216"}))
    with pytest.raises(InputError, match=r"m/config.json: window_frames must be a positive integer \(got '216'\)"):
        load(folder)
    (folder / "config.json").write_text(json.dumps({**config, "heads": []}))
    with pytest.raises(InputError, match=r"m/config.json: heads must be an object"):
        load(folder)
    (folder / "config.json").write_text(json.dumps({**config, "extraction": {**config["extraction"], "n_fft": 8}}))
    with pytest.raises(InputError, match=r"m/config.json: impossible extraction parameters \(n-fft must be at least"):
        load(folder)


def test_missing_tensors_are_named(model_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = _copy(model_dir, tmp_path / "m")
    tensors = load_file(folder / "model.safetensors")
    del tensors["backbone.out.bias"]
    save_file(tensors, folder / "model.safetensors")
    config = {k: v for k, v in json.loads((model_dir / "config.json").read_text()).items() if k != "model_id"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match=r"missing tensor 'backbone.out.bias'"):
        load(folder)


# ------------------------------------------------------------------------------------------------ embed


@pytest.mark.parametrize("name", ["long_wav", "mid_flac", "long_ogg", "mid_mp3", "short_wav", "six_channels"])
def test_embed_equals_the_training_pipeline(model_dir, audio_files, name):
    """THE contract: load(folder).embed(file) == extract_with_length -> window_starts/windows -> embed_windows."""
    encoder = load(model_dir)
    vector = encoder.embed(audio_files[name])
    assert vector.shape == (128,) and vector.dtype == np.float32
    np.testing.assert_allclose(vector, pipeline_vector(model_dir, audio_files[name], MODEL_EXTRACTION), atol=1e-5)
    # the untrained network is not constant: other audio, other vector
    assert np.abs(vector - encoder.embed(audio_files["mid_mp3" if name != "mid_mp3" else "mid_flac"])).max() > 1e-2


def test_embed_via_a_merged_store_gives_the_same_vectors(model_dir, audio_files, tmp_path):
    root = tmp_path / "features"
    tids = pd.DataFrame({"track_id": list(audio_files), "filename": [str(p) for p in audio_files.values()]})
    tids.to_csv(tmp_path / "test.csv", index=False)
    report = extract(tids, root, MODEL_EXTRACTION)
    assert report.count("ok") == len(audio_files)
    merge(tmp_path / "test.csv", root, root / "test", crop=True, pad=True)
    encoder = load(model_dir)
    vectors, ids = embed_store(encoder, FeatureStore(root / "test"), batch_size=3)
    assert ids == list(audio_files)
    for row, name in enumerate(ids):
        np.testing.assert_allclose(vectors[row], encoder.embed(audio_files[name]), atol=1e-5)
    again, again_ids = encoder.embed_store(root / "test")  # the folder, one window batch per default size
    np.testing.assert_allclose(again, vectors, atol=1e-5)
    assert again_ids == ids
    # and through the command, with the same vectors
    result = run_cli("embed", "--model", model_dir, "--store", root / "test", "--out", tmp_path / "emb")
    assert result.exit_code == 0, result.stderr
    stored, stored_ids, config = read_embeddings(tmp_path / "emb")
    np.testing.assert_allclose(stored, vectors, atol=1e-5)
    assert list(stored_ids) == ids and config["input"]["kind"] == "store"
    assert config["counts"] == {"inputs": 6, "embedded": 6, "failed": 0}


def test_store_with_other_front_end_or_normalized_is_refused(model_dir, audio_files, tmp_path):
    tids = pd.DataFrame({"track_id": ["a"], "filename": [str(audio_files["mid_flac"])]})
    tids.to_csv(tmp_path / "t.csv", index=False)
    extract(tids, tmp_path / "f64", ExtractConfig.from_preset(mel_overrides={"n_mels": 64}, crop=True, pad=True))
    merge(tmp_path / "t.csv", tmp_path / "f64", tmp_path / "f64" / "t")
    result = run_cli("embed", "--model", model_dir, "--store", tmp_path / "f64" / "t", "--out", tmp_path / "o")
    assert result.exit_code == 2
    assert "extracted with n_mels=64, the model" in result.stderr and "n_mels=128" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    extract(tids, tmp_path / "f", MODEL_EXTRACTION)
    merge(tmp_path / "t.csv", tmp_path / "f", tmp_path / "f" / "t", normalize=True)
    with pytest.raises(UsageError, match="holds normalized features"):
        embed_store(load(model_dir), FeatureStore(tmp_path / "f" / "t"))


def test_arrays_match_files_and_are_resampled(model_dir, audio_files):
    encoder = load(model_dir)
    y, sr = sf.read(audio_files["long_wav"], dtype="float32", always_2d=True)
    # same rate: the array takes the file's path exactly (3-14 s segment, since 16 s > 14 s)
    np.testing.assert_allclose(encoder.embed(y.T, sr), encoder.embed(audio_files["long_wav"]), atol=1e-5)
    # mono (n,) is duplicated to stereo, as a mono file is
    m, msr = sf.read(audio_files["mid_flac"], dtype="float32")
    from_array = encoder.embed(m, msr)  # 44.1 kHz -> resampled to 22,050 Hz
    from_file = encoder.embed(audio_files["mid_flac"])
    assert np.corrcoef(from_array, from_file)[0, 1] > 0.9999
    np.testing.assert_allclose(from_array, from_file, atol=1e-2 * np.abs(from_file).max())
    # a torch tensor works too
    np.testing.assert_allclose(encoder.embed(torch.from_numpy(y.T.copy()), sr), encoder.embed(y.T, sr))


@pytest.mark.parametrize(("array", "sr", "message"), [
    (np.zeros(22050, dtype=np.float32), None, r"needs its sample rate"),
    (np.zeros(22050, dtype=np.float32), 0, r"sr must be a positive integer"),
    (np.zeros(22050, dtype=np.int16), 22050, r"samples must be floating point \(got dtype int16; divide integer PCM"),
    (np.zeros((22050, 2), dtype=np.float32), 22050, r"looks like \(n, channels\)"),
    (np.zeros((2, 2, 100), dtype=np.float32), 22050, r"expected shape \(n,\) or \(channels, n\)"),
    (np.zeros(0, dtype=np.float32), 22050, r"no samples"),
    (np.array([0.0, np.nan, 0.1] * 1000, dtype=np.float32), 22050, r"NaN or infinite"),
    (np.array([0.0, np.inf] * 1000, dtype=np.float64), 22050, r"NaN or infinite"),
])
def test_bad_arrays_are_refused(model_dir, array, sr, message):
    with pytest.raises(InputError, match=message):
        load(model_dir).embed(array, sr)


def test_bad_files_name_the_file(model_dir, tmp_path):
    encoder = load(model_dir)
    with pytest.raises(AudioError, match=r"nope.wav: audio file missing"):
        encoder.embed(tmp_path / "nope.wav")
    (tmp_path / "empty.mp3").write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty.mp3: empty file"):
        encoder.embed(tmp_path / "empty.mp3")
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.1, np.nan] * 5000, dtype=np.float32), 22050, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan.wav: non-finite"):
        encoder.embed(nan)
    with pytest.raises(UsageError, match="segment must be one of model, full"):
        encoder.embed(tmp_path / "nope.wav", segment="middle")


def test_short_audio_is_padded_with_the_floor_and_named(model_dir, audio_files, caplog):
    encoder = load(model_dir)
    with caplog.at_level(logging.WARNING, logger="musicrep.inference.hub"):
        vectors, times = encoder.embed_frames(audio_files["short_wav"])
    assert vectors.shape == (1, 128) and times.shape == (1,)
    assert re.search(r"short.wav: 1\.2\d s of audio is shorter than one window \(2\.51 s\): padded with the -80 dB "
                     r"floor", caplog.text)
    # padding is the floor: the same as embedding the valid frames placed in a floor-filled window
    array, _, valid = extract_with_length(audio_files["short_wav"], MODEL_EXTRACTION)
    window = np.full((1, 2, 128, WINDOW), -80.0, dtype=np.float32)
    window[0, :, :, :valid] = array[:, :valid].transpose(2, 0, 1)
    np.testing.assert_allclose(vectors, embed_windows(encoder.model, window), atol=1e-5)
    with caplog.at_level(logging.WARNING, logger="musicrep.inference.hub"):
        caplog.clear()
        encoder.embed(audio_files["mid_flac"])
    assert "shorter than one window" not in caplog.text


def test_embed_frames_times_and_full_segment(model_dir, audio_files):
    encoder = load(model_dir)
    hop = 256 / 22050
    # 16 s > 14 s: the 3-14 s segment cropped to 880 frames -> windows at 0, 216, 432, 648 and one ending on the last
    vectors, times = encoder.embed_frames(audio_files["long_wav"])
    starts = np.array([0, 216, 432, 648, 880 - 216])
    assert vectors.shape == (5, 128)
    np.testing.assert_allclose(times, 3.0 + (starts + 107.5) * hop)
    np.testing.assert_allclose(vectors.mean(axis=0), encoder.embed(audio_files["long_wav"]), atol=1e-6)
    # the whole file: 16 s = 1379 frames -> 7 windows, times from 0
    full, full_times = encoder.embed_frames(audio_files["long_wav"], segment="full")
    assert full.shape == (7, 128) and abs(full_times[0] - 107.5 * hop) < 1e-9
    y, sr = sf.read(audio_files["long_wav"], dtype="float32", always_2d=True)
    np.testing.assert_allclose(encoder.embed(y.T, sr, segment="full"), full.mean(axis=0), atol=1e-5)
    # < 14 s: the first 11 s from 0 (6 s here)
    _, mid_times = encoder.embed_frames(audio_files["mid_flac"])
    assert abs(mid_times[0] - 107.5 * hop) < 1e-9


def test_model_extraction_parameters_are_used(tmp_path, audio_files):
    """A mono, 16 kHz, 64-mel, full-segment model decodes with its own parameters."""
    extraction = ExtractConfig.from_preset(mel_overrides={"sr": 16000, "n_fft": 512, "hop_length": 320, "n_mels": 64},
                                           mono=True, segment="full", precision=16)
    folder = make_model_folder(tmp_path / "m", extraction, window=64)
    encoder = load(folder)
    assert encoder.sample_rate == 16000
    for name in ("long_ogg", "short_wav"):
        np.testing.assert_allclose(encoder.embed(audio_files[name]), pipeline_vector(folder, audio_files[name],
                                                                                     extraction), atol=1e-5)


def test_crnn_model(tmp_path, audio_files):
    folder = make_model_folder(tmp_path / "crnn", MODEL_EXTRACTION, name="crnn")
    encoder = load(folder)
    assert encoder.config["model"]["name"] == "crnn"
    for name in ("long_wav", "short_wav"):
        np.testing.assert_allclose(encoder.embed(audio_files[name]),
                                   pipeline_vector(folder, audio_files[name], MODEL_EXTRACTION), atol=1e-5)


# -------------------------------------------------------------------------------------------------- CLI


def test_embed_command_audio_files(model_dir, audio_files, tmp_path):
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"")
    files = [audio_files["long_wav"], audio_files["mid_mp3"], broken, audio_files["short_wav"]]
    result = run_cli("embed", "--model", model_dir, "--out", tmp_path / "out", "--batch-size", "4", "--audio", *files)
    assert result.exit_code == 1
    assert "3 of 4 tracks embedded (audio), 1 failed" in result.stdout
    assert f"broken: {broken}: empty file" in result.stderr
    vectors, ids, config = read_embeddings(tmp_path / "out")
    assert list(ids) == ["long", "mid", "short"] and vectors.dtype == np.float32
    encoder = load(model_dir)
    for row, name in enumerate(["long_wav", "mid_mp3", "short_wav"]):
        np.testing.assert_allclose(vectors[row], encoder.embed(audio_files[name]), atol=1e-5)
    failed = pd.read_csv(tmp_path / "out" / "failed.csv")
    assert list(failed.track_id) == ["broken"] and str(broken) in failed.reason[0]
    assert config["model_id"] == encoder.model_id and config["input"]["kind"] == "audio"
    assert config["counts"] == {"inputs": 4, "embedded": 3, "failed": 1}
    assert Path(config["model_dir"]) == model_dir.resolve()
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_audio_ids_are_safe_and_distinct(tmp_path):
    tracks = tracks_from_audio([tmp_path / "a" / "My Song.mp3", tmp_path / "b" / "My Song.mp3",
                                tmp_path / "a" / "My Song.mp3", tmp_path / "ok.wav"])
    ids = [t for t, _ in tracks]
    assert len(ids) == 3 and ids[2] == "ok" and re.fullmatch(r"My_Song-[0-9a-f]{10}", ids[0])
    assert re.fullmatch(r"My_Song-[0-9a-f]{10}-[0-9a-f]{10}", ids[1])
    assert [p for _, p in tracks] == [tmp_path / "a" / "My Song.mp3", tmp_path / "b" / "My Song.mp3",
                                      tmp_path / "ok.wav"]


def test_embed_command_tidfile_with_problem_rows(model_dir, audio_files, tmp_path):
    root = audio_files["long_wav"].parent
    (tmp_path / "t.csv").write_text("track_id,filename\n"
                                    "A,long.wav\n"
                                    "../bad,mid.flac\n"
                                    "B,mid.flac\n"
                                    "B,mid.mp3\n"
                                    "C,missing.wav\n"
                                    "D,short.wav\n")
    result = run_cli("embed", "--model", model_dir, "--tidfile", tmp_path / "t.csv", "--audio-root", root,
                     "--out", tmp_path / "out", "--segment", "full")
    assert result.exit_code == 1, result.stderr
    vectors, ids, config = read_embeddings(tmp_path / "out")
    assert list(ids) == ["A", "D"]
    failed = pd.read_csv(tmp_path / "out" / "failed.csv").set_index("track_id").reason
    assert set(failed.index) == {"../bad", "B", "C"}
    assert "t.csv, line 3: unsafe track id" in failed["../bad"]
    assert "t.csv, line 5: listed twice with different files" in failed["B"]
    assert failed["C"] == f"{root / 'missing.wav'}: audio file missing"
    assert config["counts"] == {"inputs": 5, "embedded": 2, "failed": 3} and config["segment"] == "full"
    np.testing.assert_allclose(vectors[0], load(model_dir).embed(audio_files["long_wav"], segment="full"), atol=1e-5)


def test_embed_command_manifest(model_dir, tmp_path):
    manifest = demo_metadata(tmp_path, 8)
    frame = manifest.frame
    present = list(frame.track_id[:3])
    for audio_path in frame.audio_path[:3]:
        write_tone(manifest.audio_file(audio_path), seconds=3.0, sr=22050)
    missing = frame.track_id.iloc[3]
    pd.DataFrame({"track_id": [*present, missing, "not-a-track"]}).to_csv(tmp_path / "t.csv", index=False)
    result = run_cli("embed", "--model", model_dir, "--manifest", tmp_path / "manifest.parquet", "--tidfile",
                     tmp_path / "t.csv", "--out", tmp_path / "out")
    assert result.exit_code == 1, result.stderr
    vectors, got, config = read_embeddings(tmp_path / "out")
    assert list(got) == present and vectors.shape == (3, 128)
    failed = pd.read_csv(tmp_path / "out" / "failed.csv").set_index("track_id").reason
    assert failed["not-a-track"] == (f"{tmp_path / 't.csv'}: track id not in the manifest "
                                     f"{tmp_path / 'manifest.parquet'}")
    assert failed[missing] == f"{manifest.audio_file(frame.audio_path.iloc[3])}: audio file missing"
    np.testing.assert_allclose(vectors[0], load(model_dir).embed(manifest.audio_file(frame.audio_path.iloc[0])),
                               atol=1e-5)
    assert config["input"] == {"kind": "manifest", "path": {"manifest": str(tmp_path / "manifest.parquet"),
                                                            "tidfile": str(tmp_path / "t.csv")}}
    # the whole manifest: every track accounted for
    result = run_cli("embed", "--model", model_dir, "--manifest", tmp_path / "manifest.parquet", "--out",
                     tmp_path / "all")
    _, got, config = read_embeddings(tmp_path / "all")
    assert result.exit_code == 1 and list(got) == present
    assert config["counts"] == {"inputs": 8, "embedded": 3, "failed": 5}


@pytest.mark.parametrize(("args", "message"), [
    ((), "give exactly one input: --store, --tidfile, --manifest [--tidfile] or --audio (got none)"),
    (("--store", "S", "--audio", "a.wav"), "(got --store and --audio)"),
    (("--tidfile", "t.csv", "--audio", "a.wav"), "(got --tidfile and --audio)"),
    (("--audio", "a.wav", "--audio-root", "x"), "--audio-root goes with --tidfile"),
    (("--store", "S", "--segment", "full"), "--segment does not apply to --store"),
    (("a.wav",), "unexpected argument 'a.wav' (audio files go after --audio)"),
    (("--audio", "a.wav", "--segment", "middle"), "segment must be one of model, full"),
])
def test_embed_command_usage_errors(model_dir, tmp_path, args, message):
    result = run_cli("embed", "--model", model_dir, "--out", tmp_path / "out", *args)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_unavailable_device_is_a_usage_error(model_dir):
    with pytest.raises(UsageError, match="unknown device 'gpu0'"):
        load(model_dir, device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="device cuda requested, but CUDA is not available here"):
            load(model_dir, device="cuda")


def test_embed_command_bad_model_folder(tmp_path, audio_files):
    result = run_cli("embed", "--model", tmp_path, "--out", tmp_path / "out", "--audio", audio_files["short_wav"])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'config.json'}: not found (a model folder holds " \
                                    "model.safetensors, config.json, MODEL_CARD.md)"


def test_embed_command_several_files_after_one_flag(model_dir, audio_files, tmp_path):
    result = run_cli("embed", "--model", model_dir, "--out", tmp_path / "out", "--audio", audio_files["mid_flac"],
                     audio_files["mid_mp3"])
    assert result.exit_code == 0, result.stderr
    _, ids, _ = read_embeddings(tmp_path / "out")
    assert ids[0] == "mid" and re.fullmatch(r"mid-[0-9a-f]{10}", ids[1])


def test_the_amplitude_scale_of_float_arrays_does_not_matter(model_dir):
    # the log-mel is in dB relative to each channel's maximum, so any float scale gives the same vector
    encoder = load(model_dir)
    y = 0.3 * np.sin(2 * np.pi * 220 * np.arange(22050 * 4) / 22050).astype(np.float32)
    y += 0.01 * np.random.default_rng(0).standard_normal(len(y)).astype(np.float32)
    np.testing.assert_allclose(encoder.embed(y * 1000, sr=22050), encoder.embed(y, sr=22050), atol=1e-4)
