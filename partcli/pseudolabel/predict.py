"""Pseudo masks at each image's native resolution from a trained part segmenter, restricted to the parts of the
image's own class (App. D.6, as the paper's code made them)."""
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


OWN_CLASS_PARTS = ("other classes' part probabilities zeroed, own parts scaled by (1 - p_bg) / (p_bg + own sum) "
                   "before the argmax (paper App. D.6 code); background stays possible")


def own_class_parts(probs: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """App. D.6 (the paper's code): part probabilities (K+1 × H × W) → part ids of the image's own class or 0.

    ``own`` (K+1 bools) marks the background and the own class's parts. Other classes' parts get probability 0;
    each own part's p is scaled by (1 − p_bg) / (p_bg + Σ own parts' p), then the argmax picks a part or background.
    """
    kept = probs * own.to(probs.dtype)[:, None, None]
    background = kept[0]
    scale = (1 - background) / kept.sum(0).clamp(min=1e-12)
    scaled = torch.cat([background[None], kept[1:] * scale], dim=0)
    return scaled.argmax(0)


def native_resolution_masks(model: torch.nn.Module, files: Sequence[tuple[Path, str]], labels: Sequence[int],
                            part_to_class: Sequence[int], image_size: int, batch_size: int = 64,
                            device: str | torch.device = "cpu", workers: int = 0) -> Iterator[np.ndarray]:
    """Yield one H×W int64 part-id mask per file, in order; ``labels`` are the files' classes and
    ``part_to_class`` the class of every part id 1..K.

    Each image is resized (whole, no crop) to the segmenter's training size; its part logits are upsampled
    bilinearly back to the image's own H×W, then ``own_class_parts`` picks each pixel's part of the image's
    class (or background), so the mask matches the image pixel for pixel.
    """
    part_class = torch.tensor([-1, *part_to_class])  # part id -> class; background -1
    model = model.to(device).eval()
    loader = DataLoader(ResizedImages(files, image_size), batch_size=batch_size, num_workers=workers)
    labels = list(labels)
    done = 0
    with torch.no_grad():
        for x, heights, widths in track(loader, "pseudo-labelling"):
            logits = model.segment(x.to(device)).float()
            for j in range(len(x)):
                size = (int(heights[j]), int(widths[j]))
                up = F.interpolate(logits[j:j + 1], size=size, mode="bilinear", align_corners=False)
                own = (part_class == labels[done]) | (part_class == -1)
                yield own_class_parts(up[0].softmax(0), own.to(up.device)).cpu().numpy().astype(np.int64)
                done += 1
