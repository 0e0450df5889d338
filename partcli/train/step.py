"""One training step's loss for clean (Eq. 5), PGD (Eq. 8, Eq. 9) and TRADES (Eq. 10, Eq. 11) training."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from partcli.attacks.pgd import AutocastFactory, craft_adversarial, frozen_eval
from partcli.train.config import TrainConfig
from partcli.train.losses import SegLossFn, combined_loss, kl_per_sample, seg_loss, trades_loss

def training_loss(model: nn.Module, attack_model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  masks: torch.Tensor, cfg: TrainConfig, autocast: AutocastFactory = contextlib.nullcontext,
                  seg_fn: SegLossFn = seg_loss) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (loss, logits on the input the loss classifies) for one batch.

    ``model`` is what the loss back-propagates through (possibly DDP-wrapped); ``attack_model`` is the
    bare module the attacker differentiates (no DDP hooks). The attacker maximises the classification
    loss only (Eq. 9) or, for TRADES, the KL divergence to the clean prediction (Eq. 11), within the ``cfg.norm``
    ball of radius ``cfg.eps``; attacks run in ``craft_adversarial`` (eval mode, parameters frozen) and in the same
    autocast precision as the training forward pass. ``seg_fn`` is the segmentation term (Eq. 7, or Eq. 12 and
    Eq. 13 for centroid labels).

    TRADES' BatchNorm (``--trades-bn``): ``two-pass``, as TRADES' reference implementation, makes two train-mode
    passes per step (clean x, then x*), so BatchNorm statistics are updated twice, each batch normalised by its own
    statistics; ``concat``, as the paper's code, makes one pass over x and x* concatenated, both normalised by the
    joint batch's statistics. The returned logits, and so the training accuracy reported for TRADES runs, are
    those of the clean input the CE term classifies.
    """
    if cfg.adv == "none":
        with autocast():
            logits, seg = model(x, return_seg=True)
            loss, _, _ = combined_loss(logits, seg, y, masks, cfg.cseg, seg_fn)
        return loss, logits
    if cfg.adv == "pgd":
        x_adv = craft_adversarial(attack_model, x, y, cfg.eps, cfg.step_size, cfg.steps, norm=cfg.norm,
                                  autocast=autocast)
        with autocast():
            logits, seg = model(x_adv, return_seg=True)
            loss, _, _ = combined_loss(logits, seg, y, masks, cfg.cseg, seg_fn)
        return loss, logits
    if cfg.adv == "trades":
        with frozen_eval(attack_model), torch.no_grad(), autocast():
            target = attack_model(x)  # f(x) as the attacker sees the model (eval mode)
        x_adv = craft_adversarial(attack_model, x, target, cfg.eps, cfg.step_size, cfg.steps, norm=cfg.norm,
                                  loss_fn=_kl_objective, autocast=autocast)
        with autocast():
            if cfg.trades_bn == "concat":
                both, both_seg = model(torch.cat([x, x_adv]), return_seg=True)
                clean_logits, adv_logits = both[:len(x)], both[len(x):]
                adv_seg = None if both_seg is None else both_seg[len(x):]
            else:
                clean_logits = model(x)
                adv_logits, adv_seg = model(x_adv, return_seg=True)
            loss, _, _ = trades_loss(clean_logits, adv_logits, adv_seg, y, masks, cfg.cseg, cfg.beta, seg_fn)
        return loss, clean_logits
    raise ValueError(f"unknown adversarial mode {cfg.adv!r}")


def _kl_objective(model: nn.Module, x_adv: torch.Tensor, clean_logits: torch.Tensor) -> torch.Tensor:
    """Eq. 11's objective, per sample: KL(f(x) ‖ f(x*)) with f(x) fixed."""
    return kl_per_sample(clean_logits, model(x_adv))

