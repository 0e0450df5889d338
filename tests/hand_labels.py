"""Segmentation label variants and pixel accuracy written out by hand, to check partcli's against."""
from __future__ import annotations

import torch
from torch import nn


def object_masks_by_hand(mask: torch.Tensor, part_to_class: list[int]) -> torch.Tensor:
    """Part id p > 0 → its class + 1, pixel by pixel (App. D.5)."""
    return torch.tensor([[part_to_class[v - 1] + 1 if v > 0 else v for v in row] for row in mask.tolist()])


def box_masks_by_hand(mask: torch.Tensor) -> torch.Tensor:
    """Every part's tight bounding box filled, largest box first, so smaller parts end on top (App. D.4)."""
    rows = mask.tolist()
    out = [row[:] for row in rows]
    boxes = []
    for part in {v for row in rows for v in row if v > 0}:
        cells = [(r, c) for r, row in enumerate(rows) for c, v in enumerate(row) if v == part]
        r0, r1 = min(r for r, _ in cells), max(r for r, _ in cells)
        c0, c1 = min(c for _, c in cells), max(c for _, c in cells)
        boxes.append(((r1 - r0 + 1) * (c1 - c0 + 1), part, r0, r1, c0, c1))
    for _, part, r0, r1, c0, c1 in sorted(boxes, key=lambda b: (-b[0], b[1])):
        for r in range(r0, r1 + 1):
            out[r][c0:c1 + 1] = [part] * (c1 - c0 + 1)
    return torch.tensor(out)


def pixel_acc_by_hand(model: nn.Module, images: torch.Tensor, masks: torch.Tensor) -> float:
    """Fraction of labelled pixels (≥ 0) whose predicted id is the mask's."""
    with torch.no_grad():
        predicted = model.segment(images).argmax(1)
    labelled = masks >= 0
    return ((predicted == masks) & labelled).sum().item() / labelled.sum().item()
