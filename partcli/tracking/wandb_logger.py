"""``--logger wandb``: a Weights & Biases run in offline mode, its files in ``<run>/wandb/``.

Offline always: training never waits for (or fails on) the network; ``wandb sync <run>/wandb/offline-run-*``
uploads the run later. The run id is kept, so a resumed run continues the same wandb run (``resume="allow"``).
wandb's console capture is off (partcli's output stays as it is) and so are its banner lines.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from partcli.tracking.registry import RunInfo, register_logger


@register_logger("wandb", package="wandb", folder="wandb")
class WandbTracker:
    def __init__(self, folder: Path, run: RunInfo):
        import wandb

        self.wandb = wandb
        settings = wandb.Settings(mode="offline", console="off", silent=True)
        self.run = wandb.init(dir=str(folder.parent), project=os.environ.get("WANDB_PROJECT") or "partcli",
                              name=run.name, id=run.tracker_id, resume="allow", settings=settings)
        self.run_id = self.run.id
        self.where = f"offline run {self.run.id} in {self.run.settings.sync_dir}; upload it with: wandb sync {folder}"

    def log_config(self, config: Mapping[str, Any], text: str) -> None:
        self.run.config.update(dict(config), allow_val_change=True)  # a resume may change --epochs, --device, ...

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        self.run.log(dict(values), step=step)

    def log_image(self, name: str, image: np.ndarray, step: int) -> None:
        self.run.log({name: self.wandb.Image(image)}, step=step)

    def close(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)
