"""``partcli visualize`` and the part palette: figures written for tiny models, one colour per part id everywhere."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import run_cli
from partcli.checkpoint import save_checkpoint
from partcli.data.contract import Part
from partcli.data.writer import DatasetWriter
from partcli.models.registry import ModelConfig, build_model
from partcli.report.figure_files import PNG_DPI
from partcli.report.masks_figure import CELL_INCHES, MaskRow, masks_figure
from partcli.report.palette import BACKGROUND, colourise, palette, part_colour
from partcli.mask_views import visualize


def _width(columns: int) -> int:
    """Pixel width of a figure with this many columns (saved at 200 dpi)."""
    assert PNG_DPI >= 200
    return round((CELL_INCHES * columns + 0.2) * PNG_DPI)


def _png(path: Path) -> Image.Image:
    assert path.is_file() and path.stat().st_size > 1000
    image = Image.open(path)
    image.load()
    return image


def test_a_part_colour_depends_on_its_id_alone():
    assert part_colour(0) == BACKGROUND == (0.0, 0.0, 0.0)
    assert np.array_equal(palette(3), palette(41)[:3])
    colours = palette(41)[1:]
    gaps = np.linalg.norm(colours[:, None] - colours[None], axis=-1) + np.eye(40)
    assert gaps.min() > 0.2  # 40 parts (Part-ImageNet), all told apart
    mask = np.array([[0, 3], [-1, 40]])
    rgb = colourise(mask)
    assert tuple(rgb[0, 1]) == part_colour(3) and tuple(rgb[1, 1]) == part_colour(40)
    assert tuple(rgb[0, 0]) == BACKGROUND and tuple(rgb[1, 0]) == part_colour(-1)


def test_the_colour_of_a_part_id_is_the_same_in_every_figure():
    rng = np.random.default_rng(0)
    figures = []
    for num_parts, names in ((19, [f"c{p // 4}/p{p}" for p in range(1, 20)]), (2, ["a/x", "b/y"])):
        masks = [rng.integers(0, num_parts + 1, (8, 8)) for _ in range(3)]
        rows = [MaskRow(image=rng.random((8, 8, 3)), label=0, pred=1, true_mask=m, pred_mask=(m + 1) % (num_parts + 1))
                for m in masks]
        fig = masks_figure(rows, ["a", "b"], names)
        figures.append((fig, rows, names))
    for fig, rows, names in figures:
        grid = np.array(fig.axes).reshape(len(rows), -1)
        for row, (image_ax, true_ax, pred_ax) in zip(rows, grid):
            for ax, mask in ((true_ax, row.true_mask), (pred_ax, row.pred_mask)):
                drawn = np.asarray(ax.images[0].get_array())
                for p in np.unique(mask):
                    assert np.allclose(drawn[mask == p], part_colour(int(p)))
        legend = {t.get_text(): h.get_facecolor()[:3] for t, h in zip(fig.legends[0].get_texts(),
                                                                        fig.legends[0].legend_handles)}
        assert np.allclose(legend["background"], part_colour(0))
        for p, name in enumerate(names, 1):
            if any((m == p).any() for r in rows for m in (r.true_mask, r.pred_mask)):
                assert np.allclose(legend[name], part_colour(p))  # ids 1, 2 of both figures: the same colours


def test_visualize_with_pgd_writes_the_figure(bbox_checkpoint, synthetic_data, tmp_path):
    out = tmp_path / "fig" / "masks.png"
    result = visualize(bbox_checkpoint, synthetic_data, out, n=3, attack="pgd", steps=2, seed=1, batch_size=2)
    assert result.out == out and result.n == 3 and result.notes == []
    assert _png(out).size[0] == _width(6)  # image, true and predicted parts, PGD image, perturbation, parts under PGD
    # the adversarial predictions are those of partcli attack's pgd suite with one restart and the same settings
    from partcli.attacks.api import attack
    from partcli.attacks.samples import load_samples, select_indices
    from partcli.evaluate.evaluate import load_for_dataset

    model, ds = load_for_dataset(bbox_checkpoint, synthetic_data, "test")
    s = load_samples(ds, select_indices(len(ds), 3, 1, None))
    suite = attack(model, s.x, s.y, suite="pgd", eps="8/255", steps=2, step_size="2/255", restarts=1, seed=1,
                   batch_size=2, hygiene=False)
    with torch.no_grad():
        assert result.clean_correct == int((model(s.x).argmax(1) == s.y).sum())
    assert result.adv_correct == sum(suite.outcomes.robust["pgd"])


def test_the_visualize_command(bbox_checkpoint, synthetic_data, tmp_path, capsys, monkeypatch):
    from partcli.cli import main

    out = tmp_path / "v.png"
    monkeypatch.setattr(sys, "argv", ["partcli", "visualize", "--ckpt", str(bbox_checkpoint), "--data",
                                      str(synthetic_data), "--n", "2", "--out", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    assert f"wrote {out}: 2 samples, " in capsys.readouterr().err
    assert _png(out).size[0] == _width(3)  # image, true parts, predicted parts


def test_visualize_writes_pdf_and_svg(bbox_checkpoint, synthetic_data, tmp_path, monkeypatch):
    """--out's extension is the format; --format alone names fig/masks.<format> in the working directory."""
    from partcli.options import FigureFormat
    from partcli.report.figure_files import FORMATS

    assert tuple(f.value for f in FigureFormat) == FORMATS  # the CLI's choices are the formats the code writes
    result = visualize(bbox_checkpoint, synthetic_data, tmp_path / "masks.pdf", n=1)
    assert result.out.read_bytes().startswith(b"%PDF") and result.out.stat().st_size > 1000
    monkeypatch.chdir(tmp_path)
    cli = run_cli("visualize", "--ckpt", bbox_checkpoint, "--data", synthetic_data, "--n", "1", "--format", "svg")
    assert cli.code == 0, cli.err
    svg = (tmp_path / "fig" / "masks.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "bounding-box part model (resnet18)" in svg  # the title names the model, not the checkpoint's path


def test_right_and_wrong_are_marked_by_text_and_line_style_as_well_as_colour():
    rng = np.random.default_rng(0)
    rows = [MaskRow(image=rng.random((8, 8, 3)), label=0, pred=0), MaskRow(image=rng.random((8, 8, 3)), label=0, pred=1)]
    fig = masks_figure(rows, ["cat", "dog"], [])
    right, wrong = (np.array(fig.axes).reshape(2, -1)[r][0] for r in (0, 1))
    assert right.get_xlabel().endswith("✓ pred: cat") and wrong.get_xlabel().endswith("✗ pred: dog")
    assert right.spines["top"].get_linestyle() == "-" and wrong.spines["top"].get_linestyle() != "-"
    assert right.xaxis.label.get_color() != wrong.xaxis.label.get_color()
    assert min(t.get_fontsize() for t in fig.findobj(lambda a: hasattr(a, "get_fontsize"))) >= 9


def test_visualize_with_autoattack(bbox_checkpoint, synthetic_data, tmp_path):
    out = tmp_path / "aa.png"
    result = visualize(bbox_checkpoint, synthetic_data, out, n=2, attack="autoattack", eps=16 / 255,
                       aa_attacks=["square"])
    assert result.notes == ["AutoAttack runs only square"]
    assert result.adv_correct is not None and result.adv_correct <= result.clean_correct
    _png(out)


def test_visualize_a_resnet_draws_images_and_predictions_only(synthetic_data, tmp_path):
    cfg = ModelConfig(arch="resnet", backbone="resnet18", num_classes=5)
    torch.manual_seed(0)
    ckpt = tmp_path / "rn.pt"
    save_checkpoint(ckpt, {"config": {"model": cfg.to_dict(), "train": {"adv": "none"},
                                      "dataset": {"name": "synthetic", "image_size": 32}},
                           "model": build_model(cfg).state_dict()})
    result = visualize(ckpt, synthetic_data, tmp_path / "rn.png", n=2, attack="pgd", steps=1)
    assert any("without a part segmenter" in note and "images and predictions only" in note for note in result.notes)
    assert result.adv_correct is not None
    assert _png(tmp_path / "rn.png").size[0] == _width(4)  # image, true parts, PGD image, perturbation: no predicted parts


def test_visualize_a_dataset_without_masks(tmp_path):
    """A checkpoint whose dataset has no part masks: images and predictions are still drawn."""
    data = tmp_path / "nomask"
    rng = np.random.default_rng(0)
    with DatasetWriter(data, ["a", "b"], [Part("a/x", "a"), Part("b/y", "b")], name="nomask") as writer:
        for i, split in enumerate(["train", "val", "test", "test"]):
            writer.add(split, f"s{i}", i % 2, Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)))
        writer.finish({"command": "test"})
    cfg = ModelConfig(arch="bbox", backbone="resnet18", num_classes=2, num_parts=2, part_to_class=[0, 1])
    ckpt = tmp_path / "bbox.pt"
    save_checkpoint(ckpt, {"config": {"model": cfg.to_dict(), "dataset": {"image_size": 16}},
                           "model": build_model(cfg).state_dict()})
    result = visualize(ckpt, data, tmp_path / "nomask.png", n=2)
    assert any("none of the 2 samples drawn has a part mask" in note for note in result.notes)
    assert result.n == 2
    _png(tmp_path / "nomask.png")


def test_the_perturbation_panel_amplifies_the_difference_around_grey():
    from partcli.report.masks_figure import MaskRow, amplified, masks_figure

    image = np.full((4, 4, 3), 0.5)
    delta = np.zeros((4, 4, 3))
    delta[0, 0, 0], delta[1, 1, 1] = 2 / 255, -4 / 255
    shown = amplified(delta)
    assert shown[1, 1, 1] == pytest.approx(0.0) and shown[0, 0, 0] == pytest.approx(0.75)  # the peak reaches 0
    assert shown[2, 2, 2] == pytest.approx(0.5) and np.all(amplified(np.zeros_like(delta)) == 0.5)
    row = MaskRow(image=image, label=0, pred=0, true_mask=None, pred_mask=None, adv_image=image + delta, adv_pred=1)
    fig = masks_figure([row], ["a", "b"], ["a/x"], attack_name="PGD-2")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["image", "PGD-2 image", "perturbation (amplified)"]
    assert np.allclose(np.asarray(fig.axes[2].images[0].get_array()), shown)
