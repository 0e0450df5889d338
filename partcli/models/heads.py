"""Second-stage classifiers of the part models (paper §3.2, §3.3, App. C): masks in, class logits out."""
from __future__ import annotations

import torch
from torch import nn

from partcli.models.bbox import bbox_features


class DownsampledHead(nn.Module):
    """§3.2: softmax over parts, adaptive average pool to pool×pool, one conv and two FC layers."""

    def __init__(self, num_parts: int, num_classes: int, pool: int = 4, drop_background: bool = False,
                 concat_input: bool = False, width: int = 32, hidden: int = 64):
        super().__init__()
        self.drop_background = drop_background
        self.concat_input = concat_input
        in_ch = num_parts + (0 if drop_background else 1) + (3 if concat_input else 0)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.conv = nn.Sequential(nn.Conv2d(in_ch, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(width * pool * pool, hidden), nn.ReLU(inplace=True),
                                nn.Linear(hidden, num_classes))

    def forward(self, seg_logits: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        masks = seg_logits.softmax(dim=1)
        if self.drop_background:
            masks = masks[:, 1:]
        if self.concat_input:  # App. D.10: the classifier also sees the (pixel-space) input image
            masks = torch.cat([masks, image], dim=1)
        return self.fc(self.conv(self.pool(masks)))


class BBoxHead(nn.Module):
    """§3.3: 5 soft bounding-box features per part (Eqs. 1–4), then a tiny MLP."""

    def __init__(self, num_parts: int, num_classes: int, hidden: int = 128):
        super().__init__()
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(5 * num_parts, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes))

    def forward(self, seg_logits: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        return self.mlp(bbox_features(seg_logits))


class PixelHead(nn.Module):
    """App. C.2: sum part logits per class, then average over pixels; no parameters."""

    def __init__(self, part_to_class: list[int], num_classes: int):
        super().__init__()
        assign = torch.zeros(num_classes, len(part_to_class) + 1)
        for part, cls in enumerate(part_to_class, start=1):
            assign[cls, part] = 1.0
        self.register_buffer("assign", assign)

    def forward(self, seg_logits: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        return torch.einsum("nkhw,ck->nc", seg_logits, self.assign) / (seg_logits.shape[2] * seg_logits.shape[3])


class DecoderFeatureHead(nn.Module):
    """App. C.1 (two-headed model): a classifier on the segmenter decoder's dense features."""

    def __init__(self, in_channels: int, num_classes: int, pool: int = 4, width: int = 32, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.AdaptiveAvgPool2d(pool), nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(width * pool * pool, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)
