"""``craft_adversarial``: the one crafting entry point (eval mode, frozen parameters, the caller's autocast), and
fp16 loss scaling: under float16 autocast small input gradients flush to zero, scaling keeps them (CPU autocast)."""
from __future__ import annotations

import torch
from torch import nn

from partcli.attacks.pgd import (FP16_LOSS_SCALE, _input_gradient, attack_loss_scale, backoff_scale, ce_loss,
                                 craft_adversarial, pgd_linf, pgd_linf_restarts)

EPS = 8 / 255


def _fp16_autocast():
    return torch.autocast("cpu", dtype=torch.float16)


def _confident_linear() -> nn.Module:
    """A linear model sure of class 0 (margin 12): the loss gradient on its logits is ~e^-12 = 6e-6, times weights of
    1e-3 gives input gradients of ~6e-9, below fp16's smallest subnormal (6e-8)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    with torch.no_grad():
        signs = torch.where(torch.arange(48) % 3 == 0, 1.0, -1.0)
        model[1].weight.copy_(torch.stack([signs, -signs]) * 1e-3)
        model[1].bias.copy_(torch.tensor([12.0, 0.0]))
    return model


def test_the_loss_scale_follows_the_active_autocast():
    assert attack_loss_scale("cpu") == 1.0
    with _fp16_autocast():
        assert attack_loss_scale("cpu") == FP16_LOSS_SCALE
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert attack_loss_scale("cpu") == 1.0  # bf16 has float32's exponent range


def test_backoff_halves_on_overflow_and_stops_at_one():
    assert backoff_scale(1024.0, grad_finite=True) is None
    assert backoff_scale(1024.0, grad_finite=False) == 512.0
    assert backoff_scale(1.5, grad_finite=False) == 1.0
    assert backoff_scale(1.0, grad_finite=False) is None


def test_fp16_gradients_underflow_without_the_scale_and_pgd_moves_with_it():
    model = _confident_linear().eval()
    x = torch.rand(4, 3, 4, 4, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    y = torch.zeros(4, dtype=torch.long)
    with _fp16_autocast():
        unscaled, _ = _input_gradient(model, x, y, ce_loss, 1.0)
        scaled, scale = _input_gradient(model, x, y, ce_loss, FP16_LOSS_SCALE)
    assert torch.count_nonzero(unscaled) == 0  # the failure the scale exists for
    assert scale == FP16_LOSS_SCALE and (scaled != 0).float().mean() > 0.9
    x = x.detach()
    x_adv = craft_adversarial(model, x, y, EPS, EPS / 4, 8, autocast=_fp16_autocast,
                              generator=torch.Generator().manual_seed(1))
    fp32 = pgd_linf(model, x, y, EPS, EPS / 4, 8, True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x_adv.sign(), fp32.sign()) and torch.allclose(x_adv, fp32, atol=1e-6)  # same steps as fp32


def test_an_overflowing_scale_backs_off_to_a_finite_gradient():
    loud = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))  # weights ±100: input gradients of 200 × the loss scale
    with torch.no_grad():
        loud[1].weight.copy_(torch.tensor([[100.0] * 12, [-100.0] * 12]))
        loud[1].bias.zero_()
    x = torch.full((2, 3, 2, 2), 0.5, requires_grad=True)
    with _fp16_autocast():  # wrong labels: the logit gradients are ±1, so 1024 · 200 overflows fp16 (max 65504)
        grad, scale = _input_gradient(loud, x, torch.tensor([1, 1]), ce_loss, FP16_LOSS_SCALE)
    assert torch.isfinite(grad).all() and scale == FP16_LOSS_SCALE / 4 and torch.count_nonzero(grad) == grad.numel()


def test_craft_adversarial_is_pgd_in_eval_mode_with_frozen_parameters():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(16, 3)).train()
    x, y = torch.rand(6, 3, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    modes = []
    model.register_forward_hook(lambda m, i, o: modes.append((m.training,
                                                              any(p.requires_grad for p in m.parameters()))))
    x_adv = craft_adversarial(model, x, y, EPS, EPS / 4, 3, generator=torch.Generator().manual_seed(0))
    assert set(modes) == {(False, False)} and model.training and all(p.requires_grad for p in model.parameters())
    model.eval()
    expected = pgd_linf(model, x, y, EPS, EPS / 4, 3, True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x_adv, expected)
    restarts = craft_adversarial(model, x, y, EPS, EPS / 4, 3, restarts=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(restarts, pgd_linf_restarts(model, x, y, EPS, EPS / 4, 3, 2,
                                                   generator=torch.Generator().manual_seed(0)))
