"""Which samples an attack suite attacks, loaded once onto the CPU, and the two-stage attack's pool of target masks.

Samples: the whole split, or ``n`` of them drawn without replacement with ``seed`` (kept in split order; a split
CSV may be sorted by class, so its first n would be biased); ``candidates`` (e.g. an earlier run's survivors)
narrow the draw.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from partcli.attacks.seg_attacks import mask_scores
from partcli.data.dataset import PreparedDataset
from partcli.errors import PartcliError


@dataclass
class AttackSamples:
    """The attacked samples, on the CPU: images in [0, 1], labels, masks (-1 = unlabelled) and provenance."""

    x: torch.Tensor
    y: torch.Tensor
    masks: torch.Tensor  # int16 to save memory; widened per batch
    has_mask: torch.Tensor
    index: list[int]
    image: list[str]


def select_indices(split_size: int, n: int | None, seed: int, candidates: list[int] | None,
                   split: str = "test") -> list[int]:
    """Split indices to attack: all candidates, or ``n`` of them drawn with ``seed``, in split order."""
    if n is not None and n > split_size:
        raise PartcliError(f"--n {n}: the {split} split has only {split_size} samples")
    pool = list(range(split_size)) if candidates is None else list(candidates)
    if n is None or n >= len(pool):
        return pool
    pick = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:n]
    return [pool[i] for i in sorted(pick.tolist())]


def load_samples(ds: PreparedDataset, indices: list[int]) -> AttackSamples:
    indices = list(indices)
    if not indices:
        raise PartcliError(f"{ds.root}: no samples to attack in the {ds.split} split")
    items = [ds[i] for i in indices]
    return AttackSamples(x=torch.stack([it[0] for it in items]), y=torch.tensor([it[2] for it in items]),
                         masks=torch.stack([it[1].to(torch.int16) for it in items]),
                         has_mask=torch.tensor([it[3] for it in items], dtype=torch.bool), index=indices,
                         image=[ds.samples[i].image for i in indices])


class MaskPool:
    """Stage-1 target masks of the two-stage attack: the split's samples that have a part mask."""

    def __init__(self, labels: torch.Tensor, get: Callable[[int], tuple[torch.Tensor, torch.Tensor]]):
        self.labels = labels
        self._get = get  # pool position -> (image, mask)
        self._scores: torch.Tensor | None = None

    @classmethod
    def from_dataset(cls, ds: PreparedDataset) -> "MaskPool":
        members = [i for i in range(len(ds)) if ds.has_mask(i)]
        return cls(torch.tensor([ds.samples[i].label for i in members], dtype=torch.long),
                   lambda k: ds[members[k]][:2])

    @classmethod
    def from_samples(cls, samples: AttackSamples) -> "MaskPool":
        members = samples.has_mask.nonzero().squeeze(1).tolist()
        return cls(samples.y[members], lambda k: (samples.x[members[k]], samples.masks[members[k]].long()))

    def masks(self, positions: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._get(int(k))[1] for k in positions.tolist()])

    def scores(self, head: nn.Module, channels: int, device: str, batch_size: int) -> torch.Tensor:
        """Pool size × classes: the head's softmax on each pool mask itself (``mc-sorted``, App. D.3)."""
        if self._scores is None:
            out = []
            for start in range(0, len(self.labels), batch_size):
                items = [self._get(k) for k in range(start, min(start + batch_size, len(self.labels)))]
                images, masks = (torch.stack([it[i] for it in items]).to(device) for i in (0, 1))
                out.append(mask_scores(head, masks.long(), images, channels).cpu())
            self._scores = torch.cat(out)
        return self._scores
