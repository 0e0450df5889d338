"""ℓ∞ projected gradient descent (Madry et al. 2018) as pure functions over tensors in pixel space."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def ce_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 9's objective: per-sample classification cross-entropy."""
    return F.cross_entropy(model(x).float(), y, reduction="none")


def pgd_linf(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step_size: float, steps: int,
             random_start: bool = True, loss_fn: LossFn = ce_loss, generator: torch.Generator | None = None
             ) -> torch.Tensor:
    """Maximise ``loss_fn`` (per-sample) within the ℓ∞ ε-ball around x and [0, 1]; return x_adv (detached).

    Gradients are taken with respect to the input only (torch.autograd.grad), so the parameters' .grad
    stays untouched; the caller chooses the model's mode (partcli crafts in eval mode so BatchNorm
    statistics never change). ``y`` may be any target ``loss_fn`` understands (labels, clean logits…).
    """
    x = x.detach()
    if random_start:
        noise = torch.rand(x.shape, generator=generator, device=x.device if generator is None else generator.device)
        x_adv = (x + (noise.to(x.device, x.dtype) * 2 - 1) * eps).clamp(0, 1)
    else:
        x_adv = x.clone()
    return pgd_linf_from(model, x, x_adv, y, eps, step_size, steps, loss_fn)


def pgd_linf_from(model: nn.Module, x: torch.Tensor, x_start: torch.Tensor, y: torch.Tensor, eps: float,
                  step_size: float, steps: int, loss_fn: LossFn = ce_loss) -> torch.Tensor:
    """The PGD iterations of ``pgd_linf`` started from a given point (e.g. a two-stage attack's first stage)."""
    x = x.detach()
    x_adv = torch.min(torch.max(x_start.detach(), x - eps), x + eps).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = loss_fn(model, x_adv, y).sum()
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


def pgd_linf_restarts(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step_size: float,
                      steps: int, restarts: int, loss_fn: LossFn = ce_loss,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """PGD with random restarts, keeping per sample the worst case: the first restart that misclassifies,
    else the one with the highest loss (App. B: 5 restarts)."""
    best = x.detach().clone()
    best_loss = torch.full((x.shape[0],), -float("inf"), device=x.device)
    fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for _ in range(restarts):
        cand = pgd_linf(model, x, y, eps, step_size, steps, True, loss_fn, generator)
        with torch.no_grad():
            logits = model(cand)
            loss = F.cross_entropy(logits.float(), y, reduction="none")
            wrong = logits.argmax(1) != y
        take = ~fooled & (wrong | (loss > best_loss))
        best[take] = cand[take]
        best_loss = torch.where(take, loss, best_loss)
        fooled |= wrong
    return best
