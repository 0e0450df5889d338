"""`evaluate` scores a segmenter against the labels it was trained on (--seg-labels), not always part masks."""
from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors

from conftest import TINY
from hand_labels import box_masks_by_hand, object_masks_by_hand, pixel_acc_by_hand
from partcli.data.dataset import PreparedDataset, eval_transform
from partcli.evaluate.evaluate import evaluate_checkpoint, load_for_dataset
from partcli.train.config import TrainConfig
from partcli.train.loop import run_training


@pytest.mark.parametrize("kind", ["object", "box"])
def test_checkpoint_of_other_seg_labels_evaluates(kind, synthetic_data, tmp_path):
    out = tmp_path / kind
    run_training(TrainConfig(data=str(synthetic_data), out=str(out), arch="downsampled", epochs=1, seg_labels=kind,
                             **TINY))
    ckpt = out / "checkpoints" / "best.pt"
    model, ds = load_for_dataset(ckpt, synthetic_data, "val")
    full = PreparedDataset(synthetic_data, "val")  # full-size masks: relabelled first, then resized and cropped
    part_to_class, resize = full.info.part_to_class(), eval_transform(TINY["image_size"])
    images = torch.stack([ds[i][0] for i in range(len(ds))])
    by_hand = torch.stack([resize(tv_tensors.Mask(object_masks_by_hand(full[i][1], part_to_class)
                                                  if kind == "object" else box_masks_by_hand(full[i][1])))
                           for i in range(len(full))]).as_subclass(torch.Tensor)
    assert torch.equal(torch.stack([ds[i][1] for i in range(len(ds))]).long(), by_hand)
    parts = torch.stack([resize(tv_tensors.Mask(full[i][1])) for i in range(len(full))]).as_subclass(torch.Tensor)
    assert not torch.equal(by_hand, parts)  # relabelled
    result = evaluate_checkpoint(ckpt, synthetic_data, "val")
    assert result.pixel_acc == pytest.approx(pixel_acc_by_hand(model, images, by_hand), abs=1e-6)
    assert result.miou is not None and 0.0 <= result.miou <= 1.0
