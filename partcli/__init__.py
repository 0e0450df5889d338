"""partcli: train and honestly evaluate adversarially robust part-based image classifiers.

The public Python API mirrors the CLI: ``load_model``, ``PreparedDataset``, ``build_model``/``ModelConfig``,
``run_training``/``TrainConfig``, ``evaluate_checkpoint``, ``run_robustness``, ``compare_results``, ``visualize``,
``build_report``, ``import_adv_part_model`` (the paper authors' checkpoints), ``attack`` (the attack suites on tensors
and any model) and ``run_attack_suite``.
"""
from partcli.version import __version__


def __getattr__(name: str):
    # Lazy, so `import partcli` (and the CLI's start-up) does not import torch until it is needed.
    from importlib import import_module

    homes = {
        "load_model": "partcli.checkpoint", "load_checkpoint": "partcli.checkpoint",
        "PreparedDataset": "partcli.data.dataset", "build_model": "partcli.models.registry",
        "ModelConfig": "partcli.models.registry", "run_training": "partcli.train.loop",
        "TrainConfig": "partcli.train.config", "evaluate_checkpoint": "partcli.evaluate.evaluate",
        "run_robustness": "partcli.robustness.suite", "compare_results": "partcli.evaluate.compare",
        "visualize": "partcli.mask_views", "build_report": "partcli.report.report",
        "import_adv_part_model": "partcli.interop.import_checkpoint",
        "attack": "partcli.attacks.api", "run_attack_suite": "partcli.attacks.suite",
    }
    if name in homes:
        return getattr(import_module(homes[name]), name)
    raise AttributeError(f"module 'partcli' has no attribute {name!r}")


__all__ = ["__version__", "load_model", "load_checkpoint", "PreparedDataset", "build_model", "ModelConfig",
           "run_training", "TrainConfig", "evaluate_checkpoint", "run_robustness", "compare_results", "visualize",
           "build_report", "import_adv_part_model", "attack", "run_attack_suite"]
