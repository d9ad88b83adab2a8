"""Losses against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from realtime_mer.train.losses import (
    MEGC3_RESPONSIBLE,
    BalancedLoss,
    BatchFocalLoss,
    FocalLoss,
    RegionFocalLoss,
    make_loss,
    region_targets,
    responsible_indices,
)

# Two classes; logits (0, ln 3) give p = (1/4, 3/4), logits (ln 3, 0) give p = (3/4, 1/4).
A = -math.log(0.75)  # CE of a sample whose true class has p = 3/4
B = math.log(4.0)  # CE of a sample whose true class has p = 1/4
L3 = math.log(3.0)


def _batch():
    """Three class-0 samples with p_y = 3/4, one class-1 sample with p_y = 1/4."""
    logits = torch.tensor([[L3, 0.0], [L3, 0.0], [L3, 0.0], [L3, 0.0]], dtype=torch.float64)
    return logits, torch.tensor([0, 0, 0, 1])


def test_focal_by_hand():
    logits, target = torch.tensor([[0.0, L3]], dtype=torch.float64), torch.tensor([1])
    assert FocalLoss(gamma=0.0)(logits, target).item() == pytest.approx(A)
    assert FocalLoss(gamma=2.0)(logits, target).item() == pytest.approx(0.25**2 * A)  # 0.0179801
    assert FocalLoss(2.0, alpha=[0.5, 2.0])(logits, target).item() == pytest.approx(2.0 * 0.25**2 * A)
    x, t = torch.randn(7, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 2, 1, 0, 0])
    assert FocalLoss(0.0)(x, t).item() == pytest.approx(F.cross_entropy(x, t).item())


def test_balanced_loss_batch_and_dataset_weights():
    logits, target = _batch()
    assert make_loss("crossentropy")(logits, target).item() == pytest.approx((3 * A + B) / 4)
    # batch: n = (3, 1), beta = 4 / (2 * n) = (2/3, 2)
    assert BalancedLoss()(logits, target).item() == pytest.approx((3 * 2 / 3 * A + 2 * B) / 4)  # = (A + B) / 2
    # dataset counts (1, 3): beta = 4 / (2 * (1, 3)) = (2, 2/3)
    assert BalancedLoss([1, 3])(logits, target).item() == pytest.approx((3 * 2 * A + 2 / 3 * B) / 4)
    # a balanced batch weighs every sample 1: plain cross-entropy
    bal_t = torch.tensor([0, 1, 0, 1])
    assert BalancedLoss()(logits, bal_t).item() == pytest.approx(F.cross_entropy(logits, bal_t).item())


def test_batch_focal_loss_of_the_rcn_code():
    logits, target = _batch()
    # freq = (3/4, 1/4): alpha = (1 - 0.075, 1 - 0.025); focal factors (1/4)^2 and (3/4)^2
    want = (3 * 0.925 * 0.0625 * A + 0.975 * 0.5625 * B) / 4
    assert BatchFocalLoss()(logits, target).item() == pytest.approx(want)
    assert make_loss("batchfocal")(logits, target).item() == pytest.approx(want)


def test_make_loss_focal_alpha_and_errors():
    logits, target = _batch()
    assert make_loss("focal", class_counts=[1, 3])(logits, target).item() == pytest.approx(
        (3 * 2 * 0.0625 * A + 2 / 3 * 0.5625 * B) / 4
    )
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        make_loss("hinge")
    with pytest.raises(ValueError, match="logits must be \\(N, K\\)"):
        FocalLoss()(torch.zeros(3), torch.zeros(3, dtype=torch.int64))


def test_region_targets_not_me():
    resp = responsible_indices(("negative", "positive", "surprise"))
    assert resp == [[0, 2], [0, 2], [0], [1], [1], [0, 1, 2]]
    t = region_targets(torch.tensor([0, 1, 2]), resp, 3)
    assert t.tolist() == [
        [0, 3, 2],  # right eye + brow: negative, surprise
        [0, 3, 2],  # left eye + brow
        [0, 3, 3],  # nose: negative only
        [3, 1, 3],  # right cheek: positive only
        [3, 1, 3],  # left cheek
        [0, 1, 2],  # mouth: all three
    ]
    assert list(MEGC3_RESPONSIBLE) == ["right_eye_brow", "left_eye_brow", "nose", "right_cheek", "left_cheek", "mouth"]
    with pytest.raises(ValueError, match="not in"):
        responsible_indices(("neg", "pos"))


def test_region_focal_loss_sums_heads():
    resp = responsible_indices(("negative", "positive", "surprise"))
    loss = RegionFocalLoss(resp, 3, gamma=2.0)
    target = torch.tensor([0, 1, 2])
    # uniform logits: p = 1/4 for every target, focal = (3/4)^2 ln 4 per sample, per head
    flat = [torch.zeros(3, 4, dtype=torch.float64) for _ in range(6)]
    assert loss(flat, target).item() == pytest.approx(6 * 0.5625 * B)
    # per-frame logits (N, T, K+1) equal the flattened per-head focal losses
    torch.manual_seed(0)
    seq = [torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True) for _ in range(6)]
    got = loss(seq, target)
    want = sum(
        FocalLoss(2.0)(x.reshape(-1, 4), t.repeat_interleave(5)) for x, t in zip(seq, region_targets(target, resp, 3))
    )
    assert got.item() == pytest.approx(want.item())
    got.backward()
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in seq)
    with pytest.raises(ValueError, match="expected 6 region heads"):
        loss(flat[:5], target)
    with pytest.raises(ValueError, match="region logits must be"):
        loss([torch.zeros(3, 3)] * 6, target)
