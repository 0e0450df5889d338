"""The built-in attack suites (paper §4, App. B, App. D.3), one registered builder each (``register_suite``).

``autoattack`` (the real AutoAttack), ``pgd`` (App. B: 100 steps of 0.001, 5 restarts), ``seg-single`` (Table 11),
``seg-two-stage`` (Table 12, one row per strategy), ``segmenter`` (Table 13) and ``eps-sweep`` (Table 10:
AutoAttack, or PGD with ``sweep_attack="pgd"``, at 8, 16, 24 and 32/255); ``all`` runs them in this order.

The seg suites are ℓ∞ only. The ℓ2 ε sweep (``sweep_radii``) is 0.25, 0.5, 1 and 2 for 32-pixel images (0.5 is the
usual ℓ2 budget there) scaled by √(d / 3072), d the pixel values per image, since an ℓ2 budget grows with √d: at
224 px 1.75, 3.5, 7 and 14.

A builder gets the scheduler (``partcli.attacks.scheduler``), which holds the samples, the options and the clean
pass, and returns the suite's attacks in row order; no torch is imported here (the table is read by ``--help``).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from partcli.attacks.registry import ALL, Attack, register_suite

if TYPE_CHECKING:
    from partcli.attacks.scheduler import Scheduler

SWEEP_EPS = (8 / 255, 16 / 255, 24 / 255, 32 / 255)  # Table 10
SWEEP_EPS_L2 = (0.25, 0.5, 1.0, 2.0)  # for 3×32×32 images; ``sweep_radii`` scales them to other sizes
L2_SWEEP_DIMS = 3 * 32 * 32
LINF = ("Linf",)


@register_suite("autoattack", help="the real AutoAttack", hygiene=("large-eps", "clean-model"))
def autoattack_suite(s: Scheduler) -> list[Attack]:
    return [s.autoattack(s.cfg.eps)]


@register_suite("pgd", help="App. B", hygiene=("large-eps", "restarts", "clean-model"))
def pgd_suite(s: Scheduler) -> list[Attack]:
    cfg = s.cfg
    return [Attack("pgd", cfg.eps, lambda: s.pgd(cfg.eps, cfg.pgd_step_size, cfg.restarts, "pgd"),
                   settings=s.pgd_settings(cfg.pgd_step_size))]


@register_suite("seg-single", help="Table 11", needs_segmenter=True, norms=LINF)
def seg_single_suite(s: Scheduler) -> list[Attack]:
    return [Attack("seg-single", s.cfg.eps, s.seg_single, settings=s.pgd_settings(s.cfg.pgd_step_size))]


@register_suite("seg-two-stage", help="Table 12", needs_segmenter=True, norms=LINF)
def two_stage_suite(s: Scheduler) -> list[Attack]:
    return [Attack(f"seg-two-stage/{strategy}", s.cfg.eps, lambda strategy=strategy: s.two_stage(strategy),
                   settings=s.pgd_settings(s.cfg.pgd_step_size)) for strategy in s.strategies()]


@register_suite("segmenter", help="Table 13", needs_segmenter=True, norms=LINF)
def segmenter_suite(s: Scheduler) -> list[Attack]:
    return [s.segmenter()]


@register_suite("eps-sweep", help="Table 10", hygiene=("clean-model",))
def eps_sweep_suite(s: Scheduler) -> list[Attack]:
    cfg, out = s.cfg, []
    for e in sweep_radii(cfg.norm, s.s.x[0].numel()):
        if cfg.suite == ALL and same_radius(e, cfg.eps):
            continue  # the autoattack and pgd rows at --eps are this radius already
        if cfg.sweep_attack == "autoattack":
            out.append(s.autoattack(e))
            continue
        step = s.sweep_step_size(e)
        out.append(Attack("pgd", e, lambda e=e, step=step: s.pgd(e, step, cfg.restarts, "pgd"),
                          settings=s.pgd_settings(step)))
    return out


def sweep_radii(norm: str, dims: int) -> tuple[float, ...]:
    """The eps-sweep's radii for images of ``dims`` pixel values: Table 10's for ℓ∞, ``SWEEP_EPS_L2`` scaled by
    √(dims / 3072) for ℓ2 (see the module docstring)."""
    if norm == "Linf":
        return SWEEP_EPS
    return tuple(e * math.sqrt(dims / L2_SWEEP_DIMS) for e in SWEEP_EPS_L2)


def same_radius(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
