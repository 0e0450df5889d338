"""Checks of ``partcli attack``'s options before any work: one line naming the option.

No torch here: the CLI runs these checks before its heavy imports (torch, timm, AutoAttack), so a bad option is
refused at once instead of after seconds (a minute on a loaded machine) of imports. Whether a CUDA device exists
needs torch and is checked when the device is picked.
"""
from __future__ import annotations

import math

from partcli.attacks.config import NORMS, STRATEGIES, SWEEP_ATTACKS, AttackConfig
from partcli.attacks.registry import suite_names, suites_for_norm
from partcli.config import MAX_SEED
from partcli.errors import PartcliError


def validate_config(cfg: AttackConfig) -> None:
    """Refuse impossible options up front, naming the option."""
    if cfg.suite not in suite_names():
        raise PartcliError(f"--suite {cfg.suite!r}: expected one of {', '.join(suite_names())}")
    if cfg.sweep_attack not in SWEEP_ATTACKS:
        raise PartcliError(f"--sweep-attack {cfg.sweep_attack!r}: expected one of {', '.join(SWEEP_ATTACKS)}")
    if cfg.norm not in NORMS:
        raise PartcliError(f"--norm {cfg.norm!r}: expected one of {', '.join(NORMS)}")
    if cfg.suite not in suites_for_norm(cfg.norm):
        raise PartcliError(f"--suite {cfg.suite}: the segmenter-guided attacks are ℓ∞ only; with --norm {cfg.norm} "
                           f"use {', '.join(suites_for_norm(cfg.norm)[:-1])} or all")
    bad = [s for s in cfg.strategies if s not in STRATEGIES]
    if bad or not cfg.strategies:
        raise PartcliError(f"--strategy {', '.join(bad) or '(none)'}: expected some of {', '.join(STRATEGIES)}")
    if cfg.norm == "Linf" and not 0 < cfg.eps <= 1:
        raise PartcliError(f"--eps {cfg.eps:g}: expected an ℓ∞ radius in (0, 1], e.g. 8/255")
    if cfg.norm == "L2" and not 0 < cfg.eps < math.inf:
        raise PartcliError(f"--eps {cfg.eps:g}: expected a positive ℓ2 radius, e.g. 0.5")
    if not 0 <= cfg.attack_cseg <= 1:
        raise PartcliError(f"--attack-cseg {cfg.attack_cseg:g}: expected a weight in [0, 1]")
    for option, value in (("--n", cfg.n), ("--batch-size", cfg.batch_size), ("--restarts", cfg.restarts),
                          ("--steps", cfg.steps)):
        if value is not None and value < 1:
            raise PartcliError(f"{option} {value}: expected a positive integer")
    if cfg.step_size is not None and cfg.step_size <= 0:
        raise PartcliError(f"--step-size {cfg.step_size:g}: expected a positive number")
    if not 0 <= cfg.seed <= MAX_SEED:
        raise PartcliError(f"--seed {cfg.seed}: expected an integer in [0, {MAX_SEED}]")
    if cfg.survivors_of is not None and cfg.n is not None:
        raise PartcliError(f"--n {cfg.n}: not with --survivors-of, which attacks every survivor so that its rows can "
                           "report over the earlier run's samples; drop --n")
