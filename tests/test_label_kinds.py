"""Label kinds (``--seg-labels``) as a registry: the built-in kinds, and one added through ``register_label_kind``."""
from __future__ import annotations

import csv
from types import SimpleNamespace

import pytest
import torch
from torchvision import tv_tensors

from conftest import TINY
from helpers import run_cli
from test_help import help_rows, narrow_help
from partcli.data import label_kinds
from partcli.data.label_kinds import LABEL_KINDS, LabelKind, label_kind, register_label_kind
from partcli.errors import PartcliError

PART_TO_CLASS = [0, 0, 1]  # parts 1 and 2 of class 0, part 3 of class 1
INFO = SimpleNamespace(classes=["cat", "dog"], parts=[SimpleNamespace(name=n) for n in ("ear", "tail", "paw")])


def test_the_built_in_kinds_in_order():
    assert tuple(LABEL_KINDS) == ("part", "object", "box", "centroid")


@pytest.mark.parametrize("name, channels, names", [
    ("part", (3, [0, 0, 1]), ["ear", "tail", "paw"]),
    ("object", (2, [0, 1]), ["cat", "dog"]),
    ("box", (3, [0, 0, 1]), ["ear", "tail", "paw"]),
    ("centroid", (3, [0, 0, 1]), ["ear", "tail", "paw"]),
])
def test_channels_and_mask_names_of_each_kind(name, channels, names):
    kind = label_kind(name)
    assert kind.channels(2, PART_TO_CLASS) == channels
    assert kind.mask_names(INFO) == names


def test_relabelled_masks_by_hand():
    mask = torch.tensor([[1, 0, 0], [0, 0, 2], [3, -1, 0]])
    objects = torch.tensor([[1, 0, 0], [0, 0, 1], [2, -1, 0]])  # part p -> class + 1; background, ignored stay
    boxes = torch.tensor([[1, 0, 0], [0, 0, 2], [3, -1, 0]])  # one-pixel parts: their boxes are themselves
    assert torch.equal(label_kind("object").relabel(mask, PART_TO_CLASS), objects)
    assert torch.equal(label_kind("box").relabel(mask, PART_TO_CLASS), boxes)
    spread = torch.tensor([[1, 0, 0], [0, 0, 1], [0, 0, 0]])  # part 1's box: rows 0-1, columns 0-2
    assert torch.equal(label_kind("box").relabel(spread, PART_TO_CLASS), torch.tensor([[1, 1, 1], [1, 1, 1],
                                                                                        [0, 0, 0]]))
    for name in ("part", "centroid"):  # the part masks as they are
        assert label_kind(name).relabel is None and label_kind(name).transform(PART_TO_CLASS, None) is None
    image, out = label_kind("object").transform(PART_TO_CLASS, None)(torch.zeros(3, 3, 3), tv_tensors.Mask(mask))
    assert torch.equal(out.as_subclass(torch.Tensor), objects)


def test_losses_and_pixel_metrics_of_the_kinds():
    assert [k.loss is None for k in LABEL_KINDS.values()] == [True, True, True, False]  # Eq. 7 but centroid's
    assert [k.pixel_metric for k in LABEL_KINDS.values()] == [True, True, True, False]
    mask = torch.zeros(1, 4, 4, dtype=torch.long)
    mask[0, 0, 0] = 1
    seg = torch.zeros(1, 4, 4, 4)  # 3 parts + background
    loss = label_kind("centroid").loss(PART_TO_CLASS, 2, "batch")(seg, mask, torch.tensor([0]))
    assert loss.item() > 0  # uniform predicted masks: centroid (0, 0), not the part's (-1, -1)


def test_an_unknown_kind_and_a_second_registration_are_refused():
    with pytest.raises(PartcliError, match="--seg-labels 'keypoints': expected one of part, object, box, centroid"):
        label_kind("keypoints")
    with pytest.raises(ValueError, match="registered twice"):
        register_label_kind(LabelKind("part", "again"))


def _halves(mask: torch.Tensor, part_to_class: list[int]) -> torch.Tensor:
    """Two labels per class: the object's pixels in the upper half of the image (2c + 1), in the lower (2c + 2)."""
    lut = torch.tensor([0] + [2 * c + 1 for c in part_to_class], dtype=mask.dtype)
    lower = (torch.arange(mask.shape[0]) >= mask.shape[0] // 2)[:, None].to(mask.dtype)
    return torch.where(mask > 0, lut[mask.clamp_min(0)] + lower, mask)


def test_a_registered_kind_shows_in_help_and_trains(synthetic_data, tmp_path, monkeypatch):
    """A new label kind is one registry entry: --seg-labels offers and explains it, and a run trains on it."""
    monkeypatch.setattr(label_kinds, "LABEL_KINDS", dict(LABEL_KINDS))
    register_label_kind(LabelKind("halves", "upper and lower half of each object", relabel=_halves,
                                  channels=lambda c, p2c: (2 * c, [k // 2 for k in range(2 * c)]),
                                  mask_names=lambda info: [f"{c} {h}" for c in info.classes for h in ("up", "down")]))
    assert torch.equal(_halves(torch.tensor([[1, 0], [3, -1]]), PART_TO_CLASS), torch.tensor([[1, 0], [4, -1]]))
    row = help_rows(narrow_help(("pretrain",)))["--seg-labels"]
    assert "part|object|box|" in row and "centroid|halves" in row  # the choices, wrapped over two lines
    assert "halves (upper and lower half of each object)" in " ".join(row.split())

    out = tmp_path / "run"
    result = run_cli("pretrain", "--data", synthetic_data, "--out", out, "--arch", "downsampled", "--epochs", 1,
                     "--seg-labels", "halves", "--workers", 0,
                     *[a for k, v in TINY.items() for a in (f"--{k.replace('_', '-')}", v)])
    assert result.code == 0, result.output
    state = torch.load(out / "checkpoints" / "best.pt", weights_only=True)
    assert state["config"]["dataset"]["seg_labels"] == "halves"
    assert state["config"]["model"]["num_parts"] == 10 and state["config"]["model"]["part_to_class"][:3] == [0, 0, 1]
    row = next(csv.DictReader((out / "metrics.csv").open()))
    assert row["val_pixel_acc"] != ""  # measured against the halves masks

    monkeypatch.undo()  # the registration is gone: --seg-labels no longer offers it
    assert "halves" not in help_rows(narrow_help(("pretrain",)))["--seg-labels"]
