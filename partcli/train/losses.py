"""Training losses of the part models (paper §3.4, App. D.4); pure functions over logits and labels.

A segmentation loss has the signature ``(seg_logits, masks, y) -> scalar`` (``SegLossFn``): ``seg_loss``
for pixel labels (part, object or box masks), ``centroid_loss`` for centroid labels.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from partcli.attacks.seg_attacks import per_sample_seg_ce
from partcli.data.dataset import IGNORE_INDEX
from partcli.data.seg_labels import mask_centroids, mass_centroids

SegLossFn = Callable[[torch.Tensor | None, torch.Tensor, torch.Tensor], torch.Tensor]


def seg_loss(seg_logits: torch.Tensor | None, masks: torch.Tensor, y: torch.Tensor | None = None,
             norm: str = "batch") -> torch.Tensor:
    """Eq. 7: pixel-wise cross-entropy, averaged per sample over its labelled pixels (``per_sample_seg_ce``, which
    the segmenter-guided attacks maximise), then over samples.

    Eq. 7's extra 1/(K+1) is a constant that would only rescale the segmentation term; like the usual
    ``nn.CrossEntropyLoss`` we average the per-pixel loss. Samples without a part label carry
    ``IGNORE_INDEX`` everywhere. ``norm`` says what they count for (``--seg-loss-norm``):
    ``batch`` (the paper's code): they add a zero to the mean over the whole batch, so with ``--seg-frac f``
    the segmentation term's effective weight is about f·c_seg; ``labelled``: the mean runs over the labelled
    samples only, so the weight does not shrink with f. With every mask present the two are equal.
    A batch with no labelled pixel (or a model without a segmenter) gives a zero that still back-propagates
    (DDP needs every parameter in the graph).
    """
    if seg_logits is None:
        return masks.new_zeros((), dtype=torch.float32)
    labelled = (masks != IGNORE_INDEX).flatten(1).any(dim=1)
    if not labelled.any():
        return seg_logits.sum() * 0.0
    return _sample_mean(per_sample_seg_ce(seg_logits, masks), labelled, norm)


def _sample_mean(per_sample: torch.Tensor, labelled: torch.Tensor, norm: str) -> torch.Tensor:
    """Mean of per-sample losses (zero where unlabelled) over the batch (``batch``) or the labelled (``labelled``)."""
    if norm == "batch":
        return per_sample.sum() / per_sample.shape[0]
    if norm == "labelled":
        return per_sample.sum() / labelled.sum().clamp_min(1)
    raise ValueError(f"unknown segmentation-loss normalisation {norm!r}")


def centroid_loss(seg_logits: torch.Tensor | None, masks: torch.Tensor, y: torch.Tensor,
                  part_to_class: list[int], num_classes: int, norm: str = "batch") -> torch.Tensor:
    """Eq. 12, Eq. 13 (App. D.4): the segmentation loss of a model trained on part centroids only.

    Eq. 12: squared error between the centroids (Eq. 2) of the predicted soft part masks and of the
    ground-truth masks, averaged over the parts the label shows (an absent part has no centroid; averaging
    over the present ones rather than all K keeps the scale independent of K). Eq. 13: cross-entropy of the
    class shares of the predicted part mass, Σ_{k∈c} Σ_j f_seg(x) / Σ_c Σ_{k∈c} Σ_j f_seg(x), with
    f_seg the softmax mask. Samples without a label add zero; ``norm`` as in ``seg_loss``.
    """
    if seg_logits is None:
        return masks.new_zeros((), dtype=torch.float32)
    labelled = (masks != IGNORE_INDEX).flatten(1).any(dim=1)
    if not labelled.any():
        return seg_logits.sum() * 0.0
    parts = seg_logits[labelled].float().softmax(dim=1)[:, 1:]  # N'×K×H×W
    target, present = mask_centroids(masks[labelled], parts.shape[1])
    err = ((mass_centroids(parts) - target) ** 2).sum(dim=2)  # Eq. 12, per part: row² + column²
    eq12 = (err * present).sum(dim=1) / present.sum(dim=1).clamp_min(1)
    index = torch.tensor(part_to_class, device=parts.device)
    class_mass = parts.new_zeros(parts.shape[0], num_classes).index_add_(1, index, parts.sum(dim=(2, 3)))
    share = class_mass / class_mass.sum(dim=1, keepdim=True)
    eq13 = F.nll_loss(share.clamp_min(1e-12).log(), y[labelled], reduction="none")  # Eq. 13
    per_sample = (eq12 + eq13).new_zeros(masks.shape[0]).masked_scatter(labelled, eq12 + eq13)
    return _sample_mean(per_sample, labelled, norm)


def combined_loss(logits: torch.Tensor, seg_logits: torch.Tensor | None, y: torch.Tensor, masks: torch.Tensor,
                  cseg: float, seg_fn: SegLossFn = seg_loss) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 5 (clean x) and Eq. 8 (adversarial x*): (1 − c)·L_cls + c·L_seg, with L_cls = CE(f(x), y) (Eq. 6).
    Returns (total, cls, seg)."""
    cls = F.cross_entropy(logits.float(), y)  # Eq. 6
    seg = seg_fn(seg_logits, masks, y)
    if seg_logits is None:  # baselines have no segmentation loss to weigh against
        return cls, cls, seg
    return (1 - cseg) * cls + cseg * seg, cls, seg


def kl_per_sample(clean_logits: torch.Tensor, adv_logits: torch.Tensor) -> torch.Tensor:
    """D_KL(f(x) ‖ f(x*)) per sample, summed over classes: TRADES' term (Eq. 10) and its attack's objective (Eq. 11)."""
    clean = clean_logits.float().log_softmax(1)
    return (clean.exp() * (clean - adv_logits.float().log_softmax(1))).sum(1)


def kl_clean_adv(clean_logits: torch.Tensor, adv_logits: torch.Tensor) -> torch.Tensor:
    """Eq. 10, Eq. 11: D_KL(f(x) ‖ f(x*)), summed over classes and averaged over the batch."""
    return kl_per_sample(clean_logits, adv_logits).mean()


def trades_loss(clean_logits: torch.Tensor, adv_logits: torch.Tensor, adv_seg_logits: torch.Tensor | None,
                y: torch.Tensor, masks: torch.Tensor, cseg: float, beta: float, seg_fn: SegLossFn = seg_loss
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 10: (1 − c)·CE(f(x), y) + c·L_seg(x*) + β·KL(f(x) ‖ f(x*)), CE(f(x), y) being L_cls (Eq. 6).
    Returns (total, cls, seg).

    Baselines (no segmenter) get TRADES' own CE(f(x), y) + β·KL.
    """
    cls = F.cross_entropy(clean_logits.float(), y)  # Eq. 6
    seg = seg_fn(adv_seg_logits, masks, y)
    kl = kl_clean_adv(clean_logits, adv_logits)
    if adv_seg_logits is None:
        return cls + beta * kl, cls, seg
    return (1 - cseg) * cls + cseg * seg + beta * kl, cls, seg
