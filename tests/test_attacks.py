"""``run_attack_suite`` end to end on tiny checkpoints, PGD's guarantees, the seg attacks and bad input."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from pyautoattack import AutoAttack

from helpers import attack_samples, run_cli, tiny_conv
from known_robustness import PART_COLOURS, LinearPartModel, linear_distance, part_images
from partcli.attacks.outcomes import checkpoint_fingerprint, read_outcomes
from partcli.attacks.pgd import pgd_linf, pgd_linf_restarts
from partcli.attacks.seg_attacks import choose_targets, segmenter_toward
from partcli.attacks.samples import AttackSamples, MaskPool, load_samples
from partcli.attacks.suite import AttackConfig, attack_model, run_attack_suite
from partcli.checkpoint import load_checkpoint, load_model, save_checkpoint
from partcli.data.dataset import PreparedDataset, eval_transform
from partcli.errors import PartcliError
from partcli.evaluate.evaluate import load_for_dataset
from partcli.evaluate.results_csv import ATTACK_COLUMNS
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
def probe_checkpoint(synthetic_data, module_tmp) -> Path:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _probe_checkpoint(synthetic_data, module_tmp / "probe.pt")
    finally:
        torch.set_num_threads(before)


def test_pgd_breaks_clean_model_and_writes_the_csv(probe_checkpoint, synthetic_data, tmp_path):
    out = tmp_path / "attacks.csv"
    result = run_attack_suite(probe_checkpoint, synthetic_data, AttackConfig(split="train", suite="pgd", n=16, **FAST),
                              out)
    (row,) = result.rows
    assert row["clean_acc"] >= 0.9 and row["adv_acc"] <= 0.1  # clean-trained: ~0 at 8/255
    with out.open() as fh:
        written = list(csv.DictReader(fh))
    assert tuple(written[0]) == ATTACK_COLUMNS
    first = written[0]
    assert (first["suite"], first["attack"], first["split"], first["n"]) == ("pgd", "pgd", "train", "16")
    assert (first["steps"], float(first["step_size"]), first["restarts"]) == ("10", pytest.approx(2 / 255), "1")
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
    result = run_attack_suite(probe_checkpoint, synthetic_data, AttackConfig(
        split="train", suite="autoattack", n=6, eps=2 * EPS, seed=0, aa_attacks=["square"], hygiene=False), out)
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
    result = run_attack_suite(probe_checkpoint, synthetic_data, AttackConfig(
        split="train", suite="autoattack", n=4, eps=1 / 255, hygiene=False), tmp_path / "aa.csv")
    outcomes = read_outcomes(result.samples_path)
    ds = PreparedDataset(synthetic_data, "train", eval_transform(32))
    x = torch.stack([ds[i][0] for i in outcomes.index])
    y = torch.tensor([ds.samples[i].label for i in outcomes.index])
    aa = AutoAttack(load_model(probe_checkpoint), norm="Linf", eps=1 / 255, version="standard", device="cpu", seed=0)
    aa.verbose = False
    aa.apgd_targeted.n_target_classes = aa.fab.n_target_classes = 4
    _, y_adv = aa.run_standard_evaluation(x, y, batch_size=256)
    name = "autoattack[apgd-ce,apgd-t,fab-t,square;targets=4]"  # 5 classes: the standard attacks, C - 1 targets
    assert result.rows[0]["attack"] == name
    assert outcomes.robust[name] == (y_adv == y).tolist()


def test_survivors_of_attacks_the_survivors_and_reports_over_the_earlier_set(probe_checkpoint, synthetic_data,
                                                                              tmp_path):
    out = tmp_path / "a.csv"
    weak = dict(FAST, steps=1, step_size=1 / 255)
    first = run_attack_suite(probe_checkpoint, synthetic_data, AttackConfig(
        split="train", suite="pgd", eps=1 / 255, n=12, hygiene=False, **weak), out)
    earlier = read_outcomes(first.samples_path)
    survivors = earlier.survivors()
    assert 0 < len(survivors) < 12
    second = run_attack_suite(probe_checkpoint, synthetic_data, AttackConfig(
        split="train", suite="pgd", eps=2 / 255, seed=1, survivors_of=first.samples_path, hygiene=False, **weak), out)
    (row,) = second.rows
    chained = read_outcomes(second.samples_path)
    assert chained.index == earlier.index and chained.clean_correct == earlier.clean_correct
    robust = chained.robust["pgd"]
    assert all(i in survivors for i, r in zip(chained.index, robust) if r)  # only survivors can be robust
    # the same PGD on the survivors alone gives the same flags: they were the ones attacked
    model, ds = load_for_dataset(probe_checkpoint, synthetic_data, "train")
    alone = attack_model(model, load_samples(ds, survivors), AttackConfig(suite="pgd", eps=2 / 255, seed=1,
                                                                          hygiene=False, **weak), num_classes=5)
    assert [r for i, r in zip(chained.index, robust) if i in survivors] == alone.outcomes.robust["pgd"]
    assert row["attack"] == "pgd after a.pgd.1.samples.csv" and row["n"] == 12
    assert row["clean_acc"] == pytest.approx(first.rows[0]["clean_acc"])
    assert row["adv_acc"] == pytest.approx(sum(robust) / 12) and row["adv_acc"] <= first.rows[0]["adv_acc"]
    with out.open() as fh:
        written = list(csv.DictReader(fh))
    assert [(r["attack"], r["n"]) for r in written] == [("pgd", "12"), ("pgd after a.pgd.1.samples.csv", "12")]
    assert 0 < sum(robust)
    third = run_attack_suite(probe_checkpoint, synthetic_data, AttackConfig(  # chains
        split="train", suite="pgd", eps=2 / 255, seed=2, survivors_of=second.samples_path, hygiene=False, **weak), out)
    assert third.rows[0]["n"] == 12 and third.rows[0]["adv_acc"] <= row["adv_acc"]

    state = load_checkpoint(probe_checkpoint)
    state["model"]["net.fc.bias"][0] += 1e-3  # a retrained or fine-tuned model: another checkpoint
    save_checkpoint(tmp_path / "other.pt", state)
    for ckpt, options, message in ((tmp_path / "other.pt", {}, "--survivors-of .*written for another checkpoint"),
                                   (probe_checkpoint, dict(split="val"), "--survivors-of .*the train split, not val"),
                                   (probe_checkpoint, dict(n=3), "--n 3: not with --survivors-of")):
        with pytest.raises(PartcliError, match=message) as err:
            run_attack_suite(ckpt, synthetic_data, AttackConfig(**{"split": "train", **options}, suite="pgd",
                                                                survivors_of=first.samples_path), None)
        assert "\n" not in str(err.value)


def test_all_suite_combines_every_attack(probe_checkpoint, synthetic_data):
    model, ds = load_for_dataset(probe_checkpoint, synthetic_data, "train")
    cfg = AttackConfig(suite="all", eps=16 / 255, aa_attacks=("square",), sweep_attack="pgd", hygiene=False, **FAST)
    result = attack_model(model, load_samples(ds, list(range(8))), cfg, num_classes=5)
    attacks = [(r["attack"], round(r["eps"] * 255)) for r in result.rows]
    assert attacks == [("autoattack[square]", 16), ("pgd", 16), ("pgd", 8), ("pgd", 24), ("pgd", 32), ("all", 16)]
    robust = result.outcomes.robust
    assert set(robust) == {"autoattack[square]", "pgd", "pgd@8/255", "pgd@24/255", "pgd@32/255", "all"}
    assert robust["all"] == [a and b for a, b in zip(robust["autoattack[square]"], robust["pgd"])]
    assert any("segmenter" in note for note in result.notes)  # a baseline: seg attacks skipped, and said so


def _linear_part_samples(n: int) -> tuple[LinearPartModel, AttackSamples, torch.Tensor]:
    """A linear part model and n samples whose exact ℓ∞ distance is not within 25% of EPS (half below, half above)."""
    model = LinearPartModel(PART_COLOURS)
    x, y, masks = part_images(200)
    dist = linear_distance(model, x, y)
    below, above = ((dist < 0.75 * EPS).nonzero()[:n // 2, 0], (dist > 1.25 * EPS).nonzero()[:n - n // 2, 0])
    keep = torch.cat([below, above]).sort().values
    samples = AttackSamples(x[keep], y[keep], masks[keep].to(torch.int16), torch.ones(len(keep), dtype=torch.bool),
                            keep.tolist(), [f"{i}.png" for i in keep.tolist()])
    return model, samples, dist[keep]


def test_two_stage_attacks_fool_exactly_the_non_robust_samples_of_a_linear_part_model():
    model, samples, dist = _linear_part_samples(12)
    cfg = AttackConfig(suite="seg-two-stage", steps=10, step_size=2 / 255, restarts=2, hygiene=False)
    result = attack_model(model, samples, cfg, num_classes=2)
    assert [r["attack"] for r in result.rows] == [f"seg-two-stage/{s}" for s in
                                                   ("untargeted", "random", "mc-random", "mc-sorted")]
    assert all(r["clean_acc"] == 1.0 for r in result.rows)
    for flags in result.outcomes.robust.values():
        assert flags == (dist > EPS).tolist()  # every sample within EPS of the boundary fooled, no other


def test_targeted_first_stage_moves_the_segmentation_toward_the_target():
    model, samples, _ = _linear_part_samples(8)
    target = torch.where(samples.masks > 0, 0, 1)  # parts become background, background class 0's part
    guide = pgd_linf(model, samples.x, target, 3 * EPS, 2 / 255, 20, True, segmenter_toward,
                     torch.Generator().manual_seed(0))
    with torch.no_grad():
        agree = [(model.segment(x).argmax(1) == target).float().mean() for x in (samples.x, guide)]
    assert agree[1] > agree[0] + 0.05


def test_segmenter_attack_flips_exactly_the_pixels_within_reach():
    model, samples, _ = _linear_part_samples(12)
    cfg = AttackConfig(suite="segmenter", steps=20, step_size=2 / 255, restarts=1, hygiene=False)
    (row,) = attack_model(model, samples, cfg, num_classes=2).rows
    with torch.no_grad():  # per pixel: (own logit − other logit) / ‖∇‖₁ = the exact ℓ∞ distance to a flip
        seg, w = model.segment(samples.x), model.segmenter.weight[:, :, 0, 0]
    own = samples.masks.long()
    dist = torch.full(own.shape, float("inf"))
    for j in range(3):
        d = (seg.gather(1, own[:, None])[:, 0] - seg[:, j]) / (w[own] - w[j]).abs().sum(-1).clamp(min=1e-9)
        dist = torch.where(own == j, dist, torch.minimum(dist, d))
    assert row["clean_pixel_acc"] == 1.0
    assert (dist > EPS).float().mean() - 1e-6 <= row["adv_pixel_acc"] <= (dist > 0.75 * EPS).float().mean()
    assert row["adv_pixel_acc"] < row["clean_pixel_acc"]


class _AreaHead(torch.nn.Module):
    """Class logits = 4 × the area fraction of the class's part (part id = class + 1) in the soft mask."""

    def forward(self, seg_logits: torch.Tensor, image: torch.Tensor, features: torch.Tensor | None = None
                ) -> torch.Tensor:
        return 4 * seg_logits.softmax(1)[:, 1:].mean((2, 3))


def test_mc_sorted_ranks_guide_masks_by_the_head_on_the_masks_themselves():
    """App. D.3 as the paper's code: each pool mask (one-hot × 1000 as part logits) goes through the head; the
    target class's masks (as the head predicts them), most confident first."""
    areas = [(0, 1, 3), (1, 2, 4), (1, 2, 2), (0, 2, 6), (1, 1, 5)]  # (label, part id, side of the square)
    masks = torch.zeros(len(areas), 8, 8, dtype=torch.long)
    for k, (_, part, side) in enumerate(areas):
        masks[k, :side, :side] = part
    images = torch.zeros(len(areas), 3, 8, 8)  # the images carry nothing: ranking them would tie
    pool = MaskPool(torch.tensor([a[0] for a in areas]), lambda k: (images[k], masks[k]))
    scores = pool.scores(_AreaHead(), 3, "cpu", 2)
    assert scores.argmax(1).tolist() == [0, 1, 1, 1, 0]  # mask 3 is labelled 0 but shows class 1's part
    targets = choose_targets("mc-sorted", torch.tensor([0]), torch.tensor([[5.0, 1.0]]), pool.labels, scores, 4,
                             torch.Generator())
    assert targets[:, 0].tolist() == [3, 1, 2, 3]  # class 1 by area 36, 16, 4, then cycling


def test_choose_targets_strategies():
    gen = torch.Generator().manual_seed(0)
    pool_labels = torch.tensor([0, 1, 1, 2, 2, 2])
    y = torch.tensor([0, 1])
    logits = torch.tensor([[9.0, 1.0, 5.0], [0.0, 9.0, 3.0]])  # most likely other class: 2 for both
    rand = choose_targets("random", y, logits, pool_labels, None, 20, gen)
    assert (pool_labels[rand[:, 0]] != 0).all() and (pool_labels[rand[:, 1]] != 1).all()
    mc = choose_targets("mc-random", y, logits, pool_labels, None, 5, gen)
    assert (pool_labels[mc] == 2).all()


@pytest.mark.parametrize("options, message", [
    (dict(suite="fgsm"), "--suite 'fgsm'"),
    (dict(eps="eight"), "--eps 'eight'"),
    (dict(n=1000), "--n 1000"),
    (dict(suite="seg-two-stage", strategies=["sideways"]), "--strategy 'sideways'"),
    (dict(suite="segmenter"), "has no part segmenter"),
])
def test_bad_input_is_one_line_error(probe_checkpoint, synthetic_data, options, message):
    with pytest.raises(PartcliError, match=message) as err:
        run_attack_suite(probe_checkpoint, synthetic_data, AttackConfig(**options), None)
    assert "\n" not in str(err.value)


def test_class_count_mismatch_and_foreign_survivors_file(synthetic_data, probe_checkpoint, tmp_path):
    three = _probe_checkpoint(synthetic_data, tmp_path / "three.pt", num_classes=3)
    with pytest.raises(PartcliError, match="3 classes"):
        run_attack_suite(three, synthetic_data, AttackConfig(), None)
    foreign = tmp_path / "x.samples.csv"
    sha = checkpoint_fingerprint(probe_checkpoint)
    foreign.write_text(f"index,image,label,clean_correct,split,checkpoint,robust:pgd\n0,images/other.png,0,1,test,{sha},1\n")
    with pytest.raises(PartcliError, match="another split or dataset"):
        run_attack_suite(probe_checkpoint, synthetic_data, AttackConfig(survivors_of=foreign), None)


def test_a_suite_registered_in_one_place_is_offered_and_runs():
    """One decorated builder: --suite offers it (before all) and attack_model runs it."""
    from partcli.attacks.registry import SUITE_REGISTRY, Attack, register_suite, suite_names, suites_help

    @register_suite("never-robust", help="a test suite")
    def never_robust(s):
        return [Attack("never-robust", s.cfg.eps, lambda: torch.zeros(len(s.s.y), dtype=torch.bool))]

    try:
        assert suite_names()[-2:] == ("never-robust", "all")
        assert "never-robust (a test suite)" in suites_help()  # --suite's help text
        assert "never-robust" in "".join(run_cli("attack", "--help").out.replace("│", "").split())  # and choices
        model, samples = tiny_conv(3), attack_samples(torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 0]))
        rows = attack_model(model, samples, AttackConfig(suite="never-robust", hygiene=False), num_classes=3).rows
        assert [(r["attack"], r["adv_acc"]) for r in rows] == [("never-robust", 0.0)]
    finally:
        del SUITE_REGISTRY["never-robust"]


@pytest.mark.parametrize("suite, options", [("pgd", {"steps": 3, "restarts": 2, "step_size": 0.02}),
                                            ("autoattack", {"aa_attacks": ["apgd-ce"]})])
def test_keep_adversarial_returns_the_images_each_attack_counted(suite, options):
    """Per sample the image the suite's accuracy counts, in the ball; clean-wrong samples are not attacked and keep
    their clean image; asking changes no row or outcome."""
    from partcli.attacks.api import attack

    torch.manual_seed(1)
    model, x = tiny_conv(3), torch.rand(12, 3, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[::4] = (y[::4] + 1) % 3  # some samples misclassified clean
    eps = 8 / 255  # fools 2 of the 9 clean-correct samples (4/255 fools none)
    kept = attack(model, x, y, suite=suite, eps=eps, seed=0, batch_size=5, hygiene=False, keep_adversarial=True,
                  **options)
    plain = attack(model, x, y, suite=suite, eps=eps, seed=0, batch_size=5, hygiene=False, **options)
    name = kept.rows[0]["attack"]
    assert list(kept.adversarial) == [name] and plain.adversarial == {}
    assert kept.outcomes.robust == plain.outcomes.robust and kept.rows[0]["adv_acc"] == plain.rows[0]["adv_acc"]
    x_adv, robust = kept.adversarial[name], torch.tensor(kept.outcomes.robust[name])
    assert x_adv.shape == x.shape and (x_adv - x).abs().max() <= eps + 1e-6
    with torch.no_grad():
        still_right = model(x_adv).argmax(1) == y
    clean_wrong = torch.zeros(12, dtype=torch.bool)
    clean_wrong[::4] = True
    # some clean-correct sample was fooled, so clean images in place of the adversarial ones would fail this
    assert torch.equal(still_right & ~clean_wrong, robust) and (~robust & ~clean_wrong).any()
    assert torch.equal(x_adv[clean_wrong], x[clean_wrong])
