"""Adversarial training (`partcli train`): PGD properties, frozen attacks, seg-frac, seg-labels, robustness."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import TINY
from hand_labels import object_masks_by_hand, pixel_acc_by_hand
from helpers import tiny_cnn, tiny_part_model
from partcli.attacks.pgd import frozen_eval, pgd_linf
from partcli.checkpoint import Checkpoint, load_checkpoint, model_from_checkpoint
from partcli.data.dataset import PreparedDataset, eval_transform
from partcli.data.seg_labels import box_masks, mask_centroids, object_masks
from partcli.data.synthetic import prepare_synthetic
from partcli.errors import PartcliError
from partcli.train.config import TrainConfig
from partcli.train.builders import seg_label_mask_indices
from partcli.train.loop import Trainer, run_training
from partcli.train.validate import validate_config
from partcli.train.losses import centroid_loss, seg_loss
from partcli.train.step import training_loss

EPS = 8 / 255


@pytest.fixture(scope="module")
def small_data(module_tmp) -> Path:
    """200 synthetic images of 16 px (fast enough to train a tiny CNN hundreds of steps)."""
    out = module_tmp / "synth16"
    prepare_synthetic(out, n=200, image_size=16, seed=0)
    return out


def load_split(root: Path, split: str, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ds = PreparedDataset(root, split, eval_transform(size))
    xs, masks, ys, _ = zip(*(ds[i] for i in range(len(ds))))
    return torch.stack(xs), torch.stack(masks), torch.tensor(ys)


# ------------------------------------------------------------------------------------------- PGD and BN
def test_pgd_stays_in_eps_ball_and_image_range_and_raises_the_loss(synthetic_data):
    x, _, y = load_split(synthetic_data, "val", 32)
    model = tiny_part_model().eval()
    with frozen_eval(model):
        x_adv = pgd_linf(model, x, y, EPS, 2 / 255, 5, random_start=True)
    assert (x_adv - x).abs().max().item() <= EPS + 1e-6
    assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0
    with torch.no_grad():
        assert F.cross_entropy(model(x_adv), y).item() > F.cross_entropy(model(x), y).item()


def test_attack_leaves_batchnorm_statistics_and_parameter_grads_unchanged(synthetic_data):
    x, masks, y = load_split(synthetic_data, "val", 32)
    model = tiny_part_model().train()
    loss, _ = training_loss(model, model, x, y, masks, TrainConfig(adv="none"))
    loss.backward()  # every parameter now has a .grad that crafting must not touch
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    with frozen_eval(model):
        assert not model.training and not any(p.requires_grad for p in model.parameters())
        pgd_linf(model, x, y, EPS, 2 / 255, 3)
    assert model.training and all(p.requires_grad for p in model.parameters())
    for n, p in model.named_parameters():
        assert torch.equal(p.grad, grads[n]), n
    for n, b in model.named_buffers():
        assert torch.equal(b, buffers[n]), n


@pytest.mark.parametrize("adv", ["pgd", "trades"])
def test_adversarial_step_updates_batchnorm_once_per_training_forward(synthetic_data, adv):
    """k attack steps + the training forward(s) must count as the training forwards only."""
    x, masks, y = load_split(synthetic_data, "val", 32)
    model = tiny_part_model().train()
    counters = [b for n, b in model.named_buffers() if n.endswith("num_batches_tracked")]
    before = [c.item() for c in counters]
    training_loss(model, model, x, y, masks, TrainConfig(adv=adv, steps=3))
    forwards = 1 if adv == "pgd" else 2  # TRADES also classifies the clean x in training mode
    assert [c.item() for c in counters] == [b + forwards for b in before]


# ------------------------------------------------------------------------------------------- robustness
def train_tiny(x, masks, y, adv: str, steps: int) -> nn.Module:
    model = tiny_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    cfg = TrainConfig(adv=adv, eps=4 / 255, step_size=1.6 / 255, steps=3)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(y), (32,), generator=g)
        model.train()
        loss, _ = training_loss(model, model, x[idx], y[idx], masks[idx], cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def pgd_accuracy_and_loss(model: nn.Module, x, y, eps: float) -> tuple[float, float]:
    torch.manual_seed(1)
    with frozen_eval(model):
        x_adv = pgd_linf(model, x, y, eps, eps / 4, 10)
    with torch.no_grad():
        logits = model(x_adv)
    return (logits.argmax(1) == y).float().mean().item(), F.cross_entropy(logits, y).item()


def robustness_of_twins(data: Path, steps: int) -> dict[str, tuple[float, float]]:
    """PGD accuracy and loss (train split, ε = 4/255) of a tiny CNN trained with Eq. 8 and of its Eq. 5 twin."""
    x, masks, y = load_split(data, "train", 16)
    return {adv: pgd_accuracy_and_loss(train_tiny(x, masks, y, adv, steps), x, y, 4 / 255) for adv in ("none", "pgd")}


def test_pgd_training_lowers_the_adversarial_loss_of_a_tiny_model(small_data):
    """Fast variant: 100 steps with the same data order; the PGD-trained twin has a lower PGD loss."""
    result = robustness_of_twins(small_data, 100)
    assert result["pgd"][1] < result["none"][1] - 0.1, result


@pytest.mark.slow
def test_pgd_trained_tiny_model_is_more_robust_than_its_clean_twin(small_data):
    """300 steps: the PGD-trained twin also has a clearly higher PGD accuracy."""
    result = robustness_of_twins(small_data, 300)
    assert result["pgd"][1] < result["none"][1] - 0.1, result
    assert result["pgd"][0] > result["none"][0] + 0.05, result


# ------------------------------------------------------------------------------------------- seg-frac
def test_seg_frac_keeps_a_stratified_seeded_fraction_per_class(synthetic_data):
    ds = PreparedDataset(synthetic_data, "train")
    dropped = seg_label_mask_indices(ds, 0.25, seed=3)
    assert dropped == seg_label_mask_indices(ds, 0.25, seed=3)
    assert dropped != seg_label_mask_indices(ds, 0.25, seed=4)
    for cls in range(5):
        members = [i for i, lab in enumerate(ds.labels) if lab == cls]  # 16 per class
        kept = [i for i in members if i not in dropped]
        assert len(kept) == round(0.25 * len(members))
    assert seg_label_mask_indices(ds, 1.0, seed=3) == set()


def test_seg_frac_in_the_trainer_withholds_masks_and_their_loss(synthetic_data, tmp_path):
    trainer = Trainer(TrainConfig(data=str(synthetic_data), out=str(tmp_path / "r"), arch="bbox", seg_frac=0.5,
                      epochs=1, **TINY))
    ds = trainer.train_set
    ds.transform = eval_transform(TINY["image_size"])  # no random crop: the masks below are the same pixels
    assert len(ds.drop_masks) == len(ds) // 2
    dropped = min(ds.drop_masks)
    kept = min(set(range(len(ds))) - ds.drop_masks)
    _, mask, _, has_mask = ds[dropped]
    assert not has_mask and (mask == -1).all()
    _, mask, _, has_mask = ds[kept]
    assert has_mask and (mask >= 0).all()
    # the training loss of a (dropped, kept) batch, against Eq. 5 written out: (1 − c)·CE + c·(pixel CE of the
    # kept sample only)
    x, masks, y, _ = (torch.stack([torch.as_tensor(v) for v in t]) for t in zip(ds[dropped], ds[kept]))
    model, c = trainer.model.eval(), trainer.cfg.cseg
    loss, _ = training_loss(model, model, x, y, masks, trainer.cfg, seg_fn=trainer.seg_fn)
    with torch.no_grad():
        logits, seg = model(x, return_seg=True)
        ce = -logits.log_softmax(1)[[0, 1], y].mean()
        pixel_ce = -seg[1].log_softmax(0).gather(0, masks[1][None].long())[0].mean()
        withheld = PreparedDataset(synthetic_data, "train", ds.transform)[dropped][1]  # the mask it had
        both = -torch.cat([seg[0].log_softmax(0).gather(0, withheld[None].long())[0].flatten(),
                           seg[1].log_softmax(0).gather(0, masks[1][None].long())[0].flatten()]).mean()
    # --seg-loss-norm batch (the default, the paper's code): the dropped sample adds a zero to a mean over 2 samples
    assert trainer.cfg.seg_loss_norm == "batch"
    assert loss.item() == pytest.approx(((1 - c) * ce + c * pixel_ce / 2).item(), rel=1e-5)
    assert abs(both - pixel_ce / 2) > 0.1  # with the withheld mask the seg term would differ: the check can fail


# ------------------------------------------------------------------------------------------- seg-labels
def test_object_masks_merge_parts_per_class():
    mask = torch.tensor([[0, 1, 2], [3, 0, -1]])
    assert torch.equal(object_masks(mask, [0, 0, 1]), torch.tensor([[0, 1, 1], [2, 0, -1]]))


def test_box_masks_fill_tight_boxes_smaller_parts_on_top():
    mask = torch.tensor([
        [0, 0, 0, 0, 0],
        [0, 2, 0, 0, 0],
        [0, 0, 1, 2, 0],
        [0, 3, 3, 0, 0],
        [0, 0, 0, 0, 0],
    ])
    expected = torch.tensor([  # part 2: rows 1–2, cols 1–3 (area 6); part 3: row 3, cols 1–2 (2); part 1: (1)
        [0, 0, 0, 0, 0],
        [0, 2, 2, 2, 0],
        [0, 2, 1, 2, 0],
        [0, 3, 3, 0, 0],
        [0, 0, 0, 0, 0],
    ])
    assert torch.equal(box_masks(mask), expected)
    unlabelled = torch.full((3, 3), -1)
    assert torch.equal(box_masks(unlabelled), unlabelled)


def test_mask_centroids_eq2_on_ground_truth():
    mask = torch.tensor([[[1, 1, 0], [0, 0, 0], [0, 2, 0]]])  # coordinates -1, 0, 1
    centroids, present = mask_centroids(mask, 3)
    assert torch.allclose(centroids[0, 0], torch.tensor([-1.0, -0.5]))
    assert torch.allclose(centroids[0, 1], torch.tensor([1.0, 0.0]))
    assert present.tolist() == [[True, True, False]]


def test_seg_labels_refused_for_the_baseline():
    with pytest.raises(PartcliError, match="--seg-labels"):
        validate_config(TrainConfig(arch="resnet", seg_labels="box"))
    with pytest.raises(PartcliError, match="--seg-labels"):
        validate_config(TrainConfig(seg_labels="keypoints"))


def test_object_labels_train_a_class_channel_segmenter_that_rebuilds(synthetic_data, tmp_path):
    out = tmp_path / "obj"
    run_training(TrainConfig(data=str(synthetic_data), out=str(out), arch="pixel", epochs=1, seg_labels="object",
                             **TINY))
    state = load_checkpoint(out / "checkpoints" / "best.pt")
    assert state["config"]["model"]["num_parts"] == 5
    assert state["config"]["model"]["part_to_class"] == [0, 1, 2, 3, 4]
    assert state["config"]["dataset"]["seg_labels"] == "object"
    model = model_from_checkpoint(Checkpoint.from_state(state)).eval()
    with torch.no_grad():
        logits, seg = model(torch.rand(2, 3, 32, 32), return_seg=True)
    assert logits.shape == (2, 5) and seg.shape == (2, 6, 32, 32)
    # the validation pixel accuracy is measured against object masks (class + 1), recomputed here by hand
    images, raw, _ = load_split(synthetic_data, "val", 32)
    part_to_class = PreparedDataset(synthetic_data, "val").info.part_to_class()
    expected = pixel_acc_by_hand(model, images, torch.stack([object_masks_by_hand(m, part_to_class) for m in raw]))
    row = next(csv.DictReader((out / "metrics.csv").open()))
    assert float(row["val_pixel_acc"]) == pytest.approx(expected, abs=1e-6)


def test_box_and_object_labels_reach_the_dataset(synthetic_data, tmp_path):
    for kind, top in (("object", 5), ("box", 19)):
        trainer = Trainer(TrainConfig(data=str(synthetic_data), out=str(tmp_path / kind), seg_labels=kind, **TINY))
        masks = torch.stack([trainer.val_set[i][1] for i in range(len(trainer.val_set))])
        assert masks.max().item() <= top and trainer.model_cfg.num_parts == top
        raw = PreparedDataset(synthetic_data, "val", eval_transform(32))
        raw_masks = torch.stack([raw[i][1] for i in range(len(raw))])
        assert not torch.equal(masks, raw_masks)  # relabelled
        if kind == "object":  # the eval resize is nearest-neighbour: relabelling commutes with it
            assert torch.equal(masks, object_masks(raw_masks, trainer.data_info.part_to_class()))


def test_centroid_labels_train_with_eqs_12_13_and_report_no_pixel_accuracy(synthetic_data, tmp_path):
    cfg = TrainConfig(data=str(synthetic_data), out=str(tmp_path / "cen"), arch="bbox", epochs=1,
                      seg_labels="centroid", **TINY)
    trainer = Trainer(cfg)
    x, masks, y, _ = (torch.stack([torch.as_tensor(v) for v in t]) for t in zip(*(trainer.train_set[i]
                                                                                     for i in range(4))))
    model = trainer.model.eval()
    loss, _ = training_loss(model, model, x, y, masks, cfg, seg_fn=trainer.seg_fn)
    with torch.no_grad():
        logits, seg = model(x, return_seg=True)
        info = trainer.data_info
        eqs_12_13 = centroid_loss(seg, masks, y, info.part_to_class(), info.num_classes)  # checked by hand in
        ce = F.cross_entropy(logits, y)                                                  # test_losses.py
    assert loss.item() == pytest.approx(((1 - cfg.cseg) * ce + cfg.cseg * eqs_12_13).item(), rel=1e-5)
    assert abs(eqs_12_13 - seg_loss(seg, masks)) > 1e-3  # the pixel loss would give another value
    run_training(cfg)
    row = next(csv.DictReader((tmp_path / "cen" / "metrics.csv").open()))
    assert row["val_pixel_acc"] == "" and float(row["train_loss"]) > 0


# ------------------------------------------------------------------------------------------- the loop
def test_best_checkpoint_follows_adversarial_validation_accuracy(synthetic_data, tmp_path, monkeypatch):
    scripted = iter([(0.9, 0.1), (0.5, 0.4), (0.95, 0.3)])  # (clean, adv) per epoch

    def fake_validate(self):
        clean, adv = next(scripted)
        return {"val_clean_acc": clean, "val_adv_acc": adv, "val_pixel_acc": 0.5, "val_fg_pixel_acc": 0.2,
                "val_miou": 0.1}

    monkeypatch.setattr(Trainer, "validate", fake_validate)
    monkeypatch.setattr(Trainer, "_train_epoch", lambda self, epoch: (1.0, 0.5))
    out = tmp_path / "best"
    run_training(TrainConfig(data=str(synthetic_data), out=str(out), adv="pgd", epochs=3, **TINY))
    assert load_checkpoint(out / "checkpoints" / "best.pt")["epoch"] == 2
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 3
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert [float(r["val_adv_acc"]) for r in rows] == [0.1, 0.4, 0.3]
    assert all(r["val_clean_acc"] and r["val_pixel_acc"] for r in rows)
