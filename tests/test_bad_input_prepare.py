"""Bad prepared datasets and the prepare command (docs/formats.md): whichever command reads a broken dataset —
pretrain, evaluate, info — refuses it in one line naming the file (and row), exit code 2, and writes nothing."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from bad_input_fixtures import SIZE, assert_user_error, data, first_row, good, good_checkpoint, pretrain  # noqa: F401
from helpers import run_cli
from partcli.data.dataset import PreparedDataset
from partcli.errors import PartcliError


# Each breaker damages one thing in a copy of the good dataset and returns the culprit the error must name.
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


BREAKS = [break_missing_yaml, break_unknown_version, break_image_bytes, break_missing_image, break_mask_bytes,
          break_mask_size, break_mask_channels, break_empty_split, break_label, break_short_row]


@pytest.mark.parametrize("breaker", BREAKS, ids=lambda f: f.__name__.removeprefix("break_"))
def test_pretrain_refuses_a_broken_dataset_before_writing(breaker, data, tmp_path):
    culprit = breaker(data)
    out = tmp_path / "run"
    assert_user_error(pretrain(data, out), culprit)
    assert not out.exists(), "a failed pretrain left a run folder behind"


@pytest.mark.parametrize("breaker, split", [(break_unknown_version, "test"), (break_mask_size, "train"),
                                            (break_mask_bytes, "val"), (break_empty_split, "val")],
                         ids=["unknown_version", "mask_size", "mask_bytes", "empty_split"])
def test_evaluate_and_info_refuse_a_broken_dataset(breaker, split, data, tmp_path, good_checkpoint):
    culprit = breaker(data)
    csv = tmp_path / "eval.csv"
    assert_user_error(run_cli("evaluate", "--ckpt", good_checkpoint, "--data", data, "--split", split, "--out", csv),
                      culprit)
    assert not csv.exists()
    if breaker is break_unknown_version:
        assert_user_error(run_cli("info", data), culprit)


@pytest.mark.parametrize("breaker", [
    break_part_id,
    break_missing_mask,
], ids=["part_id", "missing_mask"])
def test_faults_in_masks_leave_no_run_folder(breaker, data, tmp_path):
    culprit = breaker(data)
    out = tmp_path / "run"
    assert_user_error(pretrain(data, out), culprit)
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


def test_part_id_above_k_is_a_one_line_error(data, tmp_path, good_checkpoint):
    rel = first_row(data, "val")["mask"]
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[0, 0] = 3
    Image.fromarray(mask).save(data / rel)
    result = run_cli("evaluate", "--ckpt", good_checkpoint, "--data", data, "--split", "val", "--out",
                     tmp_path / "e.csv")
    assert_user_error(result, str(data / rel), "part id 3 > K=2")


def test_user_errors_in_dataloader_workers_are_one_line(data, tmp_path):
    culprit = break_part_id(data)  # found when a worker loads the mask, not by the header check
    out = tmp_path / "run"
    assert_user_error(pretrain(data, out, "--workers", 1), culprit, "part id 3 > K=2")
    assert not out.exists()


def test_dataset_yaml_with_malformed_parts_or_classes(data):
    doc = yaml.safe_load((data / "dataset.yaml").read_text())
    for broken, culprit in (({**doc, "parts": "oops"}, "'parts' must be a list of {name, class} mappings"),
                            ({**doc, "classes": 3}, "'classes' must be a list")):
        (data / "dataset.yaml").write_text(yaml.safe_dump(broken))
        assert_user_error(run_cli("info", data), str(data / "dataset.yaml"), culprit)


def test_absolute_paths_in_a_split_csv_are_refused(data, tmp_path):
    text = (data / "train.csv").read_text().splitlines()
    row = text[1].split(",")
    row[0] = str(data / row[0])  # the same file, by absolute path
    (data / "train.csv").write_text("\n".join([text[0], ",".join(row), *text[2:]]) + "\n")
    out = tmp_path / "run"
    assert_user_error(pretrain(data, out), f"{data / 'train.csv'}:2", "is absolute")
    assert not out.exists()


def test_info_on_a_dataset_checks_its_files(data):
    culprit = break_missing_image(data)
    assert_user_error(run_cli("info", data), culprit, "image file missing")


def test_prepare_removes_the_partial_folders_of_a_killed_run(tmp_path):
    stale = [tmp_path / ".ds.k3j2h1g0.partial", tmp_path / ".ds.a_b_c_d_.partial"]
    kept = [tmp_path / ".ds2.k3j2h1g0.partial", tmp_path / ".ds.x.k3j2h1g0.partial", tmp_path / ".ds.short.partial"]
    for folder in stale + kept:
        (folder / "images").mkdir(parents=True)
    result = run_cli("prepare", "synthetic", "--out", tmp_path / "ds", "--n", 40, "--image-size", SIZE)
    assert result.code == 0, result.err
    assert "removed 2 partial folder(s)" in result.err
    assert not any(folder.exists() for folder in stale) and all(folder.exists() for folder in kept)
