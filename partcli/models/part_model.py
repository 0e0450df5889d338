"""Part-based model = input normalisation + DeepLabv3+ part segmenter + a small classifier (paper §3.1)."""
from __future__ import annotations

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """First layer of every partcli model: models take [0, 1] pixels, so attacks work in pixel space."""

    def __init__(self, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """A baseline classifier: normalisation + any torchvision or timm classification network."""

    has_segmenter = False

    def __init__(self, net: nn.Module, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD):
        super().__init__()
        self.normalize = Normalize(mean, std)  # buffers: the checkpoint keeps the statistics the network expects
        self.net = net

    def forward(self, x: torch.Tensor, return_seg: bool = False):
        logits = self.net(self.normalize(x))
        return (logits, None) if return_seg else logits


class PartModel(nn.Module):
    """f = f_cls ∘ f_seg. ``forward(x, return_seg=True)`` also returns the N×(K+1)×H×W part logits.

    The head gets the part logits, the input image and the decoder's features (``heads`` module docstring)."""

    has_segmenter = True

    def __init__(self, segmenter: nn.Module, head: nn.Module):
        super().__init__()
        self.normalize = Normalize()
        self.segmenter = segmenter  # an smp.DeepLabV3Plus
        self.head = head

    def forward(self, x: torch.Tensor, return_seg: bool = False):
        features = self.segmenter.encoder(self.normalize(x))
        decoded = self.segmenter.decoder(features)
        seg_logits = self.segmenter.segmentation_head(decoded)
        logits = self.head(seg_logits, x, decoded)
        return (logits, seg_logits) if return_seg else logits

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        """Part logits only (for pseudo-labelling and segmenter attacks)."""
        return self.segmenter(self.normalize(x))
