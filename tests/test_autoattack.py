"""The AutoAttack wrapper: App. B's few-class switch with the standard settings, the target-class fix for fewer than 10 classes (C − 1 targets)
(which attacks run, with which settings, on exactly known models), equality with a direct pyautoattack call,
RNG hygiene and resumption."""
from __future__ import annotations

import json

import pytest
import torch
from pyautoattack import AutoAttack
from torch import nn

from helpers import attack_samples, tiny_conv
from known_robustness import linear_model, samples_around
from partcli.attacks.autoattack_runner import (FEW_CLASS_ATTACKS, STANDARD_ATTACKS, autoattack_plan,
                                               run_autoattack)
from partcli.errors import PartcliError

EPS = 8 / 255


def _data(model: nn.Module, n: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs in [0, 1] labelled with the model's own predictions (all clean-correct)."""
    x = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return x, model(x).argmax(1)


def test_plan_follows_app_b_and_stack_md():
    two = autoattack_plan(2)
    assert two.attacks == FEW_CLASS_ATTACKS and "App. B" in two.note
    assert two.name == "autoattack[apgd-ce,fab,square]"
    five = autoattack_plan(5)
    assert (five.attacks, five.n_target_classes) == (STANDARD_ATTACKS, 4) and "4 target classes" in five.note
    assert five.name == "autoattack[apgd-ce,apgd-t,fab-t,square;targets=4]"
    eleven = autoattack_plan(11)
    assert (eleven.n_target_classes, eleven.note, eleven.name) == (9, None, "autoattack")
    assert autoattack_plan(11, ["square"]).name == "autoattack[square]"
    with pytest.raises(PartcliError, match="expected some of"):
        autoattack_plan(5, ["pgd"])


@pytest.fixture
def attacks_run(monkeypatch) -> list[tuple]:
    """Records every pyautoattack attack call: (attack, restarts, target classes or queries, samples)."""
    from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
    from pyautoattack.fab_base import FABAttack
    from pyautoattack.square import SquareAttack

    calls: list[tuple] = []

    def spy(cls, describe):
        original = cls.perturb

        def perturb(self, x, *args, **kwargs):
            calls.append(describe(self) + (len(x),))
            return original(self, x, *args, **kwargs)
        monkeypatch.setattr(cls, "perturb", perturb)

    spy(APGDAttack, lambda a: (f"apgd-{a.loss}", a.n_restarts, None))
    spy(APGDAttack_targeted, lambda a: ("apgd-t", a.n_restarts, a.n_target_classes))
    spy(FABAttack, lambda a: ("fab-t" if a.targeted else "fab", a.n_restarts,
                              a.n_target_classes if a.targeted else None))
    spy(SquareAttack, lambda a: ("square", a.n_restarts, a.n_queries))
    return calls


def test_two_classes_run_apgd_ce_fab_square_with_the_standard_settings(attacks_run):
    """App. B's 2-class AutoAttack with the standard version's settings (1 restart each, square's 5000 queries) on a
    linear model whose exact ℓ∞ distances leave half the samples robust, so that every attack runs."""
    model = linear_model(2)
    x, y, dist = samples_around(model, [EPS], per_gap=4)
    result = run_autoattack(model, x, y, EPS, num_classes=2, batch_size=8)
    assert attacks_run == [("apgd-ce", 1, None, 8), ("fab", 1, None, 4), ("square", 1, 5000, 4)]
    assert torch.equal(result.robust, dist > EPS) and list(result.accuracy_after) == list(FEW_CLASS_ATTACKS)
    assert result.plan.name == "autoattack[apgd-ce,fab,square]"


def test_five_classes_run_the_targeted_attacks_with_four_targets(attacks_run):
    model = linear_model(5)
    x, y, dist = samples_around(model, [EPS], per_gap=4)
    result = run_autoattack(model, x, y, EPS, num_classes=5, batch_size=8)
    assert attacks_run == [("apgd-ce", 1, None, 8), ("apgd-t", 1, 4, 4), ("fab-t", 1, 4, 4), ("square", 1, 5000, 4)]
    assert torch.equal(result.robust, dist > EPS)


def _direct(model, x, y, attacks, eps, batch_size, seed=0):
    """One pyautoattack call over all samples: the standard version's settings with ``attacks``."""
    aa = AutoAttack(model, norm="Linf", eps=eps, version="standard", device="cpu", seed=seed)
    aa.verbose = False
    aa.attacks_to_run = list(attacks)
    _, y_adv = aa.run_standard_evaluation(x, y, batch_size=batch_size)
    return y_adv == y


def test_matches_direct_pyautoattack_and_restores_rng():
    model = tiny_conv(11)
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
    model = tiny_conv(11)
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



def test_autoattacks_own_warnings_become_notes():
    """A model that outputs probabilities: AutoAttack's range check warns (logger "auto-attack"); the warning
    comes back in the result and in the suite's notes, once."""
    from partcli.attacks.suite import AttackConfig, attack_model

    model = nn.Sequential(tiny_conv(3), nn.Softmax(dim=1)).eval()
    x, y = _data(model, 4)
    result = run_autoattack(model, x, y, 2 / 255, num_classes=3, attacks=["apgd-ce"], batch_size=4)
    assert any(w.startswith("AutoAttack apgd-ce: ") and "probability distribution" in w for w in result.warnings)
    cfg = AttackConfig(suite="autoattack", eps=2 / 255, aa_attacks=("apgd-ce",), hygiene=False)
    notes = attack_model(model, attack_samples(x, y), cfg, num_classes=3).notes
    assert sum("probability distribution" in note for note in notes) == 1
    assert not run_autoattack(tiny_conv(3), x, y, 2 / 255, num_classes=3, attacks=["apgd-ce"], batch_size=4).warnings


def test_state_files_are_named_beside_the_results_csv_one_per_radius(tmp_path):
    from partcli.attacks.autoattack_runner import state_path_at_radius, state_path_for

    base = state_path_for(tmp_path / "attacks.csv", {"run": 1})
    assert base.parent == tmp_path and base.name.startswith("attacks.autoattack-state.") and base.suffix == ".json"
    assert base != state_path_for(tmp_path / "attacks.csv", {"run": 2})
    assert state_path_at_radius(base, 16 / 255).name == base.name.replace(".json", ".16-255.json")
