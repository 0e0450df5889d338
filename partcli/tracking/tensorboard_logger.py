"""``--logger tensorboard``: TensorBoard event files in ``<run>/tensorboard/`` (PyTorch's ``SummaryWriter``).

A resumed run appends to the same folder; events the interrupted part logged after the checkpoint it resumes
from are purged (TensorBoard's restart marker), so the replayed steps are not shown twice. A fresh run
(``--overwrite``) purges from step 0: the replaced run's events no longer show.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from partcli.tracking.registry import RunInfo, register_logger


@register_logger("tensorboard", package="tensorboard", folder="tensorboard")
class TensorBoardTracker:
    run_id = None  # the folder is the run

    def __init__(self, folder: Path, run: RunInfo):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder), purge_step=run.resumed_step + 1 if run.resumed_step else 0)
        self.where = f"event files in {folder}; view them with: tensorboard --logdir {folder}"

    def log_config(self, config: Mapping[str, Any], text: str) -> None:
        self.writer.add_text("config", "```yaml\n" + text + "```")  # Markdown: shown as the YAML file it is

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def log_image(self, name: str, image: np.ndarray, step: int) -> None:
        self.writer.add_image(name, image, step, dataformats="HWC")

    def close(self, failed: bool) -> None:
        self.writer.close()
