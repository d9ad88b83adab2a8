"""Training losses of the papers: cross-entropy, STRCN's multi-class balanced loss, focal loss, and
the per-region "not me" focal loss of the CNN-LSTM.

Shapes: ``logits`` ``(N, K)`` raw scores, ``target`` ``(N,)`` int64 class indices; every loss
returns a scalar, the mean over the batch.

* :class:`BalancedLoss` is seed 001's Eq. (9)-(10): cross-entropy of the true class weighted by
  beta_i, inversely proportional to the frequency of sample i's class in the batch (or in given
  class counts). beta_c = N / (K_present * n_c), so a balanced batch has all weights 1 and the weights
  average to 1 over a batch.
* :class:`BatchFocalLoss` is the public RCN code's ``BalancedLoss`` (REFERENCE 1.4): focal loss,
  gamma 2, alpha_c = 1 - freq_batch(c) / 10 (weights in [0.9, 1]).
* :class:`FocalLoss` is Lin et al.'s -alpha_y (1 - p_y)^gamma log p_y (REFERENCE 1.4; seed 002 Eq. 2).
* :func:`region_targets` and :class:`RegionFocalLoss`: seed 002 Sec. 3.2 and REFERENCE 3; each
  region head has K + 1 outputs, the last one "not me", the target of every sample whose class the
  region is not responsible for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from realtime_mer.face.regions import REGION_NAMES

# REFERENCE 3, "3-class table": region -> the MEGC classes it is responsible for.
MEGC3_RESPONSIBLE: dict[str, tuple[str, ...]] = {
    "right_eye_brow": ("negative", "surprise"),
    "left_eye_brow": ("negative", "surprise"),
    "nose": ("negative",),
    "right_cheek": ("positive",),
    "left_cheek": ("positive",),
    "mouth": ("negative", "positive", "surprise"),
}
if tuple(MEGC3_RESPONSIBLE) != REGION_NAMES:
    raise ImportError(f"MEGC3_RESPONSIBLE must list the regions of realtime_mer.face.regions: {REGION_NAMES}")


def _check(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.ndim != 2 or target.shape != logits.shape[:1]:
        raise ValueError(f"logits must be (N, K) and target (N,), got {tuple(logits.shape)} and {tuple(target.shape)}")


def inverse_frequency(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(K,)`` weights beta_c = N / (K_present * n_c) from the labels ``target`` ``(N,)``; 0 for absent classes."""
    counts = torch.bincount(target, minlength=num_classes).to(torch.float32)
    present = (counts > 0).sum().clamp(min=1)
    return torch.where(counts > 0, counts.sum() / (present * counts.clamp(min=1)), torch.zeros_like(counts))


def focal_loss(
    logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over the batch of ``-alpha_y (1 - p_y)^gamma log p_y``; ``alpha`` ``(K,)`` or ``None`` (all 1)."""
    _check(logits, target)
    logp = F.log_softmax(logits, dim=1).gather(1, target[:, None])[:, 0]
    loss = -((1.0 - logp.exp()) ** gamma) * logp if gamma else -logp
    if alpha is not None:
        loss = alpha.to(loss)[target] * loss
    return loss.mean()


class FocalLoss(nn.Module):
    """Focal loss with focusing ``gamma`` and per-class weights ``alpha`` (``None``: all 1)."""

    def __init__(self, gamma: float = 2.0, alpha: Sequence[float] | torch.Tensor | None = None):
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.register_buffer("alpha", None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits, target, self.gamma, self.alpha)


class BalancedLoss(nn.Module):
    """STRCN's multi-class balanced loss (seed 001 Eq. 10): mean of ``-beta_y log p_y``.

    Args:
        class_counts: training-set samples per class ``(K,)``; ``None``: beta from each batch (the paper).
    """

    def __init__(self, class_counts: Sequence[int] | torch.Tensor | None = None):
        super().__init__()
        beta = None
        if class_counts is not None:
            counts = torch.as_tensor(class_counts, dtype=torch.int64)
            beta = inverse_frequency(torch.repeat_interleave(torch.arange(len(counts)), counts), len(counts))
        self.register_buffer("beta", beta)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(logits, target)
        beta = self.beta if self.beta is not None else inverse_frequency(target, logits.shape[1])
        return focal_loss(logits, target, 0.0, beta)


class BatchFocalLoss(nn.Module):
    """The RCN repository's ``BalancedLoss``: focal loss whose alpha_c = 1 - freq_batch(c) / 10."""

    def __init__(self, gamma: float = 2.0):
        super().__init__()
        self.gamma = float(gamma)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(logits, target)
        freq = torch.bincount(target, minlength=logits.shape[1]).to(logits.dtype) / len(target)
        return focal_loss(logits, target, self.gamma, 1.0 - freq / 10.0)


LOSSES = ("crossentropy", "balanced", "batchfocal", "focal")


def make_loss(name: str, class_counts: Sequence[int] | None = None, gamma: float = 2.0) -> nn.Module:
    """A loss by name: ``crossentropy``, ``balanced`` (STRCN; ``class_counts`` for dataset-level
    weights, else per batch), ``batchfocal`` (the RCN code's), ``focal`` (alpha = inverse class
    frequency of ``class_counts`` when given, else 1)."""
    if name == "crossentropy":
        return nn.CrossEntropyLoss()
    if name == "balanced":
        return BalancedLoss(class_counts)
    if name == "batchfocal":
        return BatchFocalLoss(gamma)
    if name == "focal":
        alpha = BalancedLoss(class_counts).beta if class_counts is not None else None
        return FocalLoss(gamma, alpha)
    raise ValueError(f"unknown loss {name!r}; use one of {', '.join(LOSSES)}")


def responsible_indices(
    classes: Sequence[str], table: Mapping[str, Sequence[str]] = MEGC3_RESPONSIBLE
) -> list[list[int]]:
    """Per region (``table`` order), the indices into ``classes`` of the classes it is responsible for."""
    unknown = sorted({c for cs in table.values() for c in cs} - set(classes))
    if unknown:
        raise ValueError(f"region table names classes {unknown} that are not in {list(classes)}")
    return [[classes.index(c) for c in cs] for cs in table.values()]


def region_targets(target: torch.Tensor, responsible: Sequence[Sequence[int]], num_classes: int) -> torch.Tensor:
    """``(R, N)`` per-region targets: the class where the region is responsible for it, else
    ``num_classes`` ("not me").

    Args:
        target: ``(N,)`` class indices in ``[0, num_classes)``.
        responsible: per region, the class indices it is responsible for.
        num_classes: K.
    """
    table = torch.zeros(len(responsible), num_classes, dtype=torch.bool, device=target.device)
    for r, cs in enumerate(responsible):
        table[r, list(cs)] = True
    return torch.where(table[:, target], target[None, :], torch.full_like(target, num_classes)[None, :])


class RegionFocalLoss(nn.Module):
    """Sum over region heads of the focal loss against :func:`region_targets`.

    Args:
        responsible: per region, the class indices it is responsible for (:func:`responsible_indices`).
        num_classes: K; each head has K + 1 logits.
        gamma: focusing parameter.
        alpha: ``(K + 1,)`` class weights shared by the heads, or ``None``.

    ``forward(region_logits, target)``: ``region_logits`` is a sequence of R tensors ``(N, K + 1)``
    or ``(N, T, K + 1)`` (per frame; every frame gets its sample's target), ``target`` ``(N,)``.
    """

    def __init__(
        self,
        responsible: Sequence[Sequence[int]],
        num_classes: int,
        gamma: float = 2.0,
        alpha: Sequence[float] | None = None,
    ):
        super().__init__()
        self.responsible = [list(cs) for cs in responsible]
        self.num_classes = num_classes
        self.focal = FocalLoss(gamma, alpha)

    def forward(self, region_logits: Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        if len(region_logits) != len(self.responsible):
            raise ValueError(f"expected {len(self.responsible)} region heads, got {len(region_logits)}")
        targets = region_targets(target, self.responsible, self.num_classes)
        losses = []
        for logits, t in zip(region_logits, targets):
            if logits.shape[-1] != self.num_classes + 1 or logits.shape[0] != len(target):
                raise ValueError(f"region logits must be (N, [T,] {self.num_classes + 1}), got {tuple(logits.shape)}")
            t = t.view(-1, *([1] * (logits.ndim - 2))).expand(logits.shape[:-1])
            losses.append(self.focal(logits.reshape(-1, logits.shape[-1]), t.reshape(-1)))
        return torch.stack(losses).sum()
