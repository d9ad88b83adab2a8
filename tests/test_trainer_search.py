"""Architecture search: the supernet's relaxation, the alternating (bilevel) updates, the derivation
of a registered variant and its export as a training config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from realtime_mer.models import build_model
from realtime_mer.models.rcn import RCN
from realtime_mer.train.datasets import Sample
from realtime_mer.train.experiment import load_run_config, preprocess_config
from realtime_mer.train.preprocess import Prepared
from realtime_mer.train.search import (
    CANDIDATES,
    SearchConfig,
    SuperRCN,
    rank_candidates,
    search,
    write_architecture,
)


def test_supernet_mixes_every_decision():
    net = SuperRCN(feature_maps=8, pool_size=5)
    x = torch.rand(4, 3, 60, 60)
    assert net(x).shape == (4, 3)
    assert {id(p) for p in net.arch_parameters()}.isdisjoint({id(p) for p in net.weight_parameters()})
    assert len(net.arch_parameters()) + len(net.weight_parameters()) == len(list(net.parameters()))
    p = net.probabilities()
    np.testing.assert_allclose(p["stem"], 1 / 3)
    np.testing.assert_allclose(p["attention"], 0.5)
    loss = net(x).sum()
    loss.backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in net.arch_parameters()), (
        "every decision is differentiable"
    )


def test_a_one_hot_supernet_is_the_registered_variant():
    """With the architecture weights saturated on RCN-F's choices, the supernet computes RCN-F itself."""
    torch.manual_seed(0)
    net = SuperRCN(feature_maps=8).eval()
    with torch.no_grad():
        net.alpha_stem.copy_(torch.tensor([-1e4, 1e4, -1e4]))  # wide
        net.alpha_rcl.copy_(torch.tensor([-1e4, 1e4]))  # shortcut
        net.alpha_attention.copy_(torch.tensor([[1e4, -1e4], [-1e4, 1e4], [1e4, -1e4]]))  # embedded only
    ref: RCN = build_model("rcn-f", {"feature_maps": 8})
    ref.stem.load_state_dict(net.stems[1].state_dict())
    ref.rcl.load_state_dict(net.rcls[1].state_dict())
    ref.head.load_state_dict(net.head.state_dict())
    x = torch.rand(2, 3, 60, 60)
    torch.testing.assert_close(net(x), ref(x), rtol=1e-5, atol=1e-6)


def test_ranking_follows_the_weights():
    probs = {
        "stem": np.array([0.1, 0.2, 0.7]),
        "rcl": np.array([0.2, 0.8]),
        "attention": np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]),
    }
    ranking = rank_candidates(probs)
    assert ranking[0][0] == "rcn-p" and len(ranking) == len(CANDIDATES)
    assert [s for _, s in ranking] == sorted((s for _, s in ranking), reverse=True)


def _separable(n_subjects: int = 4, per: int = 6) -> Prepared:
    """Flow maps whose class is the channel that holds a bright square."""
    rng = np.random.default_rng(0)
    samples, xs = [], []
    for s in range(n_subjects):
        for k in range(per):
            c = k % 3
            x = rng.random((3, 60, 60)).astype(np.float32) * 0.2
            x[c, 20:40, 20:40] += 0.8
            xs.append(x)
            samples.append(Sample("synth", f"s{s}", f"v{k}", c, "nps"[c]))
    n = len(samples)
    return Prepared(samples, {"flow": np.stack(xs)}, np.arange(n), np.zeros((n, 2), np.float32), np.arange(n), [])


def test_search_runs_bilevel_and_exports_a_trainable_config(tmp_path):
    prepared = _separable()
    cfg = SearchConfig(epochs=2, batch=6, feature_maps=8, val_fraction=0.25)
    result = search(prepared, 3, cfg, seed=2)
    assert len(result.history) == 2 and all(h["val_loss"] > 0 for h in result.history)
    assert result.best in CANDIDATES and result.config["model"] == result.best
    moved = [abs(v - 1 / 3) for v in result.probabilities["stem"].values()]
    assert max(moved) > 1e-4, "the architecture weights were updated"
    path = write_architecture(result, tmp_path / "arch.yaml")
    text = path.read_text()
    assert "Top three" in text and text.count("#   ") == 3
    run = load_run_config(path)
    assert run.model == result.best and run.model_config["feature_maps"] == 8
    model_config, pre = preprocess_config(run, 3)
    model = build_model(run.model, model_config)
    assert model(torch.rand(2, 3, 60, 60)).shape == (2, 3) and pre.shapes == {"flow": (3, 60, 60)}


def test_search_needs_rcn_maps():
    p = _separable()
    p.inputs = {"appearance": np.zeros((len(p.samples), 3, 10, 30), np.float32)}
    with pytest.raises(ValueError, match="RCN flow maps"):
        search(p, 3, SearchConfig(epochs=1))
