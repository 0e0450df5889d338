"""The training losses (Eqs. 5, 7, 8, 10–13) against values computed by hand on tiny tensors."""
from __future__ import annotations

import math

import pytest
import torch

from partcli.attacks import pgd
from partcli.attacks.pgd import ce_loss
from partcli.data.seg_labels import mass_centroids
from partcli.train import step
from partcli.train.config import TrainConfig
from partcli.train.losses import centroid_loss, combined_loss, kl_clean_adv, seg_loss, trades_loss


def ce(logits: list[float], target: int) -> float:
    """Cross-entropy of one logit vector, by hand."""
    return math.log(sum(math.exp(v) for v in logits)) - logits[target]


def softmax(logits: list[float]) -> list[float]:
    z = sum(math.exp(v) for v in logits)
    return [math.exp(v) / z for v in logits]


# one sample, 2 classes; a 2-channel 1×2 segmentation (background + one part)
LOGITS = torch.tensor([[1.0, 0.0]])
Y = torch.tensor([0])
SEG = torch.tensor([[[[2.0, 0.0]], [[0.0, 0.0]]]])  # N×(K+1)×H×W = 1×2×1×2
MASK = torch.tensor([[[0, 1]]])
SEG_BY_HAND = (ce([2.0, 0.0], 0) + ce([0.0, 0.0], 1)) / 2  # Eq. 7: mean over the labelled pixels


def test_seg_loss_eq7_by_hand():
    assert seg_loss(SEG, MASK).item() == pytest.approx(SEG_BY_HAND, rel=1e-6)


@pytest.mark.parametrize(("norm", "share"), [("batch", 0.5), ("labelled", 1.0)])
def test_seg_loss_ignores_samples_without_mask_and_passes_no_gradient_to_them(norm, share):
    """--seg-loss-norm batch (the paper's code): the unlabelled sample adds a zero to a mean over 2 samples."""
    seg = torch.cat([SEG, torch.randn(1, 2, 1, 2)]).requires_grad_(True)
    masks = torch.cat([MASK, torch.full((1, 1, 2), -1)])
    loss = seg_loss(seg, masks, norm=norm)
    assert loss.item() == pytest.approx(share * SEG_BY_HAND, rel=1e-6)
    loss.backward()
    assert seg.grad[1].abs().sum() == 0 and seg.grad[0].abs().sum() > 0


def test_seg_loss_without_any_label_is_a_differentiable_zero():
    seg = torch.randn(2, 3, 4, 4, requires_grad=True)
    loss = seg_loss(seg, torch.full((2, 4, 4), -1))
    assert loss.item() == 0.0
    loss.backward()  # stays in the graph (DDP needs every parameter used)
    assert torch.equal(seg.grad, torch.zeros_like(seg))


def test_combined_loss_eq5_by_hand():
    total, cls, seg = combined_loss(LOGITS, SEG, Y, MASK, cseg=0.25)
    assert cls.item() == pytest.approx(ce([1.0, 0.0], 0), rel=1e-6)
    assert seg.item() == pytest.approx(SEG_BY_HAND, rel=1e-6)
    assert total.item() == pytest.approx(0.75 * ce([1.0, 0.0], 0) + 0.25 * SEG_BY_HAND, rel=1e-6)


def test_combined_loss_of_a_baseline_is_plain_cross_entropy():
    total, _, _ = combined_loss(LOGITS, None, Y, MASK, cseg=0.25)
    assert total.item() == pytest.approx(ce([1.0, 0.0], 0), rel=1e-6)


def test_kl_clean_adv_by_hand():
    clean = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    adv = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    by_hand = 0.0
    for c, a in zip(clean.tolist(), adv.tolist()):
        p, q = softmax(c), softmax(a)
        by_hand += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    assert kl_clean_adv(clean, adv).item() == pytest.approx(by_hand / 2, rel=1e-6)  # batch mean
    assert kl_clean_adv(clean, clean).item() == pytest.approx(0.0, abs=1e-7)


def test_trades_loss_eq10_by_hand():
    adv = torch.tensor([[0.0, 0.0]])
    p, q = softmax([1.0, 0.0]), softmax([0.0, 0.0])
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    total, cls, seg = trades_loss(LOGITS, adv, SEG, Y, MASK, cseg=0.25, beta=2.0)
    # the classification term is on the clean logits, the segmentation term on x*'s segmentation
    assert total.item() == pytest.approx(0.75 * ce([1.0, 0.0], 0) + 0.25 * SEG_BY_HAND + 2.0 * kl, rel=1e-6)
    baseline, _, _ = trades_loss(LOGITS, adv, None, Y, MASK, cseg=0.25, beta=2.0)
    assert baseline.item() == pytest.approx(ce([1.0, 0.0], 0) + 2.0 * kl, rel=1e-6)


def test_centroid_loss_eqs_12_13_by_hand():
    # 2 parts (part 1 → class 0, part 2 → class 1) on a 2×2 image; row and column coordinates are -1 and 1.
    probs = [  # per pixel (row, col): probabilities of (background, part 1, part 2)
        [(0.5, 0.25, 0.25), (0.2, 0.6, 0.2)],
        [(0.7, 0.2, 0.1), (0.1, 0.1, 0.8)],
    ]
    seg = torch.tensor(probs).permute(2, 0, 1).log()[None]  # softmax(log p) = p
    mask = torch.tensor([[[1, 1], [0, 2]]])  # part 1 at row -1, cols -1 and 1; part 2 at (1, 1)
    coord = (-1.0, 1.0)
    eq12 = 0.0
    gt = {1: (-1.0, 0.0), 2: (1.0, 1.0)}
    for k in (1, 2):
        mass = sum(probs[r][c][k] for r in range(2) for c in range(2))
        row = sum(probs[r][c][k] * coord[r] for r in range(2) for c in range(2)) / mass
        col = sum(probs[r][c][k] * coord[c] for r in range(2) for c in range(2)) / mass
        eq12 += ((row - gt[k][0]) ** 2 + (col - gt[k][1]) ** 2) / 2
    mass1 = sum(probs[r][c][1] for r in range(2) for c in range(2))
    mass2 = sum(probs[r][c][2] for r in range(2) for c in range(2))
    eq13 = -math.log(mass2 / (mass1 + mass2))  # label y = 1: the share of class 1's part mass
    loss = centroid_loss(seg, mask, torch.tensor([1]), part_to_class=[0, 1], num_classes=2)
    assert loss.item() == pytest.approx(eq12 + eq13, rel=1e-5)


def test_centroid_loss_skips_absent_parts_and_unlabelled_samples():
    seg = torch.randn(1, 3, 4, 4)
    mask = torch.zeros(1, 4, 4, dtype=torch.int64)
    mask[0, :2, :2] = 1  # only part 1 present
    y = torch.tensor([0])
    alone = centroid_loss(seg, mask, y, [0, 1], 2)
    pair = torch.cat([seg, torch.randn(1, 3, 4, 4)]), torch.cat([mask, torch.full((1, 4, 4), -1)]), torch.tensor([0, 1])
    assert centroid_loss(*pair, [0, 1], 2, norm="labelled").item() == pytest.approx(alone.item(), rel=1e-6)
    assert centroid_loss(*pair, [0, 1], 2, norm="batch").item() == pytest.approx(alone.item() / 2, rel=1e-6)
    # part 2 is absent: Eq. 12 averages over part 1 alone
    probs = seg.softmax(1)[:, 1:]
    err = ((mass_centroids(probs)[0, 0] - torch.tensor([-2 / 3, -2 / 3])) ** 2).sum()  # rows/cols 0–1 of 4
    share = probs[0, 0].sum() / probs[0].sum()
    assert alone.item() == pytest.approx((err - share.log()).item(), rel=1e-5)


class Recorder:
    """Stands in for pgd_linf (inside craft_adversarial): records what the attacker was asked to maximise, returns a
    fixed x*."""

    def __init__(self, x_adv: torch.Tensor):
        self.x_adv, self.calls = x_adv, []

    def __call__(self, model, x, y, eps, step_size, steps, random_start=True, loss_fn=ce_loss, generator=None):
        self.calls.append({"y": y, "loss_fn": loss_fn, "training": model.training,
                           "grad_flags": {p.requires_grad for p in model.parameters()}})
        return self.x_adv


class TinySeg(torch.nn.Module):
    """A 1×1-conv 'part model': logits = pooled seg logits of 2 parts (enough to check the loss wiring)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.seg = torch.nn.Conv2d(3, 3, 1)
        self.cls = torch.nn.Linear(3, 2)

    def forward(self, x, return_seg=False):
        seg = self.seg(x)
        logits = self.cls(seg.mean(dim=(2, 3)))
        return (logits, seg) if return_seg else logits


def test_pgd_training_loss_is_eq8_with_the_classification_attacker_of_eq9(monkeypatch):
    model = TinySeg()
    x = torch.rand(2, 3, 4, 4)
    x_adv = (x + 0.01).clamp(0, 1)
    y, masks = torch.tensor([0, 1]), torch.randint(0, 3, (2, 4, 4))
    recorder = Recorder(x_adv)
    monkeypatch.setattr(pgd, "pgd_linf", recorder)  # what craft_adversarial calls
    cfg = TrainConfig(adv="pgd", cseg=0.3)
    loss, logits = step.training_loss(model, model, x, y, masks, cfg)
    (call,) = recorder.calls
    assert call["loss_fn"] is ce_loss and torch.equal(call["y"], y)  # Eq. 9: classification loss only
    assert call["training"] is False and call["grad_flags"] == {False}  # crafted in frozen eval mode
    adv_logits, adv_seg = model(x_adv, return_seg=True)
    expected, _, _ = combined_loss(adv_logits, adv_seg, y, masks, 0.3)  # Eq. 8: both terms on x*
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.allclose(logits, adv_logits)


def test_trades_training_loss_is_eq10_with_the_kl_attacker_of_eq11(monkeypatch):
    model = TinySeg()
    x = torch.rand(2, 3, 4, 4)
    x_adv = (x - 0.01).clamp(0, 1)
    y, masks = torch.tensor([0, 1]), torch.randint(0, 3, (2, 4, 4))
    recorder = Recorder(x_adv)
    monkeypatch.setattr(pgd, "pgd_linf", recorder)  # what craft_adversarial calls
    loss, logits = step.training_loss(model, model, x, y, masks, TrainConfig(adv="trades", cseg=0.3, beta=1.5))
    (call,) = recorder.calls
    clean = model(x)
    assert torch.allclose(call["y"], clean)  # the attacker's target is f(x), not the label
    # Eq. 11's objective: per-sample KL(f(x) ‖ f(z)), zero at z = x
    assert call["loss_fn"](model, x, clean).abs().max().item() < 1e-6
    assert call["loss_fn"](model, x_adv, clean).sum().item() == pytest.approx(
        2 * kl_clean_adv(clean, model(x_adv)).item(), rel=1e-5)
    adv_logits, adv_seg = model(x_adv, return_seg=True)
    expected, _, _ = trades_loss(clean, adv_logits, adv_seg, y, masks, 0.3, 1.5)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.allclose(logits, clean)


class TinySegBN(TinySeg):
    """TinySeg with BatchNorm after the segmenter, its running statistics far from any batch's."""

    def __init__(self):
        super().__init__()
        self.bn = torch.nn.BatchNorm2d(3)
        self.bn.running_mean.fill_(2.0)
        self.bn.running_var.fill_(4.0)

    def forward(self, x, return_seg=False):
        seg = self.bn(self.seg(x))
        logits = self.cls(seg.mean(dim=(2, 3)))
        return (logits, seg) if return_seg else logits


def test_trades_anchor_is_the_eval_mode_prediction_of_a_batchnorm_model(monkeypatch):
    """Eq. 11's f(x) is computed like the attack, in eval mode: running statistics, not the batch's."""
    import copy

    model = TinySegBN().train()
    before = copy.deepcopy(model)
    x = torch.rand(4, 3, 4, 4)
    recorder = Recorder((x - 0.01).clamp(0, 1))
    monkeypatch.setattr(pgd, "pgd_linf", recorder)  # what craft_adversarial calls
    step.training_loss(model, model, x, torch.tensor([0, 1, 0, 1]), torch.randint(0, 3, (4, 4, 4)),
                       TrainConfig(adv="trades", cseg=0.3, beta=1.5))
    (call,) = recorder.calls
    with torch.no_grad():
        eval_anchor = copy.deepcopy(before).eval()(x)
        batch_anchor = copy.deepcopy(before).train()(x)
    assert torch.allclose(call["y"], eval_anchor, atol=1e-6)
    assert not torch.allclose(call["y"], batch_anchor, atol=1e-2)  # the two modes really differ here
    assert call["training"] is False and model.training  # attacked in eval mode, left in train mode
