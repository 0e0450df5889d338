"""Soft bounding-box features of part masks (paper §3.3, Eq. 1, Eq. 2, Eq. 3, Eq. 4), in two variants (``--bbox-score``).

- ``logit`` (default): Eq. 1 as written and as the paper's code computed it (the published bounding-box models):
  s_i is the F̂-weighted mean of the raw part *logit*, features ordered (s, column centroid, row centroid, column
  spread, row spread), pixel positions 0..W−1 mapped by 2c/W − 1 and spreads by 2σ/W, with the code's small
  constant added to every mass sum. A bbox model trained by the authors' code runs unchanged on these features.
- ``prob``: partcli 0.1's variant: s_i is the F̂-weighted mean of the softmax part *probability* (in [0, 1]),
  features ordered (s, row centroid, column centroid, row spread, column spread), pixel centres spread evenly
  over [−1, 1]. The geometry is an affine map and a row/column swap of the ``logit`` variant's; the score is not.
"""
from __future__ import annotations

import torch

BBOX_SCORES = ("logit", "prob")
_MASS_EPS = 1e-6  # added to every mass sum in the paper's code (keeps absent parts and their gradients finite)


def bbox_features(seg_logits: torch.Tensor, score: str = "logit") -> torch.Tensor:
    """Map segmentation logits N×(K+1)×H×W (channel 0 = background) to N×K×5 part features (see the module
    docstring for the two ``score`` variants)."""
    if score == "logit":
        return bbox_features_logit(seg_logits)
    if score == "prob":
        return bbox_features_prob(seg_logits)
    raise ValueError(f"unknown bounding-box score {score!r}; expected one of {', '.join(BBOX_SCORES)}")


def foreground_weight(logits: torch.Tensor) -> torch.Tensor:
    """Eq. 1: F̂ = sigmoid(Σ_k M̂_k − M̂_0), N×H×W, from N×(K+1)×H×W logits."""
    return torch.sigmoid(logits[:, 1:].sum(dim=1) - logits[:, 0])


def bbox_features_logit(seg_logits: torch.Tensor) -> torch.Tensor:
    """Eq. 1 to Eq. 4 as the paper's code computes them: ``[s_i, c_i^col, c_i^row, σ_i^col, σ_i^row]`` per part.

    s_i is not confined to [0, 1] (a mean of logits); a part with no mass gets a centroid outside [−1, 1].
    """
    logits = seg_logits.float()
    _, _, h, w = logits.shape
    fg = foreground_weight(logits)
    fg = fg / fg.sum(dim=(1, 2), keepdim=True).clamp_min(_MASS_EPS)
    score = (logits[:, 1:] * fg[:, None]).sum(dim=(2, 3))  # Eq. 1 on the raw part logits M̂_i
    parts = logits.softmax(dim=1)[:, 1:]  # M̄: softmax mask without background
    mass = parts.sum(dim=(2, 3)) + _MASS_EPS  # Eq. 4's denominator
    col_mass = parts.sum(dim=2) + _MASS_EPS  # N×K×W: Eq. 4's numerator per column
    row_mass = parts.sum(dim=3) + _MASS_EPS  # N×K×H: per row
    cols = torch.arange(w, device=logits.device, dtype=logits.dtype)
    rows = torch.arange(h, device=logits.device, dtype=logits.dtype)
    c_col = (col_mass * cols).sum(dim=2) / mass  # Eq. 3 (centroid), in pixels
    c_row = (row_mass * rows).sum(dim=2) / mass  # Eq. 2 (centroid)
    s_col = ((col_mass * (cols - c_col[..., None]) ** 2).sum(dim=2) / mass).sqrt()  # Eq. 3 (spread)
    s_row = ((row_mass * (rows - c_row[..., None]) ** 2).sum(dim=2) / mass).sqrt()  # Eq. 2 (spread)
    return torch.stack([score, c_col / w * 2 - 1, c_row / h * 2 - 1, s_col / w * 2, s_row / h * 2], dim=2)


def bbox_features_prob(seg_logits: torch.Tensor) -> torch.Tensor:
    """partcli 0.1's features: ``[s_i, c_i^row, c_i^col, σ_i^row, σ_i^col]`` with s_i in [0, 1], centroids in
    [−1, 1] (pixel centres spread evenly from −1 to 1) and spreads in [0, 1]."""
    _, _, h, w = seg_logits.shape
    logits = seg_logits.float()
    parts = logits.softmax(dim=1)[:, 1:]  # M̄: softmax mask without background, N×K×H×W
    fg = foreground_weight(logits)
    score = (parts * fg[:, None]).sum(dim=(2, 3)) / fg.sum(dim=(1, 2)).clamp_min(1e-6)[:, None]  # Eq. 1 on M̄_i
    mass = parts.sum(dim=(2, 3)).clamp_min(1e-6)  # N×K
    p_row = parts.sum(dim=3) / mass[..., None]  # Eq. 4: N×K×H
    p_col = parts.sum(dim=2) / mass[..., None]  # Eq. 4: N×K×W
    rows = torch.linspace(-1.0, 1.0, h, device=seg_logits.device)
    cols = torch.linspace(-1.0, 1.0, w, device=seg_logits.device)
    c_row = (p_row * rows).sum(dim=2)  # Eq. 2
    c_col = (p_col * cols).sum(dim=2)  # Eq. 3
    # the epsilon keeps sqrt differentiable at zero spread
    s_row = ((p_row * (rows - c_row[..., None]) ** 2).sum(dim=2) + 1e-8).sqrt()  # Eq. 2
    s_col = ((p_col * (cols - c_col[..., None]) ** 2).sum(dim=2) + 1e-8).sqrt()  # Eq. 3
    return torch.stack([score, c_row, c_col, s_row.clamp(max=1.0), s_col.clamp(max=1.0)], dim=2)
