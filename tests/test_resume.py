"""`--resume`: a run killed after epoch k and resumed ends bit-identical to an uninterrupted one (CPU)."""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from helpers import attack_samples, tiny_conv
from partcli.attacks.suite import AttackConfig, attack_model
from partcli.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from partcli.data.synthetic import prepare_synthetic
from partcli.errors import PartcliError
from partcli.progress import is_quiet, set_quiet
from partcli.train import loop, run_files
from partcli.train.config import TrainConfig
from partcli.train.loop import Trainer, run_training
from partcli.train.run_files import restore_run_files

EPOCHS = 3


class Killed(Exception):
    """Stands for the process dying (SIGKILL, preemption) at a chosen point."""


@pytest.fixture(scope="module")
def setup(module_tmp) -> tuple[Path, dict]:
    """A 40-image 16 px dataset and an uninterrupted 3-epoch PGD run of a bbox part model on it."""
    root = module_tmp
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


def test_killed_during_epoch_2_then_resumed_matches_the_uninterrupted_run(setup, monkeypatch, tmp_path):
    root, cfg = setup
    out = tmp_path / "killed_mid_epoch"
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


def test_killed_between_checkpoint_and_metrics_row_gets_the_row_back(setup, monkeypatch, tmp_path):
    root, cfg = setup
    out = tmp_path / "killed_before_metrics_row"
    original = run_files._append_metrics

    def dies_writing_row_2(path, row):
        if row["epoch"] == 2:
            raise Killed
        original(path, row)

    with monkeypatch.context() as patch:
        patch.setattr(run_files, "_append_metrics", dies_writing_row_2)
        with pytest.raises(Killed):
            run_training(TrainConfig(out=str(out), **cfg))
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 2  # the checkpoint comes first...
    assert metric_epochs(out) == [1]  # ...so the row it holds is the one missing
    run_training(TrainConfig(out=str(out)), resume=True)
    assert metric_rows(out) == metric_rows(root / "full")
    assert_same_final_state(root / "full", out)


def metric_rows(run: Path) -> list[dict[str, str]]:
    """metrics.csv without its seconds column (the one that differs between two runs of the same epochs)."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader((run / "metrics.csv").open())]


def killed_in_epoch(epoch: int, monkeypatch, cfg: TrainConfig) -> None:
    """Run ``cfg`` until it dies in ``epoch``; like SIGKILL, the clean-up of a failed first epoch never runs."""
    original = Trainer._train_epoch

    def dies(self, e):
        if e == epoch:
            raise Killed
        return original(self, e)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_train_epoch", dies)
        patch.setattr(loop, "remove_run_files", lambda out: None)
        with pytest.raises(Killed):
            run_training(cfg)


def test_missing_best_pt_and_stale_temp_files_are_repaired_on_resume(setup, monkeypatch, tmp_path):
    """A folder as a kill between last.pt and best.pt left it (the order before best.pt came first)."""
    root, cfg = setup
    out = tmp_path / "lost_best"
    killed_in_epoch(2, monkeypatch, TrainConfig(out=str(out), **cfg))
    (out / "checkpoints" / "best.pt").unlink()
    stale = out / "checkpoints" / ".best.pt.k3j2h1g0.tmp"
    stale.write_bytes(b"half a checkpoint")
    run_training(TrainConfig(out=str(out)), resume=True)
    assert not stale.exists()
    best, full_best = (load_checkpoint(run / "checkpoints" / "best.pt") for run in (out, root / "full"))
    assert best["epoch"] == full_best["epoch"]
    for name in full_best["model"]:
        assert torch.equal(best["model"][name], full_best["model"][name]), name


def _fake_run(out: Path, scores: list[float]) -> Checkpoint:
    """A run folder holding only last.pt, after len(scores) epochs with these validation accuracies."""
    rows = [{"epoch": e, "lr": 0.1, "train_loss": 1.0, "train_acc": 0.5, "val_clean_acc": acc, "val_adv_acc": None,
             "val_pixel_acc": None, "seconds": 1.0} for e, acc in enumerate(scores, 1)]
    state = {"config": {"model": {}}, "model": {}, "epoch": len(scores), "metrics": rows}
    save_checkpoint(out / "checkpoints" / "last.pt", state)
    return Checkpoint.load(out / "checkpoints" / "last.pt")


@pytest.fixture
def loud():
    """Info lines on, whatever an earlier in-process `partcli --quiet` left behind."""
    quiet = is_quiet()
    set_quiet(False)
    yield
    set_quiet(quiet)


def test_resume_recreates_best_pt_from_last_pt_only_when_last_is_the_best(tmp_path, capsys, loud):
    state = _fake_run(tmp_path / "last_best", [0.3, 0.5])
    restore_run_files(tmp_path / "last_best", state, TrainConfig())
    assert load_checkpoint(tmp_path / "last_best" / "checkpoints" / "best.pt")["epoch"] == 2
    assert "re-created from last.pt (epoch 2" in capsys.readouterr().err
    assert metric_epochs(tmp_path / "last_best") == [1, 2]

    state = _fake_run(tmp_path / "gone", [0.5, 0.3])
    restore_run_files(tmp_path / "gone", state, TrainConfig())
    assert not (tmp_path / "gone" / "checkpoints" / "best.pt").exists()  # last.pt is not the best: no fake best.pt
    err = capsys.readouterr().err
    assert "warning:" in err and "best epoch (1, metric 0.5) are gone" in err

    state = _fake_run(tmp_path / "outdated", [0.3, 0.5])
    save_checkpoint(tmp_path / "outdated" / "checkpoints" / "best.pt", {**state.to_state(), "epoch": 1})
    restore_run_files(tmp_path / "outdated", state, TrainConfig())
    assert load_checkpoint(tmp_path / "outdated" / "checkpoints" / "best.pt")["epoch"] == 2


def test_run_killed_before_its_first_checkpoint_is_restarted_by_resume(setup, monkeypatch, tmp_path):
    root, cfg = setup
    out = tmp_path / "killed_in_epoch_1"
    killed_in_epoch(1, monkeypatch, TrainConfig(out=str(out), **cfg))
    assert (out / "config.yaml").exists() and not (out / "checkpoints" / "last.pt").exists()
    run_training(TrainConfig(out=str(out)), resume=True)  # starts from epoch 1 with the stored configuration
    assert_same_final_state(root / "full", out)
    assert metric_epochs(out) == [1, 2, 3]


def test_resume_from_another_folder_and_with_a_moved_dataset(setup, monkeypatch, tmp_path):
    root, cfg = setup
    shutil.copytree(cfg["data"], tmp_path / "moving")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    killed_in_epoch(2, monkeypatch, TrainConfig(**{**cfg, "data": "moving", "out": "run"}))
    stored = yaml.safe_load((out / "config.yaml").read_text())
    assert stored["data"] == str(tmp_path / "moving") and stored["out"] == str(out)  # absolute

    (tmp_path / "moving").rename(tmp_path / "moved")
    monkeypatch.chdir(root)
    with pytest.raises(PartcliError, match="pass --data"):
        run_training(TrainConfig(out=str(out)), resume=True)
    other = Path(shutil.copytree(tmp_path / "moved", tmp_path / "other"))
    doc = yaml.safe_load((other / "dataset.yaml").read_text())
    (other / "dataset.yaml").write_text(yaml.safe_dump({**doc, "name": "another"}))
    with pytest.raises(PartcliError, match="--data .*different name"):
        run_training(TrainConfig(out=str(out), data=str(other)), resume=True)
    run_training(TrainConfig(out=str(out), data=str(tmp_path / "moved")), resume=True)
    assert_same_final_state(root / "full", out)
    assert yaml.safe_load((out / "config.yaml").read_text())["data"] == str(tmp_path / "moved")


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(setup, monkeypatch, tmp_path):
    root, cfg = setup
    out = tmp_path / "nan_loss"
    original_epoch, original_loss, at = Trainer._train_epoch, loop.training_loss, {"epoch": 0, "step": 0}

    def counting_epochs(self, epoch):
        at.update(epoch=epoch, step=0)
        return original_epoch(self, epoch)

    def nan_at_epoch_2_step_2(*args, **kwargs):
        at["step"] += 1
        loss, logits = original_loss(*args, **kwargs)
        return (loss * float("nan") if (at["epoch"], at["step"]) == (2, 2) else loss), logits

    monkeypatch.setattr(Trainer, "_train_epoch", counting_epochs)
    monkeypatch.setattr(loop, "training_loss", nan_at_epoch_2_step_2)
    with pytest.raises(PartcliError, match=r"epoch 2, step 2: the training loss is nan .*last.pt \(epoch 1\) is kept"):
        run_training(TrainConfig(out=str(out), **cfg))
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 1
    assert metric_epochs(out) == [1]


def test_resume_without_a_checkpoint_is_a_one_line_error(tmp_path):
    with pytest.raises(PartcliError, match="--resume"):
        run_training(TrainConfig(out=str(tmp_path / "nothing")), resume=True)


def test_a_resumed_autoattack_row_counts_the_earlier_run_and_says_so(tmp_path):
    """Both attacks had finished before the interruption: the row's seconds are that run's, and a note says so."""
    model = tiny_conv(11)
    x = torch.rand(4, 3, 8, 8)
    samples = attack_samples(x, model(x).argmax(1))
    cfg = AttackConfig(suite="autoattack", eps=2 / 255, aa_attacks=("square", "apgd-ce"), hygiene=False)
    state = tmp_path / "aa-state.json"
    key = {"run": 1, "attack_eps": 2 / 255, "attacks": ["square", "apgd-ce"], "n": 4}  # as the runner keys its state
    state.write_text(json.dumps({"key": key, "done": ["square", "apgd-ce"], "robust": [1, 0, 1, 0], "seconds": 300.0}))
    result = attack_model(model, samples, cfg, num_classes=11, state_path=state, state_key={"run": 1})
    assert result.rows[0]["adv_acc"] == 0.5 and 300.0 <= result.rows[0]["seconds"] < 310.0
    assert any("resumed an interrupted run after square, apgd-ce" in note and "300.0 s" in note for note in result.notes)


# A real `partcli pretrain` process that SIGKILLs itself at one point: (os.replace, file name, call, before/after
# the rename) or (Trainer.validate, first call): killed before its first checkpoint.
KILLER = """
import os, signal, sys
from pathlib import Path
point, name, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.argv = ["partcli", *sys.argv[4:]]
calls = []

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "validate":
    from partcli.train.loop import Trainer
    Trainer.validate = lambda self: die()
else:
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        hit = Path(dst).name == name and len(calls) + 1 == nth
        calls.extend([dst] if Path(dst).name == name else [])
        if hit and point == "before":
            die()
        real_replace(src, dst, *args, **kwargs)
        if hit and point == "after":
            die()
    os.replace = replace
from partcli.cli import main
main()
"""
KILL_POINTS = {
    "in-epoch-1": ("validate", "-", 1),  # trained, nothing written but config.yaml
    "best-temp-file": ("before", "best.pt", 1),  # best.pt's temp file written, not renamed
    "between-best-and-last": ("before", "last.pt", 1),  # best.pt of epoch 1, no last.pt
    "after-last": ("after", "last.pt", 2),  # last.pt of epoch 2, not its metrics row
}


@pytest.mark.slow
def test_sigkill_at_each_point_then_resume_matches_the_uninterrupted_run(setup, tmp_path):
    root, cfg = setup
    args = ["--quiet", "pretrain", "--data", cfg["data"], "--arch", "bbox", "--backbone", "resnet18", "--image-size",
            "16", "--epochs", str(EPOCHS), "--batch-size", "8", "--lr", "0.05", "--seed", "1", "--device", "cpu"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}

    def start(*command: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, *command], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    runs = {name: tmp_path / name for name in ("full", *KILL_POINTS)}
    procs = {"full": start("-m", "partcli", *args, "--out", str(runs["full"]))}
    procs.update({name: start("-c", KILLER, point, file, str(nth), *args, "--out", str(runs[name]))
                  for name, (point, file, nth) in KILL_POINTS.items()})
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == (0 if name == "full" else -signal.SIGKILL), (name, err)
    assert not (runs["in-epoch-1"] / "checkpoints" / "last.pt").exists()
    assert list((runs["best-temp-file"] / "checkpoints").glob(".best.pt.*.tmp"))
    assert metric_epochs(runs["after-last"]) == [1]

    resumed = {name: start("-m", "partcli", "--quiet", "pretrain", "--out", str(runs[name]), "--resume")
               for name in KILL_POINTS}
    for name, proc in resumed.items():
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, (name, err)
        assert_same_final_state(runs["full"], runs[name])
        assert metric_rows(runs[name]) == metric_rows(runs["full"]), name
        best, full_best = (load_checkpoint(runs[n] / "checkpoints" / "best.pt") for n in (name, "full"))
        assert best["epoch"] == full_best["epoch"], name
        assert not list((runs[name] / "checkpoints").glob("*.tmp")), name


# ------------------------------------------------------------------------------ issue 12: what --resume changes
@pytest.fixture(scope="module")
def two_epochs(setup) -> Path:
    """The setup's run, planned for 2 epochs and finished."""
    root, cfg = setup
    run_training(TrainConfig(out=str(root / "two_epochs"), **{**cfg, "epochs": 2}))
    return root / "two_epochs"


def copy_run(run: Path, out: Path) -> Path:
    """A copy of a finished run that resumes as the run itself would (its config names its new folder)."""
    shutil.copytree(run, out)
    doc = yaml.safe_load((out / "config.yaml").read_text())
    (out / "config.yaml").write_text(yaml.safe_dump({**doc, "out": str(out)}))
    return out


def test_extending_a_run_equals_a_run_planned_with_the_same_schedule(setup, two_epochs, tmp_path):
    """2 epochs, then --resume --epochs 3: the cosine schedule of epoch 3 is re-planned over 3 epochs. A fresh
    3-epoch run given the same plan (the extended run's config.yaml as its configuration) ends bit-identical."""
    cfg = setup[1]
    copy_run(two_epochs, tmp_path / "extended")
    run_training(TrainConfig(out=str(tmp_path / "extended"), epochs=3), resume=True, given={"out", "epochs"})
    stored = yaml.safe_load((tmp_path / "extended" / "config.yaml").read_text())
    assert stored["epochs"] == 3 and stored["replanned"] == [[2, 2]]
    replayed = TrainConfig(**{**{k: v for k, v in stored.items() if k != "partcli_version"},
                              "out": str(tmp_path / "planned")})
    run_training(replayed)
    assert_same_final_state(tmp_path / "extended", tmp_path / "planned")
    assert metric_rows(tmp_path / "extended") == metric_rows(tmp_path / "planned")

    # the learning rates: epochs 1-2 as planned for 2 epochs, epoch 3 on the cosine over 3 epochs (5 steps/epoch)
    steps, lr = 32 // cfg["batch_size"], cfg["lr"]
    rows = list(csv.DictReader((tmp_path / "extended" / "metrics.csv").open()))
    planned = [lr * 0.5 * (1 + math.cos(math.pi * e * steps / (total * steps))) for e, total in ((0, 2), (1, 2), (2, 3))]
    assert [float(r["lr"]) for r in rows] == pytest.approx(planned, rel=1e-5)
    assert float(rows[2]["lr"]) == pytest.approx(lr * 0.25, rel=1e-5)  # cos(2π/3): a quarter of the peak


def test_resume_applies_workers_and_device_and_stays_bit_identical(setup, monkeypatch, tmp_path):
    """Killed after epoch 1, resumed with one DataLoader worker: every sample's augmentation is seeded by
    (seed, epoch, sample), not by a worker, so the run still ends as the uninterrupted one (0 workers)."""
    root, cfg = setup
    out = tmp_path / "resumed_with_a_worker"
    killed_in_epoch(2, monkeypatch, TrainConfig(out=str(out), **cfg))
    trainer = Trainer(TrainConfig(out=str(out), workers=1, device="cpu"), resume=True)
    assert trainer.workers == 1 and trainer.cfg.workers == 1 and trainer.device.type == "cpu"
    trainer.fit()
    assert_same_final_state(root / "full", out)
    assert yaml.safe_load((out / "config.yaml").read_text())["workers"] == 1


def folder_snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("args, named", [
    (["--lr", "0.5"], "--lr 0.5"),
    (["--arch", "pixel"], "--arch pixel"),
    (["--seg-labels", "object"], "--seg-labels object"),
    (["--epochs", "1"], "--epochs 1"),  # already trained 2
])
def test_resume_refuses_other_changes_naming_the_option(args, named, two_epochs, tmp_path, capsys, monkeypatch):
    from partcli.cli import main

    copy_run(two_epochs, tmp_path / "run")
    capsys.readouterr()
    before = folder_snapshot(tmp_path / "run")
    monkeypatch.setattr(sys, "argv", ["partcli", "--quiet", "pretrain", "--out", str(tmp_path / "run"), "--resume",
                                      "--lr", "0.05", "--device", "cpu", *args])  # --lr 0.05: as stored, accepted
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and err[0].startswith("error: ") and named in err[0], err
    assert folder_snapshot(tmp_path / "run") == before  # nothing written
