"""``--logger mlflow``: an MLflow run in a local file store, ``<run>/mlruns`` (no server, no network).

The run (experiment ``partcli``, named after the run folder) gets the configuration as parameters and as the
artifact ``config.yaml``, the scalars as metrics and the figures as images; a resumed run continues it.
MLflow 3 refuses a file store unless ``MLFLOW_ALLOW_FILE_STORE`` is set: partcli sets it, having chosen one
(``mlflow ui --backend-store-uri file://<run>/mlruns``, of the full ``mlflow`` package, needs it set too).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from partcli.tracking.registry import RunInfo, register_logger

EXPERIMENT = "partcli"
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a parameter's value


@register_logger("mlflow", package="mlflow", folder="mlruns")
class MlflowTracker:
    def __init__(self, folder: Path, run: RunInfo):
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=folder.resolve().as_uri())
        self.run_id = None
        if run.tracker_id:
            try:
                self.run_id = self.client.get_run(run.tracker_id).info.run_id
                self.client.update_run(self.run_id, status="RUNNING")
            except MlflowException:  # the store was deleted or moved: start another run
                self.run_id = None
        if self.run_id is None:
            experiment = self.client.get_experiment_by_name(EXPERIMENT)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(EXPERIMENT)
            self.run_id = self.client.create_run(experiment_id, run_name=run.name).info.run_id
        self.where = (f"run {self.run_id} of experiment {EXPERIMENT} in {folder}; view it with (the full mlflow "
                      "package): MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri "
                      f"{folder.resolve().as_uri()}")

    def log_config(self, config: Mapping[str, Any], text: str) -> None:
        from mlflow.entities import Param

        # parameters cannot change once logged: a resume (new --epochs, --device) logs only those not there yet
        logged = self.client.get_run(self.run_id).data.params
        params = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in config.items() if k not in logged]
        for i in range(0, len(params), 100):  # MLflow's batch limit
            self.client.log_batch(self.run_id, params=params[i:i + 100])
        self.client.log_text(self.run_id, text, "config.yaml")

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def log_image(self, name: str, image: np.ndarray, step: int) -> None:
        self.client.log_image(self.run_id, image, key=name, step=step)

    def close(self, failed: bool) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")
