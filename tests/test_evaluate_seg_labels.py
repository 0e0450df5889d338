"""`evaluate` scores a segmenter against the labels it was trained on (--seg-labels), not always part masks."""
from __future__ import annotations

import pytest

from partcli.evaluate.evaluate import evaluate_checkpoint, load_for_dataset
from partcli.train.config import TrainConfig
from partcli.train.loop import run_training
from conftest import TINY


@pytest.mark.parametrize("kind", ["object", "box"])
def test_checkpoint_of_other_seg_labels_evaluates(kind, synthetic_data, tmp_path):
    out = tmp_path / kind
    run_training(TrainConfig(data=str(synthetic_data), out=str(out), arch="downsampled", epochs=1, seg_labels=kind,
                             **TINY))
    ckpt = out / "checkpoints" / "best.pt"
    model, ds = load_for_dataset(ckpt, synthetic_data, "val")
    _, masks, _, _ = ds[0]
    limit = ds.info.num_classes if kind == "object" else ds.info.num_parts
    assert int(masks.max()) <= limit  # object labels: class ids 1..C, not part ids 1..K
    if kind == "object":
        assert int(masks.max()) == ds.samples[0].label + 1
    result = evaluate_checkpoint(ckpt, synthetic_data, "val")
    assert result.pixel_acc is not None and 0.0 <= result.pixel_acc <= 1.0
    assert result.miou is not None and 0.0 <= result.miou <= 1.0
