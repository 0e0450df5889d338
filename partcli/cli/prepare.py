"""``partcli prepare ...`` and ``partcli import ...``: datasets into the prepared-dataset format, other code's model
files into partcli checkpoints. Their options are their configuration dataclasses' fields
(``partcli.data.prepare_config``, ``partcli.interop.import_config``)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from partcli.cli.app import import_app, prepare_app
from partcli.cli.common import argument_parameter, config_parameter, read_options
from partcli.cli.typer_options import typer_parameters, with_parameters
from partcli.data.prepare_config import CityscapesConfig, PartImagenetConfig, PascalPartConfig, SyntheticConfig
from partcli.errors import PartcliError
from partcli.interop.import_config import ImportConfig
from partcli.progress import say

_REQUIRED = {"src": "the folder holding the official download", "out": "the folder to write the prepared dataset to"}


def _prepare_command(cls: type, prepare: Callable[[Any], Any]) -> Callable:
    """A ``prepare`` command: ``cls``'s options (and ``--config``), then ``prepare(config)``'s dataset reported."""

    def command(ctx: typer.Context, config: Optional[Path] = None, **options: Any) -> None:
        cfg = read_options(ctx, cls, config, options)
        for name in ("src", "out"):
            if hasattr(cfg, name) and not getattr(cfg, name):
                raise PartcliError(f"--{name} is required: {_REQUIRED[name]}")
        info = prepare(cfg)
        total = sum(sum(c.values()) for c in info.counts.values())
        say(f"wrote {cfg.out}: {total} samples, {info.num_classes} classes, {info.num_parts} parts")

    return with_parameters(command, [*typer_parameters(cls), config_parameter(cls)])


def _synthetic(cfg: SyntheticConfig):
    from partcli.data.synthetic import prepare_synthetic

    return prepare_synthetic(Path(cfg.out), n=cfg.n, image_size=cfg.image_size, seed=cfg.seed,
                             overwrite=cfg.overwrite, n_val=cfg.n_val, n_test=cfg.n_test)


def _part_imagenet(cfg: PartImagenetConfig):
    from partcli.data.prepare_part_imagenet import prepare_part_imagenet

    return prepare_part_imagenet(Path(cfg.src), Path(cfg.out), seed=cfg.seed, overwrite=cfg.overwrite,
                                 strict=cfg.strict, protocol=cfg.protocol)


def _cityscapes(cfg: CityscapesConfig):
    from partcli.data.prepare_cityscapes import prepare_cityscapes

    return prepare_cityscapes(Path(cfg.src), Path(cfg.out), protocol=cfg.protocol, min_area=cfg.min_area,
                              pad=cfg.pad, seed=cfg.seed, workers=cfg.workers, overwrite=cfg.overwrite,
                              strict=cfg.strict)


def _pascal_part(cfg: PascalPartConfig):
    from partcli.data.prepare_pascal_part import prepare_pascal_part

    return prepare_pascal_part(Path(cfg.src), Path(cfg.out), seed=cfg.seed, overwrite=cfg.overwrite,
                               strict=cfg.strict, protocol=cfg.protocol)


prepare_app.command("synthetic", help="A procedural dataset of objects made of class-specific parts; needs no "
                    "download.")(_prepare_command(SyntheticConfig, _synthetic))
prepare_app.command("part-imagenet", help="Part-ImageNet (JPEGImages/ + COCO train/val/test.json), re-split i.i.d. "
                    "80/10/10 per class.")(_prepare_command(PartImagenetConfig, _part_imagenet))
prepare_app.command("cityscapes", help="Cityscapes + Cityscapes-Panoptic-Parts: human vs vehicle crops with 9 "
                    "parts.")(_prepare_command(CityscapesConfig, _cityscapes))
prepare_app.command("pascal-part", help="PASCAL VOC 2010 + PASCAL-Part: five classes, 3 merged parts each, labelled "
                    "by the largest object.")(_prepare_command(PascalPartConfig, _pascal_part))


# ---------------------------------------------------------------------------------------------- import
def _import_command() -> Callable:
    def command(ctx: typer.Context, src: Path, config: Optional[Path] = None, **options: Any) -> None:
        cfg = read_options(ctx, ImportConfig, config, options)
        if not cfg.out:
            raise PartcliError("--out is required: the partcli checkpoint to write")
        from partcli.interop.import_checkpoint import import_adv_part_model

        r = import_adv_part_model(src, Path(cfg.out), data=cfg.data, dataset=cfg.dataset, experiment=cfg.experiment,
                                  overwrite=cfg.overwrite)
        m = r.recognised
        labels = "" if m.channels is None else f", {m.channels} {m.seg_labels} labels"
        say(f"wrote {r.out}: {m.arch} model ({m.backbone}, {m.num_classes} classes{labels}) from {src}, the authors' "
            f"{m.experiment!r} ({r.naming} keys, recognised from {r.recognised_from}); {r.tensors} tensors placed; "
            f"names from {r.names.origin}")

    src = typer.Argument(help="A checkpoint of the paper authors' code (.pt/.pth), e.g. one of their released "
                         "Table 1 models.")
    return with_parameters(command, [argument_parameter("src", Annotated[Path, src]), *typer_parameters(ImportConfig),
                                     config_parameter(ImportConfig)])


import_app.command("adv-part-model", help="The paper authors' bounding-box, downsampled or ResNet model as a partcli "
                   "checkpoint (no pickled code run).")(_import_command())
