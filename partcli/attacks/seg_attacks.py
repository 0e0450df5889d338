"""Attacks that go through the part segmenter (paper App. D.3, Tables 11–13); pure functions over tensors.

Every function takes a part model in eval mode (``model(x, return_seg=True)`` and ``model.segment(x)``), images
in [0, 1] and per-sample tensors; all adversarial examples stay in the ℓ∞ ε-ball and in [0, 1] (they come from
``pgd_linf`` / ``pgd_linf_from``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from partcli.attacks.pgd import LossFn, ce_loss, pgd_linf, pgd_linf_from, pgd_linf_restarts
from partcli.data.dataset import IGNORE_INDEX

STRATEGIES = ("untargeted", "random", "mc-random", "mc-sorted")
MASK_LOGIT_SCALE = 1e3  # the paper's code: a one-hot mask times 1000 stands in for the part logits


def per_sample_seg_ce(seg_logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Eq. 7 per sample: mean pixel cross-entropy over the sample's labelled pixels (0 when it has none)."""
    pixel = F.cross_entropy(seg_logits.float(), masks, ignore_index=IGNORE_INDEX, reduction="none")
    labelled = (masks != IGNORE_INDEX).flatten(1).sum(1)
    return pixel.flatten(1).sum(1) / labelled.clamp(min=1)


def segmenter_ce(model: nn.Module, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Untargeted segmenter objective: per-sample seg loss against ``masks`` (maximised by PGD)."""
    return per_sample_seg_ce(model.segment(x), masks)


def segmenter_toward(model: nn.Module, x: torch.Tensor, target_masks: torch.Tensor) -> torch.Tensor:
    """Targeted segmenter objective: minus the seg loss toward ``target_masks`` (PGD maximises it)."""
    return -per_sample_seg_ce(model.segment(x), target_masks)


def seg_single_loss(masks: torch.Tensor, has_mask: torch.Tensor, cseg: float) -> LossFn:
    """Table 11's objective (1 − c)·CE + c·L_seg (Eq. 8's weighting); samples without a mask use CE alone."""
    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits, seg_logits = model(x, return_seg=True)
        ce = F.cross_entropy(logits.float(), y, reduction="none")
        mixed = (1 - cseg) * ce + cseg * per_sample_seg_ce(seg_logits, masks)
        return torch.where(has_mask, mixed, ce)
    return loss


def reference_masks(model: nn.Module, x: torch.Tensor, masks: torch.Tensor, has_mask: torch.Tensor) -> torch.Tensor:
    """The ground-truth mask where a sample has one, else the model's own clean prediction (so that every
    sample can be attacked untargeted)."""
    if bool(has_mask.all()):
        return masks
    with torch.no_grad():
        predicted = model.segment(x).argmax(1)
    return torch.where(has_mask.view(-1, 1, 1), masks, predicted)


def seg_single_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor,
                      has_mask: torch.Tensor, eps: float, step_size: float, steps: int, restarts: int, cseg: float,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Single-stage attack (App. D.3): PGD with restarts on the mixed classification + segmentation loss."""
    return pgd_linf_restarts(model, x, y, eps, step_size, steps, restarts, seg_single_loss(masks, has_mask, cseg),
                             generator)


def two_stage_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, stage1_targets: torch.Tensor,
                     targeted: bool, eps: float, step_size: float, steps: int,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """One restart of the two-stage attack (App. D.3): PGD on the segmenter alone (toward ``stage1_targets``
    if ``targeted``, else away from them) gives a guiding sample; PGD on the classification loss starts there."""
    objective = segmenter_toward if targeted else segmenter_ce
    guide = pgd_linf(model, x, stage1_targets, eps, step_size, steps, True, objective, generator)
    return pgd_linf_from(model, x, guide, y, eps, step_size, steps, ce_loss)


def segmenter_attack(model: nn.Module, x: torch.Tensor, masks: torch.Tensor, eps: float, step_size: float,
                     steps: int, restarts: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Table 13: untargeted PGD on the segmenter; per sample keeps the restart with the fewest correct pixels."""
    best = x.detach().clone()
    fewest = torch.full((x.shape[0],), torch.iinfo(torch.int64).max, device=x.device)
    for _ in range(restarts):
        cand = pgd_linf(model, x, masks, eps, step_size, steps, True, segmenter_ce, generator)
        with torch.no_grad():
            correct = correct_pixels(model.segment(cand), masks)
        take = correct < fewest
        best[take] = cand[take]
        fewest = torch.where(take, correct, fewest)
    return best


def correct_pixels(seg_logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per sample, the number of labelled pixels whose predicted part id is right."""
    hit = (seg_logits.argmax(1) == masks) & (masks != IGNORE_INDEX)
    return hit.flatten(1).sum(1)


def mask_scores(head: nn.Module, masks: torch.Tensor, images: torch.Tensor, channels: int) -> torch.Tensor:
    """App. D.3 "most-confident (sorted)": the classifier's softmax (N × classes) on each part mask itself, fed as
    part logits (one-hot × 1000, as the paper's code); unlabelled pixels count as background. ``images`` are
    the masks' own images, for heads that also read the input (App. D.10). The head must be in eval mode."""
    onehot = F.one_hot(masks.clamp(min=0), channels).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        return head(onehot * MASK_LOGIT_SCALE, images).float().softmax(1)


def choose_targets(strategy: str, y: torch.Tensor, clean_logits: torch.Tensor, pool_labels: torch.Tensor,
                   pool_scores: torch.Tensor | None, restarts: int, generator: torch.Generator) -> torch.Tensor:
    """Pool indices (restarts × N) of the stage-1 target masks of App. D.3's targeted strategies.

    The pool is the split's samples with a part mask; ``pool_labels`` their classes. ``random``: per restart a
    random class other than the true one, then a random pool mask of it. ``mc-random``: random masks of the
    class the model finds most likely apart from the true one (clean logits). ``mc-sorted``: ``pool_scores``
    (pool × classes, ``mask_scores``) rank the masks themselves, as the paper's code does: the target is the
    most likely class (clean logits, true class last) that the classifier predicts for some pool mask; its
    masks, the classifier's most confident first, one per restart (cycling when there are fewer). ``random``
    and ``mc-random`` only use classes with a pool mask.
    """
    num_classes = clean_logits.shape[1]
    if strategy == "mc-sorted":
        assert pool_scores is not None
        return _most_confident_sorted(y, clean_logits, pool_scores, restarts)
    available = torch.zeros(num_classes, dtype=torch.bool)
    available[pool_labels.unique()] = True
    out = torch.empty(restarts, len(y), dtype=torch.long)
    for i, label in enumerate(y.tolist()):
        others = available.clone()
        others[label] = False
        if not others.any():  # no other class has a mask: fall back to masks of the true class
            others = available
        if strategy == "random":
            classes = others.nonzero().squeeze(1)
            picks = classes[torch.randint(len(classes), (restarts,), generator=generator)].tolist()
        else:
            logits = clean_logits[i].float().cpu().masked_fill(~others, -float("inf"))
            picks = [int(logits.argmax())] * restarts
        for r, cls in enumerate(picks):
            members = (pool_labels == cls).nonzero().squeeze(1)
            out[r, i] = members[torch.randint(len(members), (1,), generator=generator)]
    return out


def _most_confident_sorted(y: torch.Tensor, clean_logits: torch.Tensor, pool_scores: torch.Tensor,
                           restarts: int) -> torch.Tensor:
    predicted = pool_scores.argmax(1)
    out = torch.empty(restarts, len(y), dtype=torch.long)
    for i, label in enumerate(y.tolist()):
        logits = clean_logits[i].float().cpu().clone()
        logits[label] = -float("inf")  # the true class comes last, as in the paper's code
        cls = next(c for c in logits.argsort(descending=True, stable=True).tolist() if (predicted == c).any())
        members = (predicted == cls).nonzero().squeeze(1)
        ranked = members[pool_scores[members, cls].argsort(descending=True, stable=True)]
        out[:, i] = ranked[torch.arange(restarts) % len(ranked)]
    return out
