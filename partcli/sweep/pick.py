"""The pick rules of a stage (paper §3.5.3): which finished point the later stages start from.

- ``adv``: the best validation adversarial accuracy (of each run's best checkpoint); when some point of the
  stage has none (clean runs), the best validation clean accuracy.
- ``clean-at-adv``: among the points whose validation adversarial accuracy is at least ``target − margin``, the
  best validation clean accuracy ("the model with comparable adversarial accuracy to the baseline"); when none
  qualifies, the ``adv`` rule, with a note saying so.
- ``none``: no pick (the last stage, e.g. TRADES's β curve).

Ties go to the earlier point. Pure functions of the points' accuracies.
"""
from __future__ import annotations

from dataclasses import dataclass


# metrics.csv keeps 6 significant digits, and target − margin is rounded too (0.1 − 0.01 = 0.09000000000000001)
TOLERANCE = 1e-6


@dataclass(frozen=True)
class Score:
    """A finished point's validation accuracies at its best checkpoint (fractions; ``adv`` None for clean runs)."""

    point: int
    clean: float
    adv: float | None


@dataclass(frozen=True)
class Pick:
    point: int | None  # None: rule ``none``
    reason: str  # what decided it, for the printed summary
    note: str | None = None  # said to the user when the rule fell back to ``adv``


def pick_point(scores: list[Score], rule: str, target_adv: float | None = None, margin: float = 0.0) -> Pick:
    """The point ``rule`` picks among ``scores`` (a finished stage, in point order)."""
    if rule == "none":
        return Pick(None, "no pick")
    if rule == "clean-at-adv":
        if target_adv is None:
            raise ValueError("the clean-at-adv rule needs target_adv")
        floor = target_adv - margin
        qualified = [s for s in scores if s.adv is not None and s.adv >= floor - TOLERANCE]
        if qualified:
            best = _first_best(qualified, lambda s: s.clean)
            return Pick(best.point, f"best val clean acc {best.clean:.1%} among val adv acc ≥ {floor:.1%}")
        best_adv = max((s.adv for s in scores if s.adv is not None), default=None)
        shown = "none has one" if best_adv is None else f"the best is {best_adv:.1%}"
        note = (f"no point reaches val adv acc {floor:.1%} (--target-adv {target_adv:.1%} − --margin {margin:.1%}; "
                f"{shown}): picked by the adv rule instead")
        return Pick(*_by_adv(scores), note=note)
    if rule == "adv":
        return Pick(*_by_adv(scores))
    raise ValueError(f"unknown pick rule {rule!r}")


def _by_adv(scores: list[Score]) -> tuple[int, str]:
    if all(s.adv is not None for s in scores):
        best = _first_best(scores, lambda s: s.adv)
        return best.point, f"best val adv acc {best.adv:.1%}"
    best = _first_best(scores, lambda s: s.clean)
    return best.point, f"best val clean acc {best.clean:.1%} (not every point has an adversarial accuracy)"


def _first_best(scores: list[Score], key) -> Score:
    best = scores[0]
    for s in scores[1:]:
        if key(s) > key(best):
            best = s
    return best
