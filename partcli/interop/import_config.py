"""The options of ``partcli import adv-part-model``, one definition each (``partcli.options``); the positional
checkpoint to import is the command's argument, not an option."""
from __future__ import annotations

from dataclasses import dataclass

from partcli.options import DATA, MODEL, RUN, Choice, option


class KnownDataset(Choice):  # partcli.interop.dataset_names.KNOWN_DATASETS
    PART_IMAGENET = "part-imagenet"
    CITYSCAPES = "cityscapes"
    PASCAL_PART = "pascal-part"


@dataclass
class ImportConfig:
    """Options of ``partcli import adv-part-model``."""

    out: str = option("", "partcli checkpoint to write (.pt).", panel=RUN, path=True)
    data: str | None = option(None, "Prepared dataset whose classes and parts name the model's (their counts must "
                              "match).", panel=DATA, path=True)
    dataset: str | None = option(None, "part-imagenet, cityscapes or pascal-part: take that dataset's classes and "
                                 "parts.", panel=DATA, choices=KnownDataset,
                                 shown="the file's args.dataset, else the one dataset with the model's counts")
    experiment: str | None = option(None, "The authors' --experiment string (e.g. part-wbbox-norm_img-semi), for a "
                                    "file without its args.", panel=MODEL)
    overwrite: bool = option(False, "Replace an existing --out.", panel=RUN, flags="--overwrite")
