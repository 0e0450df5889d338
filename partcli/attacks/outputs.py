"""What ``partcli attack`` returns and writes: the suite's result, its files, and what an interrupted run kept.

A run appends its rows to the results CSV (``partcli.evaluate.results_csv``), writes the per-sample outcomes
beside it (``<stem>.<suite>.<k>.samples.csv``, ``partcli.attacks.outcomes``) and, when the hygiene checks ran,
their checklist (``<stem>.<suite>.<k>.hygiene.json``, ``partcli.attacks.hygiene``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from partcli.attacks.config import AttackConfig
from partcli.attacks.hygiene import Check, checklist_path, write_checklist
from partcli.attacks.outcomes import SampleOutcomes, outcomes_path, write_outcomes
from partcli.evaluate.results_csv import ATTACK_COLUMNS, append_results

if TYPE_CHECKING:
    import torch


@dataclass
class SuiteResult:
    rows: list[dict[str, Any]]
    outcomes: SampleOutcomes
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    samples_path: Path | None = None
    checklist_path: Path | None = None  # the hygiene checklist's JSON file, when the checks ran
    # with keep_adversarial: per attack (its name in ``outcomes.robust``) the N×3×H×W images it counted, on the CPU
    adversarial: dict[str, torch.Tensor] = field(default_factory=dict)


def write_result(out: str | Path, result: SuiteResult, cfg: AttackConfig, checkpoint: str, data: str) -> None:
    """Append ``result``'s rows to ``out`` and write its per-sample outcomes and hygiene checklist beside it,
    recording their paths in ``result``."""
    append_results(out, result.rows, ATTACK_COLUMNS)
    result.samples_path = outcomes_path(out, cfg.suite)
    write_outcomes(result.samples_path, result.outcomes)
    if result.checks:
        result.checklist_path = checklist_path(result.samples_path)
        write_checklist(result.checklist_path, result.checks, {"checkpoint": checkpoint, "dataset": data,
                                                               "split": cfg.split, "suite": cfg.suite,
                                                               "norm": cfg.norm, "eps": cfg.eps})


def kept(state_path: Path | None) -> str:
    """What an interrupted ``attack`` kept: AutoAttack's finished attacks (its state files), or nothing."""
    files = sorted(state_path.parent.glob(f"{state_path.stem}*.json")) if state_path is not None else []
    if not files:
        return "no results row was written"
    return (f"AutoAttack's finished attacks are kept in {', '.join(map(str, files))}; the same command continues "
            "after them")
