"""``OUT/sweep.csv``: one row per point, rewritten atomically after every point.

Columns: ``stage`` (from 1), ``point`` (from 0, as ``--list`` numbers them), ``run`` (the run folder's name under
OUT), ``status`` (done, partial, todo), one column per swept option (the point's own value; empty for the options
of other stages), then ``best_epoch``, ``val_clean_acc``, ``val_adv_acc`` (the metrics.csv row of the epoch its
``best.pt`` was chosen at; empty until an epoch finished, and ``val_adv_acc`` for clean runs) and ``picked`` (1 for
the point its stage picked, 0 for the others; empty while the stage is unfinished or when its rule is ``none``).
``partcli report`` recognises the file by these columns.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from partcli.files import write_atomically

LEADING = ("stage", "point", "run", "status")
TRAILING = ("best_epoch", "val_clean_acc", "val_adv_acc", "picked")
SUMMARY_NAME = "sweep.csv"


@dataclass(frozen=True)
class SummaryRow:
    stage: int
    point: int
    run: str
    status: str
    values: dict[str, str]  # the point's own swept values, as text
    best_epoch: int | None
    val_clean_acc: float | None
    val_adv_acc: float | None
    picked: bool | None


def write_summary(path: Path, keys: list[str], rows: list[SummaryRow]) -> None:
    """Write ``sweep.csv`` (atomically)."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow([*LEADING, *keys, *TRAILING])
    for r in rows:
        writer.writerow([r.stage, r.point, r.run, r.status, *(r.values.get(k, "") for k in keys),
                         _cell(r.best_epoch), _cell(r.val_clean_acc), _cell(r.val_adv_acc),
                         "" if r.picked is None else int(r.picked)])
    write_atomically(path, text.getvalue())  # a reader (another ``--point`` job) never sees half a file


def is_summary_header(header: list[str]) -> bool:
    """Whether a CSV header is a ``sweep.csv``'s."""
    return (len(header) > len(LEADING) + len(TRAILING) and tuple(header[:len(LEADING)]) == LEADING
            and tuple(header[-len(TRAILING):]) == TRAILING)


def read_summary(path: Path) -> tuple[list[str], list[SummaryRow]]:
    """The swept options and the rows of a ``sweep.csv`` (ValueError when it is not one)."""
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        if not is_summary_header(header):
            raise ValueError(f"{path}: not a sweep summary")
        keys = header[len(LEADING):-len(TRAILING)]
        rows = []
        for cells in reader:
            if len(cells) != len(header):
                raise ValueError(f"{path}: a row with {len(cells)} cells instead of {len(header)}")
            cell = dict(zip(header, cells))
            rows.append(SummaryRow(int(cell["stage"]), int(cell["point"]), cell["run"], cell["status"],
                                   {k: cell[k] for k in keys if cell[k] != ""},
                                   _int(cell["best_epoch"]), _float(cell["val_clean_acc"]),
                                   _float(cell["val_adv_acc"]),
                                   None if cell["picked"] == "" else cell["picked"] == "1"))
    return keys, rows


def _cell(value: float | int | None) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _int(text: str) -> int | None:
    return int(text) if text else None


def _float(text: str) -> float | None:
    return float(text) if text else None
