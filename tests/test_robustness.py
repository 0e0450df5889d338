"""``partcli robustness``: corruptions, foreground/background and shape-vs-texture sets (paper §5.1)."""
from __future__ import annotations

import csv
import sys

import numpy as np
import pytest
import torch
from torch import nn

from partcli.data.synthetic import render_sample
from partcli.robustness import corruptions as corruptions_module
from partcli.robustness.corruptions import (CORRUPTIONS, SEVERITIES, CorruptionCache, corrupt_image,
                                            corruption_seed)
from partcli.robustness.foreground import foreground_variants, only_bg, only_fg, pair_indices
from partcli.robustness.shape_texture import cue_conflict, cue_conflict_set, shape_scores
from partcli.robustness.suite import ROBUSTNESS_COLUMNS, ShiftSamples, evaluate_shifts, run_robustness

# ImageNet-C's own parameter tables are not monotone in pixel distance for these (see corruptions.py)
NOT_MONOTONE = ("glass_blur", "snow", "frost", "fog")


def synthetic_images(n: int, size: int) -> np.ndarray:
    return np.stack([np.asarray(render_sample(np.random.default_rng([0, i]), i % 5, size)[0]) for i in range(n)])


def rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(((a.astype(float) - b.astype(float)) ** 2).mean()))


class Spy(nn.Module):
    """Predicts class 0 and records the range and a checksum of every batch it sees."""

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.clone())
        return torch.zeros(len(x), 2)


def test_every_corruption_changes_the_image_and_the_model_sees_it_in_range():
    images = synthetic_images(2, 32)
    samples = ShiftSamples(images, None, np.zeros(2, dtype=int), ["a", "b"])
    spy = Spy()
    result = evaluate_shifts(spy, samples, ("corruptions",))
    assert [r["attack"] for r in result.rows] == [f"{c}/{s}" for c in CORRUPTIONS for s in SEVERITIES] + ["mean"]
    clean, *corrupted = spy.seen
    assert len(corrupted) == 75
    for batch, row in zip(corrupted, result.rows):
        assert batch.shape == clean.shape and batch.dtype == torch.float32
        assert 0 <= batch.min() and batch.max() <= 1, row["attack"]
        assert (batch - clean).abs().flatten(1).amax(1).min() > 0, f"{row['attack']} left an image unchanged"
    assert all(r["adv_acc"] == 1.0 and r["clean_acc"] == 1.0 for r in result.rows)  # always class 0


def test_severities_are_monotone_in_distance_from_the_clean_image():
    images = synthetic_images(12, 64)
    for name in CORRUPTIONS:
        if name in NOT_MONOTONE:
            # with the random draws held fixed, the strongest severity is still farther than the weakest
            far = [np.mean([rms(corrupt_image(im, name, s, corruption_seed(0, i, name, 1)), im)
                            for i, im in enumerate(images)]) for s in (1, 5)]
            assert far[1] > far[0], name
            continue
        distance = [np.mean([rms(corrupt_image(im, name, s, corruption_seed(0, i, name, s)), im)
                             for i, im in enumerate(images)]) for s in SEVERITIES]
        assert np.all(np.diff(distance) > 0), (name, np.round(distance, 2))


def test_corruptions_are_deterministic_and_cached(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "dataset.yaml").write_text("name: x\n")
    (data / "test.csv").write_text("image,mask,label,mask_source\n")
    images = synthetic_images(3, 32)
    before = np.random.get_state()[1].copy()
    first = CorruptionCache(tmp_path / "cache", data, "test", 32, seed=0).get(images, "gaussian_noise", 3)
    assert np.array_equal(np.random.get_state()[1], before)  # the global numpy RNG is left as it was
    folder = CorruptionCache(tmp_path / "cache", data, "test", 32, seed=0).folder
    assert sorted(p.name for p in (folder / "gaussian_noise" / "3").iterdir()) == ["0.png", "1.png", "2.png"]
    assert not list(folder.rglob("*.tmp")) and (folder / "key.json").is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("cached images were made again")
    monkeypatch.setattr(corruptions_module, "corrupt_image", refuse)
    again = CorruptionCache(tmp_path / "cache", data, "test", 32, seed=0).get(images, "gaussian_noise", 3)
    assert np.array_equal(first, again)
    monkeypatch.undo()
    other_seed = CorruptionCache(tmp_path / "cache", data, "test", 32, seed=1)
    assert other_seed.folder != folder
    assert not np.array_equal(other_seed.get(images, "gaussian_noise", 3), first)
    # the same image index gives the same corruption whatever else is in the batch
    assert np.array_equal(corrupt_image(images[1], "gaussian_noise", 3, corruption_seed(0, 1, "gaussian_noise", 3)),
                          first[1])
    (data / "test.csv").write_text("image,mask,label,mask_source\nother,,0,\n")  # another split: another folder
    assert CorruptionCache(tmp_path / "cache", data, "test", 32, seed=0).folder != folder


def object_image(size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random background (no pure red pixel) with a pure red 10×8 object (rows 4–13) made of parts 1 and 2."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 200, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), dtype=np.int64)
    mask[4:14, 12:16], mask[4:14, 16:20] = 1, 2
    image[mask > 0] = (255, 0, 0)
    return image, mask


def test_only_fg_keeps_exactly_the_mask_pixels():
    image, mask = object_image()
    mask[5, 5] = 3  # a stray part pixel is object too
    out = only_fg(image, mask > 0)
    assert np.array_equal(out[mask > 0], image[mask > 0])
    assert not out[mask == 0].any()


def test_only_bg_fills_the_object_box_with_background_from_outside_it():
    image, mask = object_image()
    out = only_bg(image, mask > 0)
    box = np.zeros(mask.shape, bool)
    box[4:14, 12:20] = True
    assert np.array_equal(out[~box], image[~box])  # untouched outside the bounding box
    assert not (out == (255, 0, 0)).all(-1).any()  # no object pixel is left
    # the largest strip outside the box is below it (rows 14..31, full width), repeated with period 18 from row 14
    assert np.array_equal(out[4:14, 12:20], image[14 + (np.arange(4, 14) - 14) % 18][:, 12:20])


def test_mixed_rand_never_pairs_a_background_of_the_same_class():
    labels = np.repeat(np.arange(5), [1, 2, 3, 4, 10])
    backgrounds = set()
    for seed in range(5):
        rand = pair_indices(labels, seed, "mixed-rand")
        assert (labels[rand] != labels).all()
        backgrounds |= set(labels[rand].tolist())
        same = pair_indices(labels, seed, "mixed-same")
        assert (labels[same] == labels).all()
        assert ((same != np.arange(len(labels))) | (labels == 0)).all()  # another sample unless alone in its class
    assert backgrounds == set(range(5))  # every class serves as a background


class CornerModel(nn.Module):
    """Classifies by the background: class = whether the top-left pixel's red channel is above one half."""

    def forward(self, x):
        red = x[:, 0, 0, 0]
        return torch.stack([0.5 - red, red - 0.5], 1)


def test_foreground_suite_measures_a_background_model():
    images, masks, labels = [], [], []
    for i in range(8):
        image, mask = object_image(seed=i)
        image[mask == 0, 0] = 250 if i % 2 else 10  # the background's red channel gives the class
        images.append(image)
        masks.append(mask)
        labels.append(i % 2)
    samples = ShiftSamples(np.stack(images), np.stack(masks), np.array(labels), [f"s{i}" for i in range(8)])
    rows = {r["attack"]: r for r in evaluate_shifts(CornerModel(), samples, ("foreground",)).rows}
    assert rows["only-bg"]["adv_acc"] == rows["mixed-same"]["adv_acc"] == 1.0
    assert rows["mixed-rand"]["adv_acc"] == 0.0
    assert rows["only-fg"]["adv_acc"] == 0.5  # a black corner reads as class 0
    assert rows["bg-gap"]["bg_gap"] == 1.0 and rows["bg-gap"].get("adv_acc") is None
    variants = foreground_variants(samples.images, samples.masks, samples.labels, 0)
    partner = pair_indices(samples.labels, 0, "mixed-rand")
    background = masks[0] == 0
    assert np.array_equal(variants["mixed-rand"][0][background], variants["only-bg"][partner[0]][background])


def test_cue_conflict_keeps_the_silhouette_of_a_and_the_colours_of_b():
    shape_mask = np.zeros((32, 32), dtype=np.int64)
    shape_mask[6:26, 4:12], shape_mask[6:26, 12:28] = 2, 1  # class A: a rectangle in two parts
    texture_image = np.full((32, 32, 3), 90, dtype=np.uint8)  # B's grey background must not be used
    texture_mask = np.zeros((32, 32), dtype=np.int64)
    yy, xx = np.mgrid[:32, :32]
    texture_mask[(yy - 16) ** 2 + (xx - 16) ** 2 < 100] = 5  # class B: a disc (larger part) ...
    texture_mask[(yy - 16) ** 2 + (xx - 16) ** 2 < 16] = 6  # ... with a small core
    rng = np.random.default_rng(0)
    texture_image[texture_mask == 5] = rng.integers(0, 3, ((texture_mask == 5).sum(), 3)) * [0, 40, 100] + [10, 100, 0]
    texture_image[texture_mask == 6] = (0, 0, 255)
    out = cue_conflict(shape_mask, texture_image, texture_mask)
    assert np.array_equal(out.any(-1), shape_mask > 0)  # A's silhouette, black elsewhere
    b_colours = {tuple(c) for c in texture_image[texture_mask > 0]}
    assert {tuple(c) for c in out[shape_mask > 0]} <= b_colours
    large = {tuple(c) for c in out[shape_mask == 1]}  # A's largest part takes B's largest part's texture
    assert large <= {tuple(c) for c in texture_image[texture_mask == 5]} and len(large) > 1
    assert {tuple(c) for c in out[shape_mask == 2]} == {(0, 0, 255)}  # the part layout stays visible


def test_cue_conflict_set_puts_a_on_the_background_of_another_class():
    images = synthetic_images(10, 32)
    masks = np.stack([render_sample(np.random.default_rng([0, i]), i % 5, 32)[1] for i in range(10)]).astype(np.int64)
    labels = np.arange(10) % 5
    made, partner = cue_conflict_set(images, masks, labels, seed=0)
    assert (labels[partner] != labels).all()
    for i, j in enumerate(partner):
        outside = masks[i] == 0
        assert np.array_equal(made[i][outside], only_bg(images[j], masks[j] > 0)[outside])
        assert {tuple(c) for c in made[i][~outside]} <= {tuple(c) for c in images[j][masks[j] > 0]}


def shapes_dataset(n: int = 10, size: int = 32) -> ShiftSamples:
    """Class 0: red squares; class 1: blue discs; black backgrounds; varying sizes and positions."""
    images, masks, labels = [], [], []
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        r, cy, cx = 5 + i % 3, 14 + i % 4, 15 - i % 3
        square = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        obj, colour = (square, (200, 30, 30)) if i % 2 == 0 else (disc, (30, 30, 200))
        image = np.zeros((size, size, 3), np.uint8)
        image[obj] = colour
        images.append(image)
        masks.append(obj.astype(np.int64))
        labels.append(i % 2)
    return ShiftSamples(np.stack(images), np.stack(masks), np.array(labels), [f"s{i}" for i in range(n)])


class SilhouetteModel(nn.Module):
    """Looks only at the silhouette: a square fills its bounding box, a disc about 78 % of it."""

    def forward(self, x):
        fg = x.sum(1) > 0
        rows, cols = fg.any(2).sum(1), fg.any(1).sum(1)
        fill = fg.flatten(1).sum(1) / (rows * cols)
        return torch.stack([fill - 0.9, 0.9 - fill], 1).float()


class ColourModel(nn.Module):
    """Looks only at colour: more red than blue is class 0."""

    def forward(self, x):
        margin = x[:, 0].flatten(1).sum(1) - x[:, 2].flatten(1).sum(1)
        return torch.stack([margin, -margin], 1)


def test_shape_bias_of_a_silhouette_model_is_one_and_of_a_colour_model_zero():
    samples = shapes_dataset()
    shape = {r["attack"]: r for r in evaluate_shifts(SilhouetteModel(), samples, ("shape-texture",)).rows}
    assert shape["cue-conflict"]["clean_acc"] == 1.0
    assert shape["cue-conflict"]["shape_bias"] == 1.0 and shape["cue-conflict"]["adv_acc"] == 1.0
    colour = {r["attack"]: r for r in evaluate_shifts(ColourModel(), samples, ("shape-texture",)).rows}
    assert colour["cue-conflict"]["clean_acc"] == 1.0
    assert colour["cue-conflict"]["shape_bias"] == 0.0 and colour["cue-conflict"]["adv_acc"] == 0.0


def test_shape_scores_count_only_decisions_for_a_or_b():
    pred, shape, texture = np.array([0, 1, 2, 0]), np.array([0, 0, 0, 1]), np.array([1, 1, 1, 2])
    assert shape_scores(pred, shape, texture) == (0.25, 0.5)  # decided: samples 0 (A) and 1 (B)
    assert shape_scores(np.array([2]), np.array([0]), np.array([1])) == (0.0, None)


def test_a_stylizer_makes_a_stylized_set(tmp_path):
    class Swap(nn.Module):  # "style transfer" that returns the style image: pure texture, so shape bias 0
        def forward(self, content, style):
            return style * 1.0

    program = torch.export.export(Swap(), (torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)))
    path = tmp_path / "swap.pt2"
    torch.export.save(program, str(path))
    from partcli.robustness.shape_texture import load_stylizer

    rows = {r["attack"]: r for r in evaluate_shifts(SilhouetteModel(), shapes_dataset(), ("shape-texture",),
                                                    stylizer=load_stylizer(path), stylizer_source=path).rows}
    assert rows["stylized"]["shape_bias"] == 0.0 and rows["cue-conflict"]["shape_bias"] == 1.0


def test_robustness_cli_appends_rows_for_every_suite(synthetic_data, bbox_checkpoint, tmp_path, capsys, monkeypatch):
    from partcli.cli import main

    out, cache = tmp_path / "robustness.csv", tmp_path / "cache"
    args = ["partcli", "robustness", "--ckpt", str(bbox_checkpoint), "--data", str(synthetic_data), "--out", str(out),
            "--cache", str(cache), "--corruption", "gaussian_noise", "--corruption", "fog", "--severity", "1",
            "--severity", "5"]
    monkeypatch.setattr(sys, "argv", args)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0, capsys.readouterr().err
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == ROBUSTNESS_COLUMNS
    assert [r["attack"] for r in rows] == ["gaussian_noise/1", "gaussian_noise/5", "fog/1", "fog/5",
                                           "mean/gaussian_noise+fog/1+5", "only-fg", "only-bg", "mixed-same",
                                           "mixed-rand", "bg-gap", "cue-conflict"]
    assert {r["checkpoint"] for r in rows} == {str(bbox_checkpoint)} and {r["n"] for r in rows} == {"10"}
    assert [r["suite"] for r in rows] == ["corruptions"] * 5 + ["foreground"] * 5 + ["shape-texture"]
    assert rows[0]["severity"] == "1" and rows[0]["eps"] == rows[0]["norm"] == ""
    accs = [float(r["adv_acc"]) for r in rows[:4]]
    assert float(rows[4]["adv_acc"]) == pytest.approx(np.mean(accs), abs=1e-6)
    gap = float(rows[7]["adv_acc"]) - float(rows[8]["adv_acc"])
    assert float(rows[9]["bg_gap"]) == pytest.approx(gap, abs=1e-6) and rows[9]["adv_acc"] == ""
    assert rows[10]["shape_bias"] != "" or rows[10]["adv_acc"] == "0"
    assert len(list(cache.rglob("*.png"))) == 4 * 10
    monkeypatch.setattr(sys, "argv", args[:-4] + ["--suite", "corruptions"] + args[-4:])
    with pytest.raises(SystemExit):
        main()
    assert out.read_text().count("\n") == 1 + 11 + 5  # appended, same columns


@pytest.mark.slow
def test_full_corruption_benchmark_on_a_checkpoint(synthetic_data, bbox_checkpoint, tmp_path):
    result = run_robustness(bbox_checkpoint, synthetic_data, suite="corruptions", out=tmp_path / "r.csv",
                            cache=tmp_path / "cache")
    assert len(result.rows) == 76 and result.rows[-1]["attack"] == "mean"
    assert result.rows[-1]["adv_acc"] == pytest.approx(np.mean([r["adv_acc"] for r in result.rows[:-1]]))
