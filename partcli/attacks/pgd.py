"""Projected gradient descent (Madry et al. 2018) in the ℓ∞ and ℓ2 balls, as pure functions over tensors in pixel
space.

``craft_adversarial`` is the one entry point for crafting during training, validation and the attack suite:
eval mode, parameters frozen, in the caller's autocast precision, in the ball of ``norm``.

ℓ∞: sign steps x + α·sign(g), projection by clipping δ to [−ε, ε], random start uniform in the cube.
ℓ2: steepest-ascent steps x + α·g/‖g‖₂ (per sample), projection δ·min(1, ε/‖δ‖₂), random start uniform in the
ball (a Gaussian direction, a radius ε·U^(1/d) for d pixel values). In both, clamping to [0, 1] after the
projection keeps x_adv in the ball: it only shrinks each |δᵢ|.

fp16: under ``torch.autocast(dtype=torch.float16)`` input gradients smaller than fp16's smallest subnormal
(6e-8) flush to zero and PGD stops moving. partcli scales (does not refuse): the attack loss is multiplied by
``FP16_LOSS_SCALE`` before the backward pass (both steps use only the gradient's direction, the sign or
g/‖g‖₂, which a positive scale does not change) and, where that overflows, the step is recomputed with half the
scale, as ``torch.amp.GradScaler`` backs off.
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
NORM_FLOOR = 1e-12  # keeps g/‖g‖₂ and ε/‖δ‖₂ finite where a gradient or a perturbation is zero


def ce_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 9's objective: per-sample classification cross-entropy (Eq. 6's L_cls)."""
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
    return _iterate(model, x, x_start, y, eps, step_size, steps, loss_fn, torch.sign, project_linf)


def pgd_l2(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step_size: float, steps: int,
           random_start: bool = True, loss_fn: LossFn = ce_loss, generator: torch.Generator | None = None
           ) -> torch.Tensor:
    """``pgd_linf`` in the ℓ2 ε-ball around each sample (and [0, 1]): steps of ``step_size`` along g/‖g‖₂ from a
    start drawn uniformly in the ball (``uniform_l2_ball``)."""
    x = x.detach()
    x_adv = (x + uniform_l2_ball(x, eps, generator)).clamp(0, 1) if random_start else x.clone()
    return pgd_l2_from(model, x, x_adv, y, eps, step_size, steps, loss_fn)


def pgd_l2_from(model: nn.Module, x: torch.Tensor, x_start: torch.Tensor, y: torch.Tensor, eps: float,
                step_size: float, steps: int, loss_fn: LossFn = ce_loss) -> torch.Tensor:
    """The PGD iterations of ``pgd_l2`` started from a given point."""
    return _iterate(model, x, x_start, y, eps, step_size, steps, loss_fn, l2_direction, project_l2)


def pgd_linf_restarts(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step_size: float,
                      steps: int, restarts: int, loss_fn: LossFn = ce_loss,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """PGD with random restarts, keeping per sample the worst case: the first restart that misclassifies,
    else the one with the highest loss (App. B: 5 restarts)."""
    return _worst_case(model, x, y, restarts,
                       lambda: pgd_linf(model, x, y, eps, step_size, steps, True, loss_fn, generator))


def pgd_l2_restarts(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step_size: float,
                    steps: int, restarts: int, loss_fn: LossFn = ce_loss,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """``pgd_linf_restarts`` in the ℓ2 ball: the per-sample worst case of ``restarts`` runs of ``pgd_l2``."""
    return _worst_case(model, x, y, restarts,
                       lambda: pgd_l2(model, x, y, eps, step_size, steps, True, loss_fn, generator))


def project_linf(x: torch.Tensor, x_adv: torch.Tensor, eps: float) -> torch.Tensor:
    """x_adv clipped into the ℓ∞ ε-ball around x, then into [0, 1]."""
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)


def project_l2(x: torch.Tensor, x_adv: torch.Tensor, eps: float) -> torch.Tensor:
    """x_adv moved into the ℓ2 ε-ball around x, per sample δ·min(1, ε/‖δ‖₂) with δ = x_adv − x, then into [0, 1]."""
    delta = x_adv - x
    factor = (eps / _sample_norms(delta).clamp_min(NORM_FLOOR)).clamp(max=1.0)
    return (x + delta * factor).clamp(0, 1)


def l2_direction(grad: torch.Tensor) -> torch.Tensor:
    """The ℓ2 steepest-ascent direction g/‖g‖₂ per sample (zero where the gradient is)."""
    return grad / _sample_norms(grad).clamp_min(NORM_FLOOR)


def uniform_l2_ball(x: torch.Tensor, eps: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """One perturbation per sample of ``x``, uniform in the ℓ2 ε-ball: a Gaussian direction (uniform on the
    sphere) scaled to ε·U^(1/d), d = pixel values per sample (the radius of a uniform point in a d-ball)."""
    device = x.device if generator is None else generator.device
    direction = l2_direction(torch.randn(x.shape, generator=generator, device=device))
    u = torch.rand(x.shape[0], generator=generator, device=device)
    radius = eps * u ** (1.0 / x[0].numel())
    return (direction * radius.view(-1, *[1] * (x.dim() - 1))).to(x.device, x.dtype)


def _sample_norms(t: torch.Tensor) -> torch.Tensor:
    """Per-sample ℓ2 norms, shaped to broadcast against ``t``."""
    return t.flatten(1).norm(dim=1).view(-1, *[1] * (t.dim() - 1))


def _iterate(model: nn.Module, x: torch.Tensor, x_start: torch.Tensor, y: torch.Tensor, eps: float,
             step_size: float, steps: int, loss_fn: LossFn, direction: Callable[[torch.Tensor], torch.Tensor],
             project: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> torch.Tensor:
    """``steps`` steps of ``step_size`` along ``direction``(gradient), each projected back into the ball."""
    x = x.detach()
    x_adv = project(x, x_start.detach(), eps)
    scale = attack_loss_scale(x.device.type)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        grad, scale = _input_gradient(model, x_adv, y, loss_fn, scale)
        x_adv = project(x, x_adv.detach() + step_size * direction(grad), eps)
    return x_adv.detach()


def _worst_case(model: nn.Module, x: torch.Tensor, y: torch.Tensor, restarts: int,
                run: Callable[[], torch.Tensor]) -> torch.Tensor:
    """Per sample, of ``restarts`` calls of ``run``: the first x_adv that misclassifies, else the highest loss."""
    best = x.detach().clone()
    best_loss = torch.full((x.shape[0],), -float("inf"), device=x.device)
    fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for _ in range(restarts):
        cand = run()
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
                      *, norm: str = "Linf", restarts: int = 1, loss_fn: LossFn = ce_loss,
                      autocast: AutocastFactory = contextlib.nullcontext,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """x_adv for training (Eq. 9 / Eq. 11), validation and the attack suite: PGD in the ``norm`` ball (Linf or L2)
    from a random start (with ``restarts``, the per-sample worst case), crafted in ``frozen_eval`` and in
    ``autocast``'s precision, the precision of the forward passes it attacks."""
    single, several = _pgd_in(norm)
    with frozen_eval(model), autocast():
        if restarts == 1:
            return single(model, x, y, eps, step_size, steps, True, loss_fn, generator)
        return several(model, x, y, eps, step_size, steps, restarts, loss_fn, generator)


def _pgd_in(norm: str) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
    """(one PGD run, PGD with restarts) in the ``norm`` ball, read from the module when called (so that a stand-in
    for ``pgd_linf`` reaches every crafting path)."""
    if norm == "Linf":
        return pgd_linf, pgd_linf_restarts
    if norm == "L2":
        return pgd_l2, pgd_l2_restarts
    raise ValueError(f"unknown norm {norm!r}: expected Linf or L2")


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
