"""``partcli.attack``: the attack suites on tensors and any model, without a prepared dataset or files.

As AutoAttack's and RobustBench's entry points do, it takes a model mapping N×3×H×W images in [0, 1] to logits,
the images and their labels, and returns the suite's rows (one per attack: clean and robust accuracy) and the
per-sample outcomes. The segmenter-guided suites need a part model (``has_segmenter = True``, see
``partcli.models.sources``) and the images' part masks.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from partcli.attacks.samples import AttackSamples
from partcli.attacks.suite import SuiteResult, attack_config, attack_model
from partcli.errors import PartcliError
from partcli.models.sources import open_model


def attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, suite: str = "autoattack",
           eps: float | str = 8 / 255, norm: str = "Linf", masks: torch.Tensor | None = None,
           keep_adversarial: bool = False, **options: Any) -> SuiteResult:
    """Run ``suite`` on ``model`` over the images ``x`` (N×3×H×W in [0, 1]) with labels ``y`` (N).

    ``masks``: N×H×W part ids (-1 where unlabelled), for the segmenter-guided suites. ``options``: any other
    ``partcli attack`` option by its Python name (``steps``, ``restarts``, ``step_size``, ``seed``, ``batch_size``,
    ``device``, ``hygiene``...). Returns the rows (``result.rows``), the per-sample outcomes (``result.outcomes``),
    the hygiene checklist (``result.checks``) and notes; with ``keep_adversarial`` also, per attack, the adversarial
    images its accuracy counts (``result.adversarial``, see ``partcli.attacks.suite.attack_model``).
    """
    if x.ndim != 4 or x.shape[1] != 3 or y.ndim != 1 or len(y) != len(x):
        raise PartcliError(f"attack: expected images N×3×H×W and labels N, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.min() < 0 or x.max() > 1:
        raise PartcliError("attack: images must lie in [0, 1] (the model normalises them itself)")
    cfg = attack_config(None, {"suite": suite, "eps": eps, "norm": norm, **options})
    source = open_model(model=model)
    with torch.no_grad():
        num_classes = source.model(x[:1].to(next(iter(source.model.parameters()), x).device)).shape[1]
    n = len(y)
    if masks is None:
        masks = torch.full((n, *x.shape[2:]), -1, dtype=torch.int16)
    samples = AttackSamples(x.detach().cpu().float(), y.detach().cpu().long(), masks.to(torch.int16).cpu(),
                            (masks != -1).flatten(1).any(1).cpu(), list(range(n)), [f"sample {i}" for i in range(n)])
    return attack_model(source.model, samples, cfg, num_classes=num_classes, keep_adversarial=keep_adversarial)
