"""Architectures: parameter counts, output shapes for several input lengths, the registry."""

from __future__ import annotations

import pytest
import torch

from musicrep.errors import UsageError
from musicrep.models import MODELS, build_encoder, model_parameters
from musicrep.models.encoder import MusicEncoder, window_starts, windows


def kim2019_parameters(width_channels=(16, 32, 64, 64, 128, 128, 256), dense=256, embedding=128, channels=2):
    """The paper's layer list counted by hand: bias-free convs + batch norm, dense 256, linear output."""
    c = width_channels
    convs = channels * c[0] * 25 + sum(a * b * 9 for a, b in zip(c[:-1], c[1:], strict=True))
    norms = 2 * sum(c)
    return convs + norms + (c[-1] * dense + dense) + (dense * embedding + embedding)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_kim2019_has_the_papers_layers():
    assert count(build_encoder("kim2019")) == kim2019_parameters() == 676_864
    half = build_encoder("kim2019", width=0.5, embedding_dim=64)
    assert count(half) == kim2019_parameters((8, 16, 32, 32, 64, 64, 128), dense=128, embedding=64)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("frames", [216, 880, 100, 7, 1])
def test_output_shape_for_any_input_length(name, frames):
    model = build_encoder(name, width=0.25, embedding_dim=32).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 2, 128, frames))
    assert out.shape == (3, 32) and torch.isfinite(out).all()


def test_crnn_parameters_and_mono_input():
    model = build_encoder("crnn", channels=1, gru_layers=1, bidirectional=False)
    assert model(torch.randn(2, 1, 64, 216)).shape == (2, 128)
    assert count(build_encoder("crnn")) == 930_944


def test_unknown_model_or_parameter_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown model 'resnet'"):
        build_encoder("resnet")
    with pytest.raises(UsageError, match="model 'kim2019' has no parameter 'depth'"):
        build_encoder("kim2019", depth=3)
    assert model_parameters("kim2019")["embedding_dim"] == 128


def test_windows_cover_every_valid_frame():
    assert window_starts(880, 216).tolist() == [0, 216, 432, 648, 664]
    assert window_starts(216, 216).tolist() == [0] and window_starts(30, 216).tolist() == [0]
    array = torch.arange(128 * 30 * 2, dtype=torch.float32).reshape(128, 30, 2).numpy()
    cut = windows(array, window_starts(30, 216), 216)
    assert cut.shape == (1, 2, 128, 216)
    assert (cut[0, :, :, :30] == array.transpose(2, 0, 1)).all() and (cut[0, :, :, 30:] == -80).all()


def test_encoder_standardizes_with_the_train_statistics():
    config = {"model": {"name": "kim2019", "params": {"width": 0.25}}, "n_mels": 128, "channels": 2,
              "embedding_dim": 128, "heads": {"joint": {"kind": "projection", "space_dim": 16},
                                             "tags": {"kind": "classification", "labels": ["a", "b", "c"]}}}
    model = MusicEncoder.from_config(config)
    mean, std = torch.randn(128, 2), torch.rand(128, 2) + 0.5
    model.standardize.mean.copy_(mean.T.unsqueeze(-1))
    model.standardize.std.copy_(std.T.unsqueeze(-1))
    x = torch.randn(1, 2, 128, 5)
    expected = (x - mean.T[None, :, :, None]) / std.T[None, :, :, None]
    torch.testing.assert_close(model.standardize(x), expected)
    assert model.heads["tags"](torch.zeros(4, 128)).shape == (4, 3)
    assert set(model.state_dict()) >= {"standardize.mean", "heads.joint.net.0.weight", "heads.tags.linear.bias"}
