"""The options of ``partcli robustness``, one definition each (``partcli.options``)."""
from __future__ import annotations

from dataclasses import dataclass

from partcli.options import (RESULT_JSON_HELP, RUN, RUNTIME, SHIFTS, Choice, batch_size_option, device_option,
                             json_option, option, seed_option, split_option)


class RobustnessSuite(Choice):
    CORRUPTIONS = "corruptions"
    FOREGROUND = "foreground"
    SHAPE_TEXTURE = "shape-texture"
    ALL = "all"


SUITES = tuple(s.value for s in RobustnessSuite)


@dataclass
class RobustnessConfig:
    """Options of ``partcli robustness`` (the model and data: ``partcli.options.ModelInput``)."""

    suite: str = option("all", "corruptions, foreground, shape-texture or all.", panel=SHIFTS,
                        choices=RobustnessSuite)
    split: str = split_option("Split to shift.")
    corruption: list[str] = option(help="Corruption type, repeatable.", panel=SHIFTS, default_factory=list,
                                   shown="the 15 ImageNet-C types")
    severity: list[int] = option(help="Corruption severity 1-5, repeatable.", panel=SHIFTS, default_factory=list,
                                 shown="1 to 5")
    stylizer: str | None = option(None, "A torch.export program (content, style) -> stylized image, each 1x3xSxS in "
                                  "[0, 1]: adds a 'stylized' shape-texture set.", panel=SHIFTS, path=True)
    imagenet9: str | None = option(None, "ImageNet-9 Backgrounds Challenge release folder (<variant>/val/<NN_class>/): "
                                   "adds its in9/* rows to --suite foreground (IN-9 dog, bird, reptile, fish as the "
                                   "dataset's Quadruped, Bird, Reptile, Fish).", panel=SHIFTS, path=True)
    stylized: str | None = option(None, "Stylized-ImageNet folder (<wnid>/<stem>.JPEG, optionally under train/ or "
                                  "val/): adds a stylized-imagenet row to --suite shape-texture for the split's "
                                  "samples with the same file stem.", panel=SHIFTS, path=True)
    seed: int = seed_option("Seed of the corruptions and of the background and texture pairings.")
    cache: str | None = option(None, "Folder of the cached corrupted images.", panel=RUNTIME, path=True,
                               shown="DATA/.cache/corruptions")
    batch_size: int = batch_size_option(256, "Images per forward pass.")
    device: str = device_option()
    out: str = option("results/robustness.csv", "Results CSV to append to (attack's columns + severity, shape_bias, "
                      "bg_gap, seed).", panel=RUN, path=True)
    json_output: bool = json_option(RESULT_JSON_HELP)

