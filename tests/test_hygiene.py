"""Evaluation hygiene: the pure checks' thresholds, that they fire on a gradient-masked model only, and that a model
ignoring its input is flagged before the attacks run."""
from __future__ import annotations

import torch
from torch import nn

from helpers import attack_samples
from known_robustness import Constant
from partcli.attacks.hygiene import (binomial_noise, check_clean_model, check_input_dependence, check_large_eps,
                                     check_pgd_vs_autoattack, check_restarts, format_checklist, run_hygiene)
from partcli.attacks.samples import AttackSamples
from partcli.attacks.suite import AttackConfig, attack_model


class MeanThreshold(nn.Module):
    """Two classes told apart by the mean pixel value (< 0.5 or > 0.5); optionally gradient-masked by rounding
    the input to a 1/50 grid first (torch.round has a zero gradient everywhere)."""

    def __init__(self, masked: bool):
        super().__init__()
        self.masked = masked

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.masked:
            x = torch.round(x * 50) / 50
        m = x.flatten(1).mean(1, keepdim=True) - 0.5
        return torch.cat([-100 * m, 100 * m], dim=1)


def _samples(n: int = 12) -> AttackSamples:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = (0.475 + 0.05 * y.view(-1, 1, 1, 1).float() + (torch.rand(n, 3, 8, 8, generator=g) - 0.5) * 0.01)
    return attack_samples(x, y)


def _checks(masked: bool) -> dict[str, str]:
    cfg = AttackConfig(suite="pgd", restarts=2, batch_size=16)  # App. B: 100 steps of 0.001
    result = attack_model(MeanThreshold(masked), _samples(), cfg, num_classes=2, train_adv="none")
    assert result.rows[0]["clean_acc"] == 1.0
    return {c.name: c.status for c in result.checks}


def test_checks_fire_on_gradient_masked_model_only():
    honest, masked = _checks(masked=False), _checks(masked=True)
    assert honest == {"input-dependence": "ok", "large-eps": "ok", "pgd-vs-autoattack": "not run", "restarts": "ok",
                      "clean-model": "ok"}
    assert masked["large-eps"] == "warn" and masked["clean-model"] == "warn"
    assert masked["input-dependence"] == "warn"  # rounding: zero input gradients, flagged before any attack


def test_pgd_vs_autoattack_threshold():
    assert check_pgd_vs_autoattack(0.30, 0.40, 1000).status == "warn"
    assert check_pgd_vs_autoattack(0.395, 0.40, 1000).status == "ok"
    assert check_pgd_vs_autoattack(0.45, 0.40, 1000).status == "ok"  # AutoAttack stronger: as expected
    assert check_pgd_vs_autoattack(0.30, 0.40, 20).status == "ok"  # 2 samples out of 20 is noise


def test_restarts_large_eps_and_clean_model_thresholds():
    assert check_restarts(0.50, 0.30, 5, 1000).status == "warn"
    assert check_restarts(0.50, 0.49, 5, 1000).status == "ok"
    assert check_large_eps(0.01, 1000, "row").status == "ok"
    assert check_large_eps(0.10, 1000, "row").status == "warn"
    assert check_clean_model(0.0, 100, "row").status == "ok"
    assert check_clean_model(0.3, 100, "row").status == "warn"
    assert binomial_noise(0.5, 100) > binomial_noise(0.5, 10_000)


def _row(attack: str, eps: float, adv: float, n: int = 1000) -> dict:
    return {"attack": attack, "eps": eps, "adv_acc": adv, "n": n, "clean_acc": 0.8}


def test_run_hygiene_reads_rows_and_says_why_a_check_did_not_run():
    rows = [_row("autoattack", 8 / 255, 0.40), _row("pgd", 8 / 255, 0.30), _row("pgd", 32 / 255, 0.01)]
    calls = []

    def pgd(eps, restarts):
        calls.append((eps, restarts))
        return 0.31
    checks = {c.name: c for c in run_hygiene(rows, "all", 8 / 255, 5, "pgd", pgd)}
    assert checks["pgd-vs-autoattack"].status == "warn"
    assert checks["large-eps"].status == "ok"
    assert checks["restarts"].status == "ok" and calls == [(8 / 255, 1)]  # the only extra run
    assert checks["clean-model"].status == "not run" and "adversarially trained" in checks["clean-model"].message

    seg = {c.name: c for c in run_hygiene([_row("seg-single", 8 / 255, 0.5)], "seg-single", 8 / 255, 5, None, pgd)}
    assert all(c.status == "not run" for c in seg.values())
    assert "eps-sweep" in seg["large-eps"].message and "train.adv" in seg["clean-model"].message
    assert "not run" in format_checklist(list(seg.values()))


def test_a_constant_model_is_flagged_before_any_attack_runs(monkeypatch):
    """One class for every sample and zero input gradients: the warning comes first, then the attacks."""
    import partcli.attacks.scheduler as scheduler
    import partcli.attacks.suite as suite

    events = []
    real_craft = scheduler.craft_adversarial
    monkeypatch.setattr(suite, "warn", lambda message: events.append(("warn", message)))
    monkeypatch.setattr(scheduler, "craft_adversarial",
                        lambda *a, **k: events.append(("attack", "")) or real_craft(*a, **k))
    cfg = AttackConfig(suite="pgd", steps=2, restarts=1, batch_size=16)
    result = attack_model(Constant(torch.tensor([2.0, -1.0])), _samples(), cfg, num_classes=2, train_adv="none")
    assert events[0][0] == "warn" and any(kind == "attack" for kind, _ in events[1:])
    assert "input-dependence" in events[0][1] and "class 0 for 100% of the 12" in events[0][1]
    assert "zero on 12 of 12" in events[0][1]
    checks = {c.name: c for c in result.checks}
    assert list(checks)[0] == "input-dependence" and checks["input-dependence"].status == "warn"
    assert result.rows[0]["adv_acc"] == 0.5  # and it does look robust on class 0


class Biased(nn.Module):
    """Depends on its input (non-zero gradients) but a huge bias makes it answer class 0 almost always."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.flatten(1).mean(1, keepdim=True)
        return torch.cat([2 * m + 10, m], dim=1)


def test_one_predicted_class_is_flagged_unless_the_labels_are_as_one_sided():
    predicted = torch.zeros(20, dtype=torch.long)
    balanced, one_sided = torch.arange(20) % 2, torch.zeros(20, dtype=torch.long)
    gradients = torch.zeros(20, dtype=torch.bool)
    assert check_input_dependence(predicted, balanced, gradients).status == "warn"
    assert check_input_dependence(predicted, one_sided, gradients).status == "ok"  # a one-class split
    assert check_input_dependence(torch.arange(20) % 2, balanced, gradients).status == "ok"
    assert check_input_dependence(torch.arange(20) % 2, balanced, torch.ones(20, dtype=torch.bool)).status == "warn"
    cfg = AttackConfig(suite="pgd", steps=1, restarts=1)
    checks = {c.name: c for c in attack_model(Biased(), _samples(), cfg, num_classes=2).checks}
    assert checks["input-dependence"].status == "warn" and "zero" not in checks["input-dependence"].message
    assert "class 0 for 100%" in checks["input-dependence"].message


def test_restarts_check_attacks_with_the_rows_own_step_size(monkeypatch):
    """--steps 2 --step-size 1/255 cannot cross the 8/255 ball: the ε=32/255 run takes a larger step, but the
    1-restart PGD that the restarts check compares with the 2-restart row must use the row's own step size."""
    import partcli.attacks.scheduler as scheduler

    calls, real = [], scheduler.craft_adversarial

    def spy(model, x, y, eps, step, steps, **kw):
        calls.append((round(eps * 255, 6), round(step * 255, 6), kw["restarts"]))
        return real(model, x, y, eps, step, steps, **kw)

    monkeypatch.setattr(scheduler, "craft_adversarial", spy)
    cfg = AttackConfig(suite="pgd", eps=8 / 255, steps=2, step_size=1 / 255, restarts=2, batch_size=16)
    result = attack_model(MeanThreshold(False), _samples(), cfg, num_classes=2, train_adv="none")
    assert {c.name: c.status for c in result.checks}["restarts"] == "ok"
    assert sorted(set(calls)) == [(8.0, 1.0, 1), (8.0, 1.0, 2), (32.0, 40.0, 1)]
