"""The six-region CNN-LSTM of seed 002 (MEGC 2019): a small Inception-like CNN per facial region gives
20 spatial features a frame, one LSTM per region models time, a dense head classifies.

Inputs (one tensor per region, names as ``realtime_mer.face.regions.REGION_NAMES``; sizes are the
paper's [w, h] read as width x height, stored (h, w)): ``right_eye_brow`` and ``left_eye_brow``
``(B, T, C, 80, 100)``, ``nose`` ``(B, T, C, 80, 120)``, ``right_cheek`` and ``left_cheek``
``(B, T, C, 60, 60)``, ``mouth`` ``(B, T, C, 60, 160)``; and the LSTM state ``h0``, ``c0``
``(B, 6, 120)`` (zeros for a new sequence). Outputs: ``logits`` ``(B, K)`` after the last frame of the
window, and the state ``h1``, ``c1`` ``(B, 6, 120)`` to feed back as ``h0``, ``c0`` with the next window.
So a fixed window of T frames (default 16) runs chunk by chunk in ONNX Runtime or TensorRT, and the
logits after a chunk are those of the whole sequence so far.

The window (``realtime_mer.inputs.region_window``; config ``frames`` T, ``rate``, ``difference``):
the interval's frames from its onset, one step every ``fps / rate`` frames (``rate`` 0: every frame),
at most T, zero-padded at the end as the paper pads its sequences; the logits are read after the last
real step (:meth:`RegionLSTM.window_logits`; live, the model runs one step a frame as they arrive,
``realtime_mer.region_stream``). ``difference`` > 0 feeds each step as its difference from the first
(what moved since the onset) times ``difference``, clipped to [-3, 3] (seed 002: the crops themselves).

Per-region CNN (Sec. 4.1.2): conv 4@5x5 -> max-pool 2 -> conv 8@3x3 -> max-pool 2 -> four parallel
16@{1,3,5,7} ("same" padding) concatenated with the pooled conv-2 output (72 channels) -> global
average pool -> dense 1024 -> dropout 0.2 -> dense 20 (the features), ReLU throughout; a dense K + 1
"not me" head (:meth:`RegionLSTM.region_logits`) trains each CNN on its own relabelled targets. Then
per region an LSTM(120) ("the same length of inputs 120 for all LSTMs") -> dropout 0.2; the six final
hidden states concatenated (720) -> dense 64 LeakyReLU (Keras' default slope 0.3) -> dense K.

Parameters at the defaults (C = 3, K = 3): 1,095,811, of which 1,095,307 are used by ``forward``
(the six 20 -> 4 "not me" heads hold 504). The paper reports 1,093,531 ("about 1M") for its Keras
model. Counted the Keras way (one LSTM bias vector, where PyTorch's LSTM has two, ``b_ih`` and
``b_hh``: +480 per LSTM, +2,880 here) the same layers hold 1,091,131 + 600 C parameters for C input
channels: 1,092,931 at C = 3, and exactly the paper's 1,093,531 at C = 4, so the authors probably fed
4-channel (RGBA) crops. The exact match confirms the reading of the architecture: global average
pooling before the 1024 dense layer, and 120 LSTM units. FLOPs (:mod:`realtime_mer.models.stats`:
``FlopCounterMode`` plus the LSTM, batch 1, T = 16, 2 per multiply-accumulate): 1.224 G, about 77 M a frame.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .registry import ModelSpec, TensorSpec, register

REGION_NAMES: tuple[str, ...] = ("right_eye_brow", "left_eye_brow", "nose", "right_cheek", "left_cheek", "mouth")
REGION_SIZES: tuple[tuple[int, int], ...] = ((80, 100), (80, 100), (80, 120), (60, 60), (60, 60), (60, 160))
"""(height, width) of each region, in :data:`REGION_NAMES` order (seed 002 gives [w, h])."""


class RegionCNN(nn.Module):
    """The Inception-like CNN of one region: ``(N, C, H, W)`` -> features ``(N, features)``.

    ``head`` maps the features to K + 1 "not me" logits; it is used to train the CNN, not by the
    sequence model.
    """

    def __init__(
        self, in_channels: int, num_classes: int, features: int = 20, hidden: int = 1024, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 4, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 8, 3),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(8, 16, k, padding=k // 2), nn.ReLU(inplace=True)) for k in (1, 3, 5, 7)
        )
        self.fc = nn.Sequential(
            nn.Linear(8 + 4 * 16, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, features),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(features, num_classes + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.cat([x] + [b(x) for b in self.branches], dim=1)
        return self.fc(x.mean(dim=(2, 3)))


class RegionLSTM(nn.Module):
    """Six region CNNs, six LSTMs, a dense head; streaming state as explicit inputs and outputs.

    Args:
        in_channels: channels of the region crops (3: BGR crops).
        num_classes: K; each region's "not me" head has K + 1 outputs (the last is "not me").
        features: CNN features per frame (20).
        hidden: LSTM units (120).
        dropout: after the CNN's 1024 dense layer and after each LSTM (0.2).
        dense: units of the dense LeakyReLU layer (64).

    ``forward(right_eye_brow, left_eye_brow, nose, right_cheek, left_cheek, mouth, h0, c0)``: six
    ``(N, T, C, h_i, w_i)`` region tensors (:data:`REGION_SIZES`), then ``h0``, ``c0``
    ``(N, 6, hidden)`` -> ``(logits (N, K), h1 (N, 6, hidden), c1 (N, 6, hidden))``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 3,
        features: int = 20,
        hidden: int = 120,
        dropout: float = 0.2,
        dense: int = 64,
    ) -> None:
        super().__init__()
        n = len(REGION_SIZES)
        self.cnns = nn.ModuleList(RegionCNN(in_channels, num_classes, features, dropout=dropout) for _ in range(n))
        self.lstms = nn.ModuleList(nn.LSTM(features, hidden, batch_first=True) for _ in range(n))
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Sequential(
            nn.Linear(n * hidden, dense), nn.LeakyReLU(0.3, inplace=True), nn.Linear(dense, num_classes)
        )

    def _frames(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Region ``i``'s ``(N, T, C, h, w)`` as ``(N * T, C, h, w)``, with a clear error on a wrong shape."""
        h, w = REGION_SIZES[i]
        if x.dim() != 5 or tuple(x.shape[-2:]) != (h, w):
            raise ValueError(f"region {REGION_NAMES[i]} must be (N, T, C, {h}, {w}), got {tuple(x.shape)}")
        return x.flatten(0, 1)

    def region_logits(self, *regions: torch.Tensor) -> list[torch.Tensor]:
        """Per-region, per-frame logits ``(N, T, K + 1)`` of the "not me" heads, for the CNN pre-training.

        ``regions``: the six region tensors of :meth:`forward`, in :data:`REGION_NAMES` order.
        """
        if len(regions) != len(self.cnns):
            raise ValueError(
                f"expected {len(self.cnns)} region tensors ({', '.join(REGION_NAMES)}), got {len(regions)}"
            )
        out = []
        for i, (cnn, r) in enumerate(zip(self.cnns, regions)):
            head = cnn.head
            assert isinstance(head, nn.Module)
            out.append(head(cnn(self._frames(i, r))).unflatten(0, r.shape[:2]))
        return out

    def peak_region_logits(self, *regions: torch.Tensor) -> list[torch.Tensor]:
        """Per region, the "not me" logits ``(N, K + 1)`` of each window's peak frame: the one that
        differs most (mean absolute difference) from the window's first frame, the region's apex.

        The first stage of seed 002's training (the region CNNs on frames, before the LSTMs);
        ``regions`` as for :meth:`forward`.
        """
        if len(regions) != len(self.cnns):
            raise ValueError(
                f"expected {len(self.cnns)} region tensors ({', '.join(REGION_NAMES)}), got {len(regions)}"
            )
        out = []
        for i, (cnn, r) in enumerate(zip(self.cnns, regions)):
            self._frames(i, r)  # the shape check
            peak = (r - r[:, :1]).abs().flatten(2).mean(2).argmax(1)
            head = cnn.head
            assert isinstance(head, nn.Module)
            out.append(head(cnn(r[torch.arange(len(r)), peak])))
        return out

    def window_logits(self, *regions: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, K)`` of zero-padded windows read after their last real step: ``lengths``
        ``(N,)`` steps (>= 1) of the T; the same as :meth:`forward` on the first ``lengths`` steps from
        zero state. ``regions`` as for :meth:`forward`."""
        if len(regions) != len(self.cnns):
            raise ValueError(
                f"expected {len(self.cnns)} region tensors ({', '.join(REGION_NAMES)}), got {len(regions)}"
            )
        last = (lengths.long().clamp(min=1) - 1).view(-1)
        outs = []
        for i, (cnn, lstm, r) in enumerate(zip(self.cnns, self.lstms, regions)):
            seq, _ = lstm(cnn(self._frames(i, r)).reshape(-1, r.shape[1], lstm.input_size))
            outs.append(self.drop(seq[torch.arange(len(seq)), last]))
        return self.classifier(torch.cat(outs, dim=1))

    def sequence_parameters(self) -> list[nn.Parameter]:
        """The parameters after the region CNNs (LSTMs and the dense head): the second stage."""
        return [*self.lstms.parameters(), *self.classifier.parameters()]

    def forward(
        self,
        right_eye_brow: torch.Tensor,
        left_eye_brow: torch.Tensor,
        nose: torch.Tensor,
        right_cheek: torch.Tensor,
        left_cheek: torch.Tensor,
        mouth: torch.Tensor,
        h0: torch.Tensor,
        c0: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        regions = (right_eye_brow, left_eye_brow, nose, right_cheek, left_cheek, mouth)
        outs, hs, cs = [], [], []
        for i, (cnn, lstm, r) in enumerate(zip(self.cnns, self.lstms, regions)):
            feats = cnn(self._frames(i, r)).reshape(-1, r.shape[1], lstm.input_size)
            state = (h0[:, i].unsqueeze(0).contiguous(), c0[:, i].unsqueeze(0).contiguous())
            seq, (h, c) = lstm(feats, state)
            outs.append(self.drop(seq[:, -1]))
            hs.append(h[0])
            cs.append(c[0])
        return self.classifier(torch.cat(outs, dim=1)), torch.stack(hs, dim=1), torch.stack(cs, dim=1)


def _build(cfg: dict[str, Any]) -> RegionLSTM:
    return RegionLSTM(
        cfg["in_channels"], cfg["num_classes"], cfg["features"], cfg["hidden"], cfg["dropout"], cfg["dense"]
    )


def _inputs(cfg: dict[str, Any]) -> tuple[TensorSpec, ...]:
    t, c, hid = cfg["frames"], cfg["in_channels"], cfg["hidden"]
    regions = tuple(
        TensorSpec(name, (t, c, h, w), doc=f"{name} crops, a window of {t} steps (realtime_mer.inputs.region_window)")
        for name, (h, w) in zip(REGION_NAMES, REGION_SIZES)
    )
    state = (
        TensorSpec("h0", (len(REGION_NAMES), hid), doc="LSTM hidden state per region; zeros to start, then h1"),
        TensorSpec("c0", (len(REGION_NAMES), hid), doc="LSTM cell state per region; zeros to start, then c1"),
    )
    return regions + state


register(
    ModelSpec(
        name="region-lstm",
        family="region-lstm",
        build=_build,
        input_spec=_inputs,
        outputs=("logits", "h1", "c1"),
        default_config={
            "in_channels": 3,
            "num_classes": 3,
            "frames": 16,
            "features": 20,
            "hidden": 120,
            "dropout": 0.2,
            "dense": 64,
            "rate": 0.0,
            "difference": 0.0,
        },
        doc="seed 002 (MEGC 2019) six-region CNN-LSTM: six (16, 3, h, w) region windows + LSTM state (6, 120)",
    )
)
