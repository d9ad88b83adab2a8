"""The RCN family of seed 003 (Xia et al., "Revealing the Invisible with Model and Data Shrinking",
IEEE TIP 2020): a shallow recurrent convolutional network and its parameter-free extensions.

Input: ``flow`` ``(B, 3, H, W)`` float32, the onset->apex optical flow ``(u, v)`` plus optical strain
(``realtime_mer.flow.flow_strain_map``), 60x60 by default. Output: ``logits`` ``(B, K)`` class logits;
the engines apply the softmax. Every model of the project returns logits first.

Building blocks (importable and composable, for the trainer's supernet of the architecture search):

* :class:`ConvStem` - conv 5x5 (pad 0) -> BN -> ReLU -> max-pool -> dropout (the authors' code).
* :class:`WideStem` - the wide expansion: parallel 3x3 streams with dilations (1, 2, 3) concatenated on
  channels (Fig. 5a, Table I); with one stream of dilation 1 it is Table I's standard conv.
* :class:`RCLBlock` - the recurrent layer Rconv: a 1x1 feed-forward state and ``steps`` recurrent 3x3
  steps with shared weights (Eq. 3); ``shortcut=True`` is the shortcut connection of RCN-S (Eq. 6).
* :class:`ClassifierAttention` - the parameter-free attention unit (Eq. 7): a class-activation map
  computed from the classifier's own weights, min-max normalised, averaged over the classes.
* :class:`ClassifierHead` - adaptive average pool to PxP -> flatten -> linear.

Models (F feature maps, P the pool size, K = 3, 60x60 input; FLOPs counted by
``torch.utils.flop_counter.FlopCounterMode`` at batch 1: convolutions and matrix products, 2 per
multiply-accumulate, see :mod:`realtime_mer.models.stats`):

=======  ===============================================================  =================  ==================
name     forward path                                                     params 32/5, 64/7  MFLOPs 32/5, 64/7
=======  ===============================================================  =================  ==================
rcn      ConvStem -> RCLBlock -> head                                     15,331 / 55,747    60.10 / 209.96
rcn-a    ConvStem -> att = A(stem) -> RCLBlock -> pool(.) * att -> linear 15,331 / 55,747    60.40 / 209.96
rcn-s    ConvStem -> RCLBlock(shortcut) -> head                           15,331 / 55,747    60.10 / 209.96
rcn-w    WideStem(1,2,3) -> RCLBlock -> head                              13,795 / 52,675    23.63 /  93.30
rcn-p    WideStem(1,3; stride 1, max-pool 3) -> att = A(stem) ->          13,795 / 52,675    29.16 / 104.85
         RCLBlock(shortcut) -> pool(.) * att -> linear
rcn-c    att = A_mean(input) -> WideStem(1,2,3) * up(att) ->              13,795 / 52,675    23.63 /  93.47
         RCLBlock(shortcut) -> head
rcn-f    WideStem(1,2,3) -> RCLBlock(shortcut, feed-forward state *       13,795 / 52,675    23.63 /  93.79
         up(A(stem))) -> head
=======  ===============================================================  =================  ==================

Sizes at 60x60: ConvStem 60 -> 56 -> 28, RCLBlock -> 14, head -> P; WideStem -> 20 (all streams),
RCLBlock -> 10, head -> P. The attention units add no parameters, hence the equal counts.

Where this follows the paper rather than the authors' public code (REFERENCE.md 1.1-1.2):

* The recurrent layer runs ``steps = 3`` recurrent steps ("four states in one recurrent layer",
  Table I); the code's RclBlock runs 2, its DenseBlock 3.
* RCN-S has no unused third convolution, so the shortcut module adds no parameters (15,331, not the
  code's 24,643); RCN-P, RCN-C and RCN-F build no unused modules either.
* RCN-P and RCN-F instantiate (the code's ``super(RCN_H ...)`` / ``super(RCN_E ...)`` NameErrors),
  and RCN-F uses the dilation-3 stream (the code feeds the dilation-2 stream twice).
* Every convolution is followed by BN then ReLU (Eq. 4); the code's wide streams use ReLU then BN.
* The stem defaults to the code's conv 5x5 + max-pool (60 -> 56 -> 28; RCLBlock -> 14). Table I of
  the paper lists a 3x3 stride-3 standard convolution instead (60 -> 20; RCLBlock -> 10), which makes
  RCN-W parameter-free with respect to RCN; choose it with ``stem="conv3-s3"`` (13,795 parameters).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .registry import ModelSpec, TensorSpec, register

Stem = Literal["conv5-pool", "conv3-s3", "wide", "hybrid"]
Attention = Literal["none", "output", "input", "embedded"]

RCN_INPUT_DOC = "onset->apex optical flow u, v and optical strain (realtime_mer.flow.flow_strain_map), (3, H, W)"


# ---------------------------------------------------------------- helpers


def init_weights(module: nn.Module) -> None:
    """The authors' initialisation: Kaiming-normal convs (fan_out, ReLU), BN 1/0, linear N(0, 0.01)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


def conv_bn_relu(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> nn.Sequential:
    """Conv2d (with bias, as in the authors' code) -> BatchNorm2d -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


@functools.lru_cache(maxsize=64)
def _pool_weights(n: int, p: int) -> tuple[tuple[float, ...], ...]:
    """``(p, n)`` averaging weights of adaptive average pooling from ``n`` to ``p`` bins (PyTorch's bins).

    Cached as numbers, not as a tensor: a tensor made while ``torch.export`` traces is a fake one.
    """
    rows = []
    for i in range(p):
        start, end = (i * n) // p, -(-(i + 1) * n // p)
        rows.append(tuple(1.0 / (end - start) if start <= j < end else 0.0 for j in range(n)))
    return tuple(rows)


def adaptive_avg_pool(x: torch.Tensor, size: int) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, size)`` for ``(N, C, H, W)`` that every ONNX exporter handles.

    When ``size`` divides H and W it is a plain average pool; otherwise (14 -> 5, 20 -> 7...) it is
    the same bins written as two matrix products, because the TorchScript exporter refuses adaptive
    pooling with uneven bins.
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])  # static under tracing: constants in the graph
    if h < size or w < size:
        raise ValueError(f"feature map {h}x{w} is smaller than the pool size {size}: use a larger input")
    if h % size == 0 and w % size == 0:
        return F.avg_pool2d(x, (h // size, w // size))
    make = _device_pool_weights if x.is_cuda else _host_pool_weights
    return torch.matmul(torch.matmul(make(h, size, x.dtype, x.device), x), make(w, size, x.dtype, x.device).t())


def _host_pool_weights(n: int, p: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.tensor(_pool_weights(n, p), dtype=dtype, device=device)


@functools.lru_cache(maxsize=64)
def _device_pool_weights(n: int, p: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The ``(p, n)`` weights on a GPU, made once: a CUDA graph capture may not copy them from the host
    (the first, uncaptured call of the torch engine's warm-up makes them)."""
    return _host_pool_weights(n, p, dtype, device)


def upsample_nearest(att: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``att`` ``(N, 1, p, p)`` resized to ``size`` with nearest neighbours (the code's ``F.interpolate``)."""
    if tuple(att.shape[-2:]) == tuple(size):
        return att
    return F.interpolate(att, size=tuple(int(s) for s in size), mode="nearest")


def stream_widths(channels: int, streams: int) -> tuple[int, ...]:
    """Channels of the wide-expansion streams: half to dilation 1, the rest shared (F/2, F/4, F/4)."""
    if streams == 1:
        return (channels,)
    if channels % (2 * (streams - 1)):
        raise ValueError(
            f"{channels} feature maps cannot be split over {streams} streams as F/2 + {streams - 1} equal parts: "
            f"use a multiple of {2 * (streams - 1)}"
        )
    return (channels // 2,) + (channels // (2 * (streams - 1)),) * (streams - 1)


# ---------------------------------------------------------------- building blocks


class ConvStem(nn.Sequential):
    """Conv ``k x k`` (pad 0) -> BN -> ReLU -> max-pool ``pool`` -> dropout.

    ``(N, C_in, H, W)`` -> ``(N, C_out, (H - k + 1) // ph, (W - k + 1) // pw)``; 60x60 -> 28x28 with the
    defaults. Also STRCN's Conv1 + Pool1 (seed 001 Table I).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 5,
        pool: tuple[int, int] = (2, 2),
        dropout: float = 0.5,
    ) -> None:
        super().__init__(
            conv_bn_relu(in_channels, out_channels, kernel_size),
            nn.MaxPool2d(pool, pool),
            nn.Dropout(dropout),
        )


class WideStem(nn.Module):
    """The wide expansion (seed 003 Fig. 5a, Table I): parallel 3x3 convs with dilations ``dilations``.

    Each stream is conv 3x3 (padding = dilation, stride ``stride``) -> BN -> ReLU; the streams are
    concatenated on channels (``widths`` each, default :func:`stream_widths`), then an optional
    max-pool ``pool x pool`` (stride ``pool``, padding ``pool // 2``) and dropout. All streams have the
    same output size, ``(H - 1) // stride + 1``: 60x60 -> 20x20 at stride 3. ``dilations=(1,)`` is
    Table I's standard convolution.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilations: Sequence[int] = (1, 2, 3),
        stride: int = 3,
        pool: int | None = None,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        widths = stream_widths(out_channels, len(dilations))
        self.streams = nn.ModuleList(
            conv_bn_relu(in_channels, w, 3, stride, padding=d, dilation=d) for w, d in zip(widths, dilations)
        )
        self.pool = nn.MaxPool2d(pool, pool, pool // 2) if pool else nn.Identity()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.pool(torch.cat([s(x) for s in self.streams], dim=1)))


class RCLBlock(nn.Module):
    """Recurrent convolutional layer (seed 003 Eq. 3 and 6; seed 001 Table I RCL).

    A 1x1 feed-forward conv gives the initial state; ``steps`` recurrent steps apply one shared 3x3
    conv (each conv followed by BN -> ReLU), then max-pool ``pool`` (``None``: none) and dropout.

    * plain (RCN, Eq. 3): ``s_0 = ff(x)``, ``s_n = rr(x + s_{n-1})``: the input is re-injected;
    * ``shortcut=True`` (RCN-S, Eq. 6): the input of step n is the input plus the output of step n-1,
      ``u_n = u_{n-1} + s_{n-1}`` with ``u_0 = x``, i.e. ``rr(x + s_0)``, ``rr(x + s_0 + s_1)``, ...

    ``forward(x, attention)``: ``attention`` ``(N, 1, p, p)``, when given, multiplies the feed-forward
    state after a nearest upsampling (RCN-F's embedding block). ``(N, C, H, W)`` -> ``(N, C, H/ph, W/pw)``.
    """

    def __init__(
        self,
        channels: int,
        steps: int = 3,
        shortcut: bool = False,
        pool: tuple[int, int] | None = (2, 2),
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"an RCL needs at least one recurrent step, got steps={steps}")
        self.steps = steps
        self.shortcut = shortcut
        self.feedforward = conv_bn_relu(channels, channels, 1)
        self.recurrent = conv_bn_relu(channels, channels, 3, padding=1)
        self.pool = nn.MaxPool2d(pool, pool) if pool else nn.Identity()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attention: torch.Tensor | None = None) -> torch.Tensor:
        state = self.feedforward(x)
        if attention is not None:
            state = state * upsample_nearest(attention, state.shape[-2:])
        feed = x
        for _ in range(self.steps):
            feed = feed + state if self.shortcut else x + state
            state = self.recurrent(feed)
        return self.drop(self.pool(state))


class ClassifierAttention(nn.Module):
    """Parameter-free attention unit (seed 003 Eq. 7, Fig. 5c): a CAM from the classifier weights.

    ``forward(x, weight)``: ``x`` ``(N, C, H, W)`` any feature map, ``weight`` ``(K, C' * P * P)`` the
    classifier's weight. ``x`` is average-pooled to ``P x P`` (``d(.)`` of Eq. 7); for each class k,
    ``cam_k = mean_c(W_k[c] * x_c)`` with ``W_k`` reshaped to ``(C', P, P)`` (``C' == C`` required),
    or with ``W_k`` first averaged over its channels when ``average_weights`` (the code's AttF, for
    maps whose channels differ from the classifier's, e.g. the raw input). Each ``cam_k`` is min-max
    normalised per sample to [0, 1]; the result is their mean, ``(N, 1, P, P)``. No parameters; the
    weights are not detached (gradients reach the classifier through the map, as in the code).
    """

    def __init__(self, pool_size: int, average_weights: bool = False, eps: float = 1e-8) -> None:
        super().__init__()
        self.pool_size = pool_size
        self.average_weights = average_weights
        self.eps = eps

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        p = self.pool_size
        pooled = adaptive_avg_pool(x, p)  # (N, C, P, P)
        w = weight.reshape(weight.shape[0], -1, p, p)  # (K, C', P, P)
        if self.average_weights:
            cam = w.mean(dim=1).unsqueeze(0) * pooled.mean(dim=1, keepdim=True)  # (N, K, P, P)
        else:
            if w.shape[1] != pooled.shape[1]:
                raise ValueError(
                    f"attention on a {pooled.shape[1]}-channel map from a classifier over {w.shape[1]} channels: "
                    "use average_weights=True for maps whose channel count differs"
                )
            cam = (w.unsqueeze(0) * pooled.unsqueeze(1)).mean(dim=2)  # (N, K, P, P)
        cam = cam - cam.amin(dim=(2, 3), keepdim=True)
        cam = cam / cam.amax(dim=(2, 3), keepdim=True).clamp_min(self.eps)
        return cam.mean(dim=1, keepdim=True)


class ClassifierHead(nn.Module):
    """Adaptive average pool to ``P x P`` -> (optional attention product) -> flatten -> linear.

    ``forward(x, attention)``: ``(N, C, H, W)`` -> logits ``(N, K)``; ``attention`` ``(N, 1, P, P)``
    multiplies the pooled map (RCN-A, RCN-P). ``weight`` is the ``(K, C * P * P)`` linear weight that
    :class:`ClassifierAttention` reads.
    """

    def __init__(self, channels: int, pool_size: int, num_classes: int) -> None:
        super().__init__()
        self.pool_size = pool_size
        self.fc = nn.Linear(channels * pool_size * pool_size, num_classes)

    @property
    def weight(self) -> torch.Tensor:
        return self.fc.weight

    def forward(self, x: torch.Tensor, attention: torch.Tensor | None = None) -> torch.Tensor:
        x = adaptive_avg_pool(x, self.pool_size)
        if attention is not None:
            x = x * attention
        return self.fc(x.flatten(1))


# ---------------------------------------------------------------- the model


class RCN(nn.Module):
    """One recurrent convolutional network of the RCN family (see the module docstring for the table).

    Args:
        in_channels: input channels (3: u, v, strain).
        num_classes: K.
        feature_maps: F, channels of every convolution (the paper tries 16, 32, 64).
        pool_size: P, the adaptive average pool before the classifier (5 or 7 in the paper).
        steps: recurrent steps of the RCL (3 in the paper).
        dropout: dropout after the stem and after the RCL (0.5).
        stem: ``"conv5-pool"`` (code: conv 5x5 + max-pool 2), ``"conv3-s3"`` (Table I: conv 3x3 stride 3),
            ``"wide"`` (dilations 1, 2, 3, stride 3), ``"hybrid"`` (RCN-P: dilations 1, 3, stride 1,
            max-pool 3).
        shortcut: the RCL with shortcut connections (RCN-S).
        attention: where the parameter-free attention goes: ``"none"``; ``"output"`` (computed on the
            RCL input, multiplies the pooled RCL output: RCN-A, RCN-P); ``"input"`` (computed on the
            raw input with channel-averaged weights, multiplies the stem output: RCN-C); ``"embedded"``
            (computed on the RCL input, multiplies the RCL's feed-forward state: RCN-F).

    ``forward(flow)``: ``(N, in_channels, H, W)`` -> logits ``(N, num_classes)``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 3,
        feature_maps: int = 32,
        pool_size: int = 5,
        steps: int = 3,
        dropout: float = 0.5,
        stem: Stem = "conv5-pool",
        shortcut: bool = False,
        attention: Attention = "none",
    ) -> None:
        super().__init__()
        if attention not in ("none", "output", "input", "embedded"):
            raise ValueError(f"attention must be 'none', 'output', 'input' or 'embedded', got {attention!r}")
        f = feature_maps
        if stem == "conv5-pool":
            self.stem: nn.Module = ConvStem(in_channels, f, 5, (2, 2), dropout)
        elif stem == "conv3-s3":
            self.stem = WideStem(in_channels, f, (1,), stride=3, dropout=dropout)
        elif stem == "wide":
            self.stem = WideStem(in_channels, f, (1, 2, 3), stride=3, dropout=dropout)
        elif stem == "hybrid":
            self.stem = WideStem(in_channels, f, (1, 3), stride=1, pool=3, dropout=dropout)
        else:
            raise ValueError(f"stem must be 'conv5-pool', 'conv3-s3', 'wide' or 'hybrid', got {stem!r}")
        self.rcl = RCLBlock(f, steps, shortcut, (2, 2), dropout)
        self.head = ClassifierHead(f, pool_size, num_classes)
        self.attention_mode = attention
        self.attention = ClassifierAttention(pool_size, average_weights=attention == "input")
        init_weights(self)

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        mode = self.attention_mode
        w = self.head.weight
        h = self.stem(flow)
        if mode == "input":
            h = h * upsample_nearest(self.attention(flow, w), h.shape[-2:])
        att = self.attention(h, w) if mode in ("output", "embedded") else None
        h = self.rcl(h, attention=att if mode == "embedded" else None)
        return self.head(h, attention=att if mode == "output" else None)


# ---------------------------------------------------------------- registry

_VARIANTS: dict[str, tuple[dict[str, Any], str]] = {
    "rcn": ({"shortcut": False, "attention": "none"}, "RCN: stem -> RCL -> adaptive pool -> linear"),
    "rcn-a": ({"shortcut": False, "attention": "output"}, "RCN-A: RCN + parameter-free attention unit"),
    "rcn-s": ({"shortcut": True, "attention": "none"}, "RCN-S: RCN with shortcut connections in the RCL"),
    "rcn-w": ({"stem": "wide", "shortcut": False, "attention": "none"}, "RCN-W: wide expansion, dilations 1/2/3"),
    "rcn-p": ({"stem": "hybrid", "shortcut": True, "attention": "output"}, "RCN-P: searched, hybrid"),
    "rcn-c": ({"stem": "wide", "shortcut": True, "attention": "input"}, "RCN-C: searched, cascaded"),
    "rcn-f": ({"stem": "wide", "shortcut": True, "attention": "embedded"}, "RCN-F: searched, embedded/fused"),
}
_STANDARD_STEM = ("rcn", "rcn-a", "rcn-s")


def _rcn_inputs(cfg: dict[str, Any]) -> tuple[TensorSpec, ...]:
    h, w = cfg["input_size"]
    return (TensorSpec("flow", (cfg["in_channels"], int(h), int(w)), doc=RCN_INPUT_DOC),)


def _rcn_builder(name: str):
    fixed = _VARIANTS[name][0]

    def build(cfg: dict[str, Any]) -> RCN:
        kwargs = {k: v for k, v in cfg.items() if k != "input_size"}
        if kwargs.get("stem", "conv5-pool") not in ("conv5-pool", "conv3-s3"):
            raise ValueError(
                f"{name}: stem must be 'conv5-pool' (authors' code) or 'conv3-s3' (Table I), got {kwargs['stem']!r}"
            )
        return RCN(**fixed, **kwargs)

    return build


def _register_all() -> None:
    for name, (_, doc) in _VARIANTS.items():
        cfg: dict[str, Any] = {
            "in_channels": 3,
            "num_classes": 3,
            "feature_maps": 32,
            "pool_size": 5,
            "steps": 3,
            "dropout": 0.5,
            "input_size": [60, 60],
        }
        if name in _STANDARD_STEM:
            cfg["stem"] = "conv5-pool"
        register(
            ModelSpec(
                name=name,
                family="rcn",
                build=_rcn_builder(name),
                input_spec=_rcn_inputs,
                outputs=("logits",),
                default_config=cfg,
                doc=f"seed 003 (TIP 2020) Table I: {doc}; input (3, 60, 60) flow + strain",
            )
        )


_register_all()
