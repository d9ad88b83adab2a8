"""The torch models of the seed papers: registry, the papers' table shapes, parameter counts, forwards."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from realtime_mer.models import build_model, get_spec, list_specs
from realtime_mer.models.dtscnn import DTSCNN
from realtime_mer.models.rcn import (
    RCN,
    ClassifierAttention,
    ClassifierHead,
    ConvStem,
    RCLBlock,
    WideStem,
    adaptive_avg_pool,
)
from realtime_mer.models.region_lstm import REGION_NAMES, REGION_SIZES, RegionLSTM
from realtime_mer.models.stats import flop_count, model_stats, param_count
from realtime_mer.models.strcn import STRCN

ALL = ("dtscnn", "rcn", "rcn-a", "rcn-c", "rcn-f", "rcn-p", "rcn-s", "rcn-w", "region-lstm", "strcn-a", "strcn-g")
RCN_NAMES = ("rcn", "rcn-a", "rcn-s", "rcn-w", "rcn-p", "rcn-c", "rcn-f")
BIG = {"feature_maps": 64, "pool_size": 7}
LIGHT = {"region-lstm": {"frames": 2}, "dtscnn": {"input_size": [48, 40]}, "strcn-a": {"pixels": 400}}
"""Smaller inputs for the per-model forward test on 2 shared cores; the table tests use the papers' sizes."""

torch.manual_seed(0)


def shapes_after(model: nn.Module, modules: list[nn.Module], *inputs: torch.Tensor) -> list[tuple[int, ...]]:
    """Output shapes (without batch) of ``modules`` during one ``model(*inputs)``."""
    seen: list[tuple[int, ...]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[1:]))) for m in modules]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return seen


# ---------------------------------------------------------------- registry


def test_registry_holds_every_model_with_logits_first():
    assert tuple(s.name for s in list_specs()) == ALL
    for spec in list_specs():
        assert spec.outputs[0] == "logits", spec.name
        assert spec.name == spec.name.lower()
        assert spec.family in ("rcn", "strcn", "region-lstm", "dtscnn")


@pytest.mark.parametrize("name", ALL)
def test_forward_batch_1_and_3_agree_per_sample(name):
    """Every model runs at batch 1 and 3, returns its named outputs, and never mixes samples."""
    spec = get_spec(name)
    model = build_model(name, LIGHT.get(name))
    xs = spec.example_inputs(3, LIGHT.get(name), seed=1)
    with torch.no_grad():
        out3 = model(*xs)
        out1 = model(*(x[1:2] for x in xs))
    out3 = out3 if isinstance(out3, tuple) else (out3,)
    out1 = out1 if isinstance(out1, tuple) else (out1,)
    assert len(out3) == len(spec.outputs)
    assert out3[0].shape == (3, 3)
    for a, b in zip(out3, out1):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a[1:2], b, rtol=1e-4, atol=1e-5)


def test_bad_config_and_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="unknown config key"):
        build_model("rcn", {"featuremaps": 32})
    with pytest.raises(ValueError, match="stem must be"):
        build_model("rcn", {"stem": "wide"})
    with pytest.raises(ValueError, match="cannot be split"):
        build_model("rcn-w", {"feature_maps": 30})
    with pytest.raises(ValueError, match="smaller than the pool size"):
        build_model("rcn")(torch.zeros(1, 3, 20, 20))
    with pytest.raises(ValueError, match="right_eye_brow must be"):
        xs = list(get_spec("region-lstm").example_inputs(1, {"frames": 1}))
        xs[0] = torch.zeros(1, 1, 3, 100, 80)  # (w, h) swapped
        build_model("region-lstm")(*xs)
    with pytest.raises(ValueError, match="expects"):
        build_model("dtscnn")(torch.zeros(1, 2, 32, 112, 96), torch.zeros(1, 2, 128, 112, 96))


# ---------------------------------------------------------------- RCN family (seed 003)


def test_rcn_spatial_sizes_at_60x60():
    x = torch.randn(2, 3, 60, 60)
    m = RCN(feature_maps=32)
    assert shapes_after(m, [m.stem, m.rcl], x) == [(32, 28, 28), (32, 14, 14)]
    for stem in ("wide", "hybrid", "conv3-s3"):
        m = RCN(feature_maps=16, stem=stem)
        assert shapes_after(m, [m.stem, m.rcl], x) == [(16, 20, 20), (16, 10, 10)], stem
    m = RCN(feature_maps=32, stem="wide")
    assert shapes_after(m, list(m.stem.streams), x) == [(16, 20, 20), (8, 20, 20), (8, 20, 20)]
    dilations = [s[0].dilation for s in m.stem.streams]
    assert dilations == [(1, 1), (2, 2), (3, 3)]


@pytest.mark.parametrize(
    ("name", "small", "big"),
    [
        ("rcn", 15_331, 55_747),
        ("rcn-a", 15_331, 55_747),
        ("rcn-s", 15_331, 55_747),  # REFERENCE's 24,643 / 92,803 count the code's unused conv3
        ("rcn-w", 13_795, 52_675),
        ("rcn-p", 13_795, 52_675),
        ("rcn-c", 13_795, 52_675),
        ("rcn-f", 13_795, 52_675),
    ],
)
def test_rcn_parameter_counts(name, small, big):
    assert param_count(build_model(name)) == small
    assert param_count(build_model(name, BIG)) == big


def test_table_i_stem_makes_the_wide_expansion_parameter_free():
    assert param_count(build_model("rcn", {"stem": "conv3-s3"})) == param_count(build_model("rcn-w")) == 13_795


def test_rcn_variants_share_weights_layout_but_differ_in_forward():
    """Same state-dict keys as RCN; with RCN's weights loaded each variant computes something else."""
    x = torch.randn(2, 3, 60, 60)
    base = build_model("rcn")
    ref = base(x)
    for name in ("rcn-a", "rcn-s"):
        m = build_model(name)
        m.load_state_dict(base.state_dict())
        assert not torch.allclose(m(x), ref, atol=1e-6), name
    wide = build_model("rcn-w")
    outs = {}
    for name in ("rcn-p", "rcn-c", "rcn-f"):
        m = build_model(name)
        if name != "rcn-p":
            m.load_state_dict(wide.state_dict())
        outs[name] = m(x)
    assert not torch.allclose(outs["rcn-c"], wide(x), atol=1e-6)
    assert not torch.allclose(outs["rcn-f"], wide(x), atol=1e-6)
    assert not torch.allclose(outs["rcn-c"], outs["rcn-f"], atol=1e-6)


def test_attention_unit_is_parameter_free_cam_from_the_classifier():
    att = ClassifierAttention(5)
    assert list(att.parameters()) == [] and list(att.buffers()) == []
    head = ClassifierHead(8, 5, 3)
    x = torch.rand(4, 8, 28, 28)
    a = att(x, head.weight)
    assert a.shape == (4, 1, 5, 5)
    assert a.min() >= 0 and a.max() <= 1
    # by hand: class k's map is the channel mean of W_k (C, P, P) * pooled x
    w = head.weight.detach().reshape(3, 8, 5, 5)
    pooled = F.adaptive_avg_pool2d(x, 5)
    cams = torch.stack([(w[k] * pooled).mean(1) for k in range(3)], 1)
    lo = cams.amin(dim=(2, 3), keepdim=True)
    cams = (cams - lo) / (cams - lo).amax(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(a.detach(), cams.mean(1, keepdim=True))
    # not detached: the map sends gradients into the classifier weights
    a.sum().backward()
    assert head.fc.weight.grad is not None and head.fc.weight.grad.abs().sum() > 0
    # channel-averaged weights for maps of other channel counts (RCN-C on the raw input)
    assert ClassifierAttention(5, average_weights=True)(torch.rand(2, 3, 60, 60), head.weight).shape == (2, 1, 5, 5)
    with pytest.raises(ValueError, match="average_weights"):
        att(torch.rand(2, 3, 60, 60), head.weight)


def test_rcl_block_recurrence_and_shortcut():
    """Eq. 3: s_n = rr(x + s_{n-1}); Eq. 6 (shortcut): the step input accumulates the outputs."""
    torch.manual_seed(1)
    x = torch.randn(2, 8, 12, 12)
    plain = RCLBlock(8, steps=3, pool=None, dropout=0.0).eval()
    dense = RCLBlock(8, steps=3, shortcut=True, pool=None, dropout=0.0).eval()
    dense.load_state_dict(plain.state_dict())
    ff, rr = plain.feedforward, plain.recurrent
    with torch.no_grad():
        y = ff(x)
        s = y
        for _ in range(3):
            s = rr(x + s)
        torch.testing.assert_close(plain(x), s)
        z = rr(x + y)
        e = rr(x + y + z)
        torch.testing.assert_close(dense(x), rr(x + y + z + e))
    # the recurrent weights are shared: the step count does not change the parameter count
    assert param_count(RCLBlock(8, steps=1)) == param_count(RCLBlock(8, steps=5)) == 8 * 8 + 8 + 9 * 64 + 8 + 4 * 8
    assert RCLBlock(8, pool=(2, 2))(x).shape == (2, 8, 6, 6)
    with pytest.raises(ValueError, match="at least one"):
        RCLBlock(8, steps=0)


@pytest.mark.parametrize(("size", "pool"), [(14, 5), (20, 7), (28, 5), (10, 7), (14, 7), (60, 5), (9, 9)])
def test_adaptive_avg_pool_matches_torch(size, pool):
    x = torch.randn(2, 3, size, size + 1) if size % pool else torch.randn(2, 3, size, size)
    torch.testing.assert_close(adaptive_avg_pool(x, pool), F.adaptive_avg_pool2d(x, pool))


def test_building_blocks_compose():
    """A hand-assembled network from the exported blocks runs and trains (the supernet's material)."""
    stem = WideStem(3, 16, (1, 2, 3))
    block = RCLBlock(16, steps=2, shortcut=True)
    head = ClassifierHead(16, 5, 3)
    att = ClassifierAttention(5)
    x = torch.randn(2, 3, 60, 60)
    h = stem(x)
    logits = head(block(h, attention=att(h, head.weight)))
    F.cross_entropy(logits, torch.tensor([0, 2])).backward()
    assert all(p.grad is not None for p in [*stem.parameters(), *block.parameters(), *head.parameters()])
    assert ConvStem(3, 16)(x).shape == (2, 16, 28, 28)


# ---------------------------------------------------------------- STRCN (seed 001)


def test_strcn_table_i_sizes():
    a = build_model("strcn-a")
    assert isinstance(a, STRCN) and all(isinstance(r, RCLBlock) and r.steps == 3 for r in a.rcls)
    x = get_spec("strcn-a").example_inputs(1)[0]
    assert x.shape == (1, 3, 922, 30)  # 30 % of 64x48 pixels, 30 frames
    mods = [a.conv1, *a.rcls]
    assert shapes_after(a, mods, x) == [(64, 229, 26), (64, 57, 26), (64, 14, 6), (64, 7, 3), (64, 7, 3)]
    g = build_model("strcn-g")
    x = get_spec("strcn-g").example_inputs(1)[0]
    assert x.shape == (1, 2, 300, 245)
    assert shapes_after(g, [g.conv1, *g.rcls], x) == [(64, 74, 60), (64, 18, 15), (64, 4, 3), (64, 2, 1), (64, 2, 1)]
    assert a.conv1[0][0].kernel_size == (5, 5) and a.conv1[0][0].padding == (0, 0)
    assert [r.feedforward[0].kernel_size for r in a.rcls] == [(1, 1)] * 4
    assert [r.recurrent[0].kernel_size for r in a.rcls] == [(3, 3)] * 4
    assert param_count(a) == 170_563 and param_count(g) == 168_963


# ---------------------------------------------------------------- CNN-LSTM (seed 002)


def test_region_model_matches_the_face_and_flow_stages():
    from realtime_mer.face.regions import REGION_NAMES as FACE_NAMES
    from realtime_mer.flow import REGION_SIZES as FLOW_SIZES

    assert REGION_NAMES == FACE_NAMES
    assert REGION_SIZES == FLOW_SIZES
    spec = get_spec("region-lstm")
    assert [t.name for t in spec.inputs()] == [*REGION_NAMES, "h0", "c0"]
    assert spec.outputs == ("logits", "h1", "c1")


def test_region_lstm_parameter_count_reproduces_the_paper():
    """1,093,531 in the paper: the same layers counted with Keras' single LSTM bias at 4 input channels."""
    m = build_model("region-lstm")
    assert param_count(m) == 1_095_811
    rgba = RegionLSTM(in_channels=4)
    keras_bias = sum(lstm.bias_hh_l0.numel() for lstm in rgba.lstms)
    assert param_count(rgba) - keras_bias == 1_093_531
    cnn = m.cnns[0]
    assert [b[0].kernel_size for b in cnn.branches] == [(1, 1), (3, 3), (5, 5), (7, 7)]
    assert cnn.fc[0].in_features == 72 and cnn.fc[0].out_features == 1024 and cnn.fc[3].out_features == 20
    assert m.lstms[0].hidden_size == 120 and m.classifier[0].in_features == 720


def test_region_lstm_streams_chunk_by_chunk():
    """Two windows of 2 frames with the state fed back give the logits of one 4-frame window."""
    torch.manual_seed(2)
    m = RegionLSTM().eval()
    spec = get_spec("region-lstm")
    *regions, h0, c0 = spec.example_inputs(1, {"frames": 4}, seed=3)
    zeros = torch.zeros_like(h0)
    with torch.no_grad():
        full, hf, cf = m(*regions, zeros, zeros)
        _, h1, c1 = m(*(r[:, :2] for r in regions), zeros, zeros)
        part, h2, c2 = m(*(r[:, 2:] for r in regions), h1, c1)
        other, _, _ = m(*(r[:, 2:] for r in regions), zeros, zeros)
    assert h1.shape == c1.shape == (1, 6, 120)
    torch.testing.assert_close(part, full, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h2, hf, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(other, full, atol=1e-6)  # the state matters
    heads = m.region_logits(*regions)
    assert [tuple(h.shape) for h in heads] == [(1, 4, 4)] * 6  # K + 1 with "not me"


# ---------------------------------------------------------------- DTSCNN (seed 004)


def test_dtscnn_table_2_sizes_and_fusion():
    m = build_model("dtscnn")
    assert isinstance(m, DTSCNN)
    f64, f128 = get_spec("dtscnn").example_inputs(2, seed=4)
    assert f64.shape == (2, 2, 64, 112, 96) and f128.shape == (2, 2, 128, 112, 96)
    for stream, x in zip(m.streams, (f64, f128)):
        convs = [layer for layer in stream.features if isinstance(layer, nn.Conv3d)]
        pools = [layer for layer in stream.features if isinstance(layer, nn.MaxPool3d)]
        assert [c.out_channels for c in convs] == [16, 32, 64, 128]
        got = shapes_after(stream, [convs[0], *pools], x)
        assert got == [(16, 16, 56, 48), (16, 16, 28, 24), (32, 8, 14, 12), (64, 4, 7, 6), (128, 1, 3, 3)]
    assert m.streams[0].features[0].kernel_size == (8, 3, 3) and m.streams[0].features[0].stride == (4, 2, 2)
    assert m.streams[1].features[0].kernel_size == (16, 3, 3) and m.streams[1].features[0].stride == (8, 2, 2)
    assert m.streams[1].features[0].padding == (4, 1, 1) and m.streams[0].features[9].kernel_size == (4, 3, 3)
    with torch.no_grad():
        fused, z64, z128 = m(f64, f128)
    pick64 = z64.softmax(1).amax(1) >= z128.softmax(1).amax(1)
    torch.testing.assert_close(fused, torch.where(pick64[:, None], z64, z128))


def test_dtscnn_rate_feeds_each_stream_its_flows_times_its_length():
    plain, rate = build_model("dtscnn").eval(), build_model("dtscnn", {"rate": True}).eval()
    rate.load_state_dict(plain.state_dict())  # the option adds no parameter
    f64, f128 = get_spec("dtscnn").example_inputs(1, seed=5)
    f64, f128 = f64 * 0.01, f128 * 0.01  # sub-pixel flows
    with torch.no_grad():
        for a, b in zip(rate(f64, f128), plain(f64 * 64, f128 * 128)):
            torch.testing.assert_close(a, b)


# ---------------------------------------------------------------- stats


def test_stats_count_convolutions_and_lstm():
    assert model_stats("rcn") == {"params": 15_331, "flops": 60_100_416}
    lstm = nn.LSTM(20, 120, batch_first=True)
    assert flop_count(lstm, (torch.randn(2, 16, 20),)) == 2 * 2 * 16 * 4 * 120 * (20 + 120)
    deep = nn.LSTM(20, 120, num_layers=2, bidirectional=True)
    assert flop_count(deep, (torch.randn(16, 2, 20),)) == 2 * 2 * 16 * 4 * 120 * ((20 + 120) + (240 + 120)) * 2
    conv = nn.Conv2d(3, 8, 3)
    assert flop_count(conv, (torch.randn(1, 3, 10, 10),)) == 2 * 8 * 8 * 8 * 27


@pytest.mark.gpu
def test_stats_count_the_cudnn_lstm_like_the_cpu_one():
    lstm = nn.LSTM(20, 120, num_layers=2, batch_first=True)
    x = torch.randn(2, 16, 20)
    cpu = flop_count(lstm, (x,))
    assert flop_count(lstm.cuda(), (x.cuda(),)) == cpu > 0


@pytest.mark.parametrize(
    ("model", "config", "need"),
    [("strcn-g", {"input_size": [150, 122]}, "132x132"), ("strcn-a", {"frames": 10}, "132x12")],
)
def test_strcn_input_too_small_says_what_it_needs(model, config, need):
    with pytest.raises(ValueError, match=f"needs at least {need}"):
        get_spec(model).inputs(config)
