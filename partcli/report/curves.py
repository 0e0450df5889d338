"""Line figures of the report: a run's training curves and the ε sweep (paper Table 10 as a curve).

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas (no display, no global pyplot state). Text is
at least ``FONT_PT`` at the figure's size, accuracies are in percent, colours are Okabe–Ito's and each line of a
panel also has its own marker, so a reader who cannot tell the colours apart can tell the lines.
"""
from __future__ import annotations

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from partcli.report.masks_figure import plain
from partcli.report.models import ARCH_ORDER
from partcli.report.palette import OKABE_ITO
from partcli.report.tables import MeanCI, mean_ci

FONT_PT = 9
ARCH_COLOURS = dict(zip(ARCH_ORDER, OKABE_ITO))
ARCH_MARKERS = dict(zip(ARCH_ORDER, ("o", "s", "^", "D", "v")))
LINE_MARKERS = ("o", "s", "^", "D", "v", "P")
CURVE_PANELS = (  # (title, y axis in percent, [(metrics.csv column, legend)])
    ("loss", False, [("train_loss", "train loss")]),
    ("accuracy (%)", True, [("train_acc", "train"), ("val_clean_acc", "val clean"),
                            ("val_adv_acc", "val adversarial")]),
    ("segmentation, val (%)", True, [("val_pixel_acc", "pixel acc"), ("val_fg_pixel_acc", "foreground pixel acc"),
                                     ("val_miou", "mIoU")]),
    ("learning rate", False, [("lr", "lr")]),
)


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def arch_colour(arch: str | None) -> str:
    return ARCH_COLOURS.get(arch, "#000000")


def arch_marker(arch: str | None) -> str:
    return ARCH_MARKERS.get(arch, "X")


def training_curves(runs: list[pd.DataFrame], title: str) -> Figure:
    """Loss, train/val (clean, adversarial) accuracy, segmentation quality and lr per epoch of one run, or of the
    seeds of one configuration (their mean per epoch, the 95 % t-interval as a band); panels whose columns are all
    empty (a baseline has no segmentation, a clean run no adversarial accuracy) are left out."""
    metrics = pd.concat(runs, ignore_index=True)
    panels = [(name, percent, [(c, label) for c, label in lines if c in metrics and metrics[c].notna().any()])
              for name, percent, lines in CURVE_PANELS]
    panels = [panel for panel in panels if panel[2]]
    fig = new_figure(3.2 * len(panels), 3.0)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, percent, lines) in zip(axes, panels):
        for k, (column, label) in enumerate(lines):
            scale, colour = 100 if percent else 1, OKABE_ITO[k + 3 if len(lines) == 1 else k]
            per_epoch = [(e, mean_ci(g[column].tolist())) for e, g in metrics.groupby("epoch")]
            per_epoch = [(e, v) for e, v in per_epoch if v.n]
            epochs = [e for e, _ in per_epoch]
            ax.plot(epochs, [scale * v.mean for _, v in per_epoch], marker=LINE_MARKERS[k], markersize=4,
                    color=colour, label=label)
            if len(runs) > 1:
                halves = [v.half or 0.0 for _, v in per_epoch]
                ax.fill_between(epochs, [scale * (v.mean - h) for (_, v), h in zip(per_epoch, halves)],
                                [scale * (v.mean + h) for (_, v), h in zip(per_epoch, halves)], color=colour,
                                alpha=0.2, linewidth=0)
        ax.set_title(name, fontsize=FONT_PT)
        ax.set_xlabel("epoch", fontsize=FONT_PT)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=FONT_PT)
        ax.grid(alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=FONT_PT)
    fig.suptitle(plain(title), fontsize=FONT_PT + 1)
    fig.tight_layout()
    return fig


def eps_sweep_figure(curves: dict[str, list[tuple[str, list[tuple[float, MeanCI]]]]], attack: dict[str, str],
                     styles: dict[str, tuple[str | None, str | None]]) -> Figure:
    """Robust accuracy against ε: per dataset a panel, per model a line (mean, with its CI as a band).

    ``curves``: dataset → [(model label, [(ε, MeanCI)])]; ``attack``: dataset → the attack plotted;
    ``styles``: model label → (architecture: the colour, training: dashed when clean).
    """
    fig = new_figure(5.0 * len(curves), 4.0)
    axes = fig.subplots(1, len(curves), squeeze=False)[0]
    for ax, (dataset, lines) in zip(axes, curves.items()):
        for label, points in lines:
            xs = [255 * e for e, _ in points]
            ys = [100 * v.mean for _, v in points]
            arch, adv = styles.get(label, (None, None))
            ax.plot(xs, ys, marker=arch_marker(arch), markersize=4, color=arch_colour(arch), label=plain(label),
                    linestyle="--" if adv == "none" else "-")
            if any(v.half is not None for _, v in points):
                half = [100 * (v.half or 0.0) for _, v in points]
                ax.fill_between(xs, [y - h for y, h in zip(ys, half)], [y + h for y, h in zip(ys, half)],
                                color=arch_colour(arch), alpha=0.15)
        ax.set_title(plain(f"{dataset}: {attack[dataset]} accuracy against ε"), fontsize=FONT_PT + 1)
        ax.set_xlabel("ε (× 1/255)", fontsize=FONT_PT)
        ax.set_ylabel(f"{attack[dataset]} accuracy (%)", fontsize=FONT_PT)
        ax.set_ylim(bottom=0)
        ax.tick_params(labelsize=FONT_PT)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=FONT_PT)
    fig.tight_layout()
    return fig

