"""``partcli prepare ...`` and ``partcli import ...``: datasets into the prepared-dataset format, other code's model
files into partcli checkpoints."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from partcli.cli.app import import_app, prepare_app
from partcli.options import DATA, MAX_SEED, MODEL, RUN, RUNTIME, Choice
from partcli.progress import say

Out = Annotated[Path, typer.Option("--out", help="Output folder (must not exist or be empty).", rich_help_panel=RUN)]
Overwrite = Annotated[bool, typer.Option("--overwrite", rich_help_panel=RUN, help="Replace the prepared dataset in a non-empty --out "
                                         "(a folder that holds other files is refused, not emptied).")]
Seed = Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, rich_help_panel=RUN,
                                   help="Seed for every random choice (0 to 2^32 − 1); same seed, same result.")]
Src = Annotated[Path, typer.Option("--src", rich_help_panel=DATA, help="Folder holding the official download.")]
Strict = Annotated[bool, typer.Option("--strict", rich_help_panel=DATA, help="Stop at the first undecodable image instead of skipping it.")]


class OverlapProtocol(Choice):
    """Where part annotations overlap: the paper authors' data rules, or partcli's earlier ones."""

    AUTHORS = "authors"
    LARGEST_FIRST = "largest-first"


class CityscapesProtocol(Choice):
    """Which objects and crops: the paper authors' data script, or the paper's App. A text."""

    AUTHORS = "authors"
    TEXT = "text"


class KnownDataset(Choice):  # partcli.interop.dataset_names.KNOWN_DATASETS
    PART_IMAGENET = "part-imagenet"
    CITYSCAPES = "cityscapes"
    PASCAL_PART = "pascal-part"


@prepare_app.command("synthetic")
def prepare_synthetic_cmd(
    out: Out,
    n: Annotated[int, typer.Option(rich_help_panel=DATA, help="Number of images (at most 1,000,000).")] = 3000,
    image_size: Annotated[int, typer.Option(rich_help_panel=DATA, help="Side of the square images in pixels (16 to 2048).")] = 64,
    n_val: Annotated[Optional[int], typer.Option(rich_help_panel=DATA, help="Validation images, the same number "
                                                 "per class (a multiple of 5); default 10 % of --n.")] = None,
    n_test: Annotated[Optional[int], typer.Option(rich_help_panel=DATA, help="Test images, the same number per "
                                                  "class (a multiple of 5); default 10 % of --n. The rest "
                                                  "is train.")] = None,
    seed: Seed = 0,
    overwrite: Overwrite = False,
) -> None:
    """A procedural dataset of objects made of class-specific parts; needs no download."""
    from partcli.data.synthetic import prepare_synthetic

    _report_dataset(prepare_synthetic(out, n=n, image_size=image_size, seed=seed, overwrite=overwrite,
                                      n_val=n_val, n_test=n_test), out)


@prepare_app.command("part-imagenet")
def prepare_part_imagenet_cmd(
    src: Src, out: Out, seed: Seed = 0, strict: Strict = False, overwrite: Overwrite = False,
    protocol: Annotated[OverlapProtocol, typer.Option(
        rich_help_panel=DATA, help="Where the release is ambiguous. authors: as the paper's data (annotations painted in json order, "
             "later over earlier; those of json area 0 skipped; an image with parts of several classes gives one "
             "sample per class; parts in the json's category order). largest-first: partcli's earlier rule "
             "(largest annotation painted first; a mixed image labelled with its largest-area class only; parts "
             "by category id).")] = OverlapProtocol.AUTHORS,
) -> None:
    """Part-ImageNet (JPEGImages/ + COCO train/val/test.json), re-split i.i.d. 80/10/10 per class."""
    from partcli.data.prepare_part_imagenet import prepare_part_imagenet

    _report_dataset(prepare_part_imagenet(src, out, seed=seed, overwrite=overwrite, strict=strict,
                                          protocol=protocol.value), out)


@prepare_app.command("cityscapes")
def prepare_cityscapes_cmd(
    src: Src, out: Out,
    protocol: Annotated[CityscapesProtocol, typer.Option(
        rich_help_panel=DATA, help="Which objects and crops. authors: as the paper's data (29,728 samples on the full release): "
             "instance 0 of a category skipped, a crowd is one object, occluded when one category of the other "
             "class covers over half as many box pixels as the object's category, square crop shifted at random, "
             "mask with every human's and vehicle's parts. text: as the paper's App. A describes it: every "
             "instance, centred square, only the instance's parts.")] = CityscapesProtocol.AUTHORS,
    min_area: Annotated[int, typer.Option(rich_help_panel=DATA, help="Skip objects with fewer pixels.")] = 1000,
    pad: Annotated[Optional[float], typer.Option(
        rich_help_panel=DATA, help="Crop padding as a fraction of the object's side. authors: int(pad*side) on each side and a random "
             "shift of up to 2*pad of the crop; text: 0 to pad extra, centred.",
        show_default="0.2 with authors, 0.1 with text")] = None,
    seed: Seed = 0,
    workers: Annotated[Optional[int], typer.Option(rich_help_panel=RUNTIME, help="Processes cropping the images.", show_default="all cores")] = None,
    strict: Strict = False, overwrite: Overwrite = False,
) -> None:
    """Cityscapes + Cityscapes-Panoptic-Parts: human vs vehicle crops with 9 parts."""
    from partcli.data.prepare_cityscapes import prepare_cityscapes

    info = prepare_cityscapes(src, out, protocol=protocol.value, min_area=min_area, pad=pad, seed=seed, workers=workers,
                              overwrite=overwrite, strict=strict)
    _report_dataset(info, out)


@prepare_app.command("pascal-part")
def prepare_pascal_part_cmd(
    src: Src, out: Out, seed: Seed = 0, strict: Strict = False, overwrite: Overwrite = False,
    protocol: Annotated[OverlapProtocol, typer.Option(
        rich_help_panel=DATA, help="Which part keeps a pixel where parts overlap. authors: as the paper's data (the largest object's "
             "parts first, then the other objects' in annotation order; within an object tail > wing > body, "
             "head > legs > body, wheel > window > body; the first part on a pixel keeps it; part names in no "
             "group stay background). largest-first: partcli's earlier rule (objects largest first, parts in "
             "annotation order, each over the earlier ones; unknown part names become body).")] = OverlapProtocol.AUTHORS,
) -> None:
    """PASCAL VOC 2010 + PASCAL-Part: five classes, 3 merged parts each, labelled by the largest object."""
    from partcli.data.prepare_pascal_part import prepare_pascal_part

    _report_dataset(prepare_pascal_part(src, out, seed=seed, overwrite=overwrite, strict=strict,
                                        protocol=protocol.value), out)


def _report_dataset(info, out: Path) -> None:
    total = sum(sum(c.values()) for c in info.counts.values())
    say(f"wrote {out}: {total} samples, {info.num_classes} classes, {info.num_parts} parts")


# ---------------------------------------------------------------------------------------------- import
@import_app.command("adv-part-model")
def import_adv_part_model_cmd(
    src: Annotated[Path, typer.Argument(help="A checkpoint of the paper authors' code (.pt/.pth), e.g. one of their "
                                             "released Table 1 models.")],
    out: Annotated[Path, typer.Option("--out", rich_help_panel=RUN, help="partcli checkpoint to write (.pt).")],
    data: Annotated[Optional[Path], typer.Option(rich_help_panel=DATA, help="Prepared dataset whose classes and parts name the model's "
                                                      "(their counts must match).")] = None,
    dataset: Annotated[Optional[KnownDataset], typer.Option(rich_help_panel=DATA, help="part-imagenet, cityscapes or pascal-part: take that "
                                                        "dataset's classes and parts.",
                                                   show_default="the file's args.dataset, else the one dataset with "
                                                                "the model's counts")] = None,
    experiment: Annotated[Optional[str], typer.Option(rich_help_panel=MODEL, help="The authors' --experiment string (e.g. "
                                                           "part-wbbox-norm_img-semi), for a file without its args.")]
    = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", rich_help_panel=RUN, help="Replace an existing --out.")] = False,
) -> None:
    """The paper authors' bounding-box, downsampled or ResNet model as a partcli checkpoint (no pickled code run)."""
    from partcli.interop.import_checkpoint import import_adv_part_model

    r = import_adv_part_model(src, out, data=data, dataset=None if dataset is None else dataset.value, experiment=experiment, overwrite=overwrite)
    m = r.recognised
    labels = "" if m.channels is None else f", {m.channels} {m.seg_labels} labels"
    say(f"wrote {r.out}: {m.arch} model ({m.backbone}, {m.num_classes} classes{labels}) from {src}, the authors' "
        f"{m.experiment!r} ({r.naming} keys, recognised from {r.recognised_from}); {r.tensors} tensors placed; "
        f"names from {r.names.origin}")


