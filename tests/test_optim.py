"""Optimiser options of `pretrain`/`train`: AdamW or SGD, warm-up + cosine, no weight decay on BN and biases."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from conftest import TINY
from partcli.errors import PartcliError
from partcli.train.config import TrainConfig
from partcli.train.loop import Trainer
from partcli.train.validate import from_scratch_hint, validate_config
from partcli.train.optim import WarmupCosine, build_optimizer, build_scheduler, param_groups
from partcli.train.phases import Phase, phase_of, step_config
from partcli.train.run_files import selection_metric


def small_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2, bias=False))


def test_batchnorm_and_biases_are_exempt_from_weight_decay_unless_asked():
    net = small_net()
    decay, exempt = param_groups(net, 5e-4, decay_norm_bias=False)
    assert {id(p) for p in decay["params"]} == {id(net[0].weight), id(net[3].weight)} and decay["weight_decay"] == 5e-4
    assert {id(p) for p in exempt["params"]} == {id(net[0].bias), id(net[1].weight), id(net[1].bias)}
    assert exempt["weight_decay"] == 0.0
    decay, exempt = param_groups(net, 5e-4, decay_norm_bias=True)
    assert len(decay["params"]) == 5 and not exempt["params"]


def test_exempt_parameters_are_not_shrunk_by_a_step():
    net = small_net()
    opt = build_optimizer(net, TrainConfig(optim="sgd", lr=0.1, wd=0.5, momentum=0.0))
    before = net[1].weight.detach().clone(), net[0].weight.detach().clone()
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # zero gradient: only weight decay could move a parameter
    assert torch.equal(net[1].weight, before[0])
    assert torch.allclose(net[0].weight, before[1] * (1 - 0.1 * 0.5))


@pytest.mark.parametrize(("optim", "kind"), [("sgd", torch.optim.SGD), ("adamw", torch.optim.AdamW)])
def test_optim_option_picks_the_optimiser(optim, kind):
    opt = build_optimizer(small_net(), TrainConfig(optim=optim, lr=0.003))
    assert type(opt) is kind and all(g["lr"] == 0.003 for g in opt.param_groups)


def test_warmup_then_cosine_schedule_values():
    schedule = WarmupCosine(warmup=4, total=12)
    assert [schedule(t) for t in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert schedule(4) == 1.0
    assert schedule(8) == pytest.approx(0.5)  # halfway through the 8 cosine steps
    assert schedule(11) == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))
    assert WarmupCosine(0, 10)(0) == 1.0


def test_scheduler_steps_per_iteration_over_the_whole_run():
    net = small_net()
    cfg = TrainConfig(optim="adamw", lr=1.0, epochs=3, warmup_epochs=1)
    opt = build_optimizer(net, cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch=2)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:2] == [0.5, 1.0] and lrs[2] == 1.0
    assert lrs[3] == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    state = sched.state_dict()  # goes into the checkpoint: plain values only
    torch.save(state, "/dev/null")
    assert state["lr_lambdas"][0] == {"warmup": 2, "total": 6, "replanned": []}


@pytest.mark.parametrize(("options", "option"), [
    (dict(optim="adam"), "--optim"),
    (dict(warmup_epochs=-1), "--warmup-epochs"),
    (dict(warmup_epochs=5, epochs=5), "--warmup-epochs"),
    (dict(seg_only_epochs=3, epochs=3), "--seg-only-epochs"),
    (dict(seg_only_epochs=1, epochs=3, arch="resnet"), "--seg-only-epochs"),
    (dict(seg_loss_norm="pixels"), "--seg-loss-norm"),
    (dict(lr=float("nan")), "--lr"),
    (dict(lr=0.0), "--lr"),
    (dict(momentum=1.0), "--momentum"),
    (dict(eps=8.0), "--eps"),
    (dict(step_size=2.0), "--eps and --step-size"),
])
def test_bad_optimisation_options_are_refused_by_name(options, option):
    with pytest.raises(PartcliError, match=f"^{option}"):
        validate_config(TrainConfig(data="d", out="o", epochs=options.pop("epochs", 4), **options))


def test_seg_only_epochs_leave_the_head_untouched_then_train_it(synthetic_data, tmp_path):
    """--seg-only-epochs: the first epochs move the segmenter only (no classification gradient), later ones the head."""
    cfg = TrainConfig(data=str(synthetic_data), out=str(tmp_path / "run"), arch="bbox", epochs=2, seg_only_epochs=1,
                      optim="sgd", wd=0.0, **TINY)
    trainer = Trainer(cfg)
    weights = lambda module: [p.detach().clone() for p in module.parameters()]  # noqa: E731
    head0, seg0 = weights(trainer.model.head), weights(trainer.model.segmenter)
    trainer._train_epoch(1)
    head1, seg1 = weights(trainer.model.head), weights(trainer.model.segmenter)
    assert all(torch.equal(a, b) for a, b in zip(head0, head1))
    assert not all(torch.equal(a, b) for a, b in zip(seg0, seg1))
    trainer._train_epoch(2)
    assert not all(torch.equal(a, b) for a, b in zip(head1, weights(trainer.model.head)))


def test_the_seg_only_phase_drives_both_the_step_and_the_best_checkpoint():
    """One phase decides what an epoch's steps train and whether the epoch can be the best checkpoint."""
    cfg = TrainConfig(epochs=4, seg_only_epochs=2, adv="pgd", cseg=0.3)
    assert [phase_of(cfg, e) for e in (1, 2, 3, 4)] == [Phase.SEG_ONLY] * 2 + [Phase.JOINT] * 2
    seg_only = step_config(cfg, Phase.SEG_ONLY)
    assert (seg_only.cseg, seg_only.adv) == (1.0, "none") and step_config(cfg, Phase.JOINT) is cfg
    row = {"val_clean_acc": 0.9, "val_adv_acc": 0.5}
    assert [selection_metric({"epoch": e, **row}, cfg) for e in (2, 3)] == [-1.0, 0.5]


@pytest.mark.parametrize("options, hinted", [
    (dict(arch="bbox"), True),
    (dict(arch="bbox", seg_only_epochs=1), False),
    (dict(arch="bbox", pretrained="weights.pt"), False),
    (dict(arch="bbox", init="runs/x/checkpoints/best.pt"), False),
    (dict(arch="resnet"), False),
])
def test_from_scratch_part_models_are_pointed_at_seg_only_epochs(options, hinted):
    hint = from_scratch_hint(TrainConfig(epochs=4, **options))
    assert (hint is not None and "--seg-only-epochs" in hint) == hinted
