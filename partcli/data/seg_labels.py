"""Cheaper segmentation labels derived from part masks (paper §5.4, App. D.4–D.5), as pure mask functions.

``--seg-labels`` picks what the segmenter is trained on (each kind registered in ``partcli.data.label_kinds``):

- ``part``: the part masks as they are (K + 1 channels).
- ``object``: parts merged per class (App. D.5): C + 1 channels, id = class index + 1.
- ``box``: every part's pixels replaced by its tight, filled bounding rectangle (App. D.4).
- ``centroid``: the part masks stay, but the loss only sees their centroids (Eq. 12, Eq. 13, in
  ``partcli.train.losses.centroid_loss``); ``mask_centroids`` computes the targets.

Masks hold part ids (0 = background) or ``IGNORE_INDEX`` (-1) where a sample has no label; every function
keeps ignored pixels ignored. The transforms run on the full-size mask before augmentation, so a box is the
box of the whole annotated part even when a random crop later cuts it.
"""
from __future__ import annotations

from typing import Callable

import torch
from torchvision import tv_tensors

from partcli.data.dataset import IGNORE_INDEX


def object_masks(mask: torch.Tensor, part_to_class: list[int]) -> torch.Tensor:
    """Merge parts per class (App. D.5): part id p becomes ``part_to_class[p - 1] + 1``; 0 and -1 stay."""
    lut = torch.tensor([0] + [c + 1 for c in part_to_class], dtype=mask.dtype, device=mask.device)
    labelled = mask != IGNORE_INDEX
    return torch.where(labelled, lut[mask.clamp_min(0)], mask)


def box_masks(mask: torch.Tensor) -> torch.Tensor:
    """Replace each part's pixels of an H×W mask by its tight filled bounding rectangle (App. D.4).

    Rectangles are painted from the largest (by area) to the smallest, so smaller parts stay visible on
    top; equal areas paint the lower part id first. Pixels outside every rectangle keep their value.
    """
    out = mask.clone()
    boxes = []
    for part in mask.unique().tolist():
        if part <= 0:  # background and IGNORE_INDEX have no box
            continue
        rows, cols = (mask == part).nonzero(as_tuple=True)
        r0, r1, c0, c1 = rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item()
        boxes.append(((r1 - r0 + 1) * (c1 - c0 + 1), part, r0, r1, c0, c1))
    for _, part, r0, r1, c0, c1 in sorted(boxes, key=lambda b: (-b[0], b[1])):
        out[r0:r1 + 1, c0:c1 + 1] = part
    return out


def mask_centroids(masks: torch.Tensor, num_parts: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 2 on ground-truth masks (App. D.4): centroids of parts 1..K of N×H×W masks.

    Returns ``(centroids, present)``: N×K×2 (row, column) in [-1, 1], pixel centres spread evenly from
    -1 to 1 as in ``bbox_features``, and an N×K bool telling which parts have at least one pixel (the
    centroid of an absent part is 0 and must not be used).
    """
    onehot = torch.stack([(masks == k) for k in range(1, num_parts + 1)], dim=1).float()  # N×K×H×W
    return mass_centroids(onehot), onehot.sum(dim=(2, 3)) > 0


def mass_centroids(mass: torch.Tensor) -> torch.Tensor:
    """Eq. 2: centroid (row, column) in [-1, 1] of each N×K×H×W non-negative mass map; N×K×2."""
    h, w = mass.shape[-2:]
    rows = torch.linspace(-1.0, 1.0, h, device=mass.device)
    cols = torch.linspace(-1.0, 1.0, w, device=mass.device)
    total = mass.sum(dim=(2, 3)).clamp_min(1e-6)
    c_row = (mass.sum(dim=3) * rows).sum(dim=2) / total
    c_col = (mass.sum(dim=2) * cols).sum(dim=2) / total
    return torch.stack([c_row, c_col], dim=2)


class RelabelThen:
    """A dataset transform: relabel the (full-size) mask with ``fn``, then apply ``then`` to image and mask."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], then: Callable | None):
        self.fn = fn
        self.then = then

    def __call__(self, image: torch.Tensor, mask: torch.Tensor):
        mask = tv_tensors.Mask(self.fn(mask.as_subclass(torch.Tensor)))
        return (image, mask) if self.then is None else self.then(image, mask)
