"""The figure the trackers get each epoch from a part model: ``partcli visualize``'s masks figure (image, true
parts, predicted parts) for the first few validation samples, the same samples every epoch so that the
segmenter's progress can be watched. Cheap: at most ``MAX_SAMPLES`` images, one forward pass."""
from __future__ import annotations

from typing import Any, Callable, ContextManager

import torch
from torch import nn
from torch.utils.data import Dataset

from partcli.report.masks_figure import MaskRow, masks_figure

MAX_SAMPLES = 4


def validation_masks_figure(model: nn.Module, dataset: Dataset, class_names: list[str], part_names: list[str],
                            device: torch.device, autocast: Callable[[], ContextManager[Any]], title: str):
    """The masks figure of ``model`` (a part model, in eval mode) on the first samples of ``dataset``."""
    items = [dataset[i] for i in range(min(MAX_SAMPLES, len(dataset)))]  # type: ignore[arg-type]
    x = torch.stack([item[0] for item in items])
    with torch.no_grad(), autocast():
        logits, seg = model(x.to(device), return_seg=True)
    pred, parts = logits.argmax(1).cpu(), seg.argmax(1).cpu()
    rows = [MaskRow(image=image.permute(1, 2, 0).numpy(), label=int(label), pred=int(pred[i]),
                    true_mask=mask.numpy() if has_mask else None, pred_mask=parts[i].numpy())
            for i, (image, mask, label, has_mask) in enumerate(items)]
    return masks_figure(rows, class_names, part_names, title)
