"""Per-sample attack outcomes: which samples each attack fooled, so a later suite can attack only the survivors.

File format (CSV, one row per attacked sample, next to the metrics CSV as ``<stem>.<suite>.<k>.samples.csv``):
``index`` (position in the split's CSV), ``image`` (relative path, as in the split CSV), ``label``,
``clean_correct`` (0/1), ``split`` and ``checkpoint`` (the attacked checkpoint file's SHA-256, first 16 hex
digits; the same on every row), then one ``robust:<attack>`` column (0/1) per attack of the run
(``<attack>@<eps>`` for an attack at another radius than the run's ε). A sample is robust under an attack when
it is classified correctly both clean and at the attack's adversarial example. A ``--survivors-of`` run writes
the earlier file's samples, the ones it did not attack as not robust, so that runs chain.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from partcli.errors import PartcliError, writing
from partcli.files import file_sha256, numbered_beside

ROBUST_PREFIX = "robust:"
FIXED_COLUMNS = ("index", "image", "label", "clean_correct", "split", "checkpoint")


@dataclass
class SampleOutcomes:
    index: list[int]
    image: list[str]
    label: list[int]
    clean_correct: list[bool]
    robust: dict[str, list[bool]] = field(default_factory=dict)  # attack name -> one flag per sample
    split: str = ""
    checkpoint: str = ""  # checkpoint_fingerprint of the attacked checkpoint

    def survivors(self) -> list[int]:
        """Split indices of the samples robust under every attack of this file at the run's ε (columns named
        ``attack@eps`` are other radii, e.g. an eps-sweep's, and do not count); clean-correct if none."""
        flags = [col for name, col in self.robust.items() if "@" not in name] or [self.clean_correct]
        return [i for k, i in enumerate(self.index) if all(col[k] for col in flags)]


FINGERPRINT_DIGITS = 16


def checkpoint_fingerprint(path: str | Path) -> str:
    """The first 16 hex digits of a checkpoint file's SHA-256: names the exact weights a file was written for."""
    return file_sha256(path)[:FINGERPRINT_DIGITS]


def on_earlier_set(rows: list[dict[str, Any]], outcomes: SampleOutcomes, earlier: SampleOutcomes, earlier_name: str
                   ) -> tuple[list[dict[str, Any]], SampleOutcomes]:
    """A ``--survivors-of`` run's rows and outcomes over the earlier run's samples: a sample is robust when it
    survived the earlier attacks (it was attacked) and this one; rows are renamed ``<attack> after <file>``."""
    attacked = {i: k for k, i in enumerate(outcomes.index)}  # split index -> position in this run
    robust = {name: [i in attacked and flags[attacked[i]] for i in earlier.index]
              for name, flags in outcomes.robust.items()}
    n = len(earlier.index)
    clean_acc = sum(earlier.clean_correct) / n
    out_rows = [{**row, "attack": f"{row['attack']} after {earlier_name}", "n": n, "clean_acc": clean_acc,
                 "adv_acc": sum(flags) / n, "clean_pixel_acc": None, "adv_pixel_acc": None}
                for row, flags in zip(rows, robust.values(), strict=True)]  # one row per robust column, in order
    return out_rows, SampleOutcomes(earlier.index, earlier.image, earlier.label, earlier.clean_correct, robust,
                                    outcomes.split, outcomes.checkpoint)


def outcomes_path(out_csv: str | Path, suite: str) -> Path:
    """``<stem>.<suite>.<k>.samples.csv`` beside the metrics CSV, with the first counter k not yet used."""
    return numbered_beside(out_csv, suite, ".samples.csv")


def write_outcomes(path: str | Path, outcomes: SampleOutcomes) -> None:
    path = Path(path)
    attacks = list(outcomes.robust)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(list(FIXED_COLUMNS) + [ROBUST_PREFIX + a for a in attacks])
            for k, i in enumerate(outcomes.index):
                writer.writerow([i, outcomes.image[k], outcomes.label[k], int(outcomes.clean_correct[k]),
                                 outcomes.split, outcomes.checkpoint] + [int(outcomes.robust[a][k]) for a in attacks])


def read_outcomes(path: str | Path) -> SampleOutcomes:
    """Read a per-sample outcomes file; a file that is not one is refused with a one-line error."""
    path = Path(path)
    try:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
            header = rows[0].keys() if rows else []
    except FileNotFoundError:
        raise PartcliError(f"--survivors-of {path}: file not found") from None
    if not rows or not {"index", "image", "label", "clean_correct"} <= set(header):
        raise PartcliError(f"--survivors-of {path}: not a partcli per-sample outcomes file (*.samples.csv)")
    if not {"split", "checkpoint"} <= set(header):
        raise PartcliError(f"--survivors-of {path}: records no split and checkpoint (an older partcli wrote it); "
                           "rerun the earlier attack")
    attacks = [h[len(ROBUST_PREFIX):] for h in header if h.startswith(ROBUST_PREFIX)]
    try:
        return SampleOutcomes(
            index=[int(r["index"]) for r in rows], image=[r["image"] for r in rows],
            label=[int(r["label"]) for r in rows], clean_correct=[r["clean_correct"] == "1" for r in rows],
            robust={a: [r[ROBUST_PREFIX + a] == "1" for r in rows] for a in attacks},
            split=rows[0]["split"], checkpoint=rows[0]["checkpoint"])
    except (TypeError, ValueError):
        raise PartcliError(f"--survivors-of {path}: malformed row (index and label must be integers)") from None
