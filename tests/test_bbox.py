"""``bbox_features`` (paper §3.3, Eqs. 1–4) in both score variants against hand-computed values, ranges, gradients."""
from __future__ import annotations

import math

import pytest
import torch

from partcli.models.bbox import bbox_features
from partcli.models.heads import BBoxHead
from partcli.models.registry import ModelConfig, build_model

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


def test_prob_rectangle_features_match_hand_computation():
    feats = bbox_features(rectangle_logits(), "prob")
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


def test_prob_rows_and_columns_are_not_swapped():
    """A tall thin bar has a large row spread and a tiny column spread, not the other way round."""
    logits = torch.zeros(1, 2, 16, 16)
    logits[0, 0] = BIG
    logits[0, 0, :, 3] = 0.0
    logits[0, 1, :, 3] = BIG
    score, c_row, c_col, s_row, s_col = bbox_features(logits, "prob")[0, 0].tolist()
    assert c_row == pytest.approx(0.0, abs=1e-5)
    assert c_col == pytest.approx(-1 + 2 * 3 / 15, abs=1e-5)
    assert s_row > 0.5 and s_col < 1e-3


def test_prob_score_is_the_foreground_weighted_mean_of_the_part_mask():
    """Two parts share the object half and half: each scores 1/2 (Eq. 1)."""
    logits = torch.zeros(1, 3, 8, 8)
    logits[0, 0] = BIG
    logits[0, 0, 2:6, 2:6] = 0.0
    logits[0, 1, 2:6, 2:4] = BIG
    logits[0, 2, 2:6, 4:6] = BIG
    scores = bbox_features(logits, "prob")[0, :, 0]
    assert scores.tolist() == pytest.approx([0.5, 0.5], abs=1e-4)


def test_prob_ranges_on_random_logits():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 8, 9, 13, generator=gen) * 6.0
    feats = bbox_features(logits, "prob")
    assert feats.shape == (6, 7, 5)
    assert torch.isfinite(feats).all()
    score, centroids, spreads = feats[..., 0], feats[..., 1:3], feats[..., 3:5]
    assert score.min() >= 0 and score.max() <= 1
    assert centroids.min() >= -1 and centroids.max() <= 1
    assert spreads.min() >= 0 and spreads.max() <= 1


@pytest.mark.parametrize("score", ["logit", "prob"])
def test_gradients_flow_and_are_finite(score):
    gen = torch.Generator().manual_seed(1)
    logits = (torch.randn(2, 4, 8, 8, generator=gen) * 3).requires_grad_()
    bbox_features(logits, score).sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0
    # Each feature on its own reaches the logits (nothing is detached along the way).
    for j in range(5):
        x = logits.detach().clone().requires_grad_()
        bbox_features(x, score)[..., j].sum().backward()
        assert x.grad.abs().sum() > 0, f"feature {j} has no gradient"


@pytest.mark.parametrize("score", ["logit", "prob"])
def test_gradients_finite_when_a_part_collapses_to_one_pixel_or_vanishes(score):
    """Zero spread (one pixel) and zero mass (a part absent everywhere) must not give NaN gradients."""
    logits = torch.zeros(1, 3, 8, 8)
    logits[0, 0] = 50.0
    logits[0, 0, 4, 4] = 0.0
    logits[0, 1, 4, 4] = 50.0
    logits[0, 2] = -50.0
    logits.requires_grad_()
    feats = bbox_features(logits, score)
    feats.sum().backward()
    assert torch.isfinite(feats).all() and torch.isfinite(logits.grad).all()
    # the one-pixel part has ~0 spread (the logit variant's 1e-6 per row/column leaves 2·sqrt(44e-6)/8 ≈ 0.0017)
    assert feats[0, 0, 3].item() < 2e-3 and feats[0, 0, 4].item() < 2e-3


# ------------------------------------------------------------------ the paper code's variant (--bbox-score logit)
def test_logit_rectangle_features_match_hand_computation():
    """Eq. 1 on the raw logit and the code's layout: (s, column centroid, row centroid, column spread, row spread),
    pixel c at 2c/W − 1, spread σ at 2σ/W."""
    feats = bbox_features(rectangle_logits(), "logit")
    assert feats.shape == (1, K, 5)
    score, c_col, c_row, s_col, s_row = feats[0, PART - 1].tolist()
    assert score == pytest.approx(BIG, abs=1e-4)  # F̂ ≈ 1 on the rectangle, where the part's logit is BIG
    assert c_col == pytest.approx(2 * 13.5 / W - 1, abs=1e-5)  # columns 10..17: mean 13.5
    assert c_row == pytest.approx(2 * 4 / H - 1, abs=1e-5)  # rows 2..6: mean 4
    assert s_col == pytest.approx(2 * math.sqrt((8**2 - 1) / 12) / W, abs=1e-5)  # variance of 8 consecutive ints
    assert s_row == pytest.approx(2 * math.sqrt((5**2 - 1) / 12) / H, abs=1e-5)
    assert feats[0, [0, 2], 0].abs().max().item() < 1e-4  # absent parts: their logit is 0 where F̂ weighs


def test_logit_score_is_the_foreground_weighted_mean_of_the_raw_logits():
    """Eq. 1 by hand on a 1×3×1×2 input: F̂ = sigmoid(M̂_1 + M̂_2 − M̂_0) per pixel, s_i = Σ M̂_i F̂ / Σ F̂."""
    pixels = [(0.5, 2.0, -1.0), (1.0, -0.5, 3.0)]  # (M̂_0, M̂_1, M̂_2) of the two pixels
    logits = torch.tensor([[[list(p)] for p in pixels]]).permute(0, 3, 2, 1)  # 1×3×1×2
    f = [1 / (1 + math.exp(-(p[1] + p[2] - p[0]))) for p in pixels]
    expected = [sum(p[i] * fi for p, fi in zip(pixels, f)) / sum(f) for i in (1, 2)]
    assert bbox_features(logits, "logit")[0, :, 0].tolist() == pytest.approx(expected, rel=1e-5)
    # the probability variant differs: it averages softmax probabilities, not logits
    assert bbox_features(logits, "prob")[0, :, 0].tolist() != pytest.approx(expected, rel=1e-3)


def _code_features(logits: torch.Tensor) -> torch.Tensor:
    """The paper code's features written out with Python loops (float64): the 1e-6 added to every mass sum,
    positions 0..W−1, then the 2c/W − 1 and 2σ/W scaling; order (s, cx, cy, σx, σy)."""
    x = logits.double()
    n, k1, h, w = x.shape
    prob = x.softmax(dim=1)
    out = torch.zeros(n, k1 - 1, 5, dtype=torch.float64)
    for b in range(n):
        fg = [[1 / (1 + math.exp(-(sum(x[b, k, r, c].item() for k in range(1, k1)) - x[b, 0, r, c].item())))
               for c in range(w)] for r in range(h)]
        total_fg = max(sum(map(sum, fg)), 1e-6)  # the code clamps the normaliser at 1e-6
        for i in range(1, k1):
            score = sum(x[b, i, r, c].item() * fg[r][c] for r in range(h) for c in range(w)) / total_fg
            mass = prob[b, i].sum().item() + 1e-6
            cols = [prob[b, i, :, c].sum().item() + 1e-6 for c in range(w)]
            rows = [prob[b, i, r, :].sum().item() + 1e-6 for r in range(h)]
            cx = sum(m * c for c, m in enumerate(cols)) / mass
            cy = sum(m * r for r, m in enumerate(rows)) / mass
            sx = math.sqrt(sum(m * (c - cx) ** 2 for c, m in enumerate(cols)) / mass)
            sy = math.sqrt(sum(m * (r - cy) ** 2 for r, m in enumerate(rows)) / mass)
            out[b, i - 1] = torch.tensor([score, cx / w * 2 - 1, cy / h * 2 - 1, sx / w * 2, sy / h * 2])
    return out


def test_logit_features_equal_the_paper_codes_formula_including_its_epsilon():
    """Random logits with one nearly absent part (mass ≪ 1, where the code's 1e-6 per column moves the centroid)."""
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4, 6, 7, generator=gen) * 2
    logits[:, 3] -= 25.0  # part 3: almost no mass anywhere
    ours = bbox_features(logits, "logit").double()
    assert torch.allclose(ours, _code_features(logits), rtol=1e-4, atol=1e-4)
    assert ours[:, 2, 1].abs().max() > 1.5  # the absent part's centroid leaves [-1, 1], as in the code


def test_logit_and_prob_geometry_agree_up_to_a_fixed_affine_map_and_a_swap():
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 5, 9, 11, generator=gen)  # every part has plenty of mass: the epsilons are negligible
    code, prob = bbox_features(logits, "logit"), bbox_features(logits, "prob")
    h, w = 9, 11
    # prob: pixel c at -1 + 2c/(n-1); logit: at 2c/n - 1
    assert torch.allclose(code[..., 1], ((prob[..., 2] + 1) * (w - 1) / 2) * 2 / w - 1, atol=1e-4)
    assert torch.allclose(code[..., 2], ((prob[..., 1] + 1) * (h - 1) / 2) * 2 / h - 1, atol=1e-4)
    assert torch.allclose(code[..., 3], prob[..., 4] * (w - 1) / w, atol=1e-4)
    assert torch.allclose(code[..., 4], prob[..., 3] * (h - 1) / h, atol=1e-4)


def test_unknown_score_is_refused():
    with pytest.raises(ValueError, match="bounding-box score"):
        bbox_features(rectangle_logits(), "nope")


@pytest.mark.parametrize("score", ["logit", "prob"])
def test_the_model_configuration_picks_the_heads_features(score):
    model = build_model(ModelConfig(arch="bbox", backbone="resnet18", num_classes=2, num_parts=K,
                                    part_to_class=[0, 0, 1], bbox_score=score))
    assert isinstance(model.head, BBoxHead) and model.head.score == score
    head = model.head.eval()
    logits = rectangle_logits()
    expected = head.mlp(bbox_features(logits, score))
    assert torch.allclose(head(logits), expected)
    other = "prob" if score == "logit" else "logit"
    assert not torch.allclose(head(logits), head.mlp(bbox_features(logits, other)))
