"""The attack/evaluate metrics CSV (DESIGN §2): one row per (checkpoint, dataset, split, attack, eps); append-only."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from partcli.errors import PartcliError, writing
from partcli.version import __version__

RESULT_COLUMNS = ("checkpoint", "dataset", "split", "suite", "attack", "norm", "eps", "n", "clean_acc", "adv_acc",
                  "clean_pixel_acc", "adv_pixel_acc", "seconds", "partcli_version")


def append_results(path: str | Path, rows: list[dict[str, Any]],
                   columns: tuple[str, ...] = RESULT_COLUMNS) -> None:
    """Append rows (missing figures become empty cells); refuse a file whose header is not ``columns``.

    ``columns``: ``RESULT_COLUMNS``, or those followed by a suite's extra columns (``robustness``'s).
    """
    path = Path(path)
    with writing(path):
        _append(path, rows, columns)


def _append(path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size > 0:
        with path.open(newline="") as fh:
            header = next(csv.reader(fh), [])
        if tuple(header) != columns:
            raise PartcliError(f"--out {path}: exists with other columns; write the results to a new file")
        new = False
    else:
        new = True
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        if new:
            writer.writeheader()
        for row in rows:
            full = {"norm": "Linf", "partcli_version": __version__, **row}
            writer.writerow({k: _cell(full.get(k)) for k in columns})


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else value
