"""The HEAR API (musicrep.hear): load_model, timestamp and scene embeddings, on audio of several lengths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import musicrep.hear as hear
from musicrep.errors import InputError
from musicrep.features.extract import ExtractConfig
from musicrep.features.frontend import mel_front_end
from musicrep.inference.hub import load
from musicrep.models.encoder import embed_windows
from test_inference import MODEL_EXTRACTION, make_model_folder

LENGTHS = (0.1, 1.0, 2.6, 6.0)
"""Seconds: very short, shorter than one 216-frame window (2.51 s), just over one, several windows."""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return make_model_folder(tmp_path_factory.mktemp("hear") / "model", MODEL_EXTRACTION)


@pytest.fixture(scope="module")
def model(model_dir) -> hear.HearModel:
    return hear.load_model(str(model_dir))


def sounds(seconds: float, sr: int = 22050, n: int = 2, seed: int = 0) -> torch.Tensor:
    """``n`` different mono sounds: notes changing every 0.1 s plus a little noise."""
    rng = np.random.default_rng(seed)
    length = max(1, int(seconds * sr))
    out = []
    for _ in range(n):
        freqs = np.repeat(rng.uniform(100, 3000, size=length // int(0.1 * sr) + 1), int(0.1 * sr))[:length]
        y = 0.3 * np.sin(2 * np.pi * np.cumsum(freqs) / sr) + 0.01 * rng.standard_normal(length)
        out.append(y)
    return torch.tensor(np.stack(out), dtype=torch.float32)


def test_load_model_gives_a_module_with_integer_sizes(model_dir, model):
    assert isinstance(model, torch.nn.Module)
    assert (model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size) == (22050, 128, 128)
    assert all(type(v) is int for v in (model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size))
    for path in (model_dir / "config.json", model_dir / "model.safetensors", model_dir):
        assert hear.load_model(str(path)).model_id == model.model_id
    assert model.to("cpu") is model and not model.training


def test_load_model_needs_a_path():
    with pytest.raises(InputError, match="load_model needs model_file_path: .* ships no weights and downloads nothing"):
        hear.load_model()
    with pytest.raises(InputError, match="load_model needs model_file_path"):
        hear.load_model("")


def test_load_model_refuses_a_rate_hear_does_not_allow(tmp_path):
    extraction = ExtractConfig.from_preset(mel_overrides={"sr": 32000})
    folder = make_model_folder(tmp_path / "m", extraction)
    with pytest.raises(InputError, match=r"sample rate 32000 Hz is not one HEAR allows \(16000, 22050, 44100, 48000\)"):
        hear.load_model(str(folder))
    with pytest.raises(InputError, match=r"nothing/config.json: not found|nothing: model folder not found"):
        hear.load_model(str(tmp_path / "nothing"))


@pytest.mark.parametrize("seconds", LENGTHS)
def test_timestamp_embeddings_shapes_and_spacing(model, seconds):
    audio = sounds(seconds, n=3)
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    n_samples = audio.shape[1]
    n_frames = 1 + n_samples // 256
    step = 4  # floor(50 ms / 11.6 ms)
    n_timestamps = (n_frames - 1) // step + 1
    assert embeddings.shape == (3, n_timestamps, model.timestamp_embedding_size)
    assert timestamps.shape == (3, n_timestamps)
    assert embeddings.dtype == torch.float32 and timestamps.dtype == torch.float32
    assert torch.isfinite(embeddings).all()
    # the same timestamps for every sound, evenly spaced at most 50 ms apart, from 0 to within 50 ms of the end
    assert torch.equal(timestamps[0], timestamps[1]) and torch.equal(timestamps[0], timestamps[2])
    assert timestamps[0, 0] == 0
    if n_timestamps > 1:
        gaps = torch.diff(timestamps[0])
        assert torch.allclose(gaps, torch.full_like(gaps, 1000 * step * 256 / 22050))
        assert gaps.max() <= 50.0
    assert 1000 * n_samples / 22050 - timestamps[0, -1] <= 50.0
    # different sounds, different embeddings; a sound alone gives what it gave in the batch
    assert (embeddings[0] - embeddings[1]).abs().max() > 1e-3
    alone, _ = hear.get_timestamp_embeddings(audio[1:2], model)
    torch.testing.assert_close(alone[0], embeddings[1], atol=1e-5, rtol=0)


def reference_window(model, sound: np.ndarray, frame: int) -> np.ndarray:
    """The window centered on ``frame``, built by hand: frames outside the sound at -80 dB."""
    stereo = np.stack([sound, sound])
    db, _ = mel_front_end(model.extraction.mel).log_mel(stereo)
    window = np.full((1, 2, 128, 216), -80.0, dtype=np.float32)
    for i, f in enumerate(range(frame - 108, frame + 108)):
        if 0 <= f < db.shape[1]:
            window[0, :, :, i] = db[:, f, :].T
    return window


@pytest.mark.parametrize("seconds", [0.1, 6.0])
def test_timestamp_embedding_is_the_window_centered_on_it(model, seconds):
    audio = sounds(seconds, n=2, seed=1)
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    picks = sorted({0, embeddings.shape[1] // 2, embeddings.shape[1] - 1})
    for index in picks:
        frame = int(round(float(timestamps[1, index]) / 1000 * 22050 / 256))
        expected = embed_windows(model.network, reference_window(model, audio[1].numpy(), frame))[0]
        np.testing.assert_allclose(embeddings[1, index].numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("seconds", LENGTHS)
def test_scene_embeddings_are_the_full_segment_rule(model_dir, model, seconds):
    audio = sounds(seconds, n=3, seed=2)
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (3, model.scene_embedding_size) and scene.dtype == torch.float32
    encoder = load(model_dir)
    for i in range(3):  # mono duplicated to the model's two channels, whole sound, mean over windows
        expected = encoder.embed(audio[i].numpy(), 22050, segment="full")
        np.testing.assert_allclose(scene[i].numpy(), expected, atol=1e-5)
    assert (scene[0] - scene[1]).abs().max() > 1e-3
    torch.testing.assert_close(model(audio), scene)


def test_mono_16k_model(tmp_path):
    """A one-channel model at 16 kHz, hop 160: mono stays mono, timestamps exactly every 50 ms."""
    extraction = ExtractConfig.from_preset(mel_overrides={"sr": 16000, "n_fft": 400, "hop_length": 160,
                                                          "n_mels": 64}, mono=True, segment="full")
    folder = make_model_folder(tmp_path / "m", extraction, window=96)
    model = hear.load_model(str(folder))
    assert model.sample_rate == 16000
    audio = sounds(1.5, sr=16000, n=2)
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.shape == (2, 31, 128)
    np.testing.assert_allclose(timestamps[0].numpy(), np.arange(31) * 50.0, atol=1e-3)
    scene = hear.get_scene_embeddings(audio, model)
    encoder = load(folder)
    np.testing.assert_allclose(scene[0].numpy(), encoder.embed(audio[0].numpy(), 16000), atol=1e-5)


@pytest.mark.parametrize(("audio", "message"), [
    (torch.zeros(22050), r"audio must be a tensor \(n_sounds, n_samples\) at 22050 Hz \(got \(22050,\)\)"),
    (np.zeros((1, 22050), dtype=np.float32), r"audio must be a tensor .* \(got \(1, 22050\)\)"),
    (torch.zeros(1, 22050, dtype=torch.int16), r"audio must hold float samples"),
    (torch.zeros(2, 0), r"audio has no samples"),
    (torch.tensor([[0.0, float("nan")] * 1000]), r"NaN or infinite"),
])
def test_bad_audio_is_refused(model, audio, message):
    for function in (hear.get_timestamp_embeddings, hear.get_scene_embeddings):
        with pytest.raises(InputError, match=message):
            function(audio, model)


def test_model_must_come_from_load_model(model_dir):
    with pytest.raises(InputError, match="model must come from musicrep.hear.load_model"):
        hear.get_scene_embeddings(torch.zeros(1, 22050), load(model_dir).model)
