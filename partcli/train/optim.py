"""Optimiser and learning-rate schedule of a training run (paper §3.5.2, App. B; options of the paper's code)."""
from __future__ import annotations

import math

import torch
from torch import nn

from partcli.train.config import TrainConfig


NO_DECAY_NAME_PARTS = ("bias", "bn", "ln")  # the paper's code: parameters whose name contains one are not decayed


def param_groups(model: nn.Module, wd: float, decay_norm_bias: bool, exempt_rule: str = "1d") -> list[dict]:
    """Two groups: weights with ``wd``, and the exempt parameters without (none when ``decay_norm_bias``).

    ``exempt_rule`` (``--wd-exempt``): ``1d`` exempts every 1-D tensor (BatchNorm scales and shifts, biases:
    decaying a BatchNorm scale only shrinks the layer it normalises); ``names`` exempts, as the paper's code, the
    parameters whose name contains "bias", "bn" or "ln": biases and the BatchNorms named ``bn*`` (a ResNet's), but
    not the BatchNorms inside ``Sequential`` blocks (DeepLabv3+'s decoder, the heads, a ResNet's ``downsample.1``).
    """
    decay, exempt = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if exempt_rule == "names":
            no_decay = any(part in name for part in NO_DECAY_NAME_PARTS)
        elif exempt_rule == "1d":
            no_decay = p.ndim <= 1
        else:
            raise ValueError(f"unknown weight-decay exemption rule {exempt_rule!r}")
        (exempt if no_decay and not decay_norm_bias else decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": exempt, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum (the paper's recipe) or AdamW (much faster for a segmenter trained from scratch)."""
    groups = param_groups(model, cfg.wd, cfg.decay_norm_bias, cfg.wd_exempt)
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


class EpochCosine:
    """``--lr-schedule epoch`` (the paper's code): the factor of epoch e (0-based) is set once for the epoch,
    ``min(1, (e + 1) / warmup) · ½(1 + cos(π e / E))``, E the planned epochs (re-planned as ``WarmupCosine``).

    Stepped once per training step like ``WarmupCosine``; ``steps_per_epoch`` maps a step to its epoch.
    """

    def __init__(self, warmup_epochs: int, epochs: int, steps_per_epoch: int, replanned: list[list[int]] | None = None):
        self.warmup = warmup_epochs
        self.epochs = epochs
        self.steps_per_epoch = max(steps_per_epoch, 1)
        self.replanned = [list(p) for p in replanned or []]

    def __call__(self, step: int) -> float:
        epoch = step // self.steps_per_epoch
        total = next((t for end, t in self.replanned if epoch < end), self.epochs)
        warm = (epoch + 1) / self.warmup if epoch < self.warmup else 1.0
        return warm * 0.5 * (1.0 + math.cos(math.pi * min(epoch / total, 1.0)))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning-rate schedule over the whole run, stepped once per training step: ``--lr-schedule step``,
    ``--warmup-epochs`` of linear warm-up then cosine annealing per step, or ``epoch`` (``EpochCosine``); either is
    re-planned from each point where a resume changed ``--epochs``."""
    s = steps_per_epoch
    if cfg.lr_schedule == "epoch":
        schedule: WarmupCosine | EpochCosine = EpochCosine(cfg.warmup_epochs, cfg.epochs, s, cfg.replanned)
    else:
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
