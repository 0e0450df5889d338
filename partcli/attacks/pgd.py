"""ℓ∞ projected gradient descent (Madry et al. 2018) as pure functions over tensors in pixel space.

``craft_adversarial`` is the one entry point for crafting during training, validation and the attack suite:
eval mode, parameters frozen, in the caller's autocast precision.

fp16: under ``torch.autocast(dtype=torch.float16)`` input gradients smaller than fp16's smallest subnormal
(6e-8) flush to zero and PGD's sign step stops moving. partcli scales (does not refuse): the attack loss is
multiplied by ``FP16_LOSS_SCALE`` before the backward pass (PGD only uses the gradient's sign, which a
positive scale does not change) and, where that overflows, the step is recomputed with half the scale, as
``torch.amp.GradScaler`` backs off.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
AutocastFactory = Callable[[], contextlib.AbstractContextManager]
FP16_LOSS_SCALE = 2.0 ** 10  # cross-entropy gradients on the logits are ≤ 1: 1024 leaves fp16 (max 65504) headroom


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
    scale = attack_loss_scale(x.device.type)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        grad, scale = _input_gradient(model, x_adv, y, loss_fn, scale)
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


@contextlib.contextmanager
def frozen_eval(model: nn.Module) -> Iterator[nn.Module]:
    """Craft attacks in eval mode: BatchNorm uses (and never updates) its running statistics.

    Eval mode also means the attacker sees the model as it is evaluated (deterministic BatchNorm), and
    x* does not depend on how the batch happens to be composed.

    Parameters are also set not to require grad meanwhile, so crafting builds no parameter graph (faster,
    and no parameter's .grad can change). Both are restored afterwards.
    """
    was_training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(was_training)


def craft_adversarial(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step_size: float, steps: int,
                      *, restarts: int = 1, loss_fn: LossFn = ce_loss,
                      autocast: AutocastFactory = contextlib.nullcontext,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """x_adv for training (Eq. 9 / Eq. 11), validation and the attack suite: PGD from a random start (with
    ``restarts``, the per-sample worst case), crafted in ``frozen_eval`` and in ``autocast``'s precision, the
    precision of the forward passes it attacks."""
    with frozen_eval(model), autocast():
        if restarts == 1:
            return pgd_linf(model, x, y, eps, step_size, steps, True, loss_fn, generator)
        return pgd_linf_restarts(model, x, y, eps, step_size, steps, restarts, loss_fn, generator)


def attack_loss_scale(device_type: str) -> float:
    """The loss scale for crafting under the autocast active on ``device_type``: ``FP16_LOSS_SCALE`` in float16
    (gradients would underflow to zero, see the module docstring), else 1 (bf16 has float32's range)."""
    if torch.is_autocast_enabled(device_type) and torch.get_autocast_dtype(device_type) == torch.float16:
        return FP16_LOSS_SCALE
    return 1.0


def backoff_scale(scale: float, grad_finite: bool) -> float | None:
    """After an attack step's backward pass: None to keep the gradient, else the smaller scale to retry with
    (an overflow at scale 1 is kept: nothing smaller would be the unscaled loss)."""
    if grad_finite or scale <= 1.0:
        return None
    return max(scale / 2, 1.0)


def _input_gradient(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor, loss_fn: LossFn, scale: float
                    ) -> tuple[torch.Tensor, float]:
    """∇ₓ of the summed loss, times ``scale`` (backed off on overflow); returns it and the scale that worked."""
    while True:
        loss = loss_fn(model, x_adv, y).sum()
        (grad,) = torch.autograd.grad(loss if scale == 1.0 else loss * scale, x_adv)
        retry = backoff_scale(scale, scale == 1.0 or bool(torch.isfinite(grad).all()))
        if retry is None:
            return grad, scale
        scale = retry
