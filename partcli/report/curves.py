"""Line figures of the report: a run's training curves and the ε sweep (paper Table 10 as a curve).

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas (no display, no global pyplot state).
"""
from __future__ import annotations

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from partcli.report.masks_figure import plain
from partcli.report.models import ARCH_ORDER
from partcli.report.tables import MeanCI

ARCH_COLOURS = dict(zip(ARCH_ORDER, ("#ff7f0e", "#1f77b4", "#d62728", "#2ca02c", "#9467bd")))
CURVE_PANELS = (  # (title, [(metrics.csv column, legend)])
    ("loss", [("train_loss", "train loss")]),
    ("accuracy", [("train_acc", "train"), ("val_clean_acc", "val clean"), ("val_adv_acc", "val adversarial")]),
    ("segmentation (val)", [("val_pixel_acc", "pixel acc"), ("val_fg_pixel_acc", "foreground pixel acc"),
                            ("val_miou", "mIoU")]),
    ("learning rate", [("lr", "lr")]),
)


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def arch_colour(arch: str | None) -> str:
    return ARCH_COLOURS.get(arch, "#8c564b")


def training_curves(metrics: pd.DataFrame, title: str) -> Figure:
    """Loss, train/val (clean, adversarial) accuracy, segmentation quality and lr per epoch; panels whose
    columns are all empty (a baseline has no segmentation, a clean run no adversarial accuracy) are left out."""
    panels = [(name, [(c, label) for c, label in lines if c in metrics and metrics[c].notna().any()])
              for name, lines in CURVE_PANELS]
    panels = [(name, lines) for name, lines in panels if lines]
    fig = new_figure(3.0 * len(panels), 2.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, lines) in zip(axes, panels):
        for column, label in lines:
            ax.plot(metrics["epoch"], metrics[column], marker="o", markersize=3, label=label)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=7)
    fig.suptitle(plain(title), fontsize=9)
    fig.tight_layout()
    return fig


def eps_sweep_figure(curves: dict[str, list[tuple[str, list[tuple[float, MeanCI]]]]], attack: dict[str, str],
                     styles: dict[str, tuple[str | None, str | None]]) -> Figure:
    """Robust accuracy against ε: per dataset a panel, per model a line (mean, with its CI as a band).

    ``curves``: dataset → [(model label, [(ε, MeanCI)])]; ``attack``: dataset → the attack plotted;
    ``styles``: model label → (architecture: the colour, training: dashed when clean).
    """
    fig = new_figure(4.2 * len(curves), 3.4)
    axes = fig.subplots(1, len(curves), squeeze=False)[0]
    for ax, (dataset, lines) in zip(axes, curves.items()):
        for label, points in lines:
            xs = [255 * e for e, _ in points]
            ys = [100 * v.mean for _, v in points]
            arch, adv = styles.get(label, (None, None))
            ax.plot(xs, ys, marker="o", markersize=3, color=arch_colour(arch), label=plain(label),
                    linestyle="--" if adv == "none" else "-")
            if any(v.half is not None for _, v in points):
                half = [100 * (v.half or 0.0) for _, v in points]
                ax.fill_between(xs, [y - h for y, h in zip(ys, half)], [y + h for y, h in zip(ys, half)],
                                color=arch_colour(arch), alpha=0.15)
        ax.set_title(plain(f"{dataset}: {attack[dataset]}"), fontsize=9)
        ax.set_xlabel("ε (× 1/255)", fontsize=8)
        ax.set_ylabel("robust accuracy (%)", fontsize=8)
        ax.set_ylim(bottom=0)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig

