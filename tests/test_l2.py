"""ℓ2 attacks and training (``--norm L2``): PGD's step, projection and random start by hand, its guarantees, AutoAttack
in the ℓ2 ball on a model of exactly known ℓ2 robustness, the ℓ2 ε sweep and hygiene radii, the options' rules and
a one-epoch ℓ2 training run."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from helpers import attack_samples, run_cli, tiny_conv
from known_robustness import PART_COLOURS, Linear, LinearPartModel, part_images
from partcli.attacks import autoattack_runner
from partcli.attacks.autoattack_runner import autoattack_plan, build_autoattack, run_autoattack
from partcli.attacks.config import AttackConfig
from partcli.attacks.hygiene import CLEAN_MODEL_EPS, LARGE_EPS, CheckRadii, check_radii, run_hygiene
from partcli.attacks.pgd import craft_adversarial, l2_direction, pgd_l2, pgd_l2_from, pgd_l2_restarts, project_l2
from partcli.attacks.suite import SWEEP_EPS, attack_config, attack_model, eps_label, run_attack_suite, sweep_radii
from partcli.checkpoint import save_checkpoint
from partcli.errors import PartcliError
from partcli.models.registry import ModelConfig, build_model
from partcli.train.config import TrainConfig
from partcli.train.validate import validate_config as validate_train
from test_hygiene import MeanThreshold

EPS = 0.5


def _l2(delta: torch.Tensor) -> torch.Tensor:
    return delta.flatten(1).norm(dim=1)


class TwoPixel(nn.Module):
    """Logits (w·x, 0) on 1×1×2 images: with label 0 the cross-entropy's input gradient is (p₀ − 1)·w, pointing
    along −w, so an ℓ2 step of α moves x by exactly −α·w/‖w‖₂."""

    def __init__(self, w: tuple[float, float]):
        super().__init__()
        self.w = torch.tensor(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1) @ self.w
        return torch.stack([z, torch.zeros_like(z)], dim=1)


# ------------------------------------------------------------------------------------------- PGD by hand
def test_the_l2_step_and_projection_by_hand_on_two_pixels():
    assert torch.allclose(l2_direction(torch.tensor([[[[3.0, 4.0]]]])), torch.tensor([[[[0.6, 0.8]]]]))
    assert torch.equal(l2_direction(torch.zeros(1, 1, 1, 2)), torch.zeros(1, 1, 1, 2))  # no NaN at g = 0
    x = torch.tensor([[[[0.5, 0.5]]], [[[0.9, 0.5]]]])
    # δ = (0.3, 0.4), ‖δ‖ = 0.5 > ε = 0.25: halved; the second sample is inside the ball, then clamped at 1
    x_adv = torch.tensor([[[[0.8, 0.9]]], [[[1.2, 0.5]]]])
    assert torch.allclose(project_l2(x, x_adv, 0.25), torch.tensor([[[[0.65, 0.7]]], [[[1.0, 0.5]]]]))

    model, y = TwoPixel((3.0, 4.0)), torch.tensor([0])
    start = torch.tensor([[[[0.5, 0.5]]]])
    one_step = pgd_l2_from(model, start, start, y, 1.0, 0.1, 1)
    assert torch.allclose(one_step, torch.tensor([[[[0.44, 0.42]]]]), atol=1e-6)  # x − 0.1·(0.6, 0.8)
    projected = pgd_l2_from(model, start, start, y, 0.05, 0.1, 1)
    assert torch.allclose(projected, torch.tensor([[[[0.47, 0.46]]]]), atol=1e-6)  # δ of norm 0.1 scaled to 0.05


def test_the_random_start_is_uniform_in_the_ball():
    """In a 2-pixel ball a uniform point lies within ε/2 of the centre with probability 1/4 (on the sphere: never)."""
    x = torch.full((4000, 1, 1, 2), 0.5)
    start = pgd_l2(TwoPixel((1.0, 1.0)), x, torch.zeros(4000, dtype=torch.long), 0.1, 0.0, 0,
                   generator=torch.Generator().manual_seed(0))
    r = _l2(start - x)
    assert r.max() <= 0.1 + 1e-6
    assert 0.22 < (r <= 0.05).float().mean() < 0.28
    angle = torch.atan2(*(start - x).flatten(1).T.flip(0))
    assert 0.45 < (angle > 0).float().mean() < 0.55  # and every direction alike


def test_l2_pgd_stays_in_the_ball_and_the_pixel_range():
    model = tiny_conv(5)
    x = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    x[:, :, :3] = 1.0  # pixels at the range's edge, where the ball pokes out of [0, 1]
    with torch.no_grad():
        y = model(x).argmax(1)
    for x_adv in (pgd_l2_restarts(model, x, y, EPS, 0.2, 5, 2, generator=torch.Generator().manual_seed(0)),
                  craft_adversarial(model, x, y, EPS, 0.2, 5, norm="L2", restarts=3,
                                    generator=torch.Generator().manual_seed(1))):
        assert (_l2(x_adv - x) <= EPS + 1e-5).all() and x_adv.min() >= 0 and x_adv.max() <= 1
        assert _l2(x_adv - x).max() > EPS / 2  # it moved
        assert (x_adv - x).abs().max() > 8 / 255  # beyond what the ℓ∞ ball would allow: it is not the ℓ∞ attack


def test_l2_pgd_scales_the_fp16_loss_as_the_linf_code_does():
    """A confident linear model whose input gradients (~6e-9) underflow fp16: with the loss scale, ℓ2 PGD under
    fp16 autocast takes the steps it takes in fp32 (g/‖g‖₂ ignores the scale)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    with torch.no_grad():
        signs = torch.where(torch.arange(48) % 3 == 0, 1.0, -1.0)
        model[1].weight.copy_(torch.stack([signs, -signs]) * 1e-3)
        model[1].bias.copy_(torch.tensor([12.0, 0.0]))
    x = torch.rand(4, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(4, dtype=torch.long)
    fp16 = craft_adversarial(model, x, y, EPS, EPS / 4, 8, norm="L2",
                             autocast=lambda: torch.autocast("cpu", dtype=torch.float16),
                             generator=torch.Generator().manual_seed(1))
    fp32 = pgd_l2(model, x, y, EPS, EPS / 4, 8, generator=torch.Generator().manual_seed(1))
    start = pgd_l2(model, x, y, EPS, EPS / 4, 0, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(fp16, fp32, atol=1e-4) and (fp32 - start).abs().max() > 0.01  # the same, and it moved


def _brightness_task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy 3×8×8 images of mean brightness 0.4 (class 0) or 0.6 (class 1)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(2, (n,), generator=g)
    x = (0.5 + (y.float() - 0.5).view(-1, 1, 1, 1) * 0.2 + (torch.rand(n, 3, 8, 8, generator=g) - 0.5) * 0.3)
    return x.clamp(0, 1), y


def test_l2_pgd_beats_random_noise_of_the_same_norm_on_a_trained_model():
    """Moving a mean by 0.1 takes an ℓ2 push of 0.1·√192 ≈ 1.4 along the uniform direction; noise of that norm
    moves it by ~1.4/192."""
    eps = 1.5
    torch.manual_seed(0)
    model = tiny_conv(2).train()
    x, y = _brightness_task(256, 0)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    x, y = _brightness_task(128, 1)
    g = torch.Generator().manual_seed(2)
    noise = torch.randn(x.shape, generator=g)
    x_noise = (x + eps * noise / _l2(noise).view(-1, 1, 1, 1)).clamp(0, 1)
    x_adv = craft_adversarial(model, x, y, eps, 2.5 * eps / 10, 10, norm="L2", generator=g)
    with torch.no_grad():
        clean, noisy, adv = (model(v) for v in (x, x_noise, x_adv))
    acc = {k: (v.argmax(1) == y).float().mean().item() for k, v in (("clean", clean), ("noise", noisy), ("adv", adv))}
    assert acc["clean"] > 0.9 and acc["noise"] > 0.9, acc  # a trained model that noise of norm ε barely moves
    assert acc["adv"] < acc["noise"] - 0.5, acc
    assert F.cross_entropy(adv, y) > F.cross_entropy(noisy, y)


# ------------------------------------------------------------------------------------------- AutoAttack
def _linear_l2_samples(model: Linear, eps: float, per_side: int = 4) -> tuple[torch.Tensor, torch.Tensor,
                                                                          torch.Tensor]:
    """3×8×8 inputs in [0.3, 0.7] with their exact ℓ2 distance to a misclassification under a linear model (the
    margin over ‖w_y − w_j‖₂, smallest over j; exact while the distance stays below 0.3, the room to the range's
    edge): the ``per_side`` ones nearest to 0.6·ε and to 1.5·ε."""
    g = torch.Generator().manual_seed(1)
    x = (0.3 + 0.4 * torch.rand(4000, 3, 8, 8, generator=g))
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(1)
    w = model.weight.detach()
    gaps = logits.gather(1, y[:, None]) - logits  # margins to every class
    norms = (w[y][:, None, :] - w[None, :, :]).norm(dim=2)
    dist = torch.where(torch.arange(w.shape[0]) == y[:, None], math.inf, gaps / norms.clamp(min=1e-12)).min(1).values
    pick = torch.cat([(dist - 0.6 * eps).abs().argsort()[:per_side], (dist - 1.5 * eps).abs().argsort()[:per_side]])
    return x[pick], y[pick], dist[pick]


def test_autoattack_l2_finds_exactly_the_samples_within_the_l2_ball():
    """5 classes: the standard attacks with 4 target classes (partcli's class-count rule) in the ℓ2 ball."""
    eps = 0.1
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(5, 3 * 8 * 8, generator=gen)
    model = Linear(weight, -weight.sum(1) * 0.5).eval()  # balanced classes around the grey image
    x, y, dist = _linear_l2_samples(model, eps)
    assert (dist < 0.7 * eps).sum() == 4 and (dist > 1.3 * eps).sum() == 4
    result = run_autoattack(model, x, y, eps, num_classes=5, batch_size=8, norm="L2")
    assert result.plan.name == "autoattack[apgd-ce,apgd-t,fab-t,square;targets=4]"
    assert torch.equal(result.robust, dist > eps)
    linf = run_autoattack(model, x, y, eps, num_classes=5, batch_size=8, attacks=["apgd-ce"])
    assert not linf.robust.any()  # the ℓ∞ ball of the same radius is far larger: it fools them all


def test_autoattack_keeps_the_class_count_rules_in_the_l2_ball():
    model = tiny_conv(5)
    aa = build_autoattack(model, autoattack_plan(5), 0.5, 0, "cpu", norm="L2")
    assert aa.norm == "L2" and {a.norm for a in (aa.apgd, aa.apgd_targeted, aa.fab, aa.square)} == {"L2"}
    assert aa.attacks_to_run == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert aa.apgd_targeted.n_target_classes == aa.fab.n_target_classes == 4
    few = build_autoattack(model, autoattack_plan(3), 0.5, 0, "cpu", norm="L2")
    assert few.attacks_to_run == ["apgd-ce", "fab", "square"]


@pytest.fixture(scope="module")
def tiny_checkpoint(module_tmp) -> Path:
    """An untrained resnet18 baseline for the synthetic dataset (the suite only needs logits)."""
    torch.manual_seed(0)
    cfg = ModelConfig(arch="resnet", backbone="resnet18", num_classes=5)
    path = module_tmp / "tiny.pt"
    save_checkpoint(path, {"config": {"model": cfg.to_dict(), "train": {"adv": "none"},
                                      "dataset": {"name": "synthetic", "image_size": 32}},
                           "model": build_model(cfg).state_dict()})
    return path


def test_autoattack_l2_suite_writes_l2_rows(tiny_checkpoint, synthetic_data, tmp_path, monkeypatch):
    norms = []
    real = autoattack_runner.build_autoattack
    monkeypatch.setattr(autoattack_runner, "build_autoattack",
                        lambda *a, **k: norms.append(k["norm"]) or real(*a, **k))
    out = tmp_path / "attacks.csv"
    result = run_attack_suite(tiny_checkpoint, synthetic_data, out=out, suite="autoattack", norm="L2", eps=EPS, n=8,
                              aa_attacks=["apgd-ce"], hygiene=False, batch_size=8)
    with out.open() as fh:
        (row,) = list(csv.DictReader(fh))
    assert (row["attack"], row["norm"], float(row["eps"])) == ("autoattack[apgd-ce]", "L2", EPS)
    assert result.rows[0]["clean_acc"] > 0 and norms == ["L2"]  # something was attacked, in the ℓ2 ball


# ------------------------------------------------------------------------------------------- ε sweep, hygiene
def test_the_l2_sweep_radii_grow_with_the_square_root_of_the_image_size():
    assert sweep_radii("L2", 3 * 32 * 32) == (0.25, 0.5, 1.0, 2.0)
    assert sweep_radii("L2", 3 * 224 * 224) == (1.75, 3.5, 7.0, 14.0)
    assert sweep_radii("Linf", 3 * 224 * 224) == SWEEP_EPS == (8 / 255, 16 / 255, 24 / 255, 32 / 255)
    assert (eps_label(1.0, "L2"), eps_label(0.2, "L2"), eps_label(8 / 255)) == ("1", "0.2", "8/255")


def test_the_l2_eps_sweep_attacks_at_its_radii_in_the_l2_ball(monkeypatch):
    import partcli.attacks.scheduler as scheduler

    calls, real = [], scheduler.craft_adversarial
    monkeypatch.setattr(scheduler, "craft_adversarial",
                        lambda *a, **k: calls.append((a[3], a[4], k["norm"])) or real(*a, **k))
    model = tiny_conv(5)
    x = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x).argmax(1)
    cfg = AttackConfig(suite="eps-sweep", sweep_attack="pgd", norm="L2", eps=0.125, steps=4, restarts=1,
                       hygiene=False)
    result = attack_model(model, attack_samples(x, y), cfg, num_classes=5)
    radii = (0.0625, 0.125, 0.25, 0.5)  # (0.25, 0.5, 1, 2)·√(192 / 3072) for 3×8×8 images
    assert [r["eps"] for r in result.rows] == pytest.approx(radii) and {r["norm"] for r in result.rows} == {"L2"}
    assert [(e, n) for e, _, n in calls] == [(pytest.approx(e), "L2") for e in radii]
    # steps that cross each ball, and never shorter than --eps's (2.5·0.125/4)
    assert [s for _, s, _ in calls] == pytest.approx([max(2.5 * 0.125, 2.5 * e) / 4 for e in radii])
    assert list(result.outcomes.robust) == ["pgd@0.0625", "pgd", "pgd@0.25", "pgd@0.5"]


def test_hygiene_radii_in_the_l2_ball_hold_the_linf_ones():
    d = 3 * 8 * 8
    radii = check_radii("L2", d)
    # 32/255·√192 and 8/255·√192: the ℓ2 balls holding the ℓ∞ balls of the checks
    assert (radii.large, radii.clean) == (pytest.approx(1.73884, abs=1e-5), pytest.approx(0.43471, abs=1e-5))
    assert check_radii("Linf", d) == CheckRadii() and (CheckRadii().large, CheckRadii().clean) == (LARGE_EPS,
                                                                                                   CLEAN_MODEL_EPS)
    calls = []

    def pgd(eps, restarts):
        calls.append((eps, restarts))
        return 0.0
    rows = [{"attack": "pgd", "eps": e, "adv_acc": 0.3, "n": 100, "clean_acc": 0.9} for e in sweep_radii("L2", d)]
    checks = {c.name: c for c in run_hygiene(rows, "eps-sweep", 0.5, 1, "none", pgd, radii)}
    assert calls == [(radii.large, 1), (radii.clean, 1)]  # no sweep row is at either radius: both run PGD
    assert checks["large-eps"].status == checks["clean-model"].status == "ok"
    assert "ℓ2 ε=1.74" in checks["large-eps"].message and "ℓ2 ε=0.435" in checks["clean-model"].message
    linf = {c.name: c for c in run_hygiene(rows, "eps-sweep", 0.5, 1, "none", pgd)}
    assert linf["large-eps"].status == "not run"  # ℓ∞'s eps-sweep reads its 32/255 row and has none here


def test_l2_hygiene_fires_on_a_gradient_masked_model_only():
    """Means 0.025 from the threshold: an ℓ2 push of 0.025·√192 ≈ 0.35 flips them, inside both check radii."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(12) % 2
    x = 0.475 + 0.05 * y.view(-1, 1, 1, 1).float() + (torch.rand(12, 3, 8, 8, generator=g) - 0.5) * 0.01
    cfg = AttackConfig(suite="pgd", norm="L2", eps=0.1, steps=20, restarts=2, batch_size=16)
    statuses = {}
    for masked in (False, True):
        result = attack_model(MeanThreshold(masked), attack_samples(x, y), cfg, num_classes=2, train_adv="none")
        assert result.rows[0]["norm"] == "L2" and result.rows[0]["adv_acc"] == 1.0  # 0.1 < 0.35: robust at ε
        statuses[masked] = {c.name: c.status for c in result.checks}
    assert statuses[False]["large-eps"] == statuses[False]["clean-model"] == "ok"
    assert statuses[True]["large-eps"] == statuses[True]["clean-model"] == "warn"


def test_the_all_suite_skips_the_linf_only_seg_attacks_of_a_part_model():
    """(``part_images`` builds channels-last tensors, which pyautoattack's ℓ2 APGD cannot ``.view``: partcli hands
    it contiguous ones.)"""
    x, y, masks = part_images(8)
    samples = attack_samples(x, y)
    samples.masks, samples.has_mask = masks.to(torch.int16), torch.ones(8, dtype=torch.bool)
    cfg = AttackConfig(suite="all", norm="L2", eps=0.5, aa_attacks=("apgd-ce",), sweep_attack="pgd", steps=2,
                       restarts=1, hygiene=False)
    result = attack_model(LinearPartModel(PART_COLOURS), samples, cfg, num_classes=2)
    assert not any(r["attack"].startswith("seg") for r in result.rows) and result.rows[-1]["attack"] == "all"
    assert "--norm L2: seg-single, seg-two-stage and segmenter skipped (ℓ∞ only)" in result.notes


# ------------------------------------------------------------------------------------------- options
def test_attack_defaults_follow_the_norm():
    linf, l2 = AttackConfig(), AttackConfig(norm="L2", eps=0.5)
    assert (linf.eps, linf.pgd_step_size) == (8 / 255, 0.001)
    assert l2.pgd_step_size == pytest.approx(2.5 * 0.5 / 100)
    assert AttackConfig(norm="L2", eps="1/2", step_size=0.01).pgd_step_size == 0.01
    with pytest.raises(PartcliError, match=r"--norm L2: give --eps, e\.g\. 0\.5"):
        AttackConfig(norm="L2")
    with pytest.raises(PartcliError, match="--norm L2: give --eps"):
        attack_config(None, {"norm": "L2"})  # 8/255 of the default ℓ∞ config does not become an ℓ2 radius
    assert attack_config(None, {"norm": "L2", "eps": 2.0}).eps == 2.0


def test_radii_above_one_are_allowed_for_l2_only(tiny_checkpoint, synthetic_data):
    model = tiny_conv(5)
    x, y = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1])
    rows = attack_model(model, attack_samples(x, y), AttackConfig(suite="pgd", norm="L2", eps=2.0, steps=1,
                                                                   restarts=1, hygiene=False), num_classes=5).rows
    assert rows[0]["eps"] == 2.0
    with pytest.raises(PartcliError, match=r"--eps 2: expected an ℓ∞ radius in \(0, 1\]"):
        attack_model(model, attack_samples(x, y), AttackConfig(suite="pgd", eps=2.0), num_classes=5)
    with pytest.raises(PartcliError, match="--eps 14: larger than 13.86, the ℓ2 diagonal of a 3×8×8 image"):
        attack_model(model, attack_samples(x, y), AttackConfig(suite="pgd", norm="L2", eps=14.0), num_classes=5)
    with pytest.raises(PartcliError, match="--suite seg-single: the segmenter-guided attacks are ℓ∞ only"):
        run_attack_suite(tiny_checkpoint, synthetic_data, AttackConfig(suite="seg-single", norm="L2", eps=0.5), None)

    ok = TrainConfig(adv="pgd", norm="L2", eps=2.0, step_size=0.5, image_size=32)
    validate_train(ok)
    for bad, message in ((TrainConfig(adv="pgd", eps=2.0), "give at most 1"),
                         (TrainConfig(adv="pgd", norm="L2", eps=56.0, step_size=1.0, image_size=32),
                          "at most 55.43, the ℓ2 diagonal of a 3×32×32 image"),
                         (TrainConfig(adv="trades", norm="L2"), "--norm L2: give --eps"),
                         (TrainConfig(adv="pgd", norm="L2", eps=1.0), r"give --step-size, e\.g\. 0\.25")):
        with pytest.raises(PartcliError, match=message) as err:
            validate_train(bad)
        assert "\n" not in str(err.value)
    validate_train(TrainConfig(adv="none", norm="L2"))  # clean training attacks nothing: no ℓ2 budget needed


@pytest.mark.parametrize("args, culprit", [(("--norm", "L3"), "L3"), (("--norm", "L2"), "--norm L2: give --eps")])
def test_the_attack_command_refuses_a_bad_norm_in_one_line(args, culprit, tiny_checkpoint, synthetic_data, tmp_path):
    out = tmp_path / "a.csv"
    result = run_cli("--quiet", "attack", "--ckpt", tiny_checkpoint, "--data", synthetic_data, "--out", out, *args)
    lines = result.err.strip().splitlines()
    assert result.code == 2 and len(lines) == 1 and culprit in lines[0], result.err
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------- training
def test_l2_training_records_its_norm_and_attacks_in_the_l2_ball(synthetic_data, tmp_path, monkeypatch):
    import partcli.train.loop as loop
    import partcli.train.step as step

    calls = []
    for module in (step, loop):
        real = module.craft_adversarial
        monkeypatch.setattr(module, "craft_adversarial", lambda *a, real=real, where=module.__name__, **k:
                            calls.append((where, a[3], a[4], k["norm"])) or real(*a, **k))
    out = tmp_path / "run"
    result = run_cli("--quiet", "train", "--data", synthetic_data, "--out", out, "--arch", "resnet", "--epochs", 1,
                     "--image-size", 32, "--batch-size", 40, "--device", "cpu", "--adv", "pgd", "--norm", "L2",
                     "--eps", "1.0", "--step-size", "0.25", "--steps", 1)
    assert result.code == 0, result.output
    assert yaml.safe_load((out / "config.yaml").read_text())["norm"] == "L2"
    assert {where for where, *_ in calls} == {"partcli.train.step", "partcli.train.loop"}  # training and validation
    assert {(eps, step_size, norm) for _, eps, step_size, norm in calls} == {(1.0, 0.25, "L2")}
