"""``PreparedDataset``: a torch Dataset over one split of a prepared dataset (docs/formats.md)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from partcli.data.contract import (DatasetInfo, Sample, check_split_files, load_image, load_mask, open_image,
                                   read_dataset_info, read_split)

IGNORE_INDEX = -1  # mask value of samples without a part label; the seg loss ignores it


def train_transform(image_size: int, crop_scale: float = 0.08) -> v2.Transform:
    """Paper App. A: RandomResizedCrop + horizontal flip, applied to image and mask jointly.

    ``crop_scale`` is the smallest crop area as a fraction of the image (0.08: torchvision's default, the
    paper's setting); raise it for datasets whose objects are small in the frame.
    """
    return v2.Compose([
        v2.RandomResizedCrop(image_size, scale=(crop_scale, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
    ])


def eval_transform(image_size: int) -> v2.Transform:
    """Paper App. A: resize to 256/224 of the target, then centre-crop to ``image_size``."""
    return v2.Compose([
        v2.Resize(int(round(image_size * 256 / 224)), antialias=True),
        v2.CenterCrop(image_size),
    ])


class PreparedDataset(Dataset):
    """Yields ``(image, mask, label, has_mask)``.

    ``image``: float32 3×S×S in [0, 1]; ``mask``: int64 S×S part ids (``IGNORE_INDEX`` everywhere when the
    sample has no mask); ``label``: int; ``has_mask``: bool. The transform sees the image and the mask as
    ``tv_tensors.Image`` / ``tv_tensors.Mask``, so geometric ops move them together and masks are resampled
    with nearest interpolation.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        transform: Callable | None = None,
        drop_masks: set[int] | None = None,
        check_files: bool = True,
    ):
        self.root = Path(root)
        self.info: DatasetInfo = read_dataset_info(self.root)
        self.split = split
        self.samples: list[Sample] = read_split(self.root, split, self.info)
        self.transform = transform
        self.drop_masks = drop_masks or set()
        if check_files:  # refuse a broken split before any run folder is written, not epochs later
            # Lenient on missing mask files: a caller may withhold masks after construction (the Trainer sets
            # drop_masks for --seg-frac) and withheld masks need not exist; ``validate_files`` is strict.
            check_split_files(self.root, self.samples, missing_masks_ok=True)

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def validate_files(self) -> None:
        """Check the headers of every image and of every mask this dataset will read (``drop_masks`` honoured)."""
        check_split_files(self.root, [replace(s, mask="") if i in self.drop_masks else s
                                      for i, s in enumerate(self.samples)])

    def has_mask(self, index: int) -> bool:
        return bool(self.samples[index].mask) and index not in self.drop_masks

    def __getitem__(self, index: int):
        sample = self.samples[index]
        pil = load_image(self.root, sample.image)
        image = tv_tensors.Image(torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1))
        has_mask = self.has_mask(index)
        if has_mask:
            arr = load_mask(self.root, sample.mask, self.info.num_parts, pil.size)
            mask = tv_tensors.Mask(torch.from_numpy(arr))
        else:
            mask = tv_tensors.Mask(torch.full((pil.size[1], pil.size[0]), IGNORE_INDEX, dtype=torch.int64))
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        image = v2.functional.to_dtype(image, torch.float32, scale=True).as_subclass(torch.Tensor)
        return image, mask.as_subclass(torch.Tensor).long(), sample.label, has_mask


SIZE_SAMPLES = 32  # images whose headers give a split's typical size


def upsampling_note(ds: PreparedDataset, image_size: int) -> str | None:
    """A note when ``image_size`` is larger than the split's images (the median shorter side of its first
    ``SIZE_SAMPLES`` images, from their headers): the model then sees them upsampled, e.g. 32-px images at 224."""
    sides = []
    for sample in ds.samples[:SIZE_SAMPLES]:
        with open_image(ds.root / sample.image, "image") as image:
            sides.append(min(image.size))
    median = sorted(sides)[len(sides) // 2] if sides else None
    if median is None or image_size <= median:
        return None
    return (f"note: --image-size {image_size} upsamples the {ds.split} images of {ds.root} (their shorter side is "
            f"about {median} px); the model sees them {image_size / median:.1f}× enlarged")
