"""Machine-readable results (``--json`` on ``attack``, ``evaluate`` and ``robustness``): one JSON object per results
row, with the CSV's columns and, where RobustBench has a name for a figure, that name too.

Added keys: ``threat_model`` (the norm: ``Linf`` or ``L2``; empty for shifts), ``robust_acc`` (``adv_acc``) and,
for AutoAttack rows, ``autoattack_acc`` (``adv_acc``). Accuracies are fractions in [0, 1], as in the CSV.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from partcli.errors import writing
from partcli.files import numbered_beside
from partcli.version import __version__


def json_record(row: dict[str, Any]) -> dict[str, Any]:
    """One results row as a JSON-ready object (stable keys; missing figures are null)."""
    record = {"partcli_version": __version__, "norm": "Linf" if "eps" in row and row.get("eps") else None, **row}
    record["threat_model"] = record.get("norm")
    record["robust_acc"] = record.get("adv_acc")
    if str(record.get("attack", "")).startswith("autoattack"):
        record["autoattack_acc"] = record.get("adv_acc")
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in record.items()}  # NaN -> null


def json_lines(rows: list[dict[str, Any]]) -> str:
    """The rows as JSON lines (one object per line), for stdout."""
    return "\n".join(json.dumps(json_record(r), sort_keys=True) for r in rows)


def json_path(out_csv: str | Path, kind: str) -> Path:
    """``<stem>.<kind>.<k>.json`` beside a results CSV, with the first counter k not yet used."""
    return numbered_beside(out_csv, kind, ".json")


def write_json(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """The rows of one run as a JSON list (written at once, beside the CSV they were appended to)."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([json_record(r) for r in rows], indent=1, sort_keys=True) + "\n")
