"""Pseudo masks at each image's native resolution from a trained part segmenter."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from partcli.data.contract import load_image
from partcli.progress import track


class ResizedImages(Dataset):
    """Yields ``(image resized to size×size in [0, 1], original height, original width)`` for (root, rel) pairs."""

    def __init__(self, files: Sequence[tuple[Path, str]], size: int):
        self.files = list(files)
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        pil = load_image(*self.files[index])
        image = torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1)
        resized = v2.functional.resize(image, [self.size, self.size], antialias=True)
        return v2.functional.to_dtype(resized, torch.float32, scale=True), pil.size[1], pil.size[0]


def native_resolution_masks(model: torch.nn.Module, files: Sequence[tuple[Path, str]], image_size: int,
                            batch_size: int = 64, device: str | torch.device = "cpu", workers: int = 0
                            ) -> Iterator[np.ndarray]:
    """Yield one H×W int64 part-id mask per file, in order.

    Each image is resized (whole, no crop) to the segmenter's training size; its part logits are upsampled
    bilinearly back to the image's own H×W before the argmax, so the mask matches the image pixel for pixel.
    """
    model = model.to(device).eval()
    loader = DataLoader(ResizedImages(files, image_size), batch_size=batch_size, num_workers=workers)
    with torch.no_grad():
        for x, heights, widths in track(loader, "pseudo-labelling"):
            logits = model.segment(x.to(device)).float()
            for j in range(len(x)):
                size = (int(heights[j]), int(widths[j]))
                up = F.interpolate(logits[j:j + 1], size=size, mode="bilinear", align_corners=False)
                yield up[0].argmax(0).cpu().numpy().astype(np.int64)
