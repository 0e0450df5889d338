"""The options of ``partcli report``, one definition each (``partcli.options``)."""
from __future__ import annotations

from dataclasses import dataclass

from partcli.options import RUN, eps_option, figure_format_option, option, split_option


@dataclass
class ReportConfig:
    """Options of ``partcli report`` (the run folders and results files are its arguments)."""

    split: str = split_option("Split of the results that Table 1, the trade-off, the ε sweep and the robustness "
                              "tables show.")
    eps: float = eps_option("ℓ∞ radius of Table 1 and the trade-off plot: a number or a fraction.")
    out: str = option("report", "Folder to write index.md and its PNGs into; a previous report there is replaced.",
                      panel=RUN, path=True)
    overwrite: bool = option(False, "Write into a non-empty --out that holds no partcli report.", panel=RUN,
                             flags="--overwrite")
    format: str = figure_format_option("File format of the figures index.md links (png: 200 dpi); index.html embeds "
                                    "PNGs whatever it is.")
