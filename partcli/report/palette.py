"""The one colour scheme of every partcli figure: a part id always has the same colour, whatever the dataset.

Part ids follow the prepared-dataset contract (docs/formats.md): 0 is background (black), 1..K are parts. A part's
colour depends on its id alone, not on K, so figures of different checkpoints and datasets agree. The colours
are a farthest-point sequence over an RGB grid: id p gets the grid colour farthest from black, grey, white and
ids 1..p-1, so any first K ids are well apart (40 ids, as Part-ImageNet has, stay more than 0.2 apart in RGB).
Ids past the sequence (K ≥ 255) step through hues by the golden angle.
"""
from __future__ import annotations

import colorsys
import functools

import numpy as np

BACKGROUND = (0.0, 0.0, 0.0)
UNLABELLED = (0.5, 0.5, 0.5)  # pixels of a mask marked as having no label (-1)
SEQUENCE_LENGTH = 254  # uint8 masks: ids up to 254
# Lines and markers (models, architectures, stages): Okabe & Ito's colour-blind-safe qualitative palette, black
# left out (it is the background of masks); figures mark what matters by shape or text as well.
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442")
CORRECT, WRONG = "#009E73", "#D55E00"  # Okabe–Ito bluish green and vermillion, with ✓ / ✗ beside them
_GOLDEN = 0.618033988749895


@functools.lru_cache(maxsize=1)
def _sequence() -> np.ndarray:
    levels = np.linspace(0.0, 1.0, 11)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    reserved = np.array([BACKGROUND, UNLABELLED, (1.0, 1.0, 1.0)])
    distance = np.linalg.norm(grid[:, None] - reserved[None], axis=-1).min(axis=1)
    picks = []
    for _ in range(SEQUENCE_LENGTH):
        k = int(np.argmax(distance))  # ties: the first grid colour, so the sequence is fixed
        picks.append(grid[k])
        distance = np.minimum(distance, np.linalg.norm(grid - grid[k], axis=1))
    return np.array(picks)


def part_colour(part_id: int) -> tuple[float, float, float]:
    """RGB in [0, 1] of a part id (0 = background, negative = unlabelled)."""
    if part_id < 0:
        return UNLABELLED
    if part_id == 0:
        return BACKGROUND
    if part_id <= SEQUENCE_LENGTH:
        return tuple(float(c) for c in _sequence()[part_id - 1])
    return colorsys.hsv_to_rgb((part_id * _GOLDEN) % 1.0, 0.8, 0.9)


def palette(num_ids: int) -> np.ndarray:
    """``num_ids`` × 3 float array: row p is ``part_colour(p)``."""
    return np.array([part_colour(p) for p in range(num_ids)], dtype=np.float64)


def colourise(mask: np.ndarray) -> np.ndarray:
    """H×W part ids → H×W×3 RGB in [0, 1]; -1 (no label) is grey."""
    mask = np.asarray(mask)
    lut = palette(int(mask.max(initial=0)) + 1)
    out = lut[np.clip(mask, 0, None)]
    out[mask < 0] = UNLABELLED
    return out
