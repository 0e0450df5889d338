"""What a training configuration builds for a prepared dataset, before any training: the model configuration, the
segmentation loss, each split's transform and the training samples whose part masks are withheld (``--seg-frac``).

Pure functions of the configuration and the dataset, so ``partcli pseudolabel`` and the tests use them without the
training loop.
"""
from __future__ import annotations

import functools

from partcli.data.contract import DatasetInfo
from partcli.data.dataset import PreparedDataset, eval_transform, train_transform
from partcli.data.label_kinds import label_kind
from partcli.data.splits import stratified_assign
from partcli.models.registry import ModelConfig
from partcli.train.config import TrainConfig
from partcli.train.losses import SegLossFn, seg_loss


def model_config_for(cfg: TrainConfig, data: DatasetInfo) -> ModelConfig:
    """The model for a dataset; with ``--seg-labels object`` the segmenter predicts one channel per class."""
    num_parts, part_to_class = label_kind(cfg.seg_labels).channels(data.num_classes, data.part_to_class())
    return ModelConfig(arch=cfg.arch, backbone=cfg.backbone, num_classes=data.num_classes, num_parts=num_parts,
                       part_to_class=part_to_class, pool=cfg.pool, drop_background=cfg.drop_background,
                       concat_input=cfg.concat_input, bbox_score=cfg.bbox_score, output_stride=cfg.output_stride)


def seg_loss_for(cfg: TrainConfig, model_cfg: ModelConfig) -> SegLossFn:
    """The segmentation term of the loss: the label kind's own (Eq. 12, Eq. 13 on centroid labels), else Eq. 7."""
    kind = label_kind(cfg.seg_labels)
    if kind.loss is not None:
        return kind.loss(model_cfg.part_to_class, model_cfg.num_classes, cfg.seg_loss_norm)
    return functools.partial(seg_loss, norm=cfg.seg_loss_norm)


def split_transform(cfg: TrainConfig, data: DatasetInfo, train: bool):
    """The augmentation of a split, preceded by the ``--seg-labels`` mask transform (on the full-size mask)."""
    transform = train_transform(cfg.image_size, cfg.crop_scale) if train else eval_transform(cfg.image_size)
    return label_kind(cfg.seg_labels).transform(data.part_to_class(), transform)


def seg_label_mask_indices(train: PreparedDataset, frac: float, seed: int) -> set[int]:
    """Indices of training samples whose part mask is withheld: a stratified, seeded 1 − frac (§5.3)."""
    if frac >= 1.0:
        return set()
    groups = stratified_assign(train.labels, {"keep": frac, "drop": 1.0 - frac}, seed)
    return {i for i, g in enumerate(groups) if g == "drop"}
