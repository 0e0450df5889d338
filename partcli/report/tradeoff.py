"""The accuracy–robustness trade-off scatter (paper Figs. 2 and 4): clean vs adversarial accuracy per model.

Filled markers are PGD-trained models, hollow ones TRADES, labelled with their β; colour and marker shape =
architecture. A model of several seeds is its mean, with its 95 % CI as error bars.
"""
from __future__ import annotations

from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from partcli.report.curves import FONT_PT, arch_colour, arch_marker, new_figure
from partcli.report.masks_figure import plain
from partcli.report.models import ARCH_NAMES
from partcli.report.tables import MeanCI


@dataclass(frozen=True)
class TradeoffPoint:
    label: str
    arch: str | None
    adv: str  # "pgd" or "trades"
    beta: float | None
    clean: MeanCI
    robust: MeanCI


def tradeoff_figure(points: dict[str, list[TradeoffPoint]], attack: dict[str, str]) -> Figure:
    """One panel per dataset; ``attack``: dataset → the attack on the y axis (AutoAttack or PGD)."""
    fig = new_figure(5.0 * len(points), 4.2)
    axes = fig.subplots(1, len(points), squeeze=False)[0]
    for ax, (dataset, dataset_points) in zip(axes, points.items()):
        for p in dataset_points:
            colour = arch_colour(p.arch)
            ax.errorbar(100 * p.clean.mean, 100 * p.robust.mean,
                        xerr=None if p.clean.half is None else 100 * p.clean.half,
                        yerr=None if p.robust.half is None else 100 * p.robust.half,
                        fmt=arch_marker(p.arch), markersize=7, color=colour, ecolor=colour, elinewidth=0.8, capsize=2,
                        markerfacecolor=colour if p.adv == "pgd" else "none", markeredgewidth=1.5)
            if p.adv == "trades" and p.beta is not None:
                ax.annotate(f"β={p.beta:g}", (100 * p.clean.mean, 100 * p.robust.mean), textcoords="offset points",
                            xytext=(5, 4), fontsize=FONT_PT, color=colour)
        ax.set_title(plain(f"{dataset}: clean vs {attack[dataset]} accuracy"), fontsize=FONT_PT + 1)
        ax.set_xlabel("clean accuracy (%)", fontsize=FONT_PT)
        ax.set_ylabel(f"{attack[dataset]} accuracy (%)", fontsize=FONT_PT)
        ax.tick_params(labelsize=FONT_PT)
        ax.grid(alpha=0.3)
        ax.margins(0.15)
        archs = list(dict.fromkeys(p.arch for p in dataset_points))
        handles = [Line2D([], [], marker=arch_marker(a), linestyle="", color=arch_colour(a),
                          label=ARCH_NAMES.get(a, str(a)).replace(" ({backbone})", "").replace("{backbone} ", ""))
                   for a in archs]
        handles += [Line2D([], [], marker="o", linestyle="", color="black", label="PGD training"),
                    Line2D([], [], marker="o", linestyle="", color="black", markerfacecolor="none", label="TRADES")]
        ax.legend(handles=handles, fontsize=FONT_PT, loc="best")
    fig.tight_layout()
    return fig
