"""Checkpoints: safetensors and torch round trips, and clear errors for files that do not fit."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

import realtime_mer.models  # noqa: F401  (registers every model)
from realtime_mer.models.checkpoint import (
    CheckpointError,
    ModelMeta,
    load_checkpoint,
    read_checkpoint_meta,
    save_checkpoint,
)
from realtime_mer.models.registry import build_model

MODEL = "rcn-a"
TRAINING = {"dataset": "synthetic", "protocol": "LOSO", "epochs": 3, "note": "test fixture"}


@pytest.fixture(scope="module")
def trained() -> tuple[torch.nn.Module, ModelMeta]:
    """A model whose weights differ from a fresh build (so a no-op load would be caught)."""
    torch.manual_seed(1)
    model = build_model(MODEL)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model, ModelMeta.from_spec(MODEL, training=TRAINING)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_round_trip_restores_weights_and_metadata(tmp_path, trained, suffix):
    model, meta = trained
    path = save_checkpoint(model, tmp_path / f"m{suffix}", meta)
    loaded, got = load_checkpoint(path, expected_model=MODEL)
    assert got == meta
    assert got.training == TRAINING and got.classes == ("negative", "positive", "surprise")
    assert [s.name for s in got.inputs] == ["flow"]
    assert read_checkpoint_meta(path) == meta
    assert not loaded.training
    want = model.state_dict()
    for k, v in loaded.state_dict().items():
        torch.testing.assert_close(v, want[k], rtol=0, atol=0)
    x = torch.randn(2, *meta.inputs[0].shape)
    model.eval()
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_non_default_config_is_rebuilt_from_the_file(tmp_path):
    model = build_model(MODEL, {"feature_maps": 16})
    path = save_checkpoint(model, tmp_path / "small.safetensors", ModelMeta.from_spec(MODEL, {"feature_maps": 16}))
    loaded, meta = load_checkpoint(path)
    assert meta.config["feature_maps"] == 16
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in model.parameters())


def test_other_model_than_expected(tmp_path, trained):
    path = save_checkpoint(trained[0], tmp_path / "m.safetensors", trained[1])
    with pytest.raises(CheckpointError, match=r"holds model 'rcn-a', but 'strcn-a' was expected"):
        load_checkpoint(path, expected_model="strcn-a")


def test_wrong_shapes_are_listed(tmp_path):
    model = build_model(MODEL, {"feature_maps": 16})
    path = save_checkpoint(model, tmp_path / "m.pt", ModelMeta.from_spec(MODEL))  # meta claims the default 32
    with pytest.raises(CheckpointError, match=r"wrong shapes: .*file \(16, .*vs model \(32, ") as e:
        load_checkpoint(path)
    assert "re-train or re-export" in str(e.value)


def test_missing_and_unexpected_tensors_are_listed(tmp_path, trained):
    model, meta = trained
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    dropped = next(iter(state))
    state["extra.weight"] = state.pop(dropped)
    path = tmp_path / "m.safetensors"
    save_file(state, str(path), metadata=meta.to_strings())
    with pytest.raises(CheckpointError, match=rf"missing tensors: {dropped}.*unexpected tensors: extra.weight"):
        load_checkpoint(path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_truncated_file(tmp_path, trained, suffix):
    path = save_checkpoint(trained[0], tmp_path / f"m{suffix}", trained[1])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match="is not a checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.pt")


def test_torch_file_that_is_not_ours(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save(build_model(MODEL).state_dict(), path)  # a bare state dict, no metadata
    with pytest.raises(CheckpointError, match="not a realtime-mer checkpoint"):
        load_checkpoint(path)


def test_safetensors_without_metadata(tmp_path):
    path = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="no realtime-mer metadata"):
        load_checkpoint(path)


def test_unregistered_model_and_bad_suffix(tmp_path, trained):
    model, meta = trained
    path = save_checkpoint(model, tmp_path / "m.safetensors", ModelMeta(**{**meta.__dict__, "model": "no-such-net"}))
    with pytest.raises(CheckpointError, match="'no-such-net', which this realtime-mer"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="ending in .safetensors"):
        save_checkpoint(model, tmp_path / "m.bin", meta)


def test_truncated_inside_the_safetensors_header(tmp_path, trained):
    path = save_checkpoint(trained[0], tmp_path / "m.safetensors", trained[1])
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="truncated safetensors file .*header runs past the end"):
        load_checkpoint(path)
