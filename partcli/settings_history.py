"""Settings added to the stored configurations (checkpoints, a run's ``config.yaml``) after files were written
without them, with the value those older files implied: reading an old file gives its model and run as they
were, not today's defaults."""
from __future__ import annotations

from typing import Any

# setting -> the behaviour of files written before it existed (checkpoint format 2, partcli 0.1 run folders)
ADDED_SETTINGS: dict[str, Any] = {
    "bbox_score": "prob",  # --bbox-score: the probability score was the only one before
    "output_stride": 16,  # --output-stride: smp's default, the paper's
}


def with_added_settings(doc: dict[str, Any], known: set[str] | None = None) -> dict[str, Any]:
    """``doc`` with every added setting it lacks set to its old value (only those in ``known``, when given)."""
    return {**{k: v for k, v in ADDED_SETTINGS.items() if known is None or k in known}, **doc}
