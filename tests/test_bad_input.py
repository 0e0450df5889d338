"""Bad input (docs/formats.md; docs/design.md, house rules): one-line errors naming the file or option, exit code 2, no traceback, and no
half-written output folder."""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from helpers import run_cli, write_tiny_dataset
from partcli.checkpoint import CHECKPOINT_VERSION
from partcli.data.contract import DatasetWriter, Part, prepare_output_dir
from partcli.data.dataset import PreparedDataset
from partcli.errors import PartcliError
from partcli.train.run_files import METRIC_COLUMNS

SIZE = 16


@pytest.fixture(scope="module")
def good(module_tmp) -> Path:
    """A valid 2-class, 2-part dataset of 16-px images: 2 train, 1 val, 1 test sample."""
    return write_tiny_dataset(module_tmp / "good", SIZE)


@pytest.fixture
def data(good, tmp_path) -> Path:
    """A private copy of the good dataset for a test to break."""
    return Path(shutil.copytree(good, tmp_path / "data"))


def cli(capsys, monkeypatch, *args) -> tuple[int, str]:
    """(exit code, stderr) of the CLI run in-process (``helpers.run_cli``); the fixtures stay in the signature so
    that every caller reads alike."""
    result = run_cli(*args)
    return result.code, result.err


def assert_user_error(code: int, err: str, *names: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for name in names:
        assert name in lines[0], f"{name!r} not named in: {lines[0]}"


def pretrain(capsys, monkeypatch, data: Path, out: Path, *extra) -> tuple[int, str]:
    return cli(capsys, monkeypatch, "--quiet", "pretrain", "--data", data, "--out", out, "--epochs", 1,
               "--image-size", SIZE, "--batch-size", 2, "--device", "cpu", *extra)


def first_row(data: Path, split: str) -> dict[str, str]:
    lines = (data / f"{split}.csv").read_text().splitlines()
    return dict(zip(lines[0].split(","), lines[1].split(",")))


# ------------------------------------------------------------------------------ broken prepared datasets
def break_missing_yaml(data: Path) -> str:
    (data / "dataset.yaml").unlink()
    return str(data / "dataset.yaml")


def break_unknown_version(data: Path) -> str:
    doc = yaml.safe_load((data / "dataset.yaml").read_text())
    doc["format_version"] = 99
    (data / "dataset.yaml").write_text(yaml.safe_dump(doc))
    return str(data / "dataset.yaml")


def break_image_bytes(data: Path) -> str:
    rel = first_row(data, "train")["image"]
    (data / rel).write_bytes(b"this is not a png")
    return str(data / rel)


def break_missing_image(data: Path) -> str:
    rel = first_row(data, "val")["image"]
    (data / rel).unlink()
    return str(data / rel)


def break_mask_bytes(data: Path) -> str:
    rel = first_row(data, "val")["mask"]
    (data / rel).write_bytes(bytes(range(200)))
    return str(data / rel)


def break_mask_size(data: Path) -> str:
    rel = first_row(data, "train")["mask"]
    Image.fromarray(np.zeros((SIZE, SIZE + 2), np.uint8)).save(data / rel)
    return str(data / rel)


def break_mask_channels(data: Path) -> str:
    rel = first_row(data, "train")["mask"]
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(data / rel)
    return str(data / rel)


def break_empty_split(data: Path) -> str:
    (data / "val.csv").write_text("image,mask,label,mask_source\n")
    return str(data / "val.csv")


def break_label(data: Path) -> str:
    text = (data / "train.csv").read_text().splitlines()
    row = text[1].split(",")
    row[2] = "7"
    (data / "train.csv").write_text("\n".join([text[0], ",".join(row), *text[2:]]) + "\n")
    return f"{data / 'train.csv'}:2"


def break_short_row(data: Path) -> str:
    text = (data / "train.csv").read_text().splitlines()
    (data / "train.csv").write_text("\n".join([text[0], text[1].split(",")[0], *text[2:]]) + "\n")
    return f"{data / 'train.csv'}:2"


BREAKS = [break_missing_yaml, break_unknown_version, break_image_bytes, break_missing_image, break_mask_bytes,
          break_mask_size, break_mask_channels, break_empty_split, break_label, break_short_row]


@pytest.mark.parametrize("breaker", BREAKS, ids=lambda f: f.__name__.removeprefix("break_"))
def test_pretrain_refuses_a_broken_dataset_before_writing(breaker, data, tmp_path, capsys, monkeypatch):
    culprit = breaker(data)
    out = tmp_path / "run"
    code, err = pretrain(capsys, monkeypatch, data, out)
    assert_user_error(code, err, culprit)
    assert not out.exists(), "a failed pretrain left a run folder behind"


@pytest.mark.parametrize("breaker, split", [(break_unknown_version, "test"), (break_mask_size, "train"),
                                            (break_mask_bytes, "val"), (break_empty_split, "val")],
                         ids=["unknown_version", "mask_size", "mask_bytes", "empty_split"])
def test_evaluate_and_info_refuse_a_broken_dataset(breaker, split, data, tmp_path, capsys, monkeypatch,
                                                   good_checkpoint):
    culprit = breaker(data)
    csv = tmp_path / "eval.csv"
    code, err = cli(capsys, monkeypatch, "evaluate", "--ckpt", good_checkpoint, "--data", data, "--split", split,
                    "--out", csv)
    assert_user_error(code, err, culprit)
    assert not csv.exists()
    if breaker is break_unknown_version:
        assert_user_error(*cli(capsys, monkeypatch, "info", data), culprit)


def break_part_id(data: Path) -> str:
    rel = first_row(data, "train")["mask"]
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[0, 0] = 3  # K = 2
    Image.fromarray(mask).save(data / rel)
    return str(data / rel)


def break_missing_mask(data: Path) -> str:
    rel = first_row(data, "train")["mask"]
    (data / rel).unlink()
    return str(data / rel)


@pytest.mark.parametrize("breaker", [
    break_part_id,
    break_missing_mask,
], ids=["part_id", "missing_mask"])
def test_faults_in_masks_leave_no_run_folder(breaker, data, tmp_path, capsys, monkeypatch):
    culprit = breaker(data)
    out = tmp_path / "run"
    code, err = pretrain(capsys, monkeypatch, data, out)
    assert_user_error(code, err, culprit)
    assert not out.exists()


def test_validate_files_is_strict_but_honours_withheld_masks(data):
    culprit = break_missing_mask(data)
    ds = PreparedDataset(data, "train")  # the constructor's check lets a missing (maybe withheld) mask pass
    with pytest.raises(PartcliError, match="mask file missing") as err:
        ds.validate_files()
    assert culprit in str(err.value)
    ds.drop_masks = {0}
    ds.validate_files()
    assert not ds[0][3]


def test_part_id_above_k_is_a_one_line_error(data, tmp_path, capsys, monkeypatch, good_checkpoint):
    rel = first_row(data, "val")["mask"]
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[0, 0] = 3
    Image.fromarray(mask).save(data / rel)
    code, err = cli(capsys, monkeypatch, "evaluate", "--ckpt", good_checkpoint, "--data", data,
                    "--split", "val", "--out", tmp_path / "e.csv")
    assert_user_error(code, err, str(data / rel), "part id 3 > K=2")


# ------------------------------------------------------------------------------ output folders and options
def test_non_empty_out_is_refused_unless_overwrite(good, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, err = pretrain(capsys, monkeypatch, good, out)
    assert_user_error(code, err, "--out", str(out), "--overwrite")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    code, err = cli(capsys, monkeypatch, "prepare", "synthetic", "--out", out, "--n", 40, "--image-size", 16)
    assert_user_error(code, err, "--out", str(out))
    assert prepare_output_dir(out, overwrite=True, dataset=False) == out  # a run folder: only run files replaced
    with pytest.raises(PartcliError, match="no dataset.yaml"):  # a dataset would replace the whole folder
        prepare_output_dir(out, overwrite=True)
    assert prepare_output_dir(tmp_path / "empty-or-new", overwrite=False) == tmp_path / "empty-or-new"
    (tmp_path / "file").write_text("x")
    with pytest.raises(PartcliError, match="not a folder"):
        prepare_output_dir(tmp_path / "file", overwrite=True)


def test_overwrite_replaces_the_previous_run(good, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    header = "epoch,lr,train_loss,train_acc,val_clean_acc,val_adv_acc,val_pixel_acc,seconds,val_fg_pixel_acc,val_miou\n"
    (out / "metrics.csv").write_text(header + "".join(f"{e},0.1,1,0.5,0.5,,0.5,1\n" for e in range(1, 4)))
    (out / "notes.txt").write_text("the user's own file")
    code, err = pretrain(capsys, monkeypatch, good, out, "--overwrite")
    assert code == 0, err
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
def test_bad_config_file(content, culprit, good, tmp_path, capsys, monkeypatch):
    config = tmp_path / "c.yaml"
    config.write_text(content)
    out = tmp_path / "run"
    assert_user_error(*pretrain(capsys, monkeypatch, good, out, "--config", config), "--config", str(config), culprit)
    assert_user_error(*pretrain(capsys, monkeypatch, good, out, "--config", tmp_path / "nope.yaml"), "--config",
                      "not found")
    assert not out.exists()


@pytest.mark.parametrize("option, value", [("--arch", "nope"), ("--image-size", "20"), ("--cseg", "2"),
                                           ("--backbone", "not_a_net"), ("--optim", "adam"),
                                           ("--warmup-epochs", "99"), ("--seg-only-epochs", "-1"),
                                           ("--seg-loss-norm", "pixels"), ("--lr", "nan"), ("--momentum", "1.5")])
def test_bad_training_option(option, value, good, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert_user_error(*pretrain(capsys, monkeypatch, good, out, option, value), option)
    assert not out.exists()


def test_train_refuses_an_eps_ball_beyond_the_pixel_range(good, tmp_path, capsys, monkeypatch):
    """`--eps 8` (meant 8/255) would train against a ball covering all of [0, 1]: refused, as `attack` does."""
    out = tmp_path / "run"
    code, err = cli(capsys, monkeypatch, "--quiet", "train", "--data", good, "--out", out, "--epochs", 1,
                    "--image-size", SIZE, "--batch-size", 2, "--device", "cpu", "--adv", "pgd", "--eps", "8")
    assert_user_error(code, err, "--eps", "8/255")
    assert not out.exists()


@pytest.mark.parametrize("option, value", [("--batch-size", "0"), ("--image-size", "20"), ("--device", "tpu"),
                                           ("--workers", "-1"), ("--split", "nope")])
def test_bad_evaluate_option(option, value, good, good_checkpoint, tmp_path, capsys, monkeypatch):
    csv = tmp_path / "e.csv"
    assert_user_error(*cli(capsys, monkeypatch, "evaluate", "--ckpt", good_checkpoint, "--data", good, "--out", csv,
                           option, value), option)
    assert not csv.exists()


# ------------------------------------------------------------------------------ checkpoints
def _checkpoint(tmp_path: Path) -> Path:
    """A tiny valid partcli checkpoint (random weights) for the ``good`` dataset's 2 classes and 2 parts."""
    from partcli.checkpoint import save_checkpoint
    from partcli.models.registry import ModelConfig, build_model

    cfg = ModelConfig(arch="bbox", backbone="resnet18", num_classes=2, num_parts=2, part_to_class=[0, 1])
    path = tmp_path / "good.pt"
    save_checkpoint(path, {"config": {"model": cfg.to_dict(), "dataset": {"image_size": SIZE}},
                           "model": build_model(cfg).state_dict()})
    return path


@pytest.fixture(scope="module")
def good_checkpoint(module_tmp) -> Path:
    return _checkpoint(module_tmp / "ckpt")


BAD_CHECKPOINTS = {
    "random.pt": bytes(range(256)) * 8,
    "plain.pt": {"weights": torch.zeros(3)},
    "future.pt": {"format_version": CHECKPOINT_VERSION + 1, "model": {}, "config": {"model": {}}},
}


@pytest.mark.parametrize("name", BAD_CHECKPOINTS)
def test_not_a_partcli_checkpoint(name, good, tmp_path, capsys, monkeypatch):
    path = tmp_path / name
    content = BAD_CHECKPOINTS[name]
    path.write_bytes(content) if isinstance(content, bytes) else torch.save(content, path)
    csv = tmp_path / "eval.csv"
    code, err = cli(capsys, monkeypatch, "evaluate", "--ckpt", path, "--data", good, "--out", csv)
    assert_user_error(code, err, str(path))
    assert not csv.exists()
    assert_user_error(*cli(capsys, monkeypatch, "info", path), str(path))
    out = tmp_path / "run"
    assert_user_error(*cli(capsys, monkeypatch, "--quiet", "train", "--data", good, "--out", out, "--init", path,
                           "--epochs", 1, "--image-size", SIZE, "--device", "cpu"), str(path))
    assert not out.exists()


def test_checkpoint_for_another_dataset(good, good_checkpoint, tmp_path, capsys, monkeypatch):
    other = tmp_path / "other"
    with DatasetWriter(other, ["a", "b", "c"], [Part("a/x", "a")], name="other") as writer:
        for split in ("train", "val", "test"):
            writer.add(split, "s", 0, Image.new("RGB", (SIZE, SIZE)), mask=np.zeros((SIZE, SIZE), np.uint8))
        writer.finish({})
    code, err = cli(capsys, monkeypatch, "evaluate", "--ckpt", good_checkpoint, "--data", other,
                    "--out", tmp_path / "e.csv")
    assert_user_error(code, err, "--ckpt", "2 classes", "3")


# ------------------------------------------------------------------------------ the real console script
def console_script() -> list[str]:
    script = Path(sys.executable).with_name("partcli")
    return [str(script)] if script.exists() else [sys.executable, "-m", "partcli"]


def test_console_script_exit_code_and_no_traceback(good, tmp_path):
    """User errors through the installed entry point: exit code 2, one line on stderr, no traceback."""
    (tmp_path / "random.pt").write_bytes(bytes(range(256)) * 8)
    cases = [
        (["pretrain", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r1")], str(tmp_path / "nowhere")),
        (["evaluate", "--ckpt", str(tmp_path / "random.pt"), "--data", str(good), "--out", str(tmp_path / "e.csv")],
         str(tmp_path / "random.pt")),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    procs = [subprocess.Popen([*console_script(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for args, _ in cases]  # concurrently: each spends seconds importing torch
    for proc, (_, culprit) in zip(procs, cases):
        _, stderr = proc.communicate(timeout=180)
        assert_user_error(proc.returncode, stderr, culprit)
    assert not (tmp_path / "r1").exists() and not (tmp_path / "e.csv").exists()


# ------------------------------------------------------------------------------ issue 15: what still slipped through
@pytest.mark.parametrize("command, option, value", [("pretrain", "--lr", "nan"), ("pretrain", "--lr", "inf"),
                                                    ("pretrain", "--lr", "0"), ("pretrain", "--wd", "-inf"),
                                                    ("train", "--beta", "-1")])
def test_values_that_cannot_be_trained_on(command, option, value, good, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    extra = ["--adv", "trades"] if command == "train" else []
    code, err = cli(capsys, monkeypatch, "--quiet", command, "--data", good, "--out", out, "--epochs", 1,
                    "--image-size", SIZE, "--batch-size", 2, "--device", "cpu", *extra, option, value)
    assert_user_error(code, err, option)
    assert not out.exists()


@pytest.mark.parametrize("content, culprit", [("eps: .nan\n", "eps: expected a finite number, got nan"),
                                              ("lr: .inf\n", "lr: expected a finite number, got inf")])
def test_non_finite_config_values_are_named_as_such(content, culprit, good, tmp_path, capsys, monkeypatch):
    config = tmp_path / "c.yaml"
    config.write_text(content)
    assert_user_error(*pretrain(capsys, monkeypatch, good, tmp_path / "run", "--config", config), str(config), culprit)


def test_config_that_is_a_folder_or_a_binary_file(good, tmp_path, capsys, monkeypatch):
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)))
    for config, culprit in ((tmp_path, "a folder, not a YAML file"), (tmp_path / "binary.yaml", "not a text file")):
        assert_user_error(*pretrain(capsys, monkeypatch, good, tmp_path / "run", "--config", config), "--config",
                          str(config), culprit)
    assert not (tmp_path / "run").exists()


def test_typer_usage_errors_are_one_line(good, tmp_path, capsys, monkeypatch):
    assert_user_error(*pretrain(capsys, monkeypatch, good, tmp_path / "run", "--epochs", "abc"), "'--epochs'",
                      "partcli pretrain --help")
    assert_user_error(*cli(capsys, monkeypatch, "evaluate", "--data", good), "--ckpt", "--model")
    assert_user_error(*cli(capsys, monkeypatch, "pretrain", "--epochz", 3), "--epochz")
    assert not (tmp_path / "run").exists()


def test_user_errors_in_dataloader_workers_are_one_line(data, tmp_path, capsys, monkeypatch):
    culprit = break_part_id(data)  # found when a worker loads the mask, not by the header check
    out = tmp_path / "run"
    code, err = pretrain(capsys, monkeypatch, data, out, "--workers", 1)
    assert_user_error(code, err, culprit, "part id 3 > K=2")
    assert not out.exists()


def test_weights_that_do_not_fit_their_config(good, tmp_path, capsys, monkeypatch):
    import partcli

    state = torch.load(_checkpoint(tmp_path), weights_only=True)
    state["config"]["model"]["num_parts"] = 3  # the segmenter would have 4 output channels, the weights have 3
    path = tmp_path / "edited.pt"
    torch.save(state, path)
    with pytest.raises(PartcliError, match="do not fit the model its configuration describes"):
        partcli.load_model(path)
    good3 = tmp_path / "good3"  # a dataset with 3 parts, so that evaluate gets as far as the weights
    with DatasetWriter(good3, ["a", "b"], [Part("a/x", "a"), Part("b/y", "b"), Part("b/z", "b")], name="g3") as w:
        for split in ("train", "val", "test"):
            w.add(split, "s", 0, Image.new("RGB", (SIZE, SIZE)), mask=np.zeros((SIZE, SIZE), np.uint8))
        w.finish({})
    code, err = cli(capsys, monkeypatch, "evaluate", "--ckpt", path, "--data", good3, "--out", tmp_path / "e.csv")
    assert_user_error(code, err, f"--ckpt {path}", "of another shape")
    assert not (tmp_path / "e.csv").exists()


def test_dataset_yaml_with_malformed_parts_or_classes(data, tmp_path, capsys, monkeypatch, good_checkpoint):
    doc = yaml.safe_load((data / "dataset.yaml").read_text())
    for broken, culprit in (({**doc, "parts": "oops"}, "'parts' must be a list of {name, class} mappings"),
                            ({**doc, "classes": 3}, "'classes' must be a list")):
        (data / "dataset.yaml").write_text(yaml.safe_dump(broken))
        assert_user_error(*cli(capsys, monkeypatch, "info", data), str(data / "dataset.yaml"), culprit)


def test_absolute_paths_in_a_split_csv_are_refused(data, tmp_path, capsys, monkeypatch):
    text = (data / "train.csv").read_text().splitlines()
    row = text[1].split(",")
    row[0] = str(data / row[0])  # the same file, by absolute path
    (data / "train.csv").write_text("\n".join([text[0], ",".join(row), *text[2:]]) + "\n")
    out = tmp_path / "run"
    assert_user_error(*pretrain(capsys, monkeypatch, data, out), f"{data / 'train.csv'}:2", "is absolute")
    assert not out.exists()


def test_info_on_a_dataset_checks_its_files(data, capsys, monkeypatch):
    culprit = break_missing_image(data)
    assert_user_error(*cli(capsys, monkeypatch, "info", data), culprit, "image file missing")


# Tests run as root here, and root writes through chmod's read-only bits: an output "inside" a regular file stands
# for a place that cannot be written, and a patched temporary-file creation for a file system that turns read-only mid-run.
def test_unwritable_outputs_are_one_line_errors(good, good_checkpoint, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for args in (["prepare", "synthetic", "--out", blocker / "ds", "--n", 40, "--image-size", SIZE],
                 ["evaluate", "--ckpt", good_checkpoint, "--data", good, "--out", blocker / "e.csv"],
                 ["attack", "--ckpt", good_checkpoint, "--data", good, "--suite", "pgd", "--steps", 1, "--restarts", 1,
                  "--no-hygiene", "--out", blocker / "a.csv"]):
        assert_user_error(*cli(capsys, monkeypatch, "--quiet", *args), f"--out {blocker}", "cannot write there")
    assert_user_error(*pretrain(capsys, monkeypatch, good, blocker / "run"), f"--out {blocker / 'run'}",
                      "cannot write there (Not a directory)")
    assert blocker.read_text() == "not a folder"


def test_checkpoint_on_a_read_only_file_system(good, tmp_path, capsys, monkeypatch):
    import errno

    import partcli.files

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(partcli.files, "_create_beside", read_only)
    out = tmp_path / "run"
    assert_user_error(*pretrain(capsys, monkeypatch, good, out), f"--out {out}", "Read-only file system")


def test_prepare_removes_the_partial_folders_of_a_killed_run(tmp_path, capsys, monkeypatch):
    stale = [tmp_path / ".ds.k3j2h1g0.partial", tmp_path / ".ds.a_b_c_d_.partial"]
    kept = [tmp_path / ".ds2.k3j2h1g0.partial", tmp_path / ".ds.x.k3j2h1g0.partial", tmp_path / ".ds.short.partial"]
    for folder in stale + kept:
        (folder / "images").mkdir(parents=True)
    code, err = cli(capsys, monkeypatch, "prepare", "synthetic", "--out", tmp_path / "ds", "--n", 40,
                    "--image-size", SIZE)
    assert code == 0, err
    assert "removed 2 partial folder(s)" in err
    assert not any(folder.exists() for folder in stale) and all(folder.exists() for folder in kept)


@pytest.mark.parametrize("option, value", [("--eps", "eight"), ("--step-size", "0"), ("--suite", "fgsm"),
                                           ("--strategy", "sideways"), ("--split", "holdout")])
def test_attack_options_are_refused_through_its_config(option, value, good, good_checkpoint, tmp_path, capsys,
                                                       monkeypatch):
    """The attack command builds an AttackConfig; whatever it refuses is one line naming the option, nothing written."""
    out = tmp_path / "a.csv"
    code, err = cli(capsys, monkeypatch, "--quiet", "attack", "--ckpt", good_checkpoint, "--data", good, "--suite",
                    "pgd", "--steps", 1, "--restarts", 1, option, value, "--out", out)
    assert_user_error(code, err, option)
    assert not list(tmp_path.iterdir())


def test_attack_survivors_of_with_n(good, good_checkpoint, tmp_path, capsys, monkeypatch):
    earlier = tmp_path / "a.pgd.1.samples.csv"
    earlier.write_text("index,image,label,clean_correct,split,checkpoint,robust:pgd\n")
    code, err = cli(capsys, monkeypatch, "--quiet", "attack", "--ckpt", good_checkpoint, "--data", good,
                    "--survivors-of", earlier, "--n", 1, "--out", tmp_path / "b.csv")
    assert_user_error(code, err, "--n 1", "--survivors-of")
    assert sorted(p.name for p in tmp_path.iterdir()) == [earlier.name]


def test_pseudolabel_refuses_a_segmenter_trained_on_other_data(synthetic_data, tmp_path, capsys, monkeypatch):
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
    code, err = cli(capsys, monkeypatch, "--quiet", "pseudolabel", "--data", synthetic_data, "--out", out, "--frac",
                    0.25, "--backbone", "resnet18", "--epochs", 1, "--image-size", SIZE, "--device", "cpu")
    assert_user_error(code, err, str(tmp_path / "pseudo.segmenter"), "training data: 'synthetic'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pseudo.segmenter"]


# ------------------------------------------------------------------------------ issue 12: choices, workers, resume
@pytest.mark.parametrize("option, value", [("--adv", "nope"), ("--device", "tpu"), ("--amp", "fp8"),
                                           ("--workers", "-1"), ("--workers", "many"), ("--seg-labels", "pixels")])
def test_bad_choice_or_workers_for_training(option, value, good, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    code, err = cli(capsys, monkeypatch, "--quiet", "train", "--data", good, "--out", out, "--epochs", 1,
                    "--image-size", SIZE, "--batch-size", 2, option, value)
    assert_user_error(code, err, option)
    assert not out.exists()


@pytest.mark.parametrize("content, culprit", [("workers: -2\n", "workers -2"), ("device: tpu\n", "device 'tpu'"),
                                              ("replanned: [[2]]\n", "replanned")])
def test_bad_config_values_of_issue_12(content, culprit, good, tmp_path, capsys, monkeypatch):
    config = tmp_path / "c.yaml"
    config.write_text(content)
    assert_user_error(*pretrain(capsys, monkeypatch, good, tmp_path / "run", "--config", config), str(config), culprit)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option, value", [("--suite", "nope"), ("--split", "nope"), ("--strategy", "nope"),
                                           ("--device", "tpu"), ("--eps", "x/255")])
def test_bad_attack_option(option, value, good, good_checkpoint, tmp_path, capsys, monkeypatch):
    csv = tmp_path / "a.csv"
    assert_user_error(*cli(capsys, monkeypatch, "attack", "--ckpt", good_checkpoint, "--data", good, "--out", csv,
                           option, value), option)
    assert not csv.exists()


def test_resume_refuses_an_option_that_differs_from_the_run(good, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert pretrain(capsys, monkeypatch, good, out)[0] == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, err = cli(capsys, monkeypatch, "--quiet", "pretrain", "--out", out, "--resume", "--batch-size", 4)
    assert_user_error(code, err, "--batch-size 4", "--batch-size 2", "--resume")
    code, err = cli(capsys, monkeypatch, "--quiet", "pretrain", "--out", out, "--resume", "--no-channels-last",
                    "--channels-last")
    assert_user_error(code, err, "--channels-last True", "--channels-last False")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

# ------------------------------------------------------------------------------ visualize and report
@pytest.mark.parametrize("option, value", [("--out", "fig.jpg"), ("--out", "fig.gif"), ("--format", "gif"),
                                           ("--format", "pdf"), ("--n", "0"), ("--n", "5"), ("--attack", "fgsm"),
                                           ("--eps", "2"), ("--steps", "0"), ("--batch-size", "0"),
                                           ("--split", "nope")])
def test_bad_visualize_option(option, value, good, good_checkpoint, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    args = ["visualize", "--ckpt", good_checkpoint, "--data", good, "--out", out / "v.png", option, value]
    if option == "--out":
        args[-1] = str(out / value)
    assert_user_error(*cli(capsys, monkeypatch, *args), option if option != "--split" else "nope")
    assert not any(out.iterdir())


def test_report_refuses_missing_empty_or_unrelated_folders(tmp_path, capsys, monkeypatch):
    out = tmp_path / "report"
    assert_user_error(*cli(capsys, monkeypatch, "report", tmp_path / "nowhere", "--out", out),
                      str(tmp_path / "nowhere"), "no such file or folder")
    for option, value in (("--split", "testing"), ("--eps", "8"), ("--eps", "x"), ("--format", "gif")):
        assert_user_error(*cli(capsys, monkeypatch, "report", tmp_path, "--out", out, option, value), option, value)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_user_error(*cli(capsys, monkeypatch, "report", empty, "--out", out), str(empty), "nothing to report",
                      "no run folder with metrics.csv")
    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    (unrelated / "notes.txt").write_text("hello")
    (unrelated / "scores.csv").write_text("name,score\nx,1\n")
    assert_user_error(*cli(capsys, monkeypatch, "report", unrelated, "--out", out), "nothing to report",
                      f"{unrelated / 'scores.csv'}: unknown CSV kind (columns name, score)")
    assert not out.exists()


def test_report_says_what_it_skipped_and_why(good, tmp_path, capsys, monkeypatch):
    from partcli.evaluate.results_csv import append_results
    from test_report import make_run, rows_for

    root = tmp_path / "results"
    run = make_run(root / "runs", "bbox-pgd", adv="pgd")
    append_results(root / "attacks.csv", rows_for(run, 0.9, pgd=0.3)
                   + [{**rows_for(run, 0.9, pgd=0.2)[0], "suite": "imagenet-r", "attack": "renditions", "eps": None}])
    (root / "other-tool.csv").write_text("epoch;loss\n1;0.5\n")
    (root / "runs" / "crashed").mkdir()
    (root / "runs" / "crashed" / "config.yaml").write_text("arch: bbox\n")
    empty = make_run(root / "runs", "empty-metrics")
    (empty / "metrics.csv").write_text(",".join(METRIC_COLUMNS) + "\n")
    shutil.copytree(good, root / "data")
    (root / "broken.hygiene.json").write_text("{not json")
    out = tmp_path / "report"
    code, err = cli(capsys, monkeypatch, "report", root, "--out", out)
    assert code == 0 and "Traceback" not in err, err
    skipped = (out / "index.md").read_text().split("## Skipped", 1)[1]
    for culprit, reason in ((root / "other-tool.csv", "unknown CSV kind"),
                            (root / "runs" / "crashed", "a run folder without metrics.csv"),
                            (empty / "metrics.csv", "no epochs yet"),
                            (root / "data", "a prepared dataset, not results"),
                            (root / "broken.hygiene.json", "not a hygiene checklist"),
                            (root / "attacks.csv", "1 row(s) of suite 'imagenet-r'")):
        assert f"- {culprit}: {reason}" in skipped.replace("\\", ""), (culprit, skipped)
    assert (out / "curves-runs-bbox-pgd.png").is_file()


def test_report_refuses_a_foreign_out_folder(tmp_path, capsys, monkeypatch):
    from test_report import make_run

    make_run(tmp_path / "runs", "a")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("keep me")
    assert_user_error(*cli(capsys, monkeypatch, "report", tmp_path / "runs", "--out", out), f"--out {out}",
                      "holds no partcli report", "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]
    code, err = cli(capsys, monkeypatch, "report", tmp_path / "runs", "--out", out, "--overwrite")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["curves-a.png", "index.html", "index.md", "thesis.tex"]

# ------------------------------------------------------------------------------ robustness and compare
@pytest.mark.parametrize("option, value", [("--suite", "weather"), ("--corruption", "rain"), ("--severity", 0),
                                           ("--severity", 6)])
def test_bad_robustness_option(option, value, good, good_checkpoint, tmp_path, capsys, monkeypatch):
    out = tmp_path / "r.csv"
    assert_user_error(*cli(capsys, monkeypatch, "robustness", "--ckpt", good_checkpoint, "--data", good, "--out", out,
                           "--cache", tmp_path / "cache", option, value), option, str(value))
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_robustness_refuses_what_its_suites_cannot_use(data, good_checkpoint, tmp_path, capsys, monkeypatch):
    out = tmp_path / "r.csv"
    run = lambda *args: cli(capsys, monkeypatch, "robustness", "--ckpt", good_checkpoint, "--data", data,  # noqa: E731
                            "--out", out, *args)
    assert_user_error(*run("--suite", "corruptions"), "--suite corruptions", f"{SIZE} px", "32 px")
    assert_user_error(*run("--suite", "foreground"), "--suite foreground", "one class")
    assert_user_error(*run("--suite", "shape-texture", "--stylizer", tmp_path / "none.pt2"), "--stylizer",
                      "not found")
    row = first_row(data, "test")
    (data / "test.csv").write_text(f"image,mask,label,mask_source\n{row['image']},,{row['label']},\n")
    for suite in ("foreground", "shape-texture"):
        assert_user_error(*run("--suite", suite), "--suite", "1 of 1 test samples", row["image"], "no part mask")
    assert not out.exists()


def test_bad_compare_input(good_checkpoint, tmp_path, capsys, monkeypatch):
    from partcli.evaluate.results_csv import append_results

    results = tmp_path / "r.csv"
    append_results(results, [{"checkpoint": str(good_checkpoint), "dataset": "d", "split": "test", "suite": "pgd",
                              "attack": "pgd", "eps": 0.03, "n": 1, "clean_acc": 1.0, "adv_acc": 0.5}])
    compare = lambda *args: cli(capsys, monkeypatch, "compare", *args)  # noqa: E731
    assert_user_error(*compare(results, "--by", "colour"), "--by 'colour'", "arch")
    assert_user_error(*compare(results, "--metric", "speed"), "--metric 'speed'", "adv_acc")
    assert_user_error(*compare(results, "--ref", "vit"), "--ref 'vit'", "bbox")
    assert_user_error(*compare(results, "--attack", "fgsm*"), "--attack fgsm*", "no row")
    assert_user_error(*compare(tmp_path / "none.csv"), str(tmp_path / "none.csv"), "not found")
    other = tmp_path / "other.csv"
    other.write_text("epoch,lr\n1,0.1\n")
    assert_user_error(*compare(other), str(other), "not a partcli results CSV", "checkpoint")
    moved = tmp_path / "moved.csv"
    moved.write_text(results.read_text().replace(str(good_checkpoint), "gone/best.pt"))
    assert_user_error(*compare(moved), f"{moved}:2", "gone/best.pt", "not found")
    bad_number = tmp_path / "bad.csv"
    bad_number.write_text(results.read_text().replace(",0.5,", ",half,"))
    assert_user_error(*compare(bad_number), f"{bad_number}:2", "'half'", "not a number")
    code, err = compare(results)  # one checkpoint: a mean, a note, no interval and never NaN
    assert code == 0 and "fewer than two" in err and "nan" not in err.lower()
