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
    """LR factor at step t: linear warm-up from 1/warmup to 1 over ``warmup`` steps, then cosine to 0 at ``total``.

    ``replanned``: [end step, total steps] pairs of the plans in force before the run's ``--epochs`` changed (a
    resume that extended it): a step before an end step follows that plan, later steps the next one.
    A class (not a closure) so that ``LambdaLR.state_dict`` stores its plain fields with the checkpoint.
    """

    def __init__(self, warmup: int, total: int, replanned: list[list[int]] | None = None):
        self.warmup = warmup
        self.total = max(total, warmup + 1)
        self.replanned = [list(p) for p in replanned or []]

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        total = next((max(t, self.warmup + 1) for end, t in self.replanned if step < end), self.total)
        progress = (step - self.warmup) / (total - self.warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration schedule over the whole run: ``--warmup-epochs`` of linear warm-up, then cosine annealing
    (re-planned from each point where a resume changed ``--epochs``)."""
    s = steps_per_epoch
    schedule = WarmupCosine(cfg.warmup_epochs * s, cfg.epochs * s,
                            [[reached * s, epochs * s] for reached, epochs in cfg.replanned])
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def load_scheduler_state(scheduler: torch.optim.lr_scheduler.LambdaLR, state: dict) -> None:
    """Restore a schedule's position but keep the plan built from the configuration, which a resume may have
    re-planned; the optimiser's learning rate is set from that plan at the restored step."""
    plans = [dict(vars(fn)) for fn in scheduler.lr_lambdas]
    scheduler.load_state_dict(state)
    for fn, plan in zip(scheduler.lr_lambdas, plans):
        vars(fn).clear()
        vars(fn).update(plan)
    lrs = [base * fn(scheduler.last_epoch) for base, fn in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = lrs  # what get_last_lr() reports
