"""The part-mask figure of ``partcli visualize`` (paper Fig. 5, App. D.12), drawn from plain arrays.

One row per sample: the image, its true parts, the predicted parts and, for an attack, the adversarial image
and its predicted parts. A prediction is written under the column that shows it, green when correct and red
when wrong, and that panel gets a frame of the same colour (as in Fig. 5). Part colours come from
``partcli.report.palette``; the legend names the parts that appear in the figure, in id order.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from partcli.report.palette import colourise, part_colour

CORRECT, WRONG = "#1a9641", "#d7191c"
CELL_INCHES = 1.5


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
        columns += [f"{attack_name} image"] + [f"parts under {attack_name}"] * show_pred
    width = CELL_INCHES * len(columns) + 0.2
    legend_ids = _ids_shown(rows)
    legend_columns = max(1, min(4, int(width / 1.2)))
    legend_rows = -(-(len(legend_ids) + 1) // legend_columns) if show_true or show_pred else 0
    legend_inches = 0.2 * legend_rows + 0.3
    title_lines = textwrap.wrap(plain(title), int(width * 13)) if title else []
    top_inches = 0.3 + 0.15 * len(title_lines)
    fig = Figure(figsize=(width, (CELL_INCHES + 0.25) * len(rows) + legend_inches + top_inches))
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
            if show_pred:
                cells.append((row.adv_mask, "mask"))
        for c, (content, kind) in enumerate(cells):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=8)
            if content is None:
                ax.text(0.5, 0.5, "no mask", ha="center", va="center", fontsize=7, color="0.4",
                        transform=ax.transAxes)
                continue
            ax.imshow(colourise(content) if kind == "mask" else np.clip(content, 0, 1), interpolation="nearest")
        _caption(axes[r][0], f"label: {class_names[row.label]}", None)
        clean_at = (columns.index("predicted parts") if show_pred else 0)
        _prediction(axes[r][clean_at], row.pred, row.label, class_names, also_label=clean_at == 0)
        if show_adv and row.adv_pred is not None:
            _prediction(axes[r][len(cells) - 1], row.adv_pred, row.label, class_names)
    if show_true or show_pred:
        handles = [Patch(facecolor=part_colour(0), edgecolor="0.6", label="background")]
        handles += [Patch(facecolor=part_colour(p), label=plain(part_names[p - 1])) for p in legend_ids]
        fig.legend(handles=handles, loc="lower center", ncol=legend_columns, fontsize=7, frameon=False)
    if title_lines:
        fig.suptitle("\n".join(title_lines), fontsize=8)
    height = fig.get_figheight()
    fig.subplots_adjust(left=0.02, right=0.98, wspace=0.08, hspace=0.3 / CELL_INCHES,
                        bottom=(legend_inches + 0.2) / height, top=1 - top_inches / height)
    return fig


def _ids_shown(rows: list[MaskRow]) -> list[int]:
    masks = [m for r in rows for m in (r.true_mask, r.pred_mask, r.adv_mask) if m is not None]
    return sorted({int(p) for m in masks for p in np.unique(m) if p > 0})


def _caption(ax, text: str, colour: str | None) -> None:
    ax.set_xlabel(plain(text), fontsize=7, color=colour or "black", labelpad=2)


def _prediction(ax, pred: int, label: int, class_names: list[str], also_label: bool = False) -> None:
    colour = CORRECT if pred == label else WRONG
    text = f"pred: {class_names[pred]}"
    _caption(ax, f"label: {class_names[label]}\n{text}" if also_label else text, colour)
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(2)
