"""Where the paper's text and its authors' code disagree, both as named options: TRADES BatchNorm passes,
weight-decay exemptions by name, the per-epoch cosine schedule, validation cadence and steps, the best-checkpoint
rule, SyncBatchNorm; and older checkpoints and run configurations keep meaning what they meant."""
from __future__ import annotations

import copy
import dataclasses
import csv
import math

import pytest
import torch
import yaml

from conftest import TINY
from partcli import cli  # noqa: F401  (the CLI registers the commands run_cli calls)
from partcli.attacks import pgd
from partcli.checkpoint import CHECKPOINT_VERSION, Checkpoint, load_checkpoint, load_model, save_checkpoint
from partcli.config import read_config_file
from partcli.errors import PartcliError
from partcli.models.registry import ModelConfig, build_model
from partcli.train import loop, step
from partcli.train.config import TrainConfig
from partcli.train.distributed import DistInfo, synchronise_batchnorm
from partcli.train.loop import Trainer, run_training
from partcli.train.losses import trades_loss
from partcli.train.optim import EpochCosine, build_optimizer, build_scheduler, param_groups
from test_losses import Recorder, TinySegBN


# ------------------------------------------------------------------------------------------ TRADES BatchNorm
def test_trades_concat_is_one_batchnorm_pass_over_clean_and_adversarial_together(monkeypatch):
    """--trades-bn concat (the paper's code) equals a hand-written step: one train-mode forward of [x; x*]."""
    model = TinySegBN().train()
    reference, two_pass = copy.deepcopy(model), copy.deepcopy(model)
    x = torch.rand(4, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    x_adv = (x - 0.02).clamp(0, 1)
    y, masks = torch.tensor([0, 1, 0, 1]), torch.randint(0, 3, (4, 4, 4), generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr(pgd, "pgd_linf", Recorder(x_adv))  # what craft_adversarial calls
    cfg = TrainConfig(adv="trades", cseg=0.3, beta=1.5, trades_bn="concat")
    loss, logits = step.training_loss(model, model, x, y, masks, cfg)

    both, both_seg = reference(torch.cat([x, x_adv]), return_seg=True)  # the reference step, by hand
    expected, _, _ = trades_loss(both[:4], both[4:], both_seg[4:], y, masks, 0.3, 1.5)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.allclose(logits, both[:4])
    assert model.bn.num_batches_tracked.item() == 1  # one pass
    assert torch.allclose(model.bn.running_mean, reference.bn.running_mean)

    monkeypatch.setattr(pgd, "pgd_linf", Recorder(x_adv))  # --trades-bn two-pass: each batch's statistics, 2 updates
    loss2, _ = step.training_loss(two_pass, two_pass, x, y, masks, TrainConfig(adv="trades", cseg=0.3, beta=1.5))
    assert two_pass.bn.num_batches_tracked.item() == 2
    assert abs(loss2.item() - loss.item()) > 1e-4  # the two protocols really differ


# ------------------------------------------------------------------------------------------ weight decay
def test_weight_decay_exemptions_by_name_follow_the_papers_code():
    """--wd-exempt names: parameters whose name contains bias, bn or ln; so the encoder's bn* layers and every
    bias are exempt, but BatchNorms inside Sequentials (downsample.1, the decoder's, the head's) are decayed."""
    model = build_model(ModelConfig(arch="bbox", backbone="resnet18", num_classes=2, num_parts=3,
                                    part_to_class=[0, 0, 1]))
    names = {id(p): n for n, p in model.named_parameters()}
    decay, exempt = param_groups(model, 5e-4, decay_norm_bias=False, exempt_rule="names")
    exempt_names = {names[id(p)] for p in exempt["params"]}
    decayed_names = {names[id(p)] for p in decay["params"]}
    assert {"segmenter.encoder.bn1.weight", "segmenter.encoder.layer1.0.bn2.weight"} <= exempt_names
    assert all(n.endswith(".bias") or ".bn" in n for n in exempt_names)
    assert {"segmenter.encoder.layer2.0.downsample.1.weight", "head.mlp.1.weight", "head.mlp.4.weight"} <= decayed_names
    decoder_norms = {n for n, m in model.segmenter.decoder.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert decoder_norms and all(f"segmenter.decoder.{n}.weight" in decayed_names for n in decoder_norms)
    _, exempt_1d = param_groups(model, 5e-4, decay_norm_bias=False, exempt_rule="1d")  # partcli's default
    assert "head.mlp.1.weight" in {names[id(p)] for p in exempt_1d["params"]}
    opt = build_optimizer(model, TrainConfig(wd_exempt="names"))
    assert {names[id(p)] for p in opt.param_groups[1]["params"]} == exempt_names


# ------------------------------------------------------------------------------------------ schedule
def test_epoch_schedule_is_the_papers_per_epoch_cosine_with_multiplied_warmup():
    schedule = EpochCosine(warmup_epochs=2, epochs=4, steps_per_epoch=3)
    expected = [0.5 * 1.0, 1.0 * 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4))]
    assert [schedule(t) for t in range(12)] == pytest.approx([e for e in expected for _ in range(3)])
    replanned = EpochCosine(0, 4, 1, [[2, 2]])  # a resume after epoch 2 of 2 extended the run to 4
    assert [replanned(t) for t in range(4)] == pytest.approx([1.0, 0.5, 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4))])


def test_epoch_schedule_holds_the_rate_for_the_whole_epoch():
    net = torch.nn.Linear(2, 2)
    cfg = TrainConfig(lr=1.0, epochs=2, lr_schedule="epoch")
    opt = build_optimizer(net, cfg)
    scheduler = build_scheduler(opt, cfg, steps_per_epoch=3)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    assert lrs == pytest.approx([1.0] * 3 + [0.5] * 3)


# ------------------------------------------------------------------------------------------ validation, best.pt
def fake_validation(monkeypatch, scripted: list[tuple[float, float]]) -> list[int]:
    """Replace validation by scripted (clean, adv) accuracies and training by a no-op; return the epochs
    validated."""
    calls: list[int] = []
    values = iter(scripted)

    def validate(self):
        calls.append(self.epoch + 1)
        clean, adv = next(values)
        return {"val_clean_acc": clean, "val_adv_acc": adv, "val_pixel_acc": 0.5, "val_fg_pixel_acc": 0.2,
                "val_miou": 0.1}

    monkeypatch.setattr(Trainer, "validate", validate)
    monkeypatch.setattr(Trainer, "_train_epoch", lambda self, epoch: (1.0, 0.5))
    return calls


def test_val_every_validates_every_nth_and_the_last_epoch(synthetic_data, tmp_path, monkeypatch):
    validated = fake_validation(monkeypatch, [(0.9, 0.3), (0.8, 0.2), (0.7, 0.1)])
    out = tmp_path / "run"
    run_training(TrainConfig(data=str(synthetic_data), out=str(out), adv="pgd", epochs=5, val_every=2, **TINY))
    assert validated == [2, 4, 5]
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["val_adv_acc"] for r in rows] == ["", "0.3", "", "0.2", "0.1"]
    assert load_checkpoint(out / "checkpoints" / "best.pt")["epoch"] == 2


def test_best_rule_clean_ge_adv_skips_epochs_whose_clean_accuracy_is_below_their_adversarial(
        synthetic_data, tmp_path, monkeypatch):
    scripted = [(0.5, 0.3), (0.35, 0.4), (0.6, 0.35)]  # epoch 2 has the best adv accuracy, but clean < adv
    fake_validation(monkeypatch, scripted)
    out = tmp_path / "code"
    run_training(TrainConfig(data=str(synthetic_data), out=str(out), adv="pgd", epochs=3, best_rule="clean-ge-adv",
                             **TINY))
    assert load_checkpoint(out / "checkpoints" / "best.pt")["epoch"] == 3
    fake_validation(monkeypatch, scripted)
    run_training(TrainConfig(data=str(synthetic_data), out=str(tmp_path / "max"), adv="pgd", epochs=3, **TINY))
    assert load_checkpoint(tmp_path / "max" / "checkpoints" / "best.pt")["epoch"] == 2


def test_validation_attack_uses_val_steps_and_val_step_size(synthetic_data, tmp_path, monkeypatch):
    seen = []

    def record(model, x, y, eps, step_size, steps, **kwargs):
        seen.append((eps, step_size, steps))
        return x

    monkeypatch.setattr(loop, "craft_adversarial", record)
    cfg = TrainConfig(data=str(synthetic_data), out=str(tmp_path / "v"), arch="resnet", adv="pgd", epochs=1,
                      steps=1, val_steps=100, val_step_size=0.002, **TINY)
    trainer = Trainer(cfg)
    trainer.validate()
    assert seen and set(seen) == {(8 / 255, 0.002, 100)}


# ------------------------------------------------------------------------------------------ SyncBatchNorm
def test_sync_bn_converts_every_batchnorm_under_torchrun_on_cuda_and_nothing_elsewhere(capsys):
    model = build_model(ModelConfig(arch="bbox", backbone="resnet18", num_classes=2, num_parts=3,
                                    part_to_class=[0, 0, 1]))
    norms = sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    synced = synchronise_batchnorm(copy.deepcopy(model), DistInfo(0, 2, 0), torch.device("cuda", 0))
    assert sum(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules()) == norms
    assert synced.state_dict().keys() == model.state_dict().keys()  # checkpoints stay loadable as BatchNorm
    same = synchronise_batchnorm(model, DistInfo(0, 2, 0), torch.device("cpu"))
    assert same is model and "--sync-bn applies under torchrun on CUDA" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ older files
BBOX = ModelConfig(arch="bbox", backbone="resnet18", num_classes=2, num_parts=3, part_to_class=[0, 0, 1])


def test_a_format_2_bbox_checkpoint_keeps_its_probability_features(tmp_path):
    """Format 2 predates --bbox-score: its bbox models were trained on the probability score."""
    torch.manual_seed(0)
    old_model = build_model(ModelConfig(**{**BBOX.to_dict(), "bbox_score": "prob"})).eval()
    model_doc = {k: v for k, v in BBOX.to_dict().items() if k != "bbox_score"}
    path = tmp_path / "old.pt"
    torch.save({"format_version": 2, "config": {"model": model_doc, "train": {"arch": "bbox"}},
                "model": old_model.state_dict()}, path)
    state = load_checkpoint(path)
    assert state["config"]["model"]["bbox_score"] == "prob" and state["config"]["train"]["bbox_score"] == "prob"
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(load_model(path)(x), old_model(x))


def test_a_runs_old_config_yaml_keeps_its_settings_a_users_yaml_gets_the_defaults(tmp_path):
    old_run = tmp_path / "config.yaml"
    old_run.write_text(yaml.safe_dump({"arch": "bbox", "lr": 0.01, "partcli_version": "0.1.0"}))
    assert read_config_file(TrainConfig, old_run)["bbox_score"] == "prob"
    users = tmp_path / "mine.yaml"
    users.write_text(yaml.safe_dump({"arch": "bbox", "lr": 0.01}))
    assert "bbox_score" not in read_config_file(TrainConfig, users)


def test_init_from_a_model_with_other_bbox_features_is_refused(synthetic_data, tmp_path):
    init = tmp_path / "init.pt"
    model = build_model(ModelConfig(arch="bbox", backbone="resnet18", num_classes=5, num_parts=19,
                                    part_to_class=[i // 4 for i in range(19)], bbox_score="prob"))
    save_checkpoint(init, {"config": {"model": model_cfg_dict(model)}, "model": model.state_dict()})
    cfg = TrainConfig(data=str(synthetic_data), out=str(tmp_path / "r"), arch="bbox", init=str(init), epochs=1, **TINY)
    with pytest.raises(PartcliError, match="--bbox-score prob"):
        Trainer(cfg)


def test_init_from_a_segmenter_of_another_output_stride_is_refused(synthetic_data, tmp_path):
    """Stride 8 and 16 segmenters have the same weight shapes: loading one as the other must not pass silently."""
    init = tmp_path / "init.pt"
    cfg = ModelConfig(arch="bbox", backbone="resnet18", num_classes=5, num_parts=19,
                      part_to_class=[i // 4 for i in range(19)], output_stride=8)
    save_checkpoint(init, {"config": {"model": cfg.to_dict()}, "model": build_model(cfg).state_dict()})
    train = TrainConfig(data=str(synthetic_data), out=str(tmp_path / "r"), arch="bbox", init=str(init), epochs=1,
                        **TINY)
    with pytest.raises(PartcliError, match="--output-stride 8, .* give --output-stride 8$"):
        Trainer(train)
    Trainer(dataclasses.replace(train, output_stride=8))  # the same stride: accepted


def test_output_stride_8_doubles_the_segmenters_feature_map_and_old_checkpoints_read_16(tmp_path):
    sizes = {}
    for stride in (8, 16):
        model = build_model(ModelConfig(arch="bbox", num_classes=5, num_parts=19,
                                        part_to_class=[i // 4 for i in range(19)], output_stride=stride))
        sizes[stride] = model.segmenter.encoder(torch.zeros(1, 3, 64, 64))[-1].shape[-1]
    assert sizes == {8: 8, 16: 4}
    path = tmp_path / "v3.pt"
    cfg = ModelConfig(arch="bbox", num_classes=5, num_parts=19, part_to_class=[i // 4 for i in range(19)])
    doc = cfg.to_dict()
    del doc["output_stride"]
    torch.save({"format_version": 3, "partcli_version": "0.1.0", "config": {"model": doc},
                "model": build_model(cfg).state_dict()}, path)
    assert Checkpoint.load(path).model_config.output_stride == 16


def model_cfg_dict(model) -> dict:
    return ModelConfig(arch="bbox", backbone="resnet18", num_classes=5, num_parts=19,
                       part_to_class=[i // 4 for i in range(19)], bbox_score=model.head.score).to_dict()


def test_a_format_2_run_resumes_as_the_model_it_was(synthetic_data, tmp_path):
    """A run checkpointed by the previous format (no bbox_score anywhere) continues with its probability features."""
    out = tmp_path / "run"
    run_training(TrainConfig(data=str(synthetic_data), out=str(out), arch="bbox", epochs=1, bbox_score="prob", **TINY))
    last = out / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    state["format_version"] = 2
    for section in ("model", "train"):
        del state["config"][section]["bbox_score"]
    torch.save(state, last)
    doc = yaml.safe_load((out / "config.yaml").read_text())
    del doc["bbox_score"]
    (out / "config.yaml").write_text(yaml.safe_dump(doc))
    run_training(TrainConfig(out=str(out), epochs=2), resume=True, given={"out", "epochs"})
    resumed = load_checkpoint(last)
    assert resumed["epoch"] == 2 and resumed["format_version"] == CHECKPOINT_VERSION
    assert resumed["config"]["model"]["bbox_score"] == "prob" and resumed["config"]["train"]["bbox_score"] == "prob"
