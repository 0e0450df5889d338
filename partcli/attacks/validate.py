"""Checks of ``partcli attack``'s options before any work: one line naming the option.

No torch here: the CLI runs these checks before its heavy imports (torch, timm, AutoAttack), so a bad option is
refused at once instead of after seconds (a minute on a loaded machine) of imports. Whether a CUDA device exists
needs torch and is checked when the device is picked.
"""
from __future__ import annotations

import math

from partcli.attacks.config import STRATEGIES, AttackConfig
from partcli.attacks.registry import suites_for_norm
from partcli.config import check_fields
from partcli.errors import PartcliError


def validate_config(cfg: AttackConfig) -> None:
    """Refuse impossible options up front, naming the option: what each field declares (``check_fields``), then the
    rules that relate several."""
    check_fields(cfg)
    if cfg.suite not in suites_for_norm(cfg.norm):
        raise PartcliError(f"--suite {cfg.suite}: the segmenter-guided attacks are ℓ∞ only; with --norm {cfg.norm} "
                           f"use {', '.join(suites_for_norm(cfg.norm)[:-1])} or all")
    if not cfg.strategies:
        raise PartcliError(f"--strategy (none): expected some of {', '.join(STRATEGIES)}")
    if cfg.norm == "Linf" and not 0 < cfg.eps <= 1:
        raise PartcliError(f"--eps {cfg.eps:g}: expected an ℓ∞ radius in (0, 1], e.g. 8/255")
    if cfg.norm == "L2" and not 0 < cfg.eps < math.inf:
        raise PartcliError(f"--eps {cfg.eps:g}: expected a positive ℓ2 radius, e.g. 0.5")
    if cfg.survivors_of is not None and cfg.n is not None:
        raise PartcliError(f"--n {cfg.n}: not with --survivors-of, which attacks every survivor so that its rows can "
                           "report over the earlier run's samples; drop --n")
