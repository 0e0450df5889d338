"""Second-stage classifiers of the part models (paper §3.2, §3.3, App. C): masks in, class logits out.

Early in training the soft masks barely differ between samples, so every learned head normalises across
samples (BatchNorm) before its ReLUs, as the paper's code does: without it the hidden units die under
SGD with momentum, the classification loss sits at ln C and no class gradient reaches the segmenter.

Every head takes the same inputs, ``head(seg_logits, image, features)``: the part logits, the [0, 1] input image
(App. D.10) and the segmenter decoder's dense features (App. C.1), and uses what it needs; ``reads_masks`` says
whether its classification depends on the part logits (the mask-guided attacks need one that does).
"""
from __future__ import annotations

import torch
from torch import nn

from partcli.models.bbox import bbox_features

HIDDEN = 50  # the paper's code: 50 hidden units in every head


def _mlp(in_features: int, num_classes: int, hidden: int = HIDDEN) -> nn.Sequential:
    """Linear → BatchNorm1d → ReLU → Linear: the fully connected part of the downsampled-style heads."""
    return nn.Sequential(nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, num_classes))


class DownsampledHead(nn.Module):
    """§3.2: softmax over parts, average pool to pool×pool, a pool×pool conv (no padding) + BN, then the MLP.

    The conv covers the whole pooled map, so it has no zero padding whose fixed spatial pattern would
    dominate the features of near-uniform masks.
    """

    def __init__(self, num_parts: int, num_classes: int, pool: int = 4, drop_background: bool = False,
                 concat_input: bool = False):
        super().__init__()
        self.drop_background = drop_background
        self.concat_input = concat_input
        in_ch = num_parts + (0 if drop_background else 1) + (3 if concat_input else 0)
        width = 5 * (num_parts + 1)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.conv = nn.Sequential(nn.Conv2d(in_ch, width, pool), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                                  nn.Flatten())
        self.fc = _mlp(width, num_classes)

    reads_masks = True

    def forward(self, seg_logits: torch.Tensor, image: torch.Tensor | None = None,
                features: torch.Tensor | None = None) -> torch.Tensor:
        masks = seg_logits.softmax(dim=1)
        if self.drop_background:
            masks = masks[:, 1:]
        if self.concat_input:  # App. D.10: the classifier also sees the (pixel-space) input image
            masks = torch.cat([masks, image], dim=1)
        return self.fc(self.conv(self.pool(masks)))


class BBoxHead(nn.Module):
    """§3.3: 5 soft bounding-box features per part (Eq. 1 to Eq. 4), BatchNorm1d over them, then a tiny MLP.

    ``score``: the features' variant (``partcli.models.bbox``); ``logit`` is the paper code's.
    """

    def __init__(self, num_parts: int, num_classes: int, hidden: int = HIDDEN, score: str = "logit"):
        super().__init__()
        self.score = score
        self.mlp = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(5 * num_parts), nn.Linear(5 * num_parts, hidden),
                                 nn.ReLU(inplace=True), nn.BatchNorm1d(hidden), nn.Linear(hidden, num_classes))

    reads_masks = True

    def forward(self, seg_logits: torch.Tensor, image: torch.Tensor | None = None,
                features: torch.Tensor | None = None) -> torch.Tensor:
        return self.mlp(bbox_features(seg_logits, self.score))


class PixelHead(nn.Module):
    """App. C.2: sum part logits per class, then average over pixels; no parameters."""

    def __init__(self, part_to_class: list[int], num_classes: int):
        super().__init__()
        assign = torch.zeros(num_classes, len(part_to_class) + 1)
        for part, cls in enumerate(part_to_class, start=1):
            assign[cls, part] = 1.0
        self.register_buffer("assign", assign)

    reads_masks = True

    def forward(self, seg_logits: torch.Tensor, image: torch.Tensor | None = None,
                features: torch.Tensor | None = None) -> torch.Tensor:
        return torch.einsum("nkhw,ck->nc", seg_logits, self.assign) / (seg_logits.shape[2] * seg_logits.shape[3])


class DecoderFeatureHead(nn.Module):
    """App. C.1 (two-headed model): the downsampled head's layers on the segmenter decoder's dense features."""

    def __init__(self, in_channels: int, num_classes: int, pool: int = 4, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.AdaptiveAvgPool2d(pool), nn.Conv2d(in_channels, width, pool), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True), nn.Flatten(), _mlp(width, num_classes))

    reads_masks = False

    def forward(self, seg_logits: torch.Tensor, image: torch.Tensor | None = None,
                features: torch.Tensor | None = None) -> torch.Tensor:
        if features is None:
            raise ValueError("the two-headed model's classifier reads the decoder's features: pass them")
        return self.net(features)
