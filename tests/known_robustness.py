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


def samples_around(model: nn.Module, radii: list[float], per_gap: int, margin: float = 0.25, seed: int = 1
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs in [0.3, 0.7] labelled with the model's prediction, ``per_gap`` of them spread over each gap between
    consecutive radii (and below the first, above the last), none within ``margin``·r of any radius r.
    Returns (x, y, exact distances)."""
    gen = torch.Generator().manual_seed(seed)
    n, dim = 4000, 3 * SIDE * SIDE
    x = 0.3 + 0.4 * torch.rand(n, dim, generator=gen)
    if isinstance(model, Linear):  # half of them pushed along a class pair's direction: distances up to 0.2
        pair = torch.randint(len(model.weight), (n // 2, 2), generator=gen)
        direction = (model.weight[pair[:, 0]] - model.weight[pair[:, 1]]).sign().detach()
        x[: n // 2] = 0.5 + 0.2 * torch.rand(n // 2, 1, generator=gen) * direction
        x[: n // 2] += 0.05 * (torch.rand(n // 2, dim, generator=gen) - 0.5)
    x = x.clamp(0.3, 0.7).view(n, 3, SIDE, SIDE)
    with torch.no_grad():
        y = model(x).argmax(1)
    dist = linear_distance(model, x, y)
    edges = [0.0] + list(radii) + [2 * radii[-1]]
    chosen = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        ok = ((dist > lo * (1 + margin)) & (dist < hi * (1 - margin))).nonzero().squeeze(1)
        assert len(ok) >= per_gap, f"too few samples with distance in ({lo:.3f}, {hi:.3f})"
        ok = ok[dist[ok].argsort()]  # spread over the gap, its largest distance included
        chosen.append(ok[torch.linspace(len(ok) - 1, 0, per_gap).round().long()])
    idx = torch.cat(chosen)
    return x[idx], y[idx], dist[idx]


class LinearPartModel(nn.Module):
    """A part model linear in its input: a nearest-colour 1×1-conv segmenter (background + one part per class)
    and the pixel head (App. C.2: summed part logits averaged over pixels)."""

    has_segmenter = True

    def __init__(self, colours: torch.Tensor, gain: float = 20.0):
        super().__init__()
        from partcli.models.heads import PixelHead

        self.segmenter = nn.Conv2d(3, len(colours), 1)
        with torch.no_grad():  # logit_k = gain·(2·c_k·x − ‖c_k‖²): the nearest colour wins
            self.segmenter.weight.copy_(2 * gain * colours[:, :, None, None])
            self.segmenter.bias.copy_(-gain * (colours ** 2).sum(1))
        self.head = PixelHead(list(range(len(colours) - 1)), len(colours) - 1)

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        return self.segmenter(x)

    def forward(self, x: torch.Tensor, return_seg: bool = False):
        seg = self.segment(x)
        logits = self.head(seg, x)
        return (logits, seg) if return_seg else logits


PART_COLOURS = torch.tensor([[0.5, 0.5, 0.5], [0.7, 0.4, 0.4], [0.4, 0.4, 0.7]])  # background, class 0, class 1


def part_images(n: int, side: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images of one coloured rectangle (class 0 or 1, part id = class + 1) on grey, with colour noise."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(2, (n,), generator=gen)
    masks = torch.zeros(n, side, side, dtype=torch.long)
    for i in range(n):
        h, w = torch.randint(3, 6, (2,), generator=gen).tolist()
        top, left = torch.randint(0, side - h + 1, (1,), generator=gen).item(), torch.randint(0, side - w + 1, (1,), generator=gen).item()
        masks[i, top:top + h, left:left + w] = y[i] + 1
    noise = (torch.rand(n, 3, side, side, generator=gen) - 0.5) * 0.12
    x = PART_COLOURS[masks].permute(0, 3, 1, 2) + noise
    return x, y, masks


def linear_distance(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exact minimal ℓ∞ distance to a misclassification of any model linear in its input (inputs away from the
    [0, 1] edges): margin over the ℓ1 norm of the margin's gradient, smallest over the other classes."""
    x = x.detach().clone().requires_grad_(True)
    logits = model(x)
    num_classes = logits.shape[1]
    dist = torch.full((len(x),), float("inf"))
    for j in range(num_classes):
        margin = logits.gather(1, y[:, None]).squeeze(1) - logits[:, j]
        (grad,) = torch.autograd.grad(margin.sum(), x, retain_graph=True)
        d = margin.detach() / grad.flatten(1).abs().sum(1).clamp(min=1e-12)
        dist = torch.where(y == j, dist, torch.minimum(dist, d))
    return dist.clamp(min=0)
