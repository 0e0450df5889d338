"""Training losses of the part models (paper §3.4); pure functions over logits and labels."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from partcli.data.dataset import IGNORE_INDEX


def seg_loss(seg_logits: torch.Tensor | None, masks: torch.Tensor) -> torch.Tensor:
    """Eq. 7: mean pixel-wise cross-entropy over the labelled pixels of the batch.

    Samples without a part label carry ``IGNORE_INDEX`` everywhere and contribute nothing; a batch with no
    labelled pixel (or a model without a segmenter) gives a zero that still back-propagates.
    """
    if seg_logits is None:
        return masks.new_zeros((), dtype=torch.float32)
    labelled = masks != IGNORE_INDEX
    if not labelled.any():
        return seg_logits.sum() * 0.0
    return F.cross_entropy(seg_logits.float(), masks, ignore_index=IGNORE_INDEX)


def combined_loss(logits: torch.Tensor, seg_logits: torch.Tensor | None, y: torch.Tensor,
                  masks: torch.Tensor, cseg: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 5 (clean x) and Eq. 8 (adversarial x*): (1 − c)·CE(f(x), y) + c·L_seg. Returns (total, cls, seg)."""
    cls = F.cross_entropy(logits.float(), y)
    seg = seg_loss(seg_logits, masks)
    if seg_logits is None:  # baselines have no segmentation loss to weigh against
        return cls, cls, seg
    return (1 - cseg) * cls + cseg * seg, cls, seg


def kl_clean_adv(clean_logits: torch.Tensor, adv_logits: torch.Tensor) -> torch.Tensor:
    """Eq. 10–11: D_KL(f(x) ‖ f(x*)), summed over classes and averaged over the batch."""
    return F.kl_div(F.log_softmax(adv_logits.float(), dim=1), F.log_softmax(clean_logits.float(), dim=1),
                    reduction="batchmean", log_target=True)


def trades_loss(clean_logits: torch.Tensor, adv_logits: torch.Tensor, adv_seg_logits: torch.Tensor | None,
                y: torch.Tensor, masks: torch.Tensor, cseg: float, beta: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 10: (1 − c)·CE(f(x), y) + c·L_seg(x*) + β·KL(f(x) ‖ f(x*)). Returns (total, cls, seg)."""
    cls = F.cross_entropy(clean_logits.float(), y)
    seg = seg_loss(adv_seg_logits, masks)
    weight = (1 - cseg) if adv_seg_logits is not None else 1.0
    total = weight * cls + beta * kl_clean_adv(clean_logits, adv_logits)
    if adv_seg_logits is not None:
        total = total + cseg * seg
    return total, cls, seg
