"""``Trackers``: the experiment trackers of one training run, as the trainer calls them.

The trainer logs through one object whatever ``--logger`` named (none: every call does nothing, as on the ranks
other than 0 under torchrun). Each tracker's run id is kept in ``<run>/trackers.yaml``, so a resumed run
continues the same tracker run where the library allows it.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import yaml

from partcli.errors import writing
from partcli.progress import info
from partcli.tracking.registry import RunInfo, Tracker, open_tracker

IDS_FILE = "trackers.yaml"  # tracker name -> the id of its run, for a resume
FIGURE_DPI = 100


class Trackers:
    def __init__(self, trackers: Mapping[str, Tracker] | None = None):
        self.trackers = dict(trackers or {})

    @classmethod
    def open(cls, names: Iterable[str], run_dir: Path, resumed_step: int) -> "Trackers":
        """Open the trackers ``names`` for the run in ``run_dir``; ``resumed_step``: the global step it continues
        after (0 for a fresh run, whose earlier tracker runs, if any, are not continued)."""
        ids_file = run_dir / IDS_FILE
        stored = _read_ids(ids_file) if resumed_step else {}
        trackers: dict[str, Tracker] = {}
        try:
            for name in dict.fromkeys(names):
                trackers[name] = open_tracker(name, run_dir, RunInfo(run_dir.name, stored.get(name), resumed_step))
                info(f"{name}: {trackers[name].where}")
            ids = {**stored, **{n: t.run_id for n, t in trackers.items() if t.run_id is not None}}
            if ids:
                with writing(ids_file):
                    ids_file.write_text(yaml.safe_dump(ids, sort_keys=False))
        except BaseException:
            cls(trackers).close(failed=True)
            raise
        return cls(trackers)

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def log_config(self, config_file: Path) -> None:
        """The run's resolved configuration, as its ``config.yaml`` holds it."""
        text = config_file.read_text()
        config = yaml.safe_load(text)
        for tracker in self.trackers.values():
            tracker.log_config(config, text)

    def log_scalars(self, values: Mapping[str, Any], step: int) -> None:
        """Numbers at the global ``step``; empty values (a metrics cell left blank) are left out."""
        numbers = {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}
        if numbers:
            for tracker in self.trackers.values():
                tracker.log_scalars(numbers, step)

    def log_figure(self, name: str, figure: Any, step: int) -> None:
        """A matplotlib figure, drawn once to an RGB image that every tracker stores."""
        if not self.trackers:
            return
        image = figure_image(figure)
        for tracker in self.trackers.values():
            tracker.log_image(name, image, step)

    def close(self, failed: bool = False) -> None:
        """Flush and finish every tracker run (``failed``: the training ended with an error)."""
        for tracker in self.trackers.values():
            tracker.close(failed)
        self.trackers.clear()


def figure_image(figure: Any) -> np.ndarray:
    """``figure`` as an H×W×3 uint8 array (drawn to PNG with Agg and read back)."""
    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=FIGURE_DPI)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _read_ids(path: Path) -> dict[str, str]:
    try:
        doc = yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        doc = None
    return {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}
