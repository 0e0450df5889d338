"""The accuracy–robustness trade-off scatter (paper Figs. 2 and 4): clean vs adversarial accuracy per model.

Filled markers are PGD-trained models, hollow ones TRADES, labelled with their β; colour = architecture.
A model of several seeds is its mean, with its 95 % CI as error bars.
"""
from __future__ import annotations

from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from partcli.report.curves import arch_colour, new_figure
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
    fig = new_figure(4.4 * len(points), 3.8)
    axes = fig.subplots(1, len(points), squeeze=False)[0]
    for ax, (dataset, dataset_points) in zip(axes, points.items()):
        for p in dataset_points:
            colour = arch_colour(p.arch)
            ax.errorbar(100 * p.clean.mean, 100 * p.robust.mean,
                        xerr=None if p.clean.half is None else 100 * p.clean.half,
                        yerr=None if p.robust.half is None else 100 * p.robust.half,
                        fmt="o", markersize=7, color=colour, ecolor=colour, elinewidth=0.8, capsize=2,
                        markerfacecolor=colour if p.adv == "pgd" else "none", markeredgewidth=1.5)
            if p.adv == "trades" and p.beta is not None:
                ax.annotate(f"β={p.beta:g}", (100 * p.clean.mean, 100 * p.robust.mean), textcoords="offset points",
                            xytext=(5, 4), fontsize=7, color=colour)
        ax.set_title(plain(dataset), fontsize=9)
        ax.set_xlabel("clean accuracy (%)", fontsize=8)
        ax.set_ylabel(f"{attack[dataset]} accuracy (%)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.margins(0.15)
        archs = list(dict.fromkeys(p.arch for p in dataset_points))
        handles = [Line2D([], [], marker="o", linestyle="", color=arch_colour(a),
                          label=ARCH_NAMES.get(a, str(a)).replace(" ({backbone})", "").replace("{backbone} ", ""))
                   for a in archs]
        handles += [Line2D([], [], marker="o", linestyle="", color="black", label="PGD training"),
                    Line2D([], [], marker="o", linestyle="", color="black", markerfacecolor="none", label="TRADES")]
        ax.legend(handles=handles, fontsize=6, loc="best")
    fig.tight_layout()
    return fig
