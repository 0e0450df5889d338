"""Make docs/shape_texture.png: synthetic samples and the shifted sets ``partcli robustness`` makes from them.

Columns: the shape source (class A), the texture source (class B), their cue-conflict image, then A's Only-FG,
Only-BG and Mixed-Rand images and one corruption. Rendered at 64 px, like the demo's models see them.

    python docs/make_robustness_figure.py            # writes docs/shape_texture.png
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from partcli.data.synthetic import CLASSES, render_sample  # noqa: E402
from partcli.robustness.corruptions import corrupt_image, corruption_seed  # noqa: E402
from partcli.robustness.foreground import only_bg, only_fg, paste  # noqa: E402
from partcli.robustness.shape_texture import cue_conflict  # noqa: E402

SIZE = 64
PAIRS = [(0, 3), (1, 4), (2, 0), (3, 1), (4, 2)]  # (shape class A, texture class B), one row each


def sample(cls: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    image, mask = render_sample(np.random.default_rng([7, cls, k]), cls, SIZE)
    return np.asarray(image), mask


def main() -> None:
    columns = ["shape: A", "texture: B", "cue-conflict", "only-fg (A)", "only-bg (A)", "mixed-rand (A on B)",
               "fog 3 (A)"]
    fig, axes = plt.subplots(len(PAIRS), len(columns), figsize=(1.5 * len(columns), 1.6 * len(PAIRS)))
    for row, (a, b) in enumerate(PAIRS):
        (image_a, mask_a), (image_b, mask_b) = sample(a, 0), sample(b, 1)
        obj_a, background_b = mask_a > 0, only_bg(image_b, mask_b > 0)
        cells = [image_a, image_b, cue_conflict(mask_a, image_b, mask_b, background_b), only_fg(image_a, obj_a),
                 only_bg(image_a, obj_a), paste(image_a, obj_a, background_b),
                 corrupt_image(image_a, "fog", 3, corruption_seed(0, row, "fog", 3))]
        for col, cell in enumerate(cells):
            ax = axes[row, col]
            ax.imshow(cell, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(columns[col], fontsize=8)
        axes[row, 0].set_ylabel(f"A={CLASSES[a]}\nB={CLASSES[b]}", fontsize=7)
    fig.tight_layout()
    out = Path(__file__).with_name("shape_texture.png")
    fig.savefig(out, dpi=64)
    Image.open(out).convert("RGB").quantize(colors=128).save(out, optimize=True)  # a small file for the repository
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
