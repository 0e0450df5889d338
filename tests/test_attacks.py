"""``run_attack_suite`` end to end on tiny checkpoints, PGD's guarantees, the seg attacks and bad input."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from pyautoattack import AutoAttack

from partcli.attacks.outcomes import read_outcomes
from partcli.attacks.pgd import pgd_linf, pgd_linf_restarts
from partcli.attacks.seg_attacks import choose_targets, segmenter_attack, two_stage_attack
from partcli.attacks.suite import AttackConfig, MaskPool, attack_model, load_samples, run_attack_suite
from partcli.checkpoint import load_model, save_checkpoint
from partcli.data.dataset import PreparedDataset, eval_transform
from partcli.errors import PartcliError
from partcli.evaluate.evaluate import load_for_dataset
from partcli.evaluate.results_csv import RESULT_COLUMNS
from partcli.models.registry import ModelConfig, build_model

EPS = 8 / 255
FAST = dict(steps=10, step_size=2 / 255, restarts=1, batch_size=32)


def _probe_checkpoint(data: Path, path: Path, num_classes: int = 5) -> Path:
    """A clean-trained tiny baseline: a random resnet18 whose last layer is fitted on the clean train split
    (fits it perfectly; 2 epochs of full training leave the shared fixtures at chance)."""
    torch.manual_seed(0)
    cfg = ModelConfig(arch="resnet", backbone="resnet18", num_classes=num_classes)
    model = build_model(cfg).eval()
    ds = PreparedDataset(data, "train", eval_transform(32))
    x, y = torch.stack([ds[i][0] for i in range(len(ds))]), torch.tensor(ds.labels) % num_classes
    fc, model.net.fc = model.net.fc, torch.nn.Identity()
    with torch.no_grad():
        features = model(x)
    model.net.fc = fc
    opt = torch.optim.Adam(fc.parameters(), 1e-2)
    for _ in range(300):
        opt.zero_grad()
        F.cross_entropy(fc(features), y).backward()
        opt.step()
    save_checkpoint(path, {"config": {"model": cfg.to_dict(), "train": {"adv": "none"},
                                      "dataset": {"name": "synthetic", "image_size": 32}},
                           "model": model.state_dict()})
    return path


@pytest.fixture(scope="module")
def probe_checkpoint(synthetic_data, tmp_path_factory) -> Path:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _probe_checkpoint(synthetic_data, tmp_path_factory.mktemp("probe") / "probe.pt")
    finally:
        torch.set_num_threads(before)


def test_pgd_breaks_clean_model_and_writes_the_csv(probe_checkpoint, synthetic_data, tmp_path):
    out = tmp_path / "attacks.csv"
    result = run_attack_suite(probe_checkpoint, synthetic_data, split="train", suite="pgd", n=16, out=out, **FAST)
    (row,) = result.rows
    assert row["clean_acc"] >= 0.9 and row["adv_acc"] <= 0.1  # clean-trained: ~0 at 8/255
    with out.open() as fh:
        written = list(csv.DictReader(fh))
    assert tuple(written[0]) == RESULT_COLUMNS
    first = written[0]
    assert (first["suite"], first["attack"], first["split"], first["n"]) == ("pgd", "pgd", "train", "16")
    assert float(written[0]["adv_acc"]) == pytest.approx(row["adv_acc"], abs=1e-5)
    outcomes = read_outcomes(result.samples_path)
    assert result.samples_path.name == "attacks.pgd.1.samples.csv"
    assert len(outcomes.index) == 16 and list(outcomes.robust) == ["pgd"]
    assert sum(outcomes.robust["pgd"]) / 16 == pytest.approx(row["adv_acc"])
    checks = {c.name: c.status for c in result.checks}
    assert checks["clean-model"] == "ok" and checks["large-eps"] == "ok"


def test_pgd_respects_the_ball_and_the_pixel_range(probe_checkpoint, synthetic_data):
    model, ds = load_for_dataset(probe_checkpoint, synthetic_data, "train")
    s = load_samples(ds, list(range(8)))
    x = s.x.clone()
    x[:, :, :4] = 1.0  # pixels at the range's edge, where the ball pokes out of [0, 1]
    x_adv = pgd_linf_restarts(model, x, s.y, EPS, 0.01, 5, 2, generator=torch.Generator().manual_seed(0))
    assert (x_adv - x).abs().max() <= EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() > EPS / 2  # it moved


def test_restarts_keep_the_per_sample_worst_case():
    """A model whose verdict on a sample is a coin flip of PGD's random start: any fooling restart must stick."""
    class Coin(torch.nn.Module):
        def forward(self, x):
            p = x[:, 0, 0, 0] - 0.5
            return torch.stack([-p, p], dim=1) * 1000

    x = torch.full((64, 3, 2, 2), 0.5 - 1e-4)
    y = torch.zeros(64, dtype=torch.long)
    model = Coin()
    best = pgd_linf_restarts(model, x, y, EPS, 0.0, 0, 3, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)  # replay the same three random starts one by one
    fooled = [model(pgd_linf(model, x, y, EPS, 0.0, 0, True, generator=gen)).argmax(1) != y for _ in range(3)]
    any_fooled = fooled[0] | fooled[1] | fooled[2]
    assert torch.equal(model(best).argmax(1) != y, any_fooled)
    assert any_fooled.sum() > fooled[0].sum()  # later restarts added fooled samples


def test_autoattack_suite_matches_pyautoattack_directly(probe_checkpoint, synthetic_data, tmp_path):
    out = tmp_path / "aa.csv"
    # square at 16/255 fools this fragile model within a few queries (apgd-ce would run 100 steps): a cheap check of
    # the plumbing (samples, transform, model, seed); the per-sample logic is checked on a toy model in
    # test_autoattack.py and with the standard version in the slow test below
    result = run_attack_suite(probe_checkpoint, synthetic_data, split="train", suite="autoattack", n=6, eps=2 * EPS,
                              seed=0, out=out, aa_attacks=["square"], hygiene=False)
    outcomes = read_outcomes(result.samples_path)
    model = load_model(probe_checkpoint)
    ds = PreparedDataset(synthetic_data, "train", eval_transform(32))
    x = torch.stack([ds[i][0] for i in outcomes.index])
    y = torch.tensor([ds.samples[i].label for i in outcomes.index])
    aa = AutoAttack(model, norm="Linf", eps=2 * EPS, version="custom", attacks=["square"], device="cpu", seed=0)
    aa.verbose = False
    _, y_adv = aa.run_standard_evaluation(x, y, batch_size=256)
    assert result.rows[0]["attack"] == "autoattack[square]"
    assert result.rows[0]["adv_acc"] == pytest.approx((y_adv == y).float().mean().item())
    assert outcomes.robust["autoattack[square]"] == (y_adv == y).tolist()
    assert not list(tmp_path.glob("*autoattack-state*"))  # the resume state is gone once the run completed


@pytest.mark.slow
def test_standard_autoattack_suite_matches_pyautoattack_directly(probe_checkpoint, synthetic_data, tmp_path):
    result = run_attack_suite(probe_checkpoint, synthetic_data, split="train", suite="autoattack", n=4, eps=1 / 255,
                              out=tmp_path / "aa.csv", hygiene=False)
    outcomes = read_outcomes(result.samples_path)
    ds = PreparedDataset(synthetic_data, "train", eval_transform(32))
    x = torch.stack([ds[i][0] for i in outcomes.index])
    y = torch.tensor([ds.samples[i].label for i in outcomes.index])
    aa = AutoAttack(load_model(probe_checkpoint), norm="Linf", eps=1 / 255, version="standard", device="cpu", seed=0)
    aa.verbose = False
    aa.apgd_targeted.n_target_classes = aa.fab.n_target_classes = 4
    _, y_adv = aa.run_standard_evaluation(x, y, batch_size=256)
    assert outcomes.robust["autoattack"] == (y_adv == y).tolist()


def test_survivors_of_restricts_to_robust_samples(probe_checkpoint, synthetic_data, tmp_path):
    out = tmp_path / "a.csv"
    weak = dict(FAST, steps=1, step_size=1 / 255)
    first = run_attack_suite(probe_checkpoint, synthetic_data, split="train", suite="pgd", eps=1 / 255, n=12,
                             out=out, hygiene=False, **weak)
    survivors = read_outcomes(first.samples_path).survivors()
    assert 0 < len(survivors) < 12
    second = run_attack_suite(probe_checkpoint, synthetic_data, split="train", suite="pgd", eps=1 / 255,
                              out=out, survivors_of=first.samples_path, hygiene=False, **weak)
    assert read_outcomes(second.samples_path).index == survivors
    assert second.samples_path.name == "a.pgd.2.samples.csv" and second.rows[0]["clean_acc"] == 1.0


def test_all_suite_combines_every_attack(probe_checkpoint, synthetic_data):
    model, ds = load_for_dataset(probe_checkpoint, synthetic_data, "train")
    cfg = AttackConfig(suite="all", eps=16 / 255, aa_attacks=("square",), hygiene=False, **FAST)
    result = attack_model(model, load_samples(ds, list(range(8))), cfg, num_classes=5)
    attacks = [(r["attack"], round(r["eps"] * 255)) for r in result.rows]
    assert attacks == [("autoattack[square]", 16), ("pgd", 16), ("pgd", 8), ("pgd", 24), ("pgd", 32), ("all", 16)]
    robust = result.outcomes.robust
    assert set(robust) == {"autoattack[square]", "pgd", "pgd@8/255", "pgd@24/255", "pgd@32/255", "all"}
    assert robust["all"] == [a and b for a, b in zip(robust["autoattack[square]"], robust["pgd"])]
    assert any("segmenter" in note for note in result.notes)  # a baseline: seg attacks skipped, and said so


def test_seg_attacks_on_a_part_model(bbox_checkpoint, synthetic_data):
    """The bbox fixture predicts one class for every image: attack the train samples of that class."""
    model, ds = load_for_dataset(bbox_checkpoint, synthetic_data, "train")
    with torch.no_grad():
        predicted = model(torch.stack([ds[i][0] for i in range(10)])).argmax(1)
    chosen = [i for i in range(len(ds)) if ds.samples[i].label == int(predicted[0])][:2]
    samples = load_samples(ds, chosen)
    cfg = AttackConfig(suite="seg-two-stage", steps=1, step_size=EPS, restarts=1, hygiene=False)
    result = attack_model(model, samples, cfg, num_classes=5, pool=MaskPool.from_samples(load_samples(ds, range(10))))
    assert [r["attack"] for r in result.rows] == [f"seg-two-stage/{s}" for s in
                                                   ("untargeted", "random", "mc-random", "mc-sorted")]
    assert all(r["clean_acc"] == 1.0 for r in result.rows)

    seg = attack_model(model, samples, AttackConfig(suite="segmenter", steps=2, step_size=EPS, restarts=1,
                                                    hygiene=False), num_classes=5)
    (row,) = seg.rows
    assert row["adv_pixel_acc"] <= row["clean_pixel_acc"] and row["clean_pixel_acc"] > 0.5

    masks = samples.masks.long()
    x_adv = segmenter_attack(model, samples.x, masks, EPS, 0.01, 2, 1, torch.Generator().manual_seed(0))
    x_two = two_stage_attack(model, samples.x, samples.y, masks, False, EPS, 0.01, 1, torch.Generator().manual_seed(0))
    for adv in (x_adv, x_two):
        assert (adv - samples.x).abs().max() <= EPS + 1e-6 and adv.min() >= 0 and adv.max() <= 1


def test_choose_targets_strategies():
    gen = torch.Generator().manual_seed(0)
    pool_labels = torch.tensor([0, 1, 1, 2, 2, 2])
    y = torch.tensor([0, 1])
    logits = torch.tensor([[9.0, 1.0, 5.0], [0.0, 9.0, 3.0]])  # most likely other class: 2 for both
    rand = choose_targets("random", y, logits, pool_labels, None, 20, gen)
    assert (pool_labels[rand[:, 0]] != 0).all() and (pool_labels[rand[:, 1]] != 1).all()
    mc = choose_targets("mc-random", y, logits, pool_labels, None, 5, gen)
    assert (pool_labels[mc] == 2).all()
    scores = torch.tensor([0.0, 0.0, 0.0, 0.2, 0.9, 0.5])
    ranked = choose_targets("mc-sorted", y, logits, pool_labels, scores, 3, gen)
    assert ranked[:, 0].tolist() == [4, 5, 3]


@pytest.mark.parametrize("options, message", [
    (dict(suite="fgsm"), "--suite 'fgsm'"),
    (dict(eps="eight"), "--eps 'eight'"),
    (dict(n=1000), "--n 1000"),
    (dict(suite="seg-two-stage", strategies=["sideways"]), "--strategy sideways"),
    (dict(suite="segmenter"), "has no part segmenter"),
])
def test_bad_input_is_one_line_error(probe_checkpoint, synthetic_data, options, message):
    with pytest.raises(PartcliError, match=message) as err:
        run_attack_suite(probe_checkpoint, synthetic_data, out=None, **options)
    assert "\n" not in str(err.value)


def test_class_count_mismatch_and_foreign_survivors_file(synthetic_data, probe_checkpoint, tmp_path):
    three = _probe_checkpoint(synthetic_data, tmp_path / "three.pt", num_classes=3)
    with pytest.raises(PartcliError, match="3 classes"):
        run_attack_suite(three, synthetic_data, out=None)
    foreign = tmp_path / "x.samples.csv"
    foreign.write_text("index,image,label,clean_correct,robust:pgd\n0,images/other.png,0,1,1\n")
    with pytest.raises(PartcliError, match="another split or dataset"):
        run_attack_suite(probe_checkpoint, synthetic_data, out=None, survivors_of=foreign)
