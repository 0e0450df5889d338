"""Non-adversarial robustness (paper §5.1): common corruptions, foreground/background and shape-vs-texture sets
generated from any prepared dataset and its part masks."""
from partcli.robustness.suite import ROBUSTNESS_COLUMNS, SUITES, RobustnessResult, evaluate_shifts, run_robustness

__all__ = ["ROBUSTNESS_COLUMNS", "SUITES", "RobustnessResult", "evaluate_shifts", "run_robustness"]
