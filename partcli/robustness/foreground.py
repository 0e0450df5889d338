"""Foreground / background shift (ImageNet-9, Xiao et al. 2021; paper §5.1, Table 3), made from the part masks.

The object of a sample is the union of its part masks (mask > 0) at the model's resolution. Variants:

- ``only-fg``: the object's pixels unchanged, every other pixel black (ImageNet-9's Only-FG).
- ``only-bg``: the object's bounding box filled with background texture of the same image (ImageNet-9's
  Only-BG-T): the largest full-height or full-width strip of the image outside the box (left of, right of, above or
  below it) is repeated periodically across the box, continuing from the strip's own position. A box that touches
  all four borders leaves no strip: it is filled with the mean colour of the image's background pixels.
- ``mixed-same``: the object pasted, at its own position, on the Only-BG image of another sample of the same class.
- ``mixed-rand``: the same on the Only-BG image of a sample of another class (a random other class, then a random
  sample of it): the paper's Table 3 setting. The background never comes from the object's own class.

BG-gap = accuracy on Mixed-Same − accuracy on Mixed-Rand: how much the model relies on the background's class cue.
Pairings are drawn per sample from a generator seeded with ``(seed, sample index, variant)``.
"""
from __future__ import annotations

import numpy as np

VARIANTS: tuple[str, ...] = ("only-fg", "only-bg", "mixed-same", "mixed-rand")
_STREAMS = {"mixed-same": 1, "mixed-rand": 2, "cue-conflict": 3}  # one random stream per pairing


def only_fg(image: np.ndarray, obj: np.ndarray) -> np.ndarray:
    """H×W×3 ``image`` with everything outside the boolean H×W object mask ``obj`` set to black."""
    return np.where(obj[..., None], image, 0).astype(image.dtype)


def only_bg(image: np.ndarray, obj: np.ndarray) -> np.ndarray:
    """``image`` with the object's bounding box filled by tiling the largest background strip outside it."""
    out = image.copy()
    if not obj.any():
        return out
    height, width = obj.shape
    ys, xs = np.nonzero(obj)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    areas = {"left": height * x0, "right": height * (width - x1), "above": width * y0, "below": width * (height - y1)}
    side = max(areas, key=areas.get)  # of equal strips, the first in this order
    if areas[side] == 0:
        background = image[~obj]
        fill = background.mean(0) if len(background) else np.full(image.shape[-1], 127.5)
        out[y0:y1, x0:x1] = np.round(fill).astype(image.dtype)
        return out
    rows, cols = np.mgrid[y0:y1, x0:x1]
    if side == "left":
        cols = cols % x0
    elif side == "right":
        cols = x1 + (cols - x1) % (width - x1)
    elif side == "above":
        rows = rows % y0
    else:
        rows = y1 + (rows - y1) % (height - y1)
    out[y0:y1, x0:x1] = image[rows, cols]
    return out


def paste(image: np.ndarray, obj: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``image``'s object pixels on ``background`` (same size), at the object's own position."""
    return np.where(obj[..., None], image, background).astype(image.dtype)


def pair_indices(labels: np.ndarray, seed: int, variant: str) -> np.ndarray:
    """For every sample, the index of its partner: same class (``mixed-same``, another sample when the class
    has one) or another class (``mixed-rand`` and ``cue-conflict``: a random other class, then a random sample)."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    members = {c: np.flatnonzero(labels == c) for c in classes}
    partners = np.empty(len(labels), dtype=np.int64)
    for i, label in enumerate(labels):
        rng = np.random.default_rng([seed, i, _STREAMS[variant]])
        if variant == "mixed-same":
            pool = members[label][members[label] != i]
            partners[i] = rng.choice(pool) if len(pool) else i
        else:
            other = classes[classes != label]
            partners[i] = rng.choice(members[rng.choice(other)])
    return partners


def foreground_variants(images: np.ndarray, masks: np.ndarray, labels: np.ndarray, seed: int
                        ) -> dict[str, np.ndarray]:
    """The four variants of N×H×W×3 ``images`` with N×H×W part-id ``masks``; each N×H×W×3, same dtype."""
    objects = masks > 0
    backgrounds = np.stack([only_bg(im, ob) for im, ob in zip(images, objects)])
    variants = {"only-fg": np.stack([only_fg(im, ob) for im, ob in zip(images, objects)]), "only-bg": backgrounds}
    for variant in ("mixed-same", "mixed-rand"):
        partner = pair_indices(labels, seed, variant)
        variants[variant] = np.stack([paste(images[i], objects[i], backgrounds[j]) for i, j in enumerate(partner)])
    return variants
