"""The part-mask figure of ``partcli visualize`` (paper Fig. 5, App. D.12), drawn from plain arrays.

One row per sample: the image, its true parts, the predicted parts and, for an attack, the adversarial image
and its predicted parts. A prediction is written under the column that shows it with ✓ when correct and ✗ when
wrong, in green or vermillion (Okabe–Ito, told apart by colour-blind readers too), and that panel gets a frame
of the same colour, solid when correct and dashed when wrong (as in Fig. 5). Part colours come from
``partcli.report.palette``; the legend names the parts that appear in the figure, in id order. Text is 9 pt at
the figure's size (``CELL_INCHES`` per panel).
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from partcli.report.palette import CORRECT, WRONG, colourise, part_colour

CELL_INCHES = 1.5
FONT_PT = 9


@dataclass
class MaskRow:
    """What one row shows; arrays are H×W×3 images in [0, 1] and H×W part ids (-1 = unlabelled)."""

    image: np.ndarray
    label: int
    pred: int
    true_mask: np.ndarray | None = None  # None: the sample has no part mask
    pred_mask: np.ndarray | None = None  # None: the model has no part segmenter
    adv_image: np.ndarray | None = None  # None: no attack
    adv_pred: int | None = None
    adv_mask: np.ndarray | None = None


def plain(text: str) -> str:
    """User text for matplotlib: a ``$`` would start mathtext."""
    return text.replace("$", r"\$")


def masks_figure(rows: list[MaskRow], class_names: list[str], part_names: list[str], title: str = "",
                 attack_name: str = "attack") -> Figure:
    """The figure; ``part_names[p - 1]`` names part id p."""
    show_true = any(r.true_mask is not None for r in rows)
    show_pred = any(r.pred_mask is not None for r in rows)
    show_adv = any(r.adv_image is not None for r in rows)
    columns = ["image"] + ["true parts"] * show_true + ["predicted parts"] * show_pred
    if show_adv:
        columns += [f"{attack_name} image", "perturbation (amplified)"] + [f"parts under {attack_name}"] * show_pred
    width = CELL_INCHES * len(columns) + 0.2
    legend_ids = _ids_shown(rows)
    legend_columns = max(1, min(4, int(width / 1.5)))
    legend_rows = -(-(len(legend_ids) + 1) // legend_columns) if show_true or show_pred else 0
    legend_inches = 0.22 * legend_rows + 0.3
    title_lines = textwrap.wrap(plain(title), int(width * 12)) if title else []
    top_inches = 0.35 + 0.17 * len(title_lines)
    fig = Figure(figsize=(width, (CELL_INCHES + 0.35) * len(rows) + legend_inches + top_inches))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), len(columns), squeeze=False)
    for r, row in enumerate(rows):
        cells = [(row.image, None)]
        if show_true:
            cells.append((row.true_mask, "mask"))
        if show_pred:
            cells.append((row.pred_mask, "mask"))
        if show_adv:
            cells.append((row.adv_image, None))
            adv_at = len(cells) - 1
            cells.append((amplified(row.adv_image - row.image) if row.adv_image is not None else None, None))
            if show_pred:
                cells.append((row.adv_mask, "mask"))
        for c, (content, kind) in enumerate(cells):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=FONT_PT)
            if content is None:
                ax.text(0.5, 0.5, "no mask", ha="center", va="center", fontsize=FONT_PT, color="0.4",
                        transform=ax.transAxes)
                continue
            ax.imshow(colourise(content) if kind == "mask" else np.clip(content, 0, 1), interpolation="nearest")
        _caption(axes[r][0], f"label: {class_names[row.label]}", None)
        clean_at = (columns.index("predicted parts") if show_pred else 0)
        _prediction(axes[r][clean_at], row.pred, row.label, class_names, also_label=clean_at == 0)
        if show_adv and row.adv_pred is not None:
            _prediction(axes[r][len(cells) - 1 if show_pred else adv_at], row.adv_pred, row.label, class_names)
    if show_true or show_pred:
        handles = [Patch(facecolor=part_colour(0), edgecolor="0.6", label="background")]
        handles += [Patch(facecolor=part_colour(p), label=plain(part_names[p - 1])) for p in legend_ids]
        fig.legend(handles=handles, loc="lower center", ncol=legend_columns, fontsize=FONT_PT, frameon=False)
    if title_lines:
        fig.suptitle("\n".join(title_lines), fontsize=FONT_PT + 1)
    height = fig.get_figheight()
    fig.subplots_adjust(left=0.02, right=0.98, wspace=0.08, hspace=0.35 / CELL_INCHES,
                        bottom=(legend_inches + 0.2) / height, top=1 - top_inches / height)
    return fig


def amplified(delta: np.ndarray) -> np.ndarray:
    """A perturbation made visible: scaled so that its largest change reaches 0 or 1, around mid-grey (0.5)."""
    peak = float(np.abs(delta).max())
    return 0.5 + delta * (0.5 / peak) if peak > 0 else np.full_like(delta, 0.5)


def _ids_shown(rows: list[MaskRow]) -> list[int]:
    masks = [m for r in rows for m in (r.true_mask, r.pred_mask, r.adv_mask) if m is not None]
    return sorted({int(p) for m in masks for p in np.unique(m) if p > 0})


def _caption(ax, text: str, colour: str | None) -> None:
    ax.set_xlabel(plain(text), fontsize=FONT_PT, color=colour or "black", labelpad=2)


def _prediction(ax, pred: int, label: int, class_names: list[str], also_label: bool = False) -> None:
    right = pred == label
    colour = CORRECT if right else WRONG
    text = f"{'✓' if right else '✗'} pred: {class_names[pred]}"
    _caption(ax, f"label: {class_names[label]}\n{text}" if also_label else text, colour)
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(2)
        spine.set_linestyle("-" if right else (0, (3, 1.5)))
