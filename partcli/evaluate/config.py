"""The options of ``partcli evaluate`` and ``partcli compare``, one definition each (``partcli.options``)."""
from __future__ import annotations

from dataclasses import dataclass

from partcli.config import parse_workers
from partcli.options import (RESULT_JSON_HELP, RUN, RUNTIME, SUMMARY, batch_size_option, device_option, json_option,
                             option, split_option)

EVALUATE_CSV = "results/evaluate.csv"  # where `partcli evaluate` appends its row unless told otherwise


@dataclass
class EvaluateConfig:
    """Options of ``partcli evaluate`` (the model and data: ``partcli.options.ModelInput``)."""

    split: str = split_option("Split to evaluate.")
    batch_size: int = batch_size_option(64, "Samples per batch.")
    device: str = device_option()
    workers: str | int = option("auto", "DataLoader worker processes: a number, or auto (on CUDA the CPU count, "
                                "capped at 8, with pinned memory; 0 on the CPU).", panel=RUNTIME, parse=parse_workers)
    out: str = option(EVALUATE_CSV, "CSV to append the result row to.", panel=RUN, path=True)
    json_output: bool = json_option(RESULT_JSON_HELP)


@dataclass
class CompareConfig:
    """Options of ``partcli compare`` (the results CSVs are its arguments)."""

    by: str = option("arch", "Checkpoint property to group by (arch, adv, seg-labels, seg-frac, backbone, ...) or a "
                     "CSV column.", panel=SUMMARY)
    metric: str = option("acc", "acc (the row's accuracy under its attack or shift; clean for evaluate rows) or a CSV "
                         "column, e.g. clean_acc, shape_bias, bg_gap.", panel=SUMMARY)
    attack: list[str] = option(help="Keep rows whose attack matches this glob, repeatable (e.g. mean, 'mixed-*').",
                               panel=SUMMARY, default_factory=list, shown="every attack")
    ref: str | None = option(None, "Group the p-values compare against.", panel=SUMMARY,
                             shown="the first in the CSV")
    out: str | None = option(None, "Also write the summary as CSV (replaced if it exists).", panel=RUN, path=True)
    json_output: bool = json_option("Print the summary as JSON lines on stdout (one object per row, the summary CSV's "
                                    "columns) instead of the table.")
