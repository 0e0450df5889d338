"""Soft bounding-box features of part masks (paper §3.3, Eqs. 1–4)."""
from __future__ import annotations

import torch


def bbox_features(seg_logits: torch.Tensor) -> torch.Tensor:
    """Map segmentation logits N×(K+1)×H×W (channel 0 = background) to N×K×5 part features.

    Per part i: ``[s_i, c_i^1, c_i^2, σ_i^1, σ_i^2]``: a score in [0, 1], the centroid's row and column
    in [-1, 1] (pixel centres spread evenly from -1 to 1), and the spread along rows and columns in
    [0, 1]. The score follows Eq. 1 with the softmax mask in place of the raw logits, which keeps it in
    [0, 1] as §3.3 states (a weighted mean of unbounded logits would not be).
    """
    n, k1, h, w = seg_logits.shape
    probs = seg_logits.float().softmax(dim=1)
    parts = probs[:, 1:]  # M̄: softmax mask without background, N×K×H×W
    # Eq. 1: foreground weight F̂ = sigmoid(Σ_k M̂_k − M̂_0), score = F̂-weighted mean of the part mask.
    logits = seg_logits.float()
    fg = torch.sigmoid(logits[:, 1:].sum(dim=1) - logits[:, 0])  # N×H×W
    score = (parts * fg[:, None]).sum(dim=(2, 3)) / fg.sum(dim=(1, 2)).clamp_min(1e-6)[:, None]
    # Eq. 4: row/column densities of each part's mass.
    mass = parts.sum(dim=(2, 3)).clamp_min(1e-6)  # N×K
    p_row = parts.sum(dim=3) / mass[..., None]  # N×K×H
    p_col = parts.sum(dim=2) / mass[..., None]  # N×K×W
    rows = torch.linspace(-1.0, 1.0, h, device=seg_logits.device)
    cols = torch.linspace(-1.0, 1.0, w, device=seg_logits.device)
    # Eqs. 2–3: centroids and spreads (the epsilon keeps sqrt differentiable at zero spread).
    c_row = (p_row * rows).sum(dim=2)
    c_col = (p_col * cols).sum(dim=2)
    s_row = ((p_row * (rows - c_row[..., None]) ** 2).sum(dim=2) + 1e-8).sqrt()
    s_col = ((p_col * (cols - c_col[..., None]) ** 2).sum(dim=2) + 1e-8).sqrt()
    return torch.stack([score, c_row, c_col, s_row.clamp(max=1.0), s_col.clamp(max=1.0)], dim=2)
