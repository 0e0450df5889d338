"""Shape vs texture (Geirhos et al. 2019; paper §5.1, Table 4): cue-conflict images made from the part masks.

A cue-conflict image joins the shape of a sample of class A (its silhouette and part layout, from its mask) with the
texture of a sample of class B ≠ A (its object's pixels and its background). How one is made, at the model's
resolution:

1. A's parts (the part ids in its mask) are ranked by area, largest first; so are B's. A's k-th part takes the
   texture of B's k-th part (B's parts are reused in turn when A has more).
2. The texture of a part of B is its bounding-box crop of B's image in which every pixel outside that part is
   replaced by the part's nearest pixel (Euclidean distance): a patch holding only that part's colours.
3. The patch is tiled across the image with mirror repeats (no seams), its centre on the centroid of A's part, and
   A's part takes the tiled pixels at its own positions. So every part of A keeps its outline and position, and
   the internal boundaries between A's parts stay visible, drawn in B's colours.
4. Outside A's silhouette lies B's Only-BG image (B's background with its object's box filled from outside it, see
   ``foreground.only_bg``): as in a stylized image, whose style covers the background too, everything but A's shape
   comes from B. (On black, as Only-FG, the images would be out of distribution for models trained on textured
   backgrounds: measured on the synthetic set, Only-FG accuracy fell to chance for both ResNet-18 and bbox.)

B is drawn per sample as for Mixed-Rand (a random other class, then a random sample of it). Scores: the shape
accuracy (prediction = A, the figure of Table 4) and the shape bias: among the images where the model predicts A or
B, the fraction predicted A (Geirhos et al.). With ``--stylizer`` a user's own style-transfer network makes a second
set, ``stylized``: A's whole image in the style of B's whole image.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from partcli.errors import PartcliError
from partcli.models.sources import load_exported_program
from partcli.robustness.foreground import only_bg, pair_indices


def parts_by_area(mask: np.ndarray) -> list[int]:
    """Part ids present in ``mask`` (0 = background excluded), largest area first, ties by id."""
    ids, counts = np.unique(mask[mask > 0], return_counts=True)
    return [int(i) for i, _ in sorted(zip(ids, counts), key=lambda t: (-t[1], t[0]))]


def texture_patch(image: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The bounding-box crop of ``image`` around boolean ``region``; pixels outside it take their nearest inside."""
    ys, xs = np.nonzero(region)
    crop = image[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    inside = region[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    _, (near_y, near_x) = ndimage.distance_transform_edt(~inside, return_indices=True)
    return crop[near_y, near_x]


def tile_mirrored(patch: np.ndarray, height: int, width: int, centre: tuple[float, float]) -> np.ndarray:
    """A height×width canvas of ``patch`` repeated with mirror flips, the patch's centre at ``centre`` (y, x)."""
    def index(length: int, size: int, at: float) -> np.ndarray:
        r = (np.arange(length) - int(round(at)) + size // 2) % (2 * size)
        return np.where(r < size, r, 2 * size - 1 - r)
    return patch[index(height, patch.shape[0], centre[0])[:, None], index(width, patch.shape[1], centre[1])[None, :]]


def cue_conflict(shape_mask: np.ndarray, texture_image: np.ndarray, texture_mask: np.ndarray,
                 background: np.ndarray | None = None) -> np.ndarray:
    """H×W×3 image: the parts of ``shape_mask`` (class A) filled with textures of ``texture_image``'s parts (B), on
    ``background`` (black when None)."""
    height, width = shape_mask.shape
    out = (np.zeros((height, width, texture_image.shape[-1]), dtype=texture_image.dtype) if background is None
           else background.copy())
    sources = parts_by_area(texture_mask)
    for k, part in enumerate(parts_by_area(shape_mask)):
        region = shape_mask == part
        patch = texture_patch(texture_image, texture_mask == sources[k % len(sources)])
        canvas = tile_mirrored(patch, height, width, ndimage.center_of_mass(region))
        out[region] = canvas[region]
    return out


def cue_conflict_set(images: np.ndarray, masks: np.ndarray, labels: np.ndarray, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The cue-conflict image of every sample (N×H×W×3) and the index of its texture source."""
    partner = pair_indices(labels, seed, "cue-conflict")
    made = [cue_conflict(masks[i], images[j], masks[j], only_bg(images[j], masks[j] > 0))
            for i, j in enumerate(partner)]
    return np.stack(made), partner


def shape_scores(pred: np.ndarray, shape_labels: np.ndarray, texture_labels: np.ndarray) -> tuple[float, float | None]:
    """(shape accuracy, shape bias): fraction predicted A; among predictions that are A or B, fraction A (None if
    no prediction is either)."""
    shape_hits = pred == shape_labels
    decided = shape_hits | (pred == texture_labels)
    return float(shape_hits.mean()), (float(shape_hits[decided].mean()) if decided.any() else None)


def load_stylizer(path: str | Path):
    """A ``torch.export``-saved program mapping (content, style), each 1×3×S×S in [0, 1], to the stylized content."""
    path = Path(path)
    if not path.is_file():
        raise PartcliError(f"--stylizer {path}: file not found")
    return load_exported_program(path, "--stylizer", "; save one with torch.export.save(torch.export.export(net, "
                                 "(content, style)), PATH)").module()


def stylize(stylizer, content: np.ndarray, style: np.ndarray, source: str | Path) -> np.ndarray:
    """H×W×3 uint8 ``content`` in the style of ``style``, through ``stylizer`` (called on 1×3×H×W pairs)."""
    to_tensor = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    with torch.no_grad():
        try:
            out = stylizer(to_tensor(content), to_tensor(style))
        except Exception as exc:  # noqa: BLE001 - a user's network may fail in any way
            raise PartcliError(f"--stylizer {source}: failed on a 1×3×{content.shape[0]}×{content.shape[1]} pair "
                               f"({exc.__class__.__name__}); it must take (content, style) at the model's "
                               "resolution") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, 3, *content.shape[:2]):
        raise PartcliError(f"--stylizer {source}: returned {getattr(out, 'shape', type(out).__name__)}, expected "
                           f"1×3×{content.shape[0]}×{content.shape[1]}")
    return (out[0].clamp(0, 1).permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
