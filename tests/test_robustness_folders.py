"""``partcli robustness --imagenet9 DIR / --stylized DIR``: the paper's own Table 3 and 4 sets, read from folders.

Every image is a solid colour (or one coloured square on black) from a palette with one colour per class, and the
models read one pixel and predict the class of the nearest palette colour, so each accuracy is counted by hand.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from helpers import run_cli
from partcli.checkpoint import save_checkpoint
from partcli.data.contract import Part
from partcli.data.writer import DatasetWriter
from partcli.errors import PartcliError
from partcli.models.registry import ModelConfig
from partcli.robustness.imagenet9 import (composite, foreground_pixels, imagenet9_rows, load_imagenet9, map_classes,
                                          spurious_pairs)
from partcli.robustness.suite import ROBUSTNESS_COLUMNS, predict_labels, run_robustness

CLASSES = ["quadruped", "Bird", "REPTILE", "Car"]  # no Fish; Car is no paper class
PALETTE = np.array([(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)], dtype=np.uint8)
SIZE = 16  # the checkpoint's resolution: images are resized to 18 px and centre-cropped to 16 (eval_transform)
SIDE = 24  # the folders' images
MAPPED = {"00_dog": 0, "01_bird": 1, "03_reptile": 2}  # IN-9 folder → class index in CLASSES
DROPPED = ("02_wheeled vehicle", "08_fish")  # not a paper class / the dataset has no Fish
# IN-9 images (folder, k) whose colour is that of the next class: the centre-pixel model gets them wrong
WRONG = {"original": {("00_dog", 1)}, "mixed_rand": {("00_dog", 0), ("01_bird", 0), ("03_reptile", 1)}}


class PixelModel(nn.Module):
    """Predicts the class whose palette colour is nearest to the colour of pixel (row, col)."""

    def __init__(self, row: int, col: int):
        super().__init__()
        self.row, self.col = row, col

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixel = x[:, :, self.row, self.col] * 255
        return -((pixel[:, None, :] - torch.from_numpy(PALETTE).float()[None]) ** 2).sum(-1)


CENTRE, CORNER = PixelModel(SIZE // 2, SIZE // 2), PixelModel(0, 0)


def solid(label: int, height: int = SIDE, width: int = SIDE) -> np.ndarray:
    return np.broadcast_to(PALETTE[label], (height, width, 3)).copy()


def square_on_black(label: int) -> np.ndarray:
    image = np.zeros((SIDE, SIDE, 3), np.uint8)
    image[8:16, 8:16] = PALETTE[label]
    return image


def write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def make_release(root: Path) -> Path:
    """Variants original, only_fg, only_bg_t, mixed_same, mixed_rand; two images per mapped class, one per dropped
    class; a bird Only-FG image whose fg_mask holds only a corner away from its object; one undecodable file."""
    for variant in ("original", "only_fg", "only_bg_t", "mixed_same", "mixed_rand"):
        for folder in [*MAPPED, *DROPPED]:
            label = MAPPED.get(folder, 3)
            for k in range(2 if folder in MAPPED else 1):
                shown = (label + 1) % 3 if (folder, k) in WRONG.get(variant, ()) else label
                if variant == "only_fg":
                    write(root / variant / "val" / folder / f"{folder[3:]}_{k}.png", square_on_black(shown))
                elif variant == "only_bg_t":  # another size than the foregrounds
                    write(root / variant / "val" / folder / f"{folder[3:]}_{k}.JPEG", solid(shown, 20, 32))
                else:
                    write(root / variant / "val" / folder / f"{folder[3:]}_{k}.JPEG", solid(shown))
    (root / "mixed_same" / "val" / "00_dog" / "broken.JPEG").write_bytes(b"not a jpeg")
    (root / "fg_mask" / "val" / "01_bird").mkdir(parents=True)
    corner = np.zeros((SIDE, SIDE), bool)
    corner[20:, 20:] = True
    np.save(root / "fg_mask" / "val" / "01_bird" / "bird_1.npy", corner)
    exact = np.zeros((12, 12), bool)  # half the image's size: resized to it, exactly the object's square
    exact[4:8, 4:8] = True
    (root / "fg_mask" / "val" / "00_dog").mkdir(parents=True)
    np.save(root / "fg_mask" / "val" / "00_dog" / "dog_0.npy", exact)
    return root


STEMS = ["n01000001_1", "n01000002_2", "n01000003_3", "n01000004_4"]  # the test samples, classes 0..3
ORIGINAL_WRONG = {2, 3}  # test samples whose own image has the next class's colour


def make_dataset(out: Path, classes: list[str] = CLASSES, masks: bool = True) -> Path:
    """A prepared dataset of 24-px images, one part per class (a centred square), test = ``STEMS``."""
    parts = [Part("body", c) for c in classes]
    with DatasetWriter(out, classes, parts, name="tiny") as writer:
        for split, stems in (("train", ["t_0"]), ("val", ["v_0"]), ("test", STEMS)):
            for label, stem in enumerate(stems):
                label %= len(classes)
                mask = np.zeros((SIDE, SIDE), np.uint8)
                mask[8:16, 8:16] = label + 1
                colour = (label + 1) % len(classes) if split == "test" and label in ORIGINAL_WRONG else label
                writer.add(split, stem, label, image=Image.fromarray(solid(colour)), mask=mask if masks else None)
        writer.finish({"kind": "test"})
    return out


def make_checkpoint(path: Path, num_classes: int = len(CLASSES), size: int = SIZE) -> Path:
    config = ModelConfig(arch="resnet", backbone="resnet18", num_classes=num_classes).to_dict()
    save_checkpoint(path, {"config": {"model": config, "dataset": {"image_size": size}}, "model": {}})
    return path


def make_stylized(root: Path) -> Path:
    """Stems of test samples 0 (correct colour, <wnid>/), 1 (wrong colour, val/<wnid>/) and 2 (does not decode,
    train/<wnid>/), one stem of no sample, and files that are no images."""
    write(root / "n01000001" / "n01000001_1.JPEG", solid(0))
    write(root / "val" / "n01000002" / "n01000002_2.png", solid(2))
    (root / "train" / "n01000003").mkdir(parents=True)
    (root / "train" / "n01000003" / "n01000003_3.JPEG").write_bytes(b"\xff\xd8 truncated")
    write(root / "train" / "n09999999" / "n09999999_9.JPEG", solid(1))
    (root / "README.txt").write_text("not an image")
    (root / "n01000001" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def files(module_tmp):
    """The IN-9 release, the Stylized folder, datasets with and without masks, and their checkpoint."""
    return {"release": make_release(module_tmp / "bg_challenge"), "stylized": make_stylized(module_tmp / "sin"),
            "data": make_dataset(module_tmp / "data"), "unmasked": make_dataset(module_tmp / "unmasked", masks=False),
            "ckpt": make_checkpoint(module_tmp / "model.pt")}


@pytest.fixture
def centre_model(monkeypatch):
    """Checkpoints load as the centre-pixel model."""
    monkeypatch.setattr("partcli.checkpoint.model_from_checkpoint", lambda state, source: CENTRE)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------------------------------------- pure functions
def test_the_paper_classes_map_by_name_ignoring_case():
    assert map_classes(["quadruped", "BIRD", "Reptile", "fish", "car"]) == {
        "00_dog": 0, "01_bird": 1, "03_reptile": 2, "08_fish": 3}
    assert map_classes(CLASSES) == MAPPED
    assert map_classes(["Car", "Person", "dog"]) == {}  # IN-9's dog is the Quadruped class, not a class "dog"


def test_spurious_backgrounds_come_from_another_class_and_the_seed_fixes_them():
    fg, bg = np.repeat(np.arange(4), [1, 2, 3, 10]), np.repeat(np.arange(4), [5, 1, 2, 8])
    used = set()
    for seed in range(4):
        pairs = spurious_pairs(fg, bg, seed)
        assert (bg[pairs] != fg).all()
        assert np.array_equal(pairs, spurious_pairs(fg, bg, seed))
        used |= set(bg[pairs].tolist())
    assert used == {0, 1, 2, 3}  # every class serves as a background
    assert not np.array_equal(spurious_pairs(fg, bg, 0), spurious_pairs(fg, bg, 1))


def test_the_composite_takes_the_mask_when_given_else_the_non_black_pixels():
    fg = np.zeros((4, 6, 3), np.uint8)
    fg[1:3, 1:3] = (9, 0, 0)
    fg[0, 5] = (0, 0, 1)  # faint, still not black
    assert np.array_equal(np.argwhere(foreground_pixels(fg, None)), [[0, 5], [1, 1], [1, 2], [2, 1], [2, 2]])
    mask = np.zeros((2, 3), np.uint8)
    mask[1, 2] = 1  # resized to the 4×6 image: its bottom-right 2×2 block
    assert np.array_equal(np.argwhere(foreground_pixels(fg, mask)), [[2, 4], [2, 5], [3, 4], [3, 5]])
    assert np.array_equal(foreground_pixels(fg, np.stack([mask] * 3, -1)), foreground_pixels(fg, mask))
    background = np.full((8, 3, 3), 50, np.uint8)  # another size: resized to the foreground's
    out = composite(fg, foreground_pixels(fg, mask), background)
    assert out.shape == fg.shape
    assert (out[2:, 4:] == 0).all() and (out[:2] == 50).all() and (out[:, :4] == 50).all()


# ------------------------------------------------------------------------------------------------------ ImageNet-9
def test_imagenet9_rows_equal_the_hand_counts(files):
    in9, notes = load_imagenet9(files["release"], CLASSES, "DATA")
    assert sorted({f.parent.name for f, _ in in9.images["original"]}) == sorted(MAPPED)  # dropped classes gone
    assert notes[0] == ("--imagenet9: IN-9 00_dog → quadruped, 01_bird → Bird, 03_reptile → REPTILE; the other "
                        "IN-9 classes are not evaluated")
    assert notes[1] == "--imagenet9: DATA has no class Fish: IN-9's 08_fish images are not evaluated either"

    def rows_of(model: nn.Module, seed: int = 0) -> tuple[dict[str, dict], list[str]]:
        rows, notes = imagenet9_rows(lambda x: predict_labels(model, x, 4, "cpu"), in9, SIZE, seed, 4)
        return {r["attack"]: r for r in rows}, notes

    rows, notes = rows_of(CENTRE, seed=7)
    assert list(rows) == ["in9/original", "in9/only-fg", "in9/only-bg-t", "in9/mixed-same", "in9/mixed-rand",
                          "in9/spurious", "in9/bg-gap"]
    expected = {"in9/original": 5 / 6, "in9/only-fg": 1.0, "in9/only-bg-t": 1.0, "in9/mixed-same": 1.0,
                "in9/mixed-rand": 3 / 6, "in9/spurious": 5 / 6}  # spurious: the bird whose mask misses its object
    assert {name: row["adv_acc"] for name, row in rows.items() if name != "in9/bg-gap"} == pytest.approx(expected)
    assert {row["n"] for row in rows.values()} == {6}  # 3 mapped classes × 2; mixed-same's broken file left out
    assert [row["clean_acc"] for row in rows.values()] == pytest.approx([5 / 6] * 7)  # in9/original's
    assert rows["in9/bg-gap"]["bg_gap"] == pytest.approx(0.5) and "adv_acc" not in rows["in9/bg-gap"]
    assert rows["in9/spurious"]["seed"] == 7 and rows["in9/original"]["seed"] is None
    assert {row["suite"] for row in rows.values()} == {"foreground"}
    assert "in9/mixed-same: 1 of 7 images do not decode and are left out" in notes
    assert "in9/spurious: foregrounds of 2 of 6 images from fg_mask/val, the others' from their non-black pixels" \
        in notes
    # the corner reads the background: from another class in every composite, whatever the seed
    for seed in (0, 1, 2):
        assert rows_of(CORNER, seed)[0]["in9/spurious"]["adv_acc"] == 0.0


def test_foreground_suite_runs_both_the_mask_sets_and_the_imagenet9_rows(files, centre_model, tmp_path):
    out = tmp_path / "r.csv"
    result = run_robustness(files["ckpt"], files["data"], suite="foreground", out=out, imagenet9=files["release"],
                            seed=3)
    rows = read_rows(out)
    assert tuple(rows[0]) == ROBUSTNESS_COLUMNS
    assert [r["attack"] for r in rows] == ["only-fg", "only-bg", "mixed-same", "mixed-rand", "bg-gap",
                                           "in9/original", "in9/only-fg", "in9/only-bg-t", "in9/mixed-same",
                                           "in9/mixed-rand", "in9/spurious", "in9/bg-gap"]
    assert {r["clean_acc"] for r in rows[:5]} == {"0.5"}  # the split: samples 2 and 3 wrong
    assert float(rows[5]["clean_acc"]) == pytest.approx(5 / 6) and rows[5]["n"] == "6"
    assert rows[10]["seed"] == "3" and rows[11]["seed"] == "" and float(rows[11]["bg_gap"]) == pytest.approx(0.5)
    assert {r["split"] for r in rows} == {"test"} and {r["dataset"] for r in rows} == {str(files["data"])}
    assert len(result.rows) == 12


def test_without_masks_only_the_imagenet9_rows_run(files, centre_model, tmp_path):
    result = run_robustness(files["ckpt"], files["unmasked"], suite="foreground", out=tmp_path / "r.csv",
                            imagenet9=files["release"])
    assert [r["attack"] for r in result.rows][:2] == ["in9/original", "in9/only-fg"] and len(result.rows) == 7
    assert any("4 of 4 test samples" in n and "no part mask" in n and "only the --imagenet9 rows are made" in n
               for n in result.notes)
    at_32 = make_checkpoint(tmp_path / "m32.pt", size=32)  # the corruptions of --suite all need 32 px
    with pytest.raises(PartcliError, match="no part mask.*the --imagenet9 rows need no mask: run --suite foreground "
                                           "alone for them$"):  # all: cue conflicts too, and no --stylized
        run_robustness(at_32, files["unmasked"], suite="all", out=tmp_path / "all.csv", imagenet9=files["release"])
    assert not (tmp_path / "all.csv").exists()


def test_the_cli_appends_the_imagenet9_rows(files, centre_model, tmp_path):
    out = tmp_path / "r.csv"
    result = run_cli("robustness", "--ckpt", files["ckpt"], "--data", files["unmasked"], "--suite", "foreground",
                     "--imagenet9", files["release"], "--out", out, "--device", "cpu", "--batch-size", "5")
    assert result.code == 0, result.output
    rows = read_rows(out)
    assert [(r["attack"], r["n"]) for r in rows][-2:] == [("in9/spurious", "6"), ("in9/bg-gap", "6")]
    assert float(rows[4]["adv_acc"]) == pytest.approx(0.5)  # in9/mixed-rand
    assert "in9/spurious" in result.output and "00_dog → quadruped" in result.output


# -------------------------------------------------------------------------------------------- Stylized-ImageNet
def test_stylized_images_match_samples_by_file_stem(files, centre_model, tmp_path):
    result = run_robustness(files["ckpt"], files["data"], suite="shape-texture", out=tmp_path / "r.csv",
                            stylized=files["stylized"])
    cue, stylized = result.rows
    assert cue["attack"] == "cue-conflict" and cue["clean_acc"] == 0.5  # the whole split
    # samples 0 and 1 (2 does not decode, 3 has none): stylized 0 right, 1 wrong; their originals both right
    assert stylized["attack"] == "stylized-imagenet" and stylized["suite"] == "shape-texture"
    assert (stylized["n"], stylized["adv_acc"], stylized["clean_acc"]) == (2, 0.5, 1.0)
    assert stylized["shape_bias"] is None
    assert "stylized-imagenet: 1 of 4 test samples have no stylized image in " f"{files['stylized']} and are left " \
           "out" in result.notes
    assert "stylized-imagenet: 1 of 3 stylized images do not decode and are left out" in result.notes


def test_stylized_without_masks_runs_alone(files, centre_model, tmp_path):
    result = run_robustness(files["ckpt"], files["unmasked"], suite="shape-texture", out=tmp_path / "r.csv",
                            stylized=files["stylized"])
    assert [(r["attack"], r["n"]) for r in result.rows] == [("stylized-imagenet", 2)]
    assert any("only the --stylized rows are made" in n for n in result.notes)


# ------------------------------------------------------------------------------------------------------ bad input
def refused(args: list, match: str, out: Path) -> None:
    result = run_cli("robustness", "--out", out, "--device", "cpu", *args)
    assert result.code == 2, result.output
    assert match in result.output and "Traceback" not in result.output
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert not out.exists()


def test_bad_folders_are_refused_in_one_line(files, centre_model, tmp_path):
    base = ["--ckpt", files["ckpt"], "--data", files["data"]]
    out = tmp_path / "r.csv"
    flat = tmp_path / "flat"  # images, but not in <variant>/val/<NN_class>/
    write(flat / "original" / "00_dog" / "dog.JPEG", solid(0))
    unmapped = tmp_path / "unmapped"
    write(unmapped / "original" / "val" / "02_wheeled vehicle" / "car.JPEG", solid(3))
    broken = tmp_path / "broken"
    (broken / "mixed_rand" / "val" / "00_dog").mkdir(parents=True)
    (broken / "mixed_rand" / "val" / "00_dog" / "dog.JPEG").write_bytes(b"junk")
    (tmp_path / "empty").mkdir()
    refused([*base, "--suite", "foreground", "--imagenet9", tmp_path / "nowhere"],
            f"--imagenet9 {tmp_path / 'nowhere'}: no such folder", out)
    refused([*base, "--suite", "foreground", "--imagenet9", files["ckpt"]], "a file, not a folder", out)
    refused([*base, "--suite", "foreground", "--imagenet9", flat],
            f"--imagenet9 {flat}: no images in <variant>/val/<NN_class>/", out)
    refused([*base, "--suite", "foreground", "--imagenet9", unmapped],
            "no images in the class folders that map onto", out)
    refused([*base, "--suite", "foreground", "--imagenet9", broken], "none of the 1 mapped mixed_rand images decodes",
            out)
    refused([*base, "--suite", "corruptions", "--imagenet9", files["release"]],
            "adds rows to --suite foreground (or all); --suite corruptions does not use it", out)
    refused([*base, "--suite", "foreground", "--stylized", files["stylized"]],
            f"--stylized {files['stylized']}: adds rows to --suite shape-texture", out)
    refused([*base, "--suite", "shape-texture", "--stylized", flat / "original" / "00_dog" / "dog.JPEG"],
            "dog.JPEG: a file, not a folder", out)
    refused([*base, "--suite", "shape-texture", "--stylized", tmp_path / "empty"],
            f"--stylized {tmp_path / 'empty'}: no images in <wnid>/<stem>.<ext>", out)
    refused([*base, "--suite", "shape-texture", "--stylized", flat / "original"],  # no stem of the split
            "none of its 1 image stems is that of a test sample", out)


def test_a_dataset_without_the_paper_classes_is_refused(tmp_path, centre_model):
    data = make_dataset(tmp_path / "other", classes=["car", "person"])
    ckpt = make_checkpoint(tmp_path / "m.pt", num_classes=2)
    release = tmp_path / "release"
    write(release / "original" / "val" / "00_dog" / "dog.JPEG", solid(0))
    refused(["--ckpt", ckpt, "--data", data, "--suite", "foreground", "--imagenet9", release],
            f"--imagenet9 {release}: {data} has none of the classes Quadruped, Bird, Reptile, Fish", tmp_path / "r.csv")


# ---------------------------------------------------------------------------------------------------------- report
def test_the_report_shows_the_folder_sets_and_keeps_the_split_clean_accuracy():
    import pandas as pd

    from partcli.report.robustness import robustness_table

    def row(suite: str, attack: str, clean: float | None, adv: float | None = None, gap: float | None = None):
        return {"model": "m", "label": "bbox", "run": "r", "checkpoint_id": "c", "suite": suite, "attack": attack,
                "clean_acc": clean, "adv_acc": adv, "bg_gap": gap, "shape_bias": None, "severity": None}

    rows = pd.DataFrame([row("foreground", "mixed-rand", 0.5, 0.25), row("foreground", "in9/original", 0.9, 0.9),
                         row("foreground", "in9/spurious", 0.9, 0.4), row("foreground", "in9/bg-gap", 0.9, gap=0.3),
                         row("shape-texture", "stylized-imagenet", 1.0, 0.2)])
    values = robustness_table(rows).values
    assert values["m", "clean"].mean == 0.5  # the split's, not IN-9 Original's or the stylized samples' originals
    assert {k: values["m", k].mean for k in ("IN-9 Original", "IN-9 spurious", "IN-9 BG-gap", "Stylized-ImageNet",
                                             "Mixed-Rand")} == {"IN-9 Original": 0.9, "IN-9 spurious": 0.4,
                                                                "IN-9 BG-gap": 0.3, "Stylized-ImageNet": 0.2,
                                                                "Mixed-Rand": 0.25}
    assert values["m", "IN-9 Only-FG"].n == 0  # not run: "–"
    plain = robustness_table(rows.iloc[:1]).table.header
    assert not any(h.startswith(("IN-9", "Stylized-ImageNet")) for h in plain)  # columns only when run
