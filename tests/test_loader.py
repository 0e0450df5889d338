"""``PreparedDataset`` and its transforms: a round trip through ``DatasetWriter``, joint image/mask geometry."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader

from partcli.data.contract import Part, read_dataset_info
from partcli.data.writer import DatasetWriter
from partcli.data.dataset import IGNORE_INDEX, PreparedDataset, eval_transform, train_transform

H, W = 30, 40
TOP, BOTTOM, LEFT, MID, RIGHT = 6, 21, 5, 15, 25  # part 1 = rows 6..20 × cols 5..14, part 2 = cols 15..24
GRAY = 128


def drawing() -> tuple[Image.Image, np.ndarray]:
    """Black image, a white (part 1) and a gray (part 2) block side by side, left of centre; mask alike."""
    pixels = np.zeros((H, W, 3), np.uint8)
    mask = np.zeros((H, W), np.uint8)
    pixels[TOP:BOTTOM, LEFT:MID] = 255
    pixels[TOP:BOTTOM, MID:RIGHT] = GRAY
    mask[TOP:BOTTOM, LEFT:MID] = 1
    mask[TOP:BOTTOM, MID:RIGHT] = 2
    return Image.fromarray(pixels), mask


@pytest.fixture(scope="module")
def blocks(module_tmp) -> Path:
    """A prepared dataset of the same drawing: 3 training samples (the last without mask), 1 val, 1 test."""
    out = module_tmp / "blocks"
    image, mask = drawing()
    with DatasetWriter(out, ["thing", "other"], [Part("thing/white", "thing"), Part("thing/gray", "thing")],
                       name="blocks") as writer:
        writer.add("train", "a", 0, image, mask=mask)
        writer.add("train", "b", 1, image, mask=mask)
        writer.add("train", "c", 0, image)
        writer.add("val", "d", 0, image, mask=mask)
        writer.add("test", "e", 1, image, mask=mask)
        writer.finish({"command": "test"})
    return out


def image_classes(image: torch.Tensor) -> torch.Tensor:
    """Part id that each pixel's brightness shows: black 0, gray 2, white 1."""
    v = image.mean(0)
    out = torch.zeros_like(v, dtype=torch.int64)
    out[(v > 0.25) & (v < 0.75)] = 2
    out[v >= 0.75] = 1
    return out


def near_boundary(mask: torch.Tensor) -> torch.Tensor:
    """Pixels within 2 px of a part boundary, where bilinear resampling blurs the image.

    RandomResizedCrop enlarges these 40×30 images by up to ~4×, which spreads an edge over ~2 px each side.
    """
    m = mask[None, None].float()
    hi = F.max_pool2d(m, 5, stride=1, padding=2)
    lo = -F.max_pool2d(-m, 5, stride=1, padding=2)
    return (hi != lo)[0, 0]


def test_round_trip(blocks):
    info = read_dataset_info(blocks)
    assert info.classes == ["thing", "other"] and info.num_parts == 2
    assert info.counts["train"] == {"thing": 2, "other": 1}
    ds = PreparedDataset(blocks, "train")
    assert len(ds) == 3 and ds.labels == [0, 1, 0]
    image, mask, label, has_mask = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, H, W)
    assert image.min() == 0 and image.max() == 1
    assert mask.dtype == torch.int64 and mask.shape == (H, W)
    expected_image, expected_mask = drawing()
    assert torch.equal(mask, torch.from_numpy(expected_mask).long())
    assert torch.equal((image * 255).round().byte(), torch.from_numpy(np.array(expected_image)).permute(2, 0, 1))
    assert (label, has_mask) == (0, True)
    _, mask, label, has_mask = ds[2]
    assert (label, has_mask) == (0, False) and (mask == IGNORE_INDEX).all()


@pytest.mark.parametrize("seed", range(10))
def test_train_transform_moves_image_and_mask_together(blocks, seed):
    ds = PreparedDataset(blocks, "train", train_transform(32))
    torch.manual_seed(seed)
    image, mask, _, _ = ds[0]
    assert image.shape == (3, 32, 32) and mask.shape == (32, 32) and mask.dtype == torch.int64
    assert set(mask.unique().tolist()) <= {0, 1, 2}  # nearest resampling: no new part ids
    disagree = image_classes(image) != mask
    assert not (disagree & ~near_boundary(mask)).any(), f"seed {seed}: image and mask disagree off the boundaries"
    assert disagree.float().mean() < 0.15


def test_flip_moves_the_mask_too(blocks):
    """Over several seeds, the white part lies left of the gray part in some crops and right in others."""
    ds = PreparedDataset(blocks, "train", train_transform(32))
    sides = set()
    for seed in range(12):
        torch.manual_seed(seed)
        image, mask, _, _ = ds[0]
        if (mask == 1).any() and (mask == 2).any():
            cols = torch.arange(32.0)
            white = cols[(mask == 1).any(0)].mean()
            gray = cols[(mask == 2).any(0)].mean()
            sides.add(bool(white < gray))
            bright = cols[(image_classes(image) == 1).any(0)].mean()
            assert (bright < gray) == (white < gray)
    assert sides == {True, False}


def test_unlabelled_sample_stays_ignored_after_transform(blocks):
    ds = PreparedDataset(blocks, "train", train_transform(32))
    torch.manual_seed(0)
    _, mask, _, has_mask = ds[2]
    assert not has_mask and (mask == IGNORE_INDEX).all()


def test_eval_transform_is_deterministic_and_aligned(blocks):
    ds = PreparedDataset(blocks, "val", eval_transform(32))
    image, mask, _, _ = ds[0]
    again, mask_again, _, _ = ds[0]
    assert torch.equal(image, again) and torch.equal(mask, mask_again)
    assert image.shape == (3, 32, 32) and set(mask.unique().tolist()) == {0, 1, 2}
    disagree = image_classes(image) != mask
    assert not (disagree & ~near_boundary(mask)).any()


def test_drop_masks_withholds_a_label(blocks):
    ds = PreparedDataset(blocks, "train", drop_masks={0})
    _, mask, _, has_mask = ds[0]
    assert not has_mask and (mask == IGNORE_INDEX).all()
    assert ds[1][3]


def test_dataloader_with_worker_processes(blocks):
    ds = PreparedDataset(blocks, "train", eval_transform(32))
    batches = list(DataLoader(ds, batch_size=2, num_workers=2))
    images = torch.cat([b[0] for b in batches])
    masks = torch.cat([b[1] for b in batches])
    assert images.shape == (3, 3, 32, 32) and masks.shape == (3, 32, 32) and masks.dtype == torch.int64
    assert torch.cat([b[2] for b in batches]).tolist() == [0, 1, 0]
    assert torch.cat([b[3] for b in batches]).tolist() == [True, True, False]
    assert torch.equal(images[1], ds[1][0]) and torch.equal(masks[1], ds[1][1])
