"""Models whose ℓ∞ robustness is known exactly, to check that attacks find what exists and nothing more.

A linear model f(x) = W·x + b changes its prediction from y to j at ℓ∞ distance (f_y − f_j) / ‖w_y − w_j‖₁ (the
ℓ1 norm is the dual of ℓ∞); the smallest over j ≠ y is the sample's exact minimal adversarial distance when the
optimal perturbation stays in [0, 1], which holds for inputs in [0.3, 0.7] and distances below 0.3.
"""
from __future__ import annotations

import torch
from torch import nn

SIDE = 4  # images are 3 × SIDE × SIDE


class Linear(nn.Module):
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.weight, self.bias = nn.Parameter(weight), nn.Parameter(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias


class Constant(nn.Module):
    """The same logits for every input: robust by construction (its input gradient is zero, not undefined)."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = nn.Parameter(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(x), -1) + 0 * x.flatten(1)[:, :1]


def linear_model(num_classes: int, seed: int = 0) -> Linear:
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(num_classes, 3 * SIDE * SIDE, generator=gen)
    bias = -weight.sum(1) * 0.5  # balanced classes around the grey image
    return Linear(weight, bias).eval()


def linf_distance(model: Linear, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exact minimal ℓ∞ distance to a misclassification per sample (0 where already misclassified)."""
    with torch.no_grad():
        logits = model(x)
        w = model.weight
        margins = logits.gather(1, y[:, None]) - logits  # f_y − f_j
        dual = (w[y][:, None, :] - w[None, :, :]).abs().sum(-1)  # ‖w_y − w_j‖₁
        dist = (margins / dual).masked_fill(torch.nn.functional.one_hot(y, logits.shape[1]).bool(), float("inf"))
        return dist.min(1).values.clamp(min=0)


def samples_around(model: Linear, radii: list[float], per_gap: int, margin: float = 0.25, seed: int = 1
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs in [0.3, 0.7] labelled with the model's prediction, ``per_gap`` of them in each gap between
    consecutive radii (and below the first, above the last), none within ``margin``·r of any radius r.
    Returns (x, y, exact distances)."""
    gen = torch.Generator().manual_seed(seed)
    x = 0.3 + 0.4 * torch.rand(20000, 3, SIDE, SIDE, generator=gen)
    with torch.no_grad():
        y = model(x).argmax(1)
    dist = linf_distance(model, x, y)
    edges = [0.0] + list(radii) + [2 * radii[-1]]
    chosen = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        ok = ((dist > lo * (1 + margin)) & (dist < hi * (1 - margin))).nonzero().squeeze(1)
        assert len(ok) >= per_gap, f"too few samples with distance in ({lo:.3f}, {hi:.3f})"
        chosen.append(ok[:per_gap])
    idx = torch.cat(chosen)
    return x[idx], y[idx], dist[idx]
