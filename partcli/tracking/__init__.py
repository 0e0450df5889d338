"""Experiment tracking (``--logger``): TensorBoard, Weights & Biases (offline) and MLflow (a local file store),
each an optional extra. One module per library registers its tracker (``registry``); the trainer logs through
one ``Trackers`` object. Importing this package imports none of the libraries."""
from partcli.options import Choice
from partcli.tracking import mlflow_logger, tensorboard_logger, wandb_logger  # noqa: F401  (they register)
from partcli.tracking.registry import (check_logger_folders, check_loggers_installed, logger_names, parse_loggers,
                                       register_logger)
from partcli.tracking.trackers import Trackers

Logger = Choice("Logger", [(name.upper(), name) for name in logger_names()])  # --logger's choices

__all__ = ["Logger", "Trackers", "check_logger_folders", "check_loggers_installed", "logger_names", "parse_loggers",
           "register_logger"]
