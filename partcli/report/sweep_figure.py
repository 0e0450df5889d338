"""A sweep's points in the clean–robust plane (``partcli sweep``'s ``sweep.csv``; paper §3.5.3, Tables 7–9).

Validation clean accuracy (x) against validation adversarial accuracy (y) of every point's best checkpoint, in
percent; one marker per stage, each point labelled with its own swept values, the points picked to start the
next stage from ringed (and their labels) in vermillion; colours are Okabe–Ito's. Points without both accuracies (unfinished, or clean runs) are left out.
"""
from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import Bbox

from partcli.report.curves import FONT_PT, new_figure
from partcli.report.masks_figure import plain
from partcli.report.palette import OKABE_ITO, WRONG
from partcli.sweep.summary import SummaryRow

STAGE_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
STAGE_COLOURS = tuple(c for c in OKABE_ITO if c != WRONG)
PICKED_COLOUR = WRONG
# Where a point's label may go, in points from the marker: right, above, below, left, then farther out.
LABEL_OFFSETS = ((7, -3, "left"), (0, 7, "center"), (0, -13, "center"), (-7, -3, "right"), (7, 8, "left"),
                 (7, -14, "left"), (-7, 8, "right"), (-7, -14, "right"), (0, 17, "center"), (0, -23, "center"))


def plotted(rows: list[SummaryRow]) -> list[SummaryRow]:
    """The points the figure can place: both validation accuracies known."""
    return [r for r in rows if r.val_clean_acc is not None and r.val_adv_acc is not None]


def point_label(row: SummaryRow) -> str:
    """``lr=0.1 wd=0.0005``: a point's own swept values, numbers in short form."""
    return " ".join(f"{k}={_short(v)}" for k, v in row.values.items())


def sweep_figure(rows: list[SummaryRow], title: str) -> Figure:
    """The scatter of ``plotted(rows)`` (at least one point)."""
    points = plotted(rows)
    fig = new_figure(6.4, 4.8)
    ax = fig.subplots()
    stages = sorted({r.stage for r in points})
    for r in points:
        k = (r.stage - 1) % len(STAGE_MARKERS)
        x, y = 100 * r.val_clean_acc, 100 * r.val_adv_acc
        ax.scatter([x], [y], marker=STAGE_MARKERS[k], s=46, color=STAGE_COLOURS[k], alpha=0.85, zorder=3)
        if r.picked:
            ax.scatter([x], [y], marker="o", s=260, facecolors="none", edgecolors=PICKED_COLOUR, linewidths=1.8,
                       zorder=4)
    ax.set_xlabel("validation clean accuracy (%)", fontsize=FONT_PT)
    ax.set_ylabel("validation adversarial accuracy (%)", fontsize=FONT_PT)
    ax.set_title(plain(title), fontsize=FONT_PT + 1)
    ax.tick_params(labelsize=FONT_PT)
    ax.grid(alpha=0.3)
    ax.margins(0.18)
    handles = [Line2D([], [], marker=STAGE_MARKERS[(s - 1) % len(STAGE_MARKERS)], linestyle="",
                      color=STAGE_COLOURS[(s - 1) % len(STAGE_COLOURS)], label=f"stage {s}") for s in stages]
    if any(r.picked for r in points):
        handles.append(Line2D([], [], marker="o", linestyle="", markersize=10, markerfacecolor="none",
                              markeredgecolor=PICKED_COLOUR, markeredgewidth=1.8, label="picked"))
    ax.legend(handles=handles, fontsize=FONT_PT, loc="best")
    fig.tight_layout()
    _place_labels(fig, ax, points)
    return fig


def _place_labels(fig: Figure, ax, points: list[SummaryRow]) -> None:
    """Label each point beside it, on the first side where the label overlaps no marker, no label placed before
    and not the axes' edge (points of similar accuracy are common in a sweep); where every side does, on the
    least crowded one."""
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    radius = 4 * fig.dpi / 72  # about a marker's half-width, in pixels
    centres = ax.transData.transform([(100 * r.val_clean_acc, 100 * r.val_adv_acc) for r in points])
    placed: list = [Bbox.from_extents(x - radius, y - radius, x + radius, y + radius) for x, y in centres]
    for r in points:
        xy = (100 * r.val_clean_acc, 100 * r.val_adv_acc)
        best = None
        for dx, dy, ha in LABEL_OFFSETS:
            label = ax.annotate(plain(point_label(r)), xy, textcoords="offset points", xytext=(dx, dy), ha=ha,
                                fontsize=FONT_PT, color=PICKED_COLOUR if r.picked else "#333333", zorder=5)
            box = label.get_window_extent(renderer)
            crowding = sum(_overlap(box, other) for other in placed) + box.width * box.height - _overlap(box, frame)
            if best is None or crowding < best[0]:
                if best is not None:
                    best[1].remove()
                best = (crowding, label, box)
            else:
                label.remove()
            if crowding == 0:
                break
        placed.append(best[2])


def _overlap(a, b) -> float:
    """The area two display boxes share."""
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(width, 0.0) * max(height, 0.0)


def _short(text: str) -> str:
    try:
        number = float(text)
    except ValueError:
        return text
    return f"{number:g}"
