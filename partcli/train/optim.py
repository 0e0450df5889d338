"""Optimiser and learning-rate schedule of a training run (paper §3.5.2, App. B; options of the paper's code)."""
from __future__ import annotations

import math

import torch
from torch import nn

from partcli.train.config import TrainConfig


def param_groups(model: nn.Module, wd: float, decay_norm_bias: bool) -> list[dict]:
    """Two groups: weights with ``wd``; BatchNorm parameters and biases (1-D tensors) without, unless asked.

    The paper's code exempts them: decaying a BatchNorm scale only shrinks the layer it normalises.
    """
    decay, exempt = [], []
    for p in model.parameters():
        if p.requires_grad:
            (exempt if p.ndim <= 1 and not decay_norm_bias else decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": exempt, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum (the paper's recipe) or AdamW (much faster for a segmenter trained from scratch)."""
    groups = param_groups(model, cfg.wd, cfg.decay_norm_bias)
    if cfg.optim == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)


class WarmupCosine:
    """LR factor at step t: linear warm-up from 1/warmup to 1 over ``warmup`` steps, then cosine to 0.

    A class (not a closure) so that ``LambdaLR.state_dict`` stores its plain fields with the checkpoint.
    """

    def __init__(self, warmup: int, total: int):
        self.warmup = warmup
        self.total = max(total, warmup + 1)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = (step - self.warmup) / (self.total - self.warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration schedule over the whole run: ``--warmup-epochs`` of linear warm-up, then cosine annealing."""
    schedule = WarmupCosine(cfg.warmup_epochs * steps_per_epoch, cfg.epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
