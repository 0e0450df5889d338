"""``bbox_features`` (paper §3.3, Eqs. 1–4) against hand-computed values, its ranges and its gradients."""
from __future__ import annotations

import math

import pytest
import torch

from partcli.models.bbox import bbox_features

H, W, K = 12, 20, 3
ROWS, COLS = range(2, 7), range(10, 18)  # the rectangle: rows 2..6 (5 rows), columns 10..17 (8 columns)
PART = 2  # the part id drawn on the rectangle; parts 1 and 3 are absent
BIG = 20.0


def rectangle_logits() -> torch.Tensor:
    """1×(K+1)×H×W logits: part ``PART`` has a large logit on the rectangle, background everywhere else."""
    logits = torch.zeros(1, K + 1, H, W)
    logits[0, 0] = BIG
    logits[0, 0, ROWS.start:ROWS.stop, COLS.start:COLS.stop] = 0.0
    logits[0, PART, ROWS.start:ROWS.stop, COLS.start:COLS.stop] = BIG
    return logits


def test_rectangle_features_match_hand_computation():
    feats = bbox_features(rectangle_logits())
    assert feats.shape == (1, K, 5)
    score, c_row, c_col, s_row, s_col = feats[0, PART - 1].tolist()
    # Pixel centres: row h sits at -1 + 2h/(H-1), column w at -1 + 2w/(W-1) (torch.linspace(-1, 1, n)).
    # Rows 2..6 average to row 4 -> -1 + 8/11; columns 10..17 average to 13.5 -> -1 + 27/19.
    assert c_row == pytest.approx(-3 / 11, abs=1e-5)
    assert c_col == pytest.approx(8 / 19, abs=1e-5)
    # Std of n evenly spaced points with spacing d is d * sqrt((n² − 1) / 12).
    assert s_row == pytest.approx((2 / 11) * math.sqrt((5**2 - 1) / 12), abs=1e-5)
    assert s_col == pytest.approx((2 / 19) * math.sqrt((8**2 - 1) / 12), abs=1e-5)
    assert score == pytest.approx(1.0, abs=1e-4)
    absent = feats[0, [0, 2], 0]
    assert absent.abs().max().item() < 1e-4


def test_rows_and_columns_are_not_swapped():
    """A tall thin bar has a large row spread and a tiny column spread, not the other way round."""
    logits = torch.zeros(1, 2, 16, 16)
    logits[0, 0] = BIG
    logits[0, 0, :, 3] = 0.0
    logits[0, 1, :, 3] = BIG
    score, c_row, c_col, s_row, s_col = bbox_features(logits)[0, 0].tolist()
    assert c_row == pytest.approx(0.0, abs=1e-5)
    assert c_col == pytest.approx(-1 + 2 * 3 / 15, abs=1e-5)
    assert s_row > 0.5 and s_col < 1e-3


def test_score_is_the_foreground_weighted_mean_of_the_part_mask():
    """Two parts share the object half and half: each scores 1/2 (Eq. 1)."""
    logits = torch.zeros(1, 3, 8, 8)
    logits[0, 0] = BIG
    logits[0, 0, 2:6, 2:6] = 0.0
    logits[0, 1, 2:6, 2:4] = BIG
    logits[0, 2, 2:6, 4:6] = BIG
    scores = bbox_features(logits)[0, :, 0]
    assert scores.tolist() == pytest.approx([0.5, 0.5], abs=1e-4)


def test_ranges_on_random_logits():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 8, 9, 13, generator=gen) * 6.0
    feats = bbox_features(logits)
    assert feats.shape == (6, 7, 5)
    assert torch.isfinite(feats).all()
    score, centroids, spreads = feats[..., 0], feats[..., 1:3], feats[..., 3:5]
    assert score.min() >= 0 and score.max() <= 1
    assert centroids.min() >= -1 and centroids.max() <= 1
    assert spreads.min() >= 0 and spreads.max() <= 1


def test_gradients_flow_and_are_finite():
    gen = torch.Generator().manual_seed(1)
    logits = (torch.randn(2, 4, 8, 8, generator=gen) * 3).requires_grad_()
    bbox_features(logits).sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0
    # Each feature on its own reaches the logits (nothing is detached along the way).
    for j in range(5):
        x = logits.detach().clone().requires_grad_()
        bbox_features(x)[..., j].sum().backward()
        assert x.grad.abs().sum() > 0, f"feature {j} has no gradient"


def test_gradients_finite_when_a_part_collapses_to_one_pixel_or_vanishes():
    """Zero spread (one pixel) and zero mass (a part absent everywhere) must not give NaN gradients."""
    logits = torch.zeros(1, 3, 8, 8)
    logits[0, 0] = 50.0
    logits[0, 0, 4, 4] = 0.0
    logits[0, 1, 4, 4] = 50.0
    logits[0, 2] = -50.0
    logits.requires_grad_()
    feats = bbox_features(logits)
    feats.sum().backward()
    assert torch.isfinite(feats).all() and torch.isfinite(logits.grad).all()
    assert feats[0, 0, 3].item() < 1e-3 and feats[0, 0, 4].item() < 1e-3  # the one-pixel part has ~0 spread
