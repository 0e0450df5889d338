"""Non-adversarial robustness (paper §5.1): common corruptions, foreground/background and shape-vs-texture sets
generated from any prepared dataset and its part masks.

The exports are lazy, so that importing this package's option declarations at the CLI's start-up imports no torch.
"""
from __future__ import annotations

from typing import Any

__all__ = ["ROBUSTNESS_COLUMNS", "SUITES", "RobustnessResult", "evaluate_shifts", "run_robustness"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from partcli.robustness import suite

        return getattr(suite, name)
    raise AttributeError(f"module 'partcli.robustness' has no attribute {name!r}")
