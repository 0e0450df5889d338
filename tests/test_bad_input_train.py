"""Bad input to pretrain, train and pseudolabel: options, --config files, --overwrite and --resume, each refused in
one line naming the option or file, exit code 2, with no half-written run folder."""
from __future__ import annotations

import dataclasses
import errno
import os

import pytest

from bad_input_fixtures import SIZE, assert_user_error, good, pretrain  # noqa: F401 (good: a fixture)
from helpers import run_cli


def test_overwrite_replaces_the_previous_run(good, tmp_path):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    header = "epoch,lr,train_loss,train_acc,val_clean_acc,val_adv_acc,val_pixel_acc,seconds,val_fg_pixel_acc,val_miou\n"
    (out / "metrics.csv").write_text(header + "".join(f"{e},0.1,1,0.5,0.5,,0.5,1\n" for e in range(1, 4)))
    (out / "notes.txt").write_text("the user's own file")
    result = pretrain(good, out, "--overwrite")
    assert result.code == 0, result.err
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0] + "\n" == header and [r.split(",")[0] for r in rows[1:]] == ["1"]
    assert (out / "notes.txt").exists()


@pytest.mark.parametrize("content, culprit", [
    ("epochs: [1, 2\n", "not valid YAML"),
    ("epochz: 3\n", "unknown key(s) epochz"),
    ("- 1\n- 2\n", "expected a mapping"),
    ("epochs: ten\n", "epochs: expected an int, got 'ten'"),
    ("eps: 8/0\n", "eps '8/0'"),
    ("amp: off\n", "quote the word"),
])
def test_bad_config_file(content, culprit, good, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(content)
    out = tmp_path / "run"
    assert_user_error(pretrain(good, out, "--config", config), "--config", str(config), culprit)
    assert_user_error(pretrain(good, out, "--config", tmp_path / "nope.yaml"), "--config", "not found")
    assert not out.exists()


@pytest.mark.parametrize("content, culprit", [("workers: -2\n", "workers -2"), ("device: tpu\n", "device 'tpu'"),
                                              ("replanned: [[2]]\n", "replanned")])
def test_bad_workers_device_or_replanned_in_a_config_file(content, culprit, good, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(content)
    assert_user_error(pretrain(good, tmp_path / "run", "--config", config), str(config), culprit)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("content, culprit", [("eps: .nan\n", "eps: expected a finite number, got nan"),
                                              ("lr: .inf\n", "lr: expected a finite number, got inf")])
def test_non_finite_config_values_are_named_as_such(content, culprit, good, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(content)
    assert_user_error(pretrain(good, tmp_path / "run", "--config", config), str(config), culprit)


def test_config_that_is_a_folder_or_a_binary_file(good, tmp_path):
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)))
    for config, culprit in ((tmp_path, "a folder, not a YAML file"), (tmp_path / "binary.yaml", "not a text file")):
        assert_user_error(pretrain(good, tmp_path / "run", "--config", config), "--config", str(config), culprit)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option, value", [("--arch", "nope"), ("--image-size", "20"), ("--cseg", "2"),
                                           ("--backbone", "not_a_net"), ("--optim", "adam"),
                                           ("--warmup-epochs", "99"), ("--seg-only-epochs", "-1"),
                                           ("--seg-loss-norm", "pixels"), ("--lr", "nan"), ("--momentum", "1.5")])
def test_bad_training_option(option, value, good, tmp_path):
    out = tmp_path / "run"
    assert_user_error(pretrain(good, out, option, value), option)
    assert not out.exists()


@pytest.mark.parametrize("option, value", [("--adv", "nope"), ("--device", "tpu"), ("--amp", "fp8"),
                                           ("--workers", "-1"), ("--workers", "many"), ("--seg-labels", "pixels")])
def test_bad_choice_or_workers_for_training(option, value, good, tmp_path):
    out = tmp_path / "run"
    result = run_cli("--quiet", "train", "--data", good, "--out", out, "--epochs", 1, "--image-size", SIZE,
                     "--batch-size", 2, option, value)
    assert_user_error(result, option)
    assert not out.exists()


@pytest.mark.parametrize("command, option, value", [("pretrain", "--lr", "nan"), ("pretrain", "--lr", "inf"),
                                                    ("pretrain", "--lr", "0"), ("pretrain", "--wd", "-inf"),
                                                    ("train", "--beta", "-1")])
def test_values_that_cannot_be_trained_on(command, option, value, good, tmp_path):
    out = tmp_path / "run"
    extra = ["--adv", "trades"] if command == "train" else []
    result = run_cli("--quiet", command, "--data", good, "--out", out, "--epochs", 1, "--image-size", SIZE,
                     "--batch-size", 2, "--device", "cpu", *extra, option, value)
    assert_user_error(result, option)
    assert not out.exists()


def test_train_refuses_an_eps_ball_beyond_the_pixel_range(good, tmp_path):
    """`--eps 8` (meant 8/255) would train against a ball covering all of [0, 1]: refused, as `attack` does."""
    out = tmp_path / "run"
    result = run_cli("--quiet", "train", "--data", good, "--out", out, "--epochs", 1, "--image-size", SIZE,
                     "--batch-size", 2, "--device", "cpu", "--adv", "pgd", "--eps", "8")
    assert_user_error(result, "--eps", "8/255")
    assert not out.exists()


def test_resume_refuses_an_option_that_differs_from_the_run(good, tmp_path):
    out = tmp_path / "run"
    assert pretrain(good, out).code == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert_user_error(run_cli("--quiet", "pretrain", "--out", out, "--resume", "--batch-size", 4),
                      "--batch-size 4", "--batch-size 2", "--resume")
    assert_user_error(run_cli("--quiet", "pretrain", "--out", out, "--resume", "--no-channels-last", "--channels-last"),
                      "--channels-last True", "--channels-last False")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_checkpoint_on_a_read_only_file_system(good, tmp_path, monkeypatch):
    import partcli.files

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(partcli.files, "_create_beside", read_only)
    out = tmp_path / "run"
    assert_user_error(pretrain(good, out), f"--out {out}", "Read-only file system")


def test_pseudolabel_refuses_a_segmenter_trained_on_other_data(synthetic_data, tmp_path):
    """A segmenter run of partcli before the labelled-subset change (trained on the whole split) in the work folder:
    refused, naming the folder and what differs, unless --overwrite; nothing written."""
    from partcli.checkpoint import save_checkpoint
    from partcli.pseudolabel import PseudoLabelConfig
    from partcli.pseudolabel.segmenter import segmenter_config
    from partcli.pseudolabel.subset import subset_dir_for

    out = tmp_path / "pseudo"
    cfg = PseudoLabelConfig(data=str(synthetic_data), out=str(out), frac=0.25, backbone="resnet18", epochs=1,
                            image_size=SIZE)
    old = dataclasses.asdict(segmenter_config(cfg, tmp_path / "pseudo.segmenter", subset_dir_for(out)))
    work = tmp_path / "pseudo.segmenter" / "checkpoints"
    work.mkdir(parents=True)
    save_checkpoint(work / "last.pt", {"config": {"train": old, "dataset": {"name": "synthetic"}, "model": {}},
                                       "model": {}, "epoch": 1})
    result = run_cli("--quiet", "pseudolabel", "--data", synthetic_data, "--out", out, "--frac", 0.25, "--backbone",
                     "resnet18", "--epochs", 1, "--image-size", SIZE, "--device", "cpu")
    assert_user_error(result, str(tmp_path / "pseudo.segmenter"), "training data: 'synthetic'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pseudo.segmenter"]
