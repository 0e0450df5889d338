"""``PreparedDataset``: a torch Dataset over one split of a prepared dataset (DESIGN §2)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from partcli.data.contract import DatasetInfo, Sample, load_image, load_mask, read_dataset_info, read_split

IGNORE_INDEX = -1  # mask value of samples without a part label; the seg loss ignores it


def train_transform(image_size: int) -> v2.Transform:
    """Paper App. A: RandomResizedCrop (default scale/ratio) + horizontal flip, applied to image and mask jointly."""
    return v2.Compose([
        v2.RandomResizedCrop(image_size, antialias=True),
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
    ):
        self.root = Path(root)
        self.info: DatasetInfo = read_dataset_info(self.root)
        self.split = split
        self.samples: list[Sample] = read_split(self.root, split, self.info)
        self.transform = transform
        self.drop_masks = drop_masks or set()

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

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
