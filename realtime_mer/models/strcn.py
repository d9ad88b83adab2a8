"""STRCN-A and STRCN-G of seed 001 (Xia et al., "Spatiotemporal Recurrent Convolutional Networks for
Recognizing Spontaneous Micro-expressions", IEEE TMM 2019), Table I.

Conv1 (5x5, pad 0) + Pool1, then RCL2..RCL5 (each a 1x1 feed-forward conv and 3 recurrent 3x3 steps
with shared weights, BN + ReLU: :class:`realtime_mer.models.rcn.RCLBlock`), Pool2..Pool4 after RCL2..4,
global average pooling after RCL5, a linear classifier. ``forward`` returns class logits ``(B, K)``.

Inputs (sizes are (height, width); the face crop is 2.2 x 1.8 eye distances, so height > width):

* STRCN-A ``appearance`` ``(B, 3, d2, T)``: magnified frames resized to 64x48, the top p = 30 % pixels
  of the difference heat map (d2 = round(0.3 * 3072) = 922), one frame per column, T = 30 frames
  (``realtime_mer.flow.strcn_a_input``; config ``difference`` > 0: each column's difference from the
  first, times that, made by the input definition ``realtime_mer.inputs``). Config ``mask``: the
  paper's data-set mask (``"dataset"``: mer-train sums the heat maps of the training sequences and
  stores the mask itself, packed by ``realtime_mer.flow.pack_mask``, in the checkpoint's config), or
  ``"sequence"``: each interval's own heat map (the registry default). Pools (4x1, 4x1, 4x4,
  2x2) along (pixels, time):
  922x30 -> conv 918x26 -> 229x26 -> 57x26 -> 14x6 -> 7x3 -> global average.
* STRCN-G ``flow`` ``(B, 2, 300, 245)``: onset->apex flow (u, v) (``realtime_mer.flow.strcn_g_input``);
  pools 4x4, 4x4, 4x4, 2x2: 300x245 -> conv 296x241 -> 74x60 -> 18x15 -> 4x3 -> 2x1 -> global average.

Parameters and FLOPs (:mod:`realtime_mer.models.stats`: ``FlopCounterMode``, batch 1, 2 FLOPs per
multiply-accumulate) at the default M = 64 feature maps, K = 3: STRCN-A 170,563 parameters,
1.959 GFLOPs; STRCN-G 168,963 parameters, 1.540 GFLOPs.

Choices where the paper is silent: M (grid-searched in Fig. 5, no value given) defaults to 64; dropout
0.5 after each pooling, as in the Liang-Hu RCNN the paper takes its fixed settings from; 3 classes
(the MEGC composite; the paper's single databases use 4 or 3). The RCL is the RCN paper's formulation
by the same authors (the 3x3 kernel applied to input + state), shared with the RCN family.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .rcn import ConvStem, RCLBlock, init_weights
from .registry import ModelSpec, TensorSpec, register

Pool = tuple[int, int]

STRCN_A_POOLS: tuple[Pool, ...] = ((4, 1), (4, 1), (4, 4), (2, 2))
STRCN_G_POOLS: tuple[Pool, ...] = ((4, 4), (4, 4), (4, 4), (2, 2))


class STRCN(nn.Module):
    """Conv1 + Pool1 -> RCL2 + Pool2 -> RCL3 + Pool3 -> RCL4 + Pool4 -> RCL5 -> global average -> linear.

    Args:
        in_channels: 3 (STRCN-A colour frames) or 2 (STRCN-G flow u, v).
        num_classes: K.
        feature_maps: M, channels of every convolution.
        pools: the four max-pool sizes ``(kh, kw)`` (stride = size) after Conv1, RCL2, RCL3, RCL4.
        steps: recurrent steps per RCL (3).
        dropout: after each pooling.

    ``forward(x)``: ``(N, in_channels, H, W)`` -> logits ``(N, num_classes)``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int = 3,
        feature_maps: int = 64,
        pools: tuple[Pool, ...] = STRCN_G_POOLS,
        steps: int = 3,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if len(pools) != 4:
            raise ValueError(f"STRCN has four pooling layers (Pool1..Pool4), got {len(pools)} pool sizes")
        m = feature_maps
        self.conv1 = ConvStem(in_channels, m, 5, (pools[0][0], pools[0][1]), dropout)
        self.rcls = nn.ModuleList(
            [RCLBlock(m, steps, pool=(p[0], p[1]), dropout=dropout) for p in pools[1:]]
            + [RCLBlock(m, steps, pool=None, dropout=0.0)]
        )
        self.fc = nn.Linear(m, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for rcl in self.rcls:
            x = rcl(x)
        return self.fc(x.mean(dim=(2, 3)))


def _build(pools: tuple[Pool, ...]):
    def build(cfg: dict[str, Any]) -> STRCN:
        return STRCN(cfg["in_channels"], cfg["num_classes"], cfg["feature_maps"], pools, cfg["steps"], cfg["dropout"])

    return build


def _check_size(model: str, h: int, w: int, pools: tuple[Pool, ...]) -> None:
    """A clear error for an input the 5x5 conv and the four poolings would shrink to nothing."""
    need_h = 4 + math.prod(p[0] for p in pools)
    need_w = 4 + math.prod(p[1] for p in pools)
    if h < need_h or w < need_w:
        raise ValueError(
            f"{model}: input {h}x{w} is too small for its 5x5 conv and poolings {list(pools)}: "
            f"it needs at least {need_h}x{need_w}"
        )


def _inputs_a(cfg: dict[str, Any]) -> tuple[TensorSpec, ...]:
    doc = "masked magnified frames, one column per frame: (C, d2 pixels, T frames) (realtime_mer.flow.strcn_a_input)"
    _check_size("strcn-a", int(cfg["pixels"]), int(cfg["frames"]), STRCN_A_POOLS)
    return (TensorSpec("appearance", (cfg["in_channels"], cfg["pixels"], cfg["frames"]), doc=doc),)


def _inputs_g(cfg: dict[str, Any]) -> tuple[TensorSpec, ...]:
    h, w = cfg["input_size"]
    _check_size("strcn-g", int(h), int(w), STRCN_G_POOLS)
    doc = "onset->apex optical flow u, v in pixels, (2, H, W) (realtime_mer.flow.strcn_g_input)"
    return (TensorSpec("flow", (cfg["in_channels"], int(h), int(w)), doc=doc),)


_COMMON = {"num_classes": 3, "feature_maps": 64, "steps": 3, "dropout": 0.5}

register(
    ModelSpec(
        name="strcn-a",
        family="strcn",
        build=_build(STRCN_A_POOLS),
        input_spec=_inputs_a,
        outputs=("logits",),
        default_config={
            "in_channels": 3,
            "pixels": 922,
            "frames": 30,
            "difference": 0.0,
            "mask": "sequence",
            **_COMMON,
        },  # fmt: skip
        doc="seed 001 (TMM 2019) Table I, STRCN-A: input (3, 922, 30) masked pixels x frames",
    )
)
register(
    ModelSpec(
        name="strcn-g",
        family="strcn",
        build=_build(STRCN_G_POOLS),
        input_spec=_inputs_g,
        outputs=("logits",),
        default_config={"in_channels": 2, "input_size": [300, 245], **_COMMON},
        doc="seed 001 (TMM 2019) Table I, STRCN-G: input (2, 300, 245) onset->apex flow",
    )
)
