"""DTSCNN of seed 004 (Peng et al., "Dual Temporal Scale Convolutional Neural Network for
Micro-Expression Recognition", Frontiers in Psychology 2017), Table 2.

Two 3D-CNN streams over the same clip's optical-flow sequence, temporally normalised to 64 and 128
flows (65 / 129 interpolated frames) at 112x96 (h x w; the paper's "96 x 112" is w x h):

* ``flow64`` ``(B, C, 64, 112, 96)`` and ``flow128`` ``(B, C, 128, 112, 96)``, C = 2 flow channels
  (u, v) from ``realtime_mer.flow.dtscnn_input``.
* Outputs: ``logits`` ``(B, K)``, the decision-level fusion, then ``logits64`` and ``logits128``, each
  stream's own logits.

Each stream (Table 2; kernels written (time, height, width)): Conv1 16 @ 8x3x3 (64) or 16x3x3 (128),
spatial pad 1 stride 2, temporal pad 2/4 stride 4/8 -> Pool1 1x2x2 -> Conv2 32 @ 3x3x3 pad 1 ->
Pool2 2x2x2 -> Conv3 64 @ 3x3x3 pad 1 -> Pool3 2x2x2 -> Conv4 128 @ 4x3x3, spatial pad 1, temporal
pad 0 -> Pool4 1x2x2 -> dropout 0.5 -> linear (the "Classify" layer). ReLU after every conv. Sizes,
both streams: T 16 after Conv1 -> 8 -> 4 -> 1; 112x96 -> 56x48 -> 28x24 -> 14x12 -> 7x6 -> 3x3;
the feature is 128 x 1 x 3 x 3 = 1152. A stream of any length L divisible by 32 uses the kernel
L/8, stride L/16 and pad L/32 of Table 2 and also reaches T = 16.

Fusion (Eq. 11): for each sample the class of the more confident stream wins: ``logits`` are the
logits of the stream with the larger maximum softmax probability, so the engines' softmax gives that
stream's probabilities.

Parameters (C = 2, K = 3): 742,374 (stream 64: 370,035; stream 128: 372,339). FLOPs
(:mod:`realtime_mer.models.stats`, batch 1, 2 per multiply-accumulate): 1.536 G (0.669 G + 0.867 G).

``rate`` (default off) multiplies each stream's flows by its length L inside the model: the
displacement per interval instead of per interpolated frame, so that both streams see the same
magnitudes. Sub-pixel micro-expression flows between adjacent interpolated frames are hundredths of
a pixel; the paper's colour coding normalises their magnitude, raw (u, v) at that scale leave the
first convolution with near-zero inputs (the shipped synthetic weights use it).

Deviations: the paper feeds 3-channel flow images (64 x 96 x 112 x 3, probably colour-coded flow);
here C defaults to the two raw flow components (set ``in_channels: 3`` for u, v, magnitude or a
colour code). The paper trains the streams separately and classifies the Pool4 features with a
linear SVM per stream; here each stream's linear layer is that linear classifier, trainable
end-to-end or stream by stream. 3 classes by default (the paper's CASME I/II task has 4).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .registry import ModelSpec, TensorSpec, register

LENGTHS = (64, 128)
"""Flows per clip of the two streams (Table 2); the input and output names carry them."""


class DTSCNNStream(nn.Module):
    """One stream of Table 2 for a clip of ``length`` flows: ``(N, C, length, H, W)`` -> logits ``(N, K)``."""

    def __init__(
        self,
        in_channels: int = 2,
        num_classes: int = 3,
        length: int = 64,
        input_size: tuple[int, int] = (112, 96),
        dropout: float = 0.5,
        rate: bool = False,
    ) -> None:
        super().__init__()
        if length % 32:
            raise ValueError(f"a DTSCNN stream needs a length divisible by 32 (Table 2 uses 64 and 128), got {length}")
        h, w = input_size
        self.features = nn.Sequential(
            nn.Conv3d(in_channels, 16, (length // 8, 3, 3), (length // 16, 2, 2), (length // 32, 1, 1)),
            nn.ReLU(inplace=True),
            nn.MaxPool3d((1, 2, 2), (1, 2, 2)),
            nn.Conv3d(16, 32, 3, 1, 1),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(2, 2),
            nn.Conv3d(32, 64, 3, 1, 1),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(2, 2),
            nn.Conv3d(64, 128, (4, 3, 3), 1, (0, 1, 1)),
            nn.ReLU(inplace=True),
            nn.MaxPool3d((1, 2, 2), (1, 2, 2)),
        )
        fh, fw = ((h - 1) // 2 + 1) // 16, ((w - 1) // 2 + 1) // 16
        if fh < 1 or fw < 1:
            raise ValueError(f"input size {h}x{w} is too small for DTSCNN: at least 31x31 is needed")
        self.length = length
        self.scale = float(length) if rate else 1.0
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(128 * fh * fw, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[2] != self.length:
            raise ValueError(f"DTSCNN stream {self.length} expects (N, C, {self.length}, H, W), got {tuple(x.shape)}")
        if self.scale != 1.0:
            x = x * self.scale
        return self.fc(self.drop(self.features(x).flatten(1)))


class DTSCNN(nn.Module):
    """Two streams and the decision-level fusion of Eq. 11.

    ``forward(flow64, flow128)`` -> ``(logits, logits64, logits128)``, each ``(N, K)``.
    """

    def __init__(
        self,
        in_channels: int = 2,
        num_classes: int = 3,
        input_size: tuple[int, int] = (112, 96),
        dropout: float = 0.5,
        rate: bool = False,
    ) -> None:
        super().__init__()
        self.streams = nn.ModuleList(
            DTSCNNStream(in_channels, num_classes, n, (input_size[0], input_size[1]), dropout, rate) for n in LENGTHS
        )

    def forward(self, flow64: torch.Tensor, flow128: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        za, zb = self.streams[0](flow64), self.streams[1](flow128)
        conf_a = torch.softmax(za, dim=1).amax(dim=1, keepdim=True)
        conf_b = torch.softmax(zb, dim=1).amax(dim=1, keepdim=True)
        return torch.where(conf_a >= conf_b, za, zb), za, zb


def _build(cfg: dict[str, Any]) -> DTSCNN:
    return DTSCNN(cfg["in_channels"], cfg["num_classes"], tuple(cfg["input_size"]), cfg["dropout"], cfg["rate"])


_SOURCE = "realtime_mer.flow.dtscnn_input"


def _inputs(cfg: dict[str, Any]) -> tuple[TensorSpec, ...]:
    h, w = cfg["input_size"]
    c = cfg["in_channels"]
    return tuple(
        TensorSpec(f"flow{n}", (c, n, int(h), int(w)), doc=f"flows of the clip at {n + 1} frames ({_SOURCE})")
        for n in LENGTHS
    )


register(
    ModelSpec(
        name="dtscnn",
        family="dtscnn",
        build=_build,
        input_spec=_inputs,
        outputs=("logits", "logits64", "logits128"),
        default_config={"in_channels": 2, "num_classes": 3, "input_size": [112, 96], "dropout": 0.5, "rate": False},
        doc="seed 004 (Front. Psychol. 2017) Table 2, DTSCNN: flow64 (2, 64, 112, 96) + flow128 (2, 128, 112, 96)",
    )
)
