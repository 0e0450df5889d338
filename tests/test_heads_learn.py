"""Each learned head, trained alone, learns from *soft* masks: the regime of a young segmenter.

Soft masks = α·one-hot(part mask) + N(0, 1) noise with α = 0.5: after the softmax the masks of different
samples barely differ. Heads without normalisation across samples lose all their hidden ReLUs here under
SGD (lr 0.1, momentum 0.9) and stay at ln C (paper's code: BatchNorm in every head).
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from partcli.models.heads import BBoxHead, DecoderFeatureHead, DownsampledHead

C, PARTS_PER_CLASS, S, BATCH, STEPS, ALPHA = 4, 2, 16, 32, 300, 0.5
K = C * PARTS_PER_CLASS


def soft_masks(n: int, alpha: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """N×(K+1)×S×S logits of objects made of their class's two parts (upper and lower box), and labels."""
    y = torch.randint(0, C, (n,), generator=generator)
    masks = torch.zeros(n, S, S, dtype=torch.long)
    for i, cls in enumerate(y.tolist()):
        col = int(torch.randint(1, S - 7, (1,), generator=generator))
        masks[i, 2:8, col:col + 6] = 1 + PARTS_PER_CLASS * cls
        masks[i, 8:14, col:col + 6] = 2 + PARTS_PER_CLASS * cls
    one_hot = nn.functional.one_hot(masks, K + 1).permute(0, 3, 1, 2).float()
    return alpha * one_hot + torch.randn(one_hot.shape, generator=generator), y


HEADS = {
    "downsampled": lambda: DownsampledHead(K, C),
    "bbox": lambda: BBoxHead(K, C),
    "twohead": lambda: DecoderFeatureHead(K + 1, C),  # its decoder features stand in for masks here
}


def inputs(x: torch.Tensor) -> tuple[torch.Tensor, None, torch.Tensor]:
    """Every head's inputs (part logits, image, decoder features): ``x`` stands in for masks and features."""
    return x, None, x


def relu_activity(head: nn.Module, x: torch.Tensor) -> float:
    """Share of hidden ReLU units (over all ReLU layers) that fire for at least one sample of ``x``."""
    alive: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: alive.append((out.flatten(2) if out.ndim > 2 else out[..., None])
                                                                       .gt(0).any(dim=0).flatten()))
             for m in head.modules() if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        head.eval()(*inputs(x))
    for h in hooks:
        h.remove()
    return torch.cat(alive).float().mean().item()


@pytest.mark.parametrize("name", sorted(HEADS))
def test_head_learns_from_soft_masks_and_keeps_its_units(name):
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    head = HEADS[name]()
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(STEPS):
        x, y = soft_masks(BATCH, alpha=ALPHA, generator=generator)
        loss = nn.functional.cross_entropy(head.train()(*inputs(x)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    x, y = soft_masks(256, alpha=ALPHA, generator=generator)
    with torch.no_grad():
        test_loss = nn.functional.cross_entropy(head.eval()(*inputs(x)), y).item()
    assert sum(losses[-20:]) / 20 < 0.5 * math.log(C), losses[-20:]
    assert test_loss < 0.5 * math.log(C)
    assert relu_activity(head, x) > 0.6  # heads without BatchNorm keep 20-40 % here
