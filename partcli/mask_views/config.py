"""The options of ``partcli visualize``, one definition each (``partcli.options``)."""
from __future__ import annotations

from dataclasses import dataclass

from partcli.options import (ADVERSARY, DATA, RUN, Choice, batch_size_option, device_option, eps_option,
                             figure_format_option, option, parse_fraction, seed_option, split_option)


class VisualAttack(Choice):
    PGD = "pgd"
    AUTOATTACK = "autoattack"


@dataclass
class VisualizeConfig:
    """Options of ``partcli visualize`` (the model and data: ``partcli.options.ModelInput``)."""

    split: str = split_option("Split to draw from.")
    n: int = option(8, "Samples (rows), drawn with --seed and kept in split order (--n-samples: the same, the "
                    "spelling torchrun passes on).", panel=DATA, aliases=("--n-samples",), low=1)
    attack: str | None = option(None, "Also attack each sample: pgd (partcli's PGD) or autoattack (the real "
                                "AutoAttack, App. B settings).", panel=ADVERSARY, choices=VisualAttack)
    eps: float = eps_option("ℓ∞ radius of --attack on [0, 1] pixels: a number or a fraction.")
    steps: int = option(20, "PGD steps of --attack pgd.", panel=ADVERSARY, low=1)
    step_size: float = option(parse_fraction("2/255", "--step-size"), "PGD step size of --attack pgd: a number or "
                              "fraction.", panel=ADVERSARY, parse=parse_fraction, shown="2/255", low=0, low_open=True)
    seed: int = seed_option("Seed for every random choice (0 to 2^32 − 1); same seed, same result.")
    batch_size: int = batch_size_option(32, "Samples per forward pass and attack batch.")
    device: str = device_option()
    out: str | None = option(None, "Figure file to write; its extension (.png, .pdf, .svg) is the format.",
                             panel=RUN, path=True, shown="fig/masks.<format>")
    format: str | None = figure_format_option("File format when --out is not given (png: 200 dpi).", default=None,
                                           shown="png, or --out's extension")
