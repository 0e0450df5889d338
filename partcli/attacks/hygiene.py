"""Evaluation hygiene (Carlini et al. 2019; paper App. D.3): sanity checks that an attack result can be trusted.

The checks are pure functions of accuracies (and, for input-dependence, of the clean predictions and input
gradients); ``run_hygiene`` picks them for a suite, reads what it can from the
suite's result rows and runs the few extra PGD attacks a check needs through a callback. Defaults keep the extra
cost at most about one PGD run with a single restart per check:

- large-eps: accuracy at ε = 32/255 is near 0 (Table 10). Reads the strongest PGD or AutoAttack row at 32/255
  (eps-sweep, all); suites pgd and autoattack run a 1-restart PGD at 32/255.
- pgd-vs-autoattack: PGD is not below AutoAttack beyond noise. Needs both rows at --eps (suite all).
- restarts: --restarts restarts do not lower PGD beyond noise below 1 restart. Suites pgd and all run a 1-restart
  PGD at --eps.
- clean-model: a clean-trained model (train.adv "none") drops to ~0 at 8/255. Reads the strongest row at 8/255;
  suites without one (other than the seg suites) run a 1-restart PGD at 8/255.
- input-dependence: runs first, before any attack (the suite prints its warning at once): a model that predicts
  one class for more than 90% of the attacked samples (whose labels are not that one-sided), or whose input
  gradient is exactly zero on more than 90% of them, barely depends on its input; it looks robust on that class
  (a collapsed run once kept AutoAttack's Square attack busy for > 10 minutes on 16 images) and gradient attacks
  cannot move it.

With ``--norm L2`` (``check_radii``) large-eps and clean-model attack at the ℓ2 radius ε·√d (d: pixel values per
image), the smallest ℓ2 ball that holds their ℓ∞ ball of ε: whatever breaks a model within the ℓ∞ ball is in the
ℓ2 one too, so their expectations carry over unchanged (32/255·√d ≈ 7.0 at 32 px, 48.7 at 224 px; 8/255·√d ≈ 1.7
and 12.2). The ℓ2 ε sweep stops well below 32/255·√d, so large-eps runs its extra PGD for eps-sweep and all too.
The other checks compare attacks at the same radius and hold for either norm.

``partcli attack`` writes a run's checklist beside its per-sample outcomes as ``<stem>.<suite>.<k>.hygiene.json``
(``write_checklist``), which ``partcli report`` reads.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from rich.markup import escape

from partcli.attacks.registry import extra_run_suites
from partcli.errors import writing

NEAR_ZERO = 0.02  # paper App. D.3: its models drop below 2% at ε = 32/255
LARGE_EPS = 32 / 255
CLEAN_MODEL_EPS = 8 / 255
EXTRA_RUN_CHECKS = ("large-eps", "restarts", "clean-model")  # the checks that may run an extra PGD

ONE_SIDED = 0.9  # share of the samples above which one predicted class, or zero input gradients, is flagged
HYGIENE_SUFFIX = ".hygiene.json"  # the checklist file beside an attack run's per-sample outcomes

PgdRunner = Callable[[float, int], float]  # (ε, restarts) -> robust accuracy of PGD on the suite's samples


@dataclass(frozen=True)
class CheckRadii:
    """Where the large-eps and clean-model checks attack, how their messages name it, and which suites may run
    the extra PGD a check needs when no row is at its radius."""

    large: float = LARGE_EPS
    clean: float = CLEAN_MODEL_EPS
    large_label: str = "ε=32/255"
    clean_label: str = "ε=8/255"
    extra_run_suites: dict[str, tuple[str, ...]] = field(default_factory=lambda: extra_runs())


def check_radii(norm: str, dims: int) -> CheckRadii:
    """The checks' radii for ``norm`` on images of ``dims`` pixel values: ℓ∞'s own, or the ℓ2 balls that hold them
    (ε·√d; see the module docstring)."""
    if norm == "Linf":
        return CheckRadii()
    root = math.sqrt(dims)
    return CheckRadii(LARGE_EPS * root, CLEAN_MODEL_EPS * root, f"ℓ2 ε={LARGE_EPS * root:.3g} (32/255·√d)",
                      f"ℓ2 ε={CLEAN_MODEL_EPS * root:.3g} (8/255·√d)",
                      {**extra_runs(), "large-eps": (*extra_run_suites("large-eps"), "eps-sweep", "all")})


def extra_runs() -> dict[str, tuple[str, ...]]:
    """Per check, the suites that may run its extra PGD (the ``hygiene`` of their registry entries)."""
    return {check: extra_run_suites(check) for check in EXTRA_RUN_CHECKS}


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok", "warn" or "not run"
    message: str


def binomial_noise(p: float, n: int) -> float:
    """Two binomial standard deviations of an accuracy p measured on n samples, plus one sample."""
    return 2 * math.sqrt(max(p * (1 - p), 0.0) / max(n, 1)) + 1 / max(n, 1)


def near_zero(acc: float, n: int) -> bool:
    return acc <= NEAR_ZERO + binomial_noise(NEAR_ZERO, n)


def check_large_eps(acc: float, n: int, source: str, at: str = "ε=32/255") -> Check:
    if near_zero(acc, n):
        return Check("large-eps", "ok", f"accuracy at {at} is {acc:.1%} ({source})")
    return Check("large-eps", "warn", f"accuracy at {at} is {acc:.1%}, not near 0 ({source}): possible "
                                      "gradient masking; try more steps or a gradient-free attack")


def check_pgd_vs_autoattack(pgd_acc: float, aa_acc: float, n: int) -> Check:
    gap = aa_acc - pgd_acc
    if gap > binomial_noise((pgd_acc + aa_acc) / 2, n):
        return Check("pgd-vs-autoattack", "warn", f"PGD {pgd_acc:.1%} is below AutoAttack {aa_acc:.1%} by more than "
                                                  "noise: AutoAttack is probably misconfigured")
    return Check("pgd-vs-autoattack", "ok", f"AutoAttack {aa_acc:.1%} ≤ PGD {pgd_acc:.1%} within noise")


def check_restarts(acc_one: float, acc_many: float, restarts: int, n: int) -> Check:
    if acc_one - acc_many > binomial_noise((acc_one + acc_many) / 2, n):
        return Check("restarts", "warn", f"PGD with {restarts} restarts {acc_many:.1%} is well below 1 restart "
                                         f"{acc_one:.1%}: the attack has not converged; use more steps/restarts")
    return Check("restarts", "ok", f"PGD 1 restart {acc_one:.1%} vs {restarts} restarts {acc_many:.1%}")


def check_clean_model(acc: float, n: int, source: str, at: str = "ε=8/255") -> Check:
    if near_zero(acc, n):
        return Check("clean-model", "ok", f"clean-trained model drops to {acc:.1%} at {at} ({source})")
    return Check("clean-model", "warn", f"clean-trained model keeps {acc:.1%} at {at} ({source}): a model "
                                        "trained without attacks should drop to ~0; suspect the attack")


def check_input_dependence(predicted: torch.Tensor, labels: torch.Tensor, zero_gradient: torch.Tensor) -> Check:
    """Whether the clean predictions (class per attacked sample) and the input gradients (one flag per probed
    sample: the gradient of the top-2 logit margin is exactly zero) show a model that ignores its input."""
    n = len(predicted)
    if n == 0:
        return Check("input-dependence", "not run", "no samples were attacked")
    top = int(torch.bincount(predicted).argmax())
    share, label_share = float((predicted == top).float().mean()), float((labels == top).float().mean())
    zero = float(zero_gradient.float().mean()) if len(zero_gradient) else 0.0
    findings = []
    if share > ONE_SIDED and label_share <= ONE_SIDED:
        findings.append(f"predicts class {top} for {share:.0%} of the {n} attacked samples ({label_share:.0%} of them "
                        "are labelled so)")
    if zero > ONE_SIDED:
        findings.append(f"its input gradient is exactly zero on {int(zero_gradient.sum())} of {len(zero_gradient)} "
                        "samples")
    if findings:
        return Check("input-dependence", "warn", f"the model {' and '.join(findings)}: its predictions barely depend "
                                                 "on the input, so robust accuracy says nothing and gradient attacks "
                                                 "cannot move it; check the checkpoint (a collapsed training run?)")
    return Check("input-dependence", "ok", f"{share:.0%} of the predictions are the most common class; input "
                                           f"gradients zero on {int(zero_gradient.sum())} of {len(zero_gradient)}")


def run_hygiene(rows: list[dict[str, Any]], suite: str, eps: float, restarts: int, train_adv: str | None,
                pgd: PgdRunner | None = None, radii: CheckRadii | None = None) -> list[Check]:
    """The checklist for one suite run: each check passes, warns, or says why it was not run. ``radii``: those of
    the run's norm (``check_radii``; default ℓ∞'s)."""
    radii = radii or CheckRadii()
    n = max((int(r["n"]) for r in rows), default=0)
    if n == 0:
        return [Check(name, "not run", "no samples were attacked")
                for name in ("large-eps", "pgd-vs-autoattack", "restarts", "clean-model")]
    can_run = {name: pgd is not None and suite in suites for name, suites in radii.extra_run_suites.items()}
    checks = []

    at_large = [a for a in (_pgd_acc(rows, radii.large), _aa_acc(rows, radii.large)) if a is not None]
    if at_large:
        checks.append(check_large_eps(min(at_large), n, f"{radii.large_label} row", radii.large_label))
    elif can_run["large-eps"]:
        checks.append(check_large_eps(pgd(radii.large, 1), n, "extra 1-restart PGD", radii.large_label))
    else:
        checks.append(Check("large-eps", "not run",
                            f"suite {suite} has no attack at {radii.large_label}; run --suite eps-sweep"))

    pgd_acc, aa_acc = _pgd_acc(rows, eps), _aa_acc(rows, eps)
    if pgd_acc is not None and aa_acc is not None:
        checks.append(check_pgd_vs_autoattack(pgd_acc, aa_acc, n))
    else:
        checks.append(Check("pgd-vs-autoattack", "not run", "needs PGD and AutoAttack at the same ε (--suite all)"))

    if restarts <= 1:
        checks.append(Check("restarts", "not run", "--restarts is 1: nothing to compare"))
    elif pgd_acc is not None and can_run["restarts"]:
        checks.append(check_restarts(pgd(eps, 1), pgd_acc, restarts, n))
    else:
        checks.append(Check("restarts", "not run", f"runs with suites pgd and all, not {suite}"))

    checks.append(_clean_model(rows, n, train_adv, pgd if can_run["clean-model"] else None, suite, radii))
    return checks


def _clean_model(rows: list[dict[str, Any]], n: int, train_adv: str | None, pgd: PgdRunner | None,
                 suite: str, radii: CheckRadii) -> Check:
    if train_adv is None:
        return Check("clean-model", "not run", "the checkpoint records no train.adv")
    if train_adv != "none":
        return Check("clean-model", "not run", f"the model was adversarially trained (train.adv={train_adv})")
    at_clean = [float(r["adv_acc"]) for r in rows if _is(r["eps"], radii.clean) and r.get("adv_acc") is not None]
    if at_clean:
        return check_clean_model(min(at_clean), n, "strongest attack run", radii.clean_label)
    if pgd is not None:
        return check_clean_model(pgd(radii.clean, 1), n, "extra 1-restart PGD", radii.clean_label)
    return Check("clean-model", "not run", f"suite {suite} has no result at {radii.clean_label}")


def format_checklist(checks: list[Check]) -> str:
    marks = {"ok": "[green]✓[/green]", "warn": "[yellow]![/yellow]", "not run": "[dim]–[/dim]"}
    lines = ["evaluation hygiene (Carlini et al. 2019):"]
    # Rich markup: the marks only; messages name attacks and files ("autoattack[apgd-ce,fab,square]") verbatim
    lines += [f"  {marks[c.status]} {c.name}: {escape(c.message)}" if c.status != "not run"
              else f"  {marks[c.status]} {c.name}: not run ({escape(c.message)})" for c in checks]
    return "\n".join(lines)


def checklist_path(samples_path: str | Path) -> Path:
    """``<stem>.<suite>.<k>.hygiene.json``: the checklist file of the attack run that wrote ``samples_path``."""
    samples_path = Path(samples_path)
    return samples_path.with_name(samples_path.name.removesuffix(".samples.csv") + HYGIENE_SUFFIX)


def write_checklist(path: str | Path, checks: list[Check], meta: dict[str, Any]) -> None:
    """The checklist as JSON (``meta``: what was attacked, e.g. checkpoint, dataset, split, suite, eps)."""
    path = Path(path)
    with writing(path):
        path.write_text(json.dumps({**meta, "checks": [asdict(c) for c in checks]}, indent=1) + "\n")


def _is(a: Any, b: float) -> bool:
    return math.isclose(float(a), b, rel_tol=1e-6, abs_tol=1e-9)


def _pgd_acc(rows: list[dict[str, Any]], eps: float) -> float | None:
    vals = [float(r["adv_acc"]) for r in rows if r["attack"] == "pgd" and _is(r["eps"], eps)]
    return min(vals) if vals else None


def _aa_acc(rows: list[dict[str, Any]], eps: float) -> float | None:
    vals = [float(r["adv_acc"]) for r in rows if str(r["attack"]).startswith("autoattack") and _is(r["eps"], eps)]
    return min(vals) if vals else None
