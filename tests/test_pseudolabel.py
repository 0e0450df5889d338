"""`pseudolabel` (§5.3, App. D.6): kept fraction, withheld masks never read, output contract, provenance,
determinism, relative paths, --unlabelled images, and reuse of a finished segmenter run."""
from __future__ import annotations

import csv
import functools
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2

from conftest import TINY
from partcli.checkpoint import load_checkpoint, load_model
from partcli.data.contract import SPLITS, read_dataset_info, read_split
from partcli.data.dataset import IGNORE_INDEX, PreparedDataset
from partcli.data.synthetic import CLASSES, render_sample
from partcli.errors import PartcliError
from partcli.evaluate.evaluate import evaluate_checkpoint
from partcli.pseudolabel import PseudoLabelConfig, pseudolabel
from partcli.pseudolabel.predict import OWN_CLASS_PARTS, native_resolution_masks, own_class_parts
from partcli.pseudolabel.unlabelled import read_unlabelled
from partcli.train.config import TrainConfig
from partcli.train.builders import seg_label_mask_indices
from partcli.train.loop import run_training
from partcli.pseudolabel.segmenter import segmenter_config
from partcli.train.losses import combined_loss, seg_loss

FRAC, SEED = 0.25, 0
EXTRA_SIZE = (48, 30)  # (W, H) of the --unlabelled images: not the training size, not square
N_EXTRA = 5


def config(data: Path, out: Path, **overrides) -> PseudoLabelConfig:
    values = dict(data=str(data), out=str(out), frac=FRAC, backbone=TINY["backbone"], epochs=1,
                  batch_size=TINY["batch_size"], lr=TINY["lr"], image_size=TINY["image_size"], seed=SEED,
                  device="cpu")
    return PseudoLabelConfig(**{**values, **overrides})


@pytest.fixture(scope="module")
def project(synthetic_data, module_tmp) -> Path:
    """A folder holding a copy of the synthetic dataset whose withheld training masks are deleted, and an
    --unlabelled folder of extra images."""
    root = module_tmp / "project"
    parent = root / "synth"
    shutil.copytree(synthetic_data, parent)
    train = PreparedDataset(parent, "train", check_files=False)
    for i in seg_label_mask_indices(train, FRAC, SEED):
        (parent / train.samples[i].mask).unlink()
    extra = root / "extra"
    (extra / "images").mkdir(parents=True)
    with (extra / "labels.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "label"])
        for i in range(N_EXTRA):
            image, _ = render_sample(np.random.default_rng([7, i]), i % len(CLASSES), EXTRA_SIZE[0])
            image.crop((0, 0, *EXTRA_SIZE)).save(extra / "images" / f"x{i}.png")
            writer.writerow([f"images/x{i}.png", CLASSES[i % len(CLASSES)]])
    return root


@pytest.fixture(scope="module")
def result(project):
    return pseudolabel(config(project / "synth", project / "pseudo", unlabelled=str(project / "extra")))


def train_rows(root: Path):
    """(resolved image path, row) of every training row of a dataset."""
    info = read_dataset_info(root)
    return [((root / s.image).resolve(), s) for s in read_split(root, "train", info)]


def test_kept_fraction_is_stratified_and_the_seg_frac_choice(project, result):
    parent = project / "synth"
    train = PreparedDataset(parent, "train", check_files=False)
    withheld = seg_label_mask_indices(train, FRAC, SEED)
    expected_gt = {(parent / s.image).resolve() for i, s in enumerate(train.samples) if i not in withheld}
    rows = train_rows(result.out)
    gt = {path for path, s in rows if s.mask_source == "gt"}
    assert gt == expected_gt
    per_class = Counter(s.label for _, s in rows if s.mask_source == "gt")
    available = Counter(train.labels)
    assert per_class == {c: round(FRAC * n) for c, n in available.items()}
    assert (result.n_gt, result.n_pseudo) == (len(expected_gt), len(train) - len(expected_gt) + N_EXTRA)
    assert all(s.mask and s.mask_source in ("gt", "pseudo") for _, s in rows)


def test_withheld_masks_are_never_read(project, result):
    # the fixture deleted them; reading any would have raised "mask file missing"
    parent = project / "synth"
    train = PreparedDataset(parent, "train", check_files=False)
    withheld = seg_label_mask_indices(train, FRAC, SEED)
    assert withheld and all(not (parent / train.samples[i].mask).exists() for i in withheld)
    pseudo = {path for path, s in train_rows(result.out) if s.mask_source == "pseudo"}
    assert {(parent / train.samples[i].image).resolve() for i in withheld} <= pseudo


def test_loss_ignores_samples_without_mask_when_cseg_is_one():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, requires_grad=True)
    seg = torch.randn(2, 4, 8, 8, requires_grad=True)
    masks = torch.randint(0, 4, (2, 8, 8))
    masks[1] = IGNORE_INDEX
    y = torch.tensor([0, 1])
    seg_fn = functools.partial(seg_loss, norm=segmenter_config(PseudoLabelConfig(data="d", out="o"), Path("r"), Path("d")).seg_loss_norm)
    loss, _, _ = combined_loss(logits, seg, y, masks, cseg=1.0, seg_fn=seg_fn)
    alone, _, _ = combined_loss(logits[:1], seg[:1], y[:1], masks[:1], cseg=1.0, seg_fn=seg_fn)
    assert torch.equal(loss, alone)
    loss.backward()
    assert torch.count_nonzero(seg.grad[1]) == 0 and torch.count_nonzero(logits.grad) == 0
    none, _, _ = combined_loss(logits, seg, y, torch.full_like(masks, IGNORE_INDEX), cseg=1.0, seg_fn=seg_fn)
    assert none.item() == 0.0


def test_own_class_parts_by_hand():
    """App. D.6 as the paper's code: other classes' parts zeroed, own parts scaled by (1 − p_bg) / (p_bg + Σ own)."""
    probs = torch.tensor([[0.30, 0.20, 0.30, 0.60],   # background
                          [0.25, 0.05, 0.10, 0.10],   # part 1: class A
                          [0.00, 0.00, 0.05, 0.00],   # part 2: class A
                          [0.45, 0.75, 0.55, 0.30]])  # part 3: class B
    own = torch.tensor([True, True, True, False])  # the image is of class A
    # pixel 0: 0.25·0.7/0.55 = 0.318 > 0.30 (plain masking would say background); pixel 1: 0.05·0.8/0.25 = 0.16
    # < 0.20; pixel 2: 0.10·0.7/0.45 = 0.156 < 0.30; pixel 3: background wins outright (never part 3)
    assert own_class_parts(probs[:, None, :], own)[0].tolist() == [1, 0, 0, 0]


class _PrefersClassB(torch.nn.Module):
    """Part logits: on the left half part 3 (class B) first, part 1 (class A) second; on the right half background."""

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(x), 4, *x.shape[2:])
        half = x.shape[3] // 2
        logits[:, 3, :, :half], logits[:, 1, :, :half] = 3.0, 2.0
        logits[:, 0, :, half:], logits[:, 3, :, half:] = 5.0, 3.0
        return logits


def test_pseudo_masks_keep_only_the_images_own_class_parts_at_native_size(tmp_path):
    sizes = [(20, 12), (9, 15)]  # (W, H)
    for k, size in enumerate(sizes):
        Image.new("RGB", size).save(tmp_path / f"{k}.png")
    files = [(tmp_path, f"{k}.png") for k in range(len(sizes))]
    labels, part_to_class = [0, 1], [0, 0, 1]  # parts 1, 2: class 0 (A); part 3: class 1 (B)
    masks = list(native_resolution_masks(_PrefersClassB(), files, labels, part_to_class, image_size=16))
    a, b = masks
    assert a.shape == (12, 20) and b.shape == (15, 9)
    assert set(np.unique(a)) == {0, 1} and (a[:, :8] == 1).all() and (a[:, 12:] == 0).all()  # never part 3
    assert set(np.unique(b)) == {0, 3} and (b[:, :3] == 3).all() and (b[:, 6:] == 0).all()  # never part 1


def test_output_validates_trains_and_holds_the_segmenters_own_class_masks(project, result, tmp_path):
    info = read_dataset_info(result.out)
    for split in SPLITS:
        ds = PreparedDataset(result.out, split)
        for i in range(len(ds)):
            image, mask, _, has_mask = ds[i]
            assert has_mask and mask.shape == image.shape[1:] and int(mask.max()) <= info.num_parts
    # every pseudo mask, recomputed from the segmenter: resize, segment, upsample, then App. D.6's rule
    segmenter = load_model(result.segmenter_checkpoint).eval()
    part_class = np.array([-1] + info.part_to_class())
    pseudo = [(path, s) for path, s in train_rows(result.out) if s.mask_source == "pseudo"]
    for path, s in pseudo:
        rgb = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)
        x = v2.functional.to_dtype(v2.functional.resize(rgb, [TINY["image_size"]] * 2, antialias=True), torch.float32,
                                   scale=True)
        with torch.no_grad():
            logits = F.interpolate(segmenter.segment(x[None]), size=rgb.shape[1:], mode="bilinear",
                                   align_corners=False)[0]
        p = logits.softmax(0).numpy()
        own = (part_class == s.label) | (part_class == -1)
        q = np.where(own[:, None, None], p, 0.0)
        q[1:] *= (1 - q[0]) / q.sum(0)
        expected = q.argmax(0)
        written = np.array(Image.open(result.out / s.mask))
        assert set(np.unique(written)) <= set(np.flatnonzero(own))  # only background and the own class's parts
        assert (written == expected).mean() > 0.999  # float rounding may flip a tie
    run = run_training(TrainConfig(data=str(result.out), out=str(tmp_path / "run"), arch="downsampled", epochs=1,
                                   **TINY))
    assert (run / "checkpoints" / "last.pt").is_file()
    assert len((run / "metrics.csv").read_text().splitlines()) == 2


def test_val_and_test_keep_their_ground_truth(project, result):
    parent = project / "synth"
    info = read_dataset_info(parent)
    for split in ("val", "test"):
        old, new = read_split(parent, split, info), read_split(result.out, split, info)
        assert [(parent / s.image).resolve() for s in old] == [(result.out / s.image).resolve() for s in new]
        assert all(s.mask_source == "gt" for s in new)
        for a, b in zip(old, new):
            assert np.array_equal(np.array(Image.open(parent / a.mask)), np.array(Image.open(result.out / b.mask)))


def test_provenance(project, result):
    info = read_dataset_info(result.out)
    src, extra = info.source, info.extra["pseudolabel"]
    assert src["command"] == "pseudolabel" and (src["frac"], src["seed"]) == (FRAC, SEED)
    assert src["pseudo_masks"] == OWN_CLASS_PARTS and "own parts" in src["pseudo_masks"]
    assert (result.out / src["parent"]).resolve() == (project / "synth").resolve()
    assert (result.out / src["unlabelled"]).resolve() == (project / "extra").resolve()
    assert src["segmenter"]["backbone"] == "resnet18" and src["partcli_version"]
    ckpt = result.out / extra["segmenter_checkpoint"]
    assert ckpt == result.segmenter_checkpoint
    state = load_checkpoint(ckpt)
    train_cfg = state["config"]["train"]
    # trained on the labelled subset only: every sample of it keeps its mask
    assert (train_cfg["seg_frac"], train_cfg["cseg"], train_cfg["seed"], train_cfg["adv"]) == (1.0, 1.0, SEED, "none")
    assert state["config"]["dataset"]["name"].startswith("synthetic-labelled-")
    assert src["segmenter"]["train_samples"] == result.n_gt
    assert (result.out / "segmenter" / "metrics.csv").is_file()
    assert not (project / "pseudo.segmenter").exists() and not (project / "pseudo.segmenter-data").exists()
    assert extra["train_masks"] == {"gt": result.n_gt, "pseudo": result.n_pseudo, "unlabelled": N_EXTRA}
    val = evaluate_checkpoint(ckpt, project / "synth", "val", device="cpu")
    assert extra["segmenter_val"]["pixel_acc"] == pytest.approx(val.pixel_acc) == pytest.approx(result.val_pixel_acc)
    assert extra["segmenter_val"]["miou"] == pytest.approx(val.miou)


def test_unlabelled_images_get_native_size_pseudo_masks(project, result):
    extra_root = (project / "extra").resolve()
    rows = [(p, s) for p, s in train_rows(result.out) if extra_root in p.parents]
    assert len(rows) == N_EXTRA
    for i, (_, s) in enumerate(rows):
        assert s.mask_source == "pseudo" and s.label == i % len(CLASSES)
        assert Image.open(result.out / s.mask).size == EXTRA_SIZE


def test_same_seed_same_assignment_and_masks(project, result, tmp_path):
    again = pseudolabel(config(project / "synth", tmp_path / "again", unlabelled=str(project / "extra")))
    first, second = train_rows(result.out), train_rows(again.out)
    assert [(p, s.mask_source, s.label) for p, s in first] == [(p, s.mask_source, s.label) for p, s in second]
    for (_, a), (_, b) in zip(first, second):
        assert np.array_equal(np.array(Image.open(result.out / a.mask)), np.array(Image.open(again.out / b.mask)))


def test_paths_survive_moving_both_folders(project, result):
    moved = project.parent / "moved"
    os.replace(project, moved)
    try:
        out = moved / "pseudo"
        for split in SPLITS:
            ds = PreparedDataset(out, split)
            assert all(moved.resolve() in (out / s.image).resolve().parents for s in ds.samples)
            for i in range(len(ds)):
                ds[i]
    finally:
        os.replace(moved, project)


def test_segmenter_trains_on_the_labelled_subset_only(project, tmp_path, monkeypatch):
    """--frac 0.25: the segmenter's epochs see the kept quarter of the training split, not the whole split."""
    import partcli.pseudolabel.segmenter as segmenter

    seen, real = [], segmenter.run_training

    def spy(tcfg, **kwargs):
        train = PreparedDataset(tcfg.data, "train")
        seen.append((len(train), sum(train.has_mask(i) for i in range(len(train)))))
        return real(tcfg, **kwargs)

    monkeypatch.setattr(segmenter, "run_training", spy)
    parent = project / "synth"
    result = pseudolabel(config(parent, tmp_path / "subset"))
    kept = len(PreparedDataset(parent, "train", check_files=False)) - len(seg_label_mask_indices(
        PreparedDataset(parent, "train", check_files=False), FRAC, SEED))
    assert seen == [(kept, kept)] and kept == result.n_gt < result.n_gt + result.n_pseudo
    assert not (tmp_path / "subset.segmenter-data").exists()  # CSVs only, removed once the dataset is written


def test_finished_segmenter_is_reused_not_retrained(project, result, tmp_path, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("the finished segmenter run should have been reused")

    monkeypatch.setattr("partcli.pseudolabel.segmenter.run_training", no_training)
    parent = project / "synth"
    # a run left in the work folder by an interrupted pseudolabel
    shutil.copytree(result.out / "segmenter", tmp_path / "new.segmenter")
    new = pseudolabel(config(parent, tmp_path / "new"))
    assert (new.out / "segmenter" / "checkpoints" / "last.pt").is_file()
    assert not (tmp_path / "new.segmenter").exists()
    # the segmenter of a dataset being overwritten
    again = pseudolabel(config(parent, tmp_path / "new"), overwrite=True)
    assert again.val_pixel_acc == pytest.approx(result.val_pixel_acc)
    # other settings in the work folder: refused, naming what differs
    shutil.copytree(result.out / "segmenter", tmp_path / "other.segmenter")
    with pytest.raises(PartcliError, match="lr: 0.05 -> 0.01"):
        pseudolabel(config(parent, tmp_path / "other", lr=0.01))


def test_bad_inputs_fail_before_training(project, synthetic_data, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "labels.csv").write_text("image,label\nimages/x.png,dragon\n")
    with pytest.raises(PartcliError, match="dragon"):
        read_unlabelled(bad, list(CLASSES))
    with pytest.raises(PartcliError, match="--unlabelled"):
        pseudolabel(config(project / "synth", tmp_path / "o1", unlabelled=str(tmp_path / "missing")))
    with pytest.raises(PartcliError, match="nothing to pseudo-label"):
        pseudolabel(config(synthetic_data, tmp_path / "o2", frac=1.0))
    with pytest.raises(PartcliError, match="--frac"):
        pseudolabel(config(synthetic_data, tmp_path / "o3", frac=0.0))
    with pytest.raises(PartcliError, match="mask file missing"):  # a kept mask that is missing, found up front
        pseudolabel(config(project / "synth", tmp_path / "o4", frac=0.5))
    assert not (tmp_path / "o4.segmenter").exists()
    with pytest.raises(PartcliError, match="--out"):
        pseudolabel(config(project / "synth", project), overwrite=True)


def test_a_segmenter_run_written_before_a_new_setting_existed_is_still_the_same_run(tmp_path):
    """A checkpoint lacking a later TrainConfig field (here ``replanned``) compares as holding its default."""
    import dataclasses

    from partcli.pseudolabel.segmenter import _differences, segmenter_config

    tcfg = segmenter_config(PseudoLabelConfig(data=str(tmp_path), out=str(tmp_path / "o")), tmp_path / "seg",
                            tmp_path / "subset")
    from types import SimpleNamespace

    older = SimpleNamespace(train={k: v for k, v in dataclasses.asdict(tcfg).items() if k != "replanned"},
                            dataset=SimpleNamespace(name="subset"))  # what _differences reads of a Checkpoint
    assert _differences(older, tcfg, "subset") == ""
    assert "epochs: 50 -> 3" in _differences(older, dataclasses.replace(tcfg, epochs=3), "subset")
