"""Per-sample attack outcomes: which samples each attack fooled, so a later suite can attack only the survivors.

File format (CSV, one row per attacked sample, next to the metrics CSV as ``<stem>.<suite>.<k>.samples.csv``):
``index`` (position in the split's CSV), ``image`` (relative path, as in the split CSV), ``label``,
``clean_correct`` (0/1), then one ``robust:<attack>`` column (0/1) per attack of the run (``<attack>@<eps>`` for
an attack at another radius than the run's ε). A sample is robust under an attack when it is classified
correctly both clean and at the attack's adversarial example.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from partcli.errors import PartcliError, writing

ROBUST_PREFIX = "robust:"


@dataclass
class SampleOutcomes:
    index: list[int]
    image: list[str]
    label: list[int]
    clean_correct: list[bool]
    robust: dict[str, list[bool]] = field(default_factory=dict)  # attack name -> one flag per sample

    def survivors(self) -> list[int]:
        """Split indices of the samples robust under every attack of this file at the run's ε (columns named
        ``attack@eps`` are other radii, e.g. an eps-sweep's, and do not count); clean-correct if none."""
        flags = [col for name, col in self.robust.items() if "@" not in name] or [self.clean_correct]
        return [i for k, i in enumerate(self.index) if all(col[k] for col in flags)]


def outcomes_path(out_csv: str | Path, suite: str) -> Path:
    """``<stem>.<suite>.<k>.samples.csv`` beside the metrics CSV, with the first counter k not yet used."""
    out_csv = Path(out_csv)
    k = 1
    while (path := out_csv.with_name(f"{out_csv.stem}.{suite}.{k}.samples.csv")).exists():
        k += 1
    return path


def write_outcomes(path: str | Path, outcomes: SampleOutcomes) -> None:
    path = Path(path)
    attacks = list(outcomes.robust)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["index", "image", "label", "clean_correct"] + [ROBUST_PREFIX + a for a in attacks])
            for k, i in enumerate(outcomes.index):
                writer.writerow([i, outcomes.image[k], outcomes.label[k], int(outcomes.clean_correct[k])]
                                + [int(outcomes.robust[a][k]) for a in attacks])


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
    attacks = [h[len(ROBUST_PREFIX):] for h in header if h.startswith(ROBUST_PREFIX)]
    try:
        return SampleOutcomes(
            index=[int(r["index"]) for r in rows], image=[r["image"] for r in rows],
            label=[int(r["label"]) for r in rows], clean_correct=[r["clean_correct"] == "1" for r in rows],
            robust={a: [r[ROBUST_PREFIX + a] == "1" for r in rows] for a in attacks})
    except (TypeError, ValueError):
        raise PartcliError(f"--survivors-of {path}: malformed row (index and label must be integers)") from None
