"""Pixel accuracy and mean IoU of predicted part masks, from a confusion matrix over labelled pixels."""
from __future__ import annotations

import torch

from partcli.data.dataset import IGNORE_INDEX


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """num_classes×num_classes counts (rows: target, columns: prediction); ignored pixels are skipped."""
    keep = target != IGNORE_INDEX
    idx = target[keep].long() * num_classes + pred[keep].long()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes).cpu()


def pixel_accuracy(cm: torch.Tensor) -> float | None:
    total = cm.sum().item()
    return cm.diag().sum().item() / total if total else None


def mean_iou(cm: torch.Tensor) -> float | None:
    """Mean IoU over the classes (part ids) that occur in the target or the prediction."""
    inter = cm.diag().double()
    union = cm.sum(0).double() + cm.sum(1).double() - inter
    present = union > 0
    return (inter[present] / union[present]).mean().item() if present.any() else None


def foreground_pixel_accuracy(cm: torch.Tensor) -> float | None:
    """Share of the object's pixels (target ≠ background) given their exact part id.

    Plain pixel accuracy rewards a segmenter that predicts background everywhere (most pixels are
    background); this one is 0 for it.
    """
    total = cm[1:].sum().item()
    return cm[1:, 1:].diag().sum().item() / total if total else None
