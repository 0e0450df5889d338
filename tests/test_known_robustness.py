"""End to end through the attack suite on models whose robustness is known exactly: a constant model (robust by
construction) and linear models (exact minimal ℓ∞ distance per sample). AutoAttack and PGD must fool every sample
closer than ε and no other; samples within 25% of ε (10% in the sweep) are left out, so that a correct attack
cannot miss."""
from __future__ import annotations

import pytest
import torch

from helpers import attack_samples
from known_robustness import Constant, linear_model, samples_around
from partcli.attacks.suite import SWEEP_EPS, AttackConfig, attack_model

EPS = 8 / 255


def test_a_constant_model_is_robust_under_every_attack():
    model = Constant(torch.tensor([2.0, -1.0]))
    x = torch.rand(8, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 0, 0, 1, 0, 0, 1, 0])  # the two class-1 samples are clean errors
    for suite in ("autoattack", "pgd"):
        result = attack_model(model, attack_samples(x, y), AttackConfig(suite=suite, eps=32 / 255, hygiene=False),
                              num_classes=2)
        (row,) = result.rows
        assert row["clean_acc"] == row["adv_acc"] == 0.75
        assert list(result.outcomes.robust.values())[0] == (y == 0).tolist()


@pytest.mark.parametrize("num_classes", [2, 5])
def test_autoattack_and_pgd_fool_exactly_the_samples_closer_than_eps(num_classes):
    model = linear_model(num_classes)
    x, y, dist = samples_around(model, [EPS], per_gap=5)
    y[0] = (y[0] + 1) % num_classes  # a clean error: never robust
    expected = (dist > EPS) & (torch.arange(len(y)) != 0)
    for suite in ("autoattack", "pgd"):
        result = attack_model(model, attack_samples(x, y), AttackConfig(suite=suite, hygiene=False),
                              num_classes=num_classes)
        assert list(result.outcomes.robust.values())[0] == expected.tolist(), suite


@pytest.mark.parametrize("sweep_attack, name", [("autoattack", "autoattack[apgd-ce]"), ("pgd", "pgd")])
def test_eps_sweep_fools_exactly_the_samples_closer_than_each_radius(sweep_attack, name):
    """AutoAttack's full list at one radius is checked above; here apgd-ce alone keeps 4 radii cheap."""
    model = linear_model(2, seed=3)
    x, y, dist = samples_around(model, list(SWEEP_EPS), per_gap=2, margin=0.1)  # radii 1.5× apart at most
    cfg = AttackConfig(suite="eps-sweep", sweep_attack=sweep_attack, aa_attacks=("apgd-ce",), hygiene=False)
    result = attack_model(model, attack_samples(x, y), cfg, num_classes=2)
    assert [(r["attack"], round(r["eps"] * 255)) for r in result.rows] == [(name, e) for e in (8, 16, 24, 32)]
    for row, flags in zip(result.rows, result.outcomes.robust.values()):
        assert flags == (dist > row["eps"]).tolist()
        assert row["adv_acc"] == pytest.approx((dist > row["eps"]).float().mean().item())
