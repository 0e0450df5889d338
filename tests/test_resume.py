"""`--resume`: a run killed after epoch k and resumed ends bit-identical to an uninterrupted one (CPU)."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from partcli.checkpoint import load_checkpoint
from partcli.data.synthetic import prepare_synthetic
from partcli.errors import PartcliError
from partcli.train import loop
from partcli.train.config import TrainConfig
from partcli.train.loop import Trainer, run_training

EPOCHS = 3


class Killed(Exception):
    """Stands for the process dying (SIGKILL, preemption) at a chosen point."""


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, dict]:
    """A 40-image 16 px dataset and an uninterrupted 3-epoch PGD run of a bbox part model on it."""
    root = tmp_path_factory.mktemp("resume")
    prepare_synthetic(root / "data", n=40, image_size=16, seed=0)
    cfg = dict(data=str(root / "data"), arch="bbox", backbone="resnet18", image_size=16, batch_size=8, epochs=EPOCHS,
               device="cpu", lr=0.05, seed=1, adv="pgd", steps=1, step_size=4 / 255)
    run_training(TrainConfig(out=str(root / "full"), **cfg))
    return root, cfg


def assert_same_final_state(a: Path, b: Path) -> None:
    sa, sb = load_checkpoint(a / "checkpoints" / "last.pt"), load_checkpoint(b / "checkpoints" / "last.pt")
    assert sa["epoch"] == sb["epoch"] == EPOCHS
    assert sa["model"].keys() == sb["model"].keys()
    for name in sa["model"]:
        assert torch.equal(sa["model"][name], sb["model"][name]), name
    for pid, buf in sa["optimizer"]["state"].items():
        assert torch.equal(buf["momentum_buffer"], sb["optimizer"]["state"][pid]["momentum_buffer"])
    assert sa["scheduler"]["last_epoch"] == sb["scheduler"]["last_epoch"]


def metric_epochs(run: Path) -> list[int]:
    return [int(r["epoch"]) for r in csv.DictReader((run / "metrics.csv").open())]


def test_killed_during_epoch_2_then_resumed_matches_the_uninterrupted_run(setup, monkeypatch):
    root, cfg = setup
    out = root / "killed_mid_epoch"
    original = Trainer._train_epoch

    def dies_in_epoch_2(self, epoch):
        if epoch == 2:
            raise Killed
        return original(self, epoch)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_train_epoch", dies_in_epoch_2)
        with pytest.raises(Killed):
            run_training(TrainConfig(out=str(out), **cfg))
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 1
    run_training(TrainConfig(out=str(out)), resume=True)  # the stored configuration is used
    assert_same_final_state(root / "full", out)
    assert metric_epochs(out) == [1, 2, 3]
    full_rows = list(csv.DictReader((root / "full" / "metrics.csv").open()))
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["train_loss"] for r in rows] == [r["train_loss"] for r in full_rows]


def test_killed_between_metrics_row_and_checkpoint_leaves_no_duplicate_epoch(setup, monkeypatch):
    root, cfg = setup
    out = root / "killed_before_checkpoint"
    original = loop.save_checkpoint

    def dies_saving_epoch_2(path, state):
        if state["epoch"] == 2:
            raise Killed
        original(path, state)

    with monkeypatch.context() as patch:
        patch.setattr(loop, "save_checkpoint", dies_saving_epoch_2)
        with pytest.raises(Killed):
            run_training(TrainConfig(out=str(out), **cfg))
    assert metric_epochs(out) == [1, 2]  # epoch 2's row was written, its checkpoint was not
    run_training(TrainConfig(out=str(out)), resume=True)
    assert metric_epochs(out) == [1, 2, 3]
    assert_same_final_state(root / "full", out)


def test_resume_without_a_checkpoint_is_a_one_line_error(tmp_path):
    with pytest.raises(PartcliError, match="--resume"):
        run_training(TrainConfig(out=str(tmp_path / "nothing")), resume=True)
