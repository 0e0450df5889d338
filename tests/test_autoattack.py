"""The AutoAttack wrapper: App. B's few-class switch, STACK.md's target-class fix, equality with a direct
pyautoattack call, RNG hygiene and resumption."""
from __future__ import annotations

import json

import pytest
import torch
from pyautoattack import AutoAttack
from torch import nn

from partcli.attacks.autoattack_runner import (FEW_CLASS_ATTACKS, STANDARD_ATTACKS, autoattack_plan,
                                               build_autoattack, run_autoattack)
from partcli.errors import PartcliError

EPS = 8 / 255


def _toy(num_classes: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 3 * 3, num_classes)]
    return nn.Sequential(*layers).eval()


def _data(model: nn.Module, n: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs in [0, 1] labelled with the model's own predictions (all clean-correct)."""
    x = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return x, model(x).argmax(1)


def test_plan_follows_app_b_and_stack_md():
    two = autoattack_plan(2)
    assert (two.version, two.attacks) == ("custom", FEW_CLASS_ATTACKS) and "App. B" in two.note
    five = autoattack_plan(5)
    assert (five.version, five.attacks, five.n_target_classes) == ("standard", STANDARD_ATTACKS, 4)
    assert "4 target classes" in five.note
    eleven = autoattack_plan(11)
    assert (eleven.n_target_classes, eleven.note, eleven.name) == (9, None, "autoattack")
    with pytest.raises(PartcliError, match="expected some of"):
        autoattack_plan(5, ["pgd"])


def test_five_classes_set_target_classes():
    aa = build_autoattack(_toy(5), autoattack_plan(5), EPS, seed=0, device="cpu")
    assert aa.attacks_to_run == list(STANDARD_ATTACKS)
    assert aa.apgd_targeted.n_target_classes == 4 and aa.fab.n_target_classes == 4


@pytest.mark.slow
def test_five_classes_standard_version_runs():
    """The targeted attacks are the ones that crash with 9 targets on 5 classes; survivors of 1/255 reach them."""
    model = _toy(5)
    x, y = _data(model, 4)
    result = run_autoattack(model, x, y, 1 / 255, num_classes=5)
    assert list(result.accuracy_after) == list(STANDARD_ATTACKS) and result.robust.any()


def test_two_class_model_switches_to_untargeted_attacks():
    model = _toy(2)
    x, y = _data(model, 4)
    result = run_autoattack(model, x, y, 0.5, num_classes=2, batch_size=4)  # runs where the standard one crashes
    assert result.plan.attacks == FEW_CLASS_ATTACKS and result.plan.name == "autoattack[apgd-ce+fab+square]"
    assert list(result.accuracy_after) == list(FEW_CLASS_ATTACKS) and not result.robust.any()


def _direct(model, x, y, attacks, eps, batch_size, seed=0):
    aa = AutoAttack(model, norm="Linf", eps=eps, version="custom", attacks=list(attacks), device="cpu", seed=seed)
    aa.verbose = False
    _, y_adv = aa.run_standard_evaluation(x, y, batch_size=batch_size)
    return y_adv == y


def test_matches_direct_pyautoattack_and_restores_rng():
    model = _toy(11)
    x, y = _data(model, 4)
    y[0] = (y[0] + 1) % 11  # one clean error: never attacked, never robust
    direct = _direct(model, x, y, ["apgd-ce"], 2 / 255, batch_size=4)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    ours = run_autoattack(model, x, y, 2 / 255, num_classes=11, seed=0, batch_size=4, attacks=["apgd-ce"])
    assert torch.equal(torch.rand(3), expected_next)  # AutoAttack's reseeding did not leak out
    assert torch.equal(ours.robust, direct)
    assert not ours.robust[0] and 0 < ours.robust.sum() < len(y)  # the comparison is not vacuous


def test_resumes_after_the_last_finished_attack(tmp_path):
    model = _toy(11)
    x, y = _data(model, 6)
    state = tmp_path / "aa-state.json"
    key = {"run": 1, "attacks": ["square", "apgd-ce"], "n": len(y)}
    # an interrupted run: square finished (and, say, fooled sample 0), apgd-ce never started
    survivors = torch.ones(len(y), dtype=torch.bool)
    survivors[0] = False
    state.write_text(json.dumps({"key": key, "done": ["square"], "robust": survivors.int().tolist(), "seconds": 12.5}))
    resumed = run_autoattack(model, x, y, 2 / 255, num_classes=11, attacks=["square", "apgd-ce"], state_path=state,
                             state_key={"run": 1}, batch_size=8)
    alone = run_autoattack(model, x[1:], y[1:], 2 / 255, num_classes=11, attacks=["apgd-ce"], batch_size=8)
    assert not resumed.robust[0] and torch.equal(resumed.robust[1:], alone.robust)
    assert (resumed.resumed_after, resumed.earlier_seconds) == (["square"], 12.5)
    assert (alone.resumed_after, alone.earlier_seconds) == ([], 0.0)
    assert not state.exists()  # removed once the run completed
    state.write_text(json.dumps({"key": key, "done": ["square"], "robust": survivors.int().tolist()}))
    with pytest.raises(PartcliError, match="another run"):
        run_autoattack(model, x, y, 2 / 255, num_classes=11, attacks=["square", "apgd-ce"], state_path=state,
                       state_key={"run": 2})

