"""``partcli prepare pascal-part``: PASCAL-Part (VOC2010 images + part .mat files) to a prepared dataset.

Paper §3.5.1 and App. A: keep the five most common classes, label each image by its largest object, and
merge PASCAL-Part's fine parts (left/right, front/back, numbered instances) into three parts per class.
Parts of every object of the five classes are labelled, each with its own class's part ids; objects of other
classes stay background.

Where parts overlap, ``protocol="authors"`` (the default) follows the data scripts behind the paper's numbers: the
largest object is painted first, then the others in annotation order; within an object the merged parts go in
PART_GROUPS order (tail, wing, body; head, legs, body; wheel, window, body), and a pixel keeps the first part
painted on it, so e.g. a head drawn over a torso stays head. Part names in no group are not painted (they are
counted in source.unknown_parts).
``"largest-first"``, partcli's earlier rule, paints objects largest first and each object's parts in annotation
order, every one overwriting what lies below (smaller objects and later parts win), and paints unlisted names as
the class's body.

Two passes: the first reads every annotation to pick the usable images and their labels (so the split is
known), the second re-reads only the kept ones to paint their masks; holding every mask in memory between
the passes would take gigabytes.
"""
from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from PIL import Image

from partcli.data.contract import SPLITS, DatasetInfo, Part
from partcli.data.splits import stratified_split
from partcli.data.writer import DatasetWriter, prepare_output_dir
from partcli.data.overlap_protocol import AUTHORS, LARGEST_FIRST, check_protocol
from partcli.errors import PartcliError
from partcli.progress import info, track, warn

CLASSES = ("aeroplane", "bird", "car", "cat", "dog")

_CAT_LEGS = ("lfleg", "rfleg", "lbleg", "rbleg", "lfpa", "rfpa", "lbpa", "rbpa")
# Per class, in part-id order (also the authors' painting priority): merged part -> the PASCAL-Part names (trailing
# _<digits> stripped) it takes.
PART_GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "aeroplane": {
        "tail": ("tail", "stern"),
        "wing": ("lwing", "rwing", "engine"),
        "body": ("body", "wheel"),
    },
    "bird": {
        "head": ("head", "beak", "leye", "reye", "neck"),
        "legs": ("lleg", "rleg", "lfoot", "rfoot"),
        "body": ("torso", "lwing", "rwing", "tail"),
    },
    "car": {
        "wheel": ("wheel",),
        "window": ("window",),
        "body": ("frontside", "leftside", "rightside", "backside", "roofside", "leftmirror", "rightmirror",
                 "fliplate", "bliplate", "door", "headlight"),
    },
    "cat": {
        "head": ("head", "leye", "reye", "lear", "rear", "nose", "neck"),
        "legs": _CAT_LEGS,
        "body": ("torso", "tail"),
    },
    "dog": {
        "head": ("head", "leye", "reye", "lear", "rear", "nose", "neck", "muzzle"),
        "legs": _CAT_LEGS,
        "body": ("torso", "tail"),
    },
}
# largest-first only: classes whose unlisted parts belong to "body" by definition; for the others an unlisted name
# is counted as unknown (source.unknown_parts) and still painted as body. Under authors every unlisted name is
# counted and left unpainted.
_BODY_TAKES_THE_REST = {"aeroplane", "car"}

PARTS: list[Part] = [Part(f"{cls}/{group}", cls) for cls in CLASSES for group in PART_GROUPS[cls]]
_GROUP_IDS: dict[tuple[str, str], int] = {(p.cls, p.name.split("/")[1]): i for i, p in enumerate(PARTS, start=1)}
_PART_IDS: dict[tuple[str, str], int] = {
    (cls, fine): _GROUP_IDS[cls, group]
    for cls in CLASSES for group, names in PART_GROUPS[cls].items() for fine in names
}
_BODY_IDS = {cls: _GROUP_IDS[cls, "body"] for cls in CLASSES}
_INSTANCE_SUFFIX = re.compile(r"_\d+$")

_IMAGE_DIRS = ("JPEGImages", "VOCdevkit/VOC2010/JPEGImages", "VOC2010/JPEGImages")
_ANNOTATION_DIRS = ("Annotations_Part", "trainval/Annotations_Part")
_SKIP_REASONS = ("missing_image", "undecodable_image", "bad_annotation", "other_class", "no_objects")


@dataclass
class _Object:
    cls: str
    mask: np.ndarray  # H×W, nonzero on the object
    parts: list[tuple[str, np.ndarray]]  # (PASCAL-Part name, H×W mask)

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))


@dataclass
class _Kept:
    stem: str
    label: int
    annotation: Path
    image: Path  # the staged copy in the output (the source image is read once)


class _BadAnnotation(Exception):
    """A .mat file that is not a PASCAL-Part annotation; the message says why."""


def prepare_pascal_part(
    src: Path, out: Path, *, seed: int = 0, overwrite: bool = False, strict: bool = False, protocol: str = AUTHORS
) -> DatasetInfo:
    """Build a prepared dataset from PASCAL-Part under ``src``; return what was written to dataset.yaml.

    ``strict`` turns a skipped undecodable image or malformed annotation into an error. Images whose
    annotated image file is missing are always skipped (and counted), never an error. ``protocol`` picks the
    overlap rule (module docstring).
    """
    check_protocol(protocol)
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise PartcliError(f"{src}: no such folder; expected the PASCAL-Part source (JPEGImages and Annotations_Part)")
    prepare_output_dir(out, overwrite)  # fail before the long scan, not after it
    image_dir = _find_dir(src, _IMAGE_DIRS, "VOC2010 JPEGImages")
    ann_dir = _find_dir(src, _ANNOTATION_DIRS, "PASCAL-Part Annotations_Part")
    annotations = sorted(ann_dir.glob("*.mat"))
    if not annotations:
        raise PartcliError(f"{ann_dir}: no .mat files; expected PASCAL-Part annotations (e.g. 2008_000002.mat)")

    skipped: dict[str, list[str]] = {reason: [] for reason in _SKIP_REASONS}
    unknown: Counter[str] = Counter()
    with DatasetWriter(out, list(CLASSES), PARTS, name="pascal-part", overwrite=overwrite) as writer:
        kept: list[_Kept] = []
        for path in track(annotations, "Reading PASCAL-Part annotations"):
            result = _select(path, image_dir, strict, writer)
            if isinstance(result, _Kept):
                kept.append(result)
            else:
                skipped[result].append(path.stem)
        _warn_skipped(skipped, image_dir)

        labels = [k.label for k in kept]
        splits = stratified_split(labels, seed)
        if set(splits) != set(SPLITS):
            raise PartcliError(
                f"{ann_dir}: only {len(kept)} usable images of {', '.join(CLASSES)}; too few to fill the train, val "
                f"and test splits"
            )
        for sample, split in track(list(zip(kept, splits)), "Writing pascal-part"):
            _, objects = _read_annotation(sample.annotation)
            writer.add(split, sample.stem, sample.label, image=sample.image, image_ext=".jpg",
                       mask=part_mask(objects, unknown, protocol))
        if unknown:
            fate = "not labelled" if protocol == AUTHORS else "labelled as body"
            warn(f"{ann_dir}: part names not in partcli's grouping, {fate}: "
                 + ", ".join(f"{name} ({n})" for name, n in sorted(unknown.items())))
        return writer.finish(source={
            "command": "prepare pascal-part",
            "src": str(src),
            "seed": seed,
            "protocol": protocol,
            "skipped": {reason: len(stems) for reason, stems in skipped.items()},
            "unknown_parts": dict(sorted(unknown.items())),
        })


def _find_dir(src: Path, candidates: tuple[str, ...], what: str) -> Path:
    for rel in candidates:
        if (src / rel).is_dir():
            return src / rel
    tried = ", ".join(str(src / rel) for rel in candidates)
    raise PartcliError(f"{src}: no {what} folder found; tried {tried}")


def _select(path: Path, image_dir: Path, strict: bool, writer: DatasetWriter) -> _Kept | str:
    """Check one annotation: the sample to keep (its image staged in ``writer``), or the reason (a key of
    source.skipped) it is skipped."""
    try:
        stem, objects = _read_annotation(path)
        if not objects:
            return "no_objects"
        largest = max(objects, key=lambda o: o.area)  # first of equals: annotation order breaks ties
        if largest.cls not in CLASSES:
            return "other_class"
        image = image_dir / f"{stem}.jpg"
        if not image.is_file():
            return "missing_image"
        data = image.read_bytes()
        size = _image_size(data)
        if size is None:
            if strict:
                raise PartcliError(f"{image}: image does not decode; remove it or run without --strict to skip it")
            warn(f"{image}: skipped, image does not decode")
            return "undecodable_image"
        for obj in objects:
            for mask in [obj.mask, *(m for _, m in obj.parts)]:
                if mask.shape != (size[1], size[0]):
                    raise _BadAnnotation(f"a mask of shape {mask.shape} on a {size[1]}x{size[0]} (HxW) image")
    except _BadAnnotation as exc:
        if strict:
            raise PartcliError(f"{path}: not a PASCAL-Part annotation ({exc}); remove it or run without --strict") from None
        warn(f"{path}: skipped, not a PASCAL-Part annotation ({exc})")
        return "bad_annotation"
    return _Kept(stem, CLASSES.index(largest.cls), path, writer.stage(data))


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(W, H) of an encoded image that fully decodes, else None."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.size
    except (OSError, SyntaxError, ValueError):
        return None


def _read_annotation(path: Path) -> tuple[str, list[_Object]]:
    """(image name, objects) of one PASCAL-Part .mat file; _BadAnnotation if it is not one."""
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # scipy raises a variety of errors (ValueError, MatReadError, OSError, ...)
        raise _BadAnnotation(f"unreadable .mat: {exc.__class__.__name__}") from None
    anno = mat.get("anno")
    if anno is None:
        raise _BadAnnotation("no 'anno' struct")
    try:
        stem = str(getattr(anno, "imname", path.stem))
        objects = [
            _Object(
                cls=str(getattr(obj, "class")),
                mask=np.asarray(obj.mask),
                parts=[(str(p.part_name), np.asarray(p.mask)) for p in _struct_list(obj.parts)],
            )
            for obj in _struct_list(anno.objects)
        ]
    except AttributeError as exc:
        raise _BadAnnotation(f"missing field: {exc}") from None
    return stem, objects


def _struct_list(value: Any) -> list:
    """A MATLAB struct array as a list: loadmat(squeeze_me=True) unwraps a 1-element array to the struct
    itself and turns an empty field into an empty numeric array."""
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


def part_id(cls: str, name: str) -> int | None:
    """Part id (1..15) of the PASCAL-Part part ``name`` of an object of class ``cls`` under largest-first; None
    if the name is unknown for a class whose parts are all listed (bird, cat, dog)."""
    fine = _INSTANCE_SUFFIX.sub("", name)
    pid = _PART_IDS.get((cls, fine))
    if pid is None and cls in _BODY_TAKES_THE_REST:
        return _BODY_IDS[cls]
    return pid


def part_mask(objects: list[_Object], unknown: Counter[str], protocol: str) -> np.ndarray:
    """H×W part ids of an image's objects under ``protocol`` (module docstring); unknown part names are counted in
    ``unknown`` as "class/name"."""
    if protocol == LARGEST_FIRST:
        return _paint_largest_first(objects, unknown)
    return _paint_authors(objects, unknown)


def _paint_authors(objects: list[_Object], unknown: Counter[str]) -> np.ndarray:
    """The largest object (first of equals) first, then the rest in annotation order; each object's groups in
    PART_GROUPS order; only background pixels are painted, so the first part on a pixel keeps it."""
    mask = np.zeros(objects[0].mask.shape, dtype=np.uint8)
    main = max(range(len(objects)), key=lambda i: objects[i].area)
    for obj in [objects[main], *objects[:main], *objects[main + 1:]]:
        if obj.cls not in CLASSES:
            continue
        fine = [(_INSTANCE_SUFFIX.sub("", name), part > 0) for name, part in obj.parts]
        for name, _ in fine:
            if (obj.cls, name) not in _PART_IDS:
                unknown[f"{obj.cls}/{name}"] += 1
        for group, names in PART_GROUPS[obj.cls].items():
            region = np.zeros(mask.shape, dtype=bool)
            for name, part in fine:
                if name in names:
                    region |= part
            mask[region & (mask == 0)] = _GROUP_IDS[obj.cls, group]
    return mask


def _paint_largest_first(objects: list[_Object], unknown: Counter[str]) -> np.ndarray:
    """Largest object first so smaller objects' parts lie on top, each object's parts in annotation order, each
    overwriting; unknown part names are painted as the class's body."""
    mask = np.zeros(objects[0].mask.shape, dtype=np.uint8)
    for obj in sorted(objects, key=lambda o: -o.area):
        if obj.cls not in CLASSES:
            continue
        for name, part in obj.parts:
            pid = part_id(obj.cls, name)
            if pid is None:
                unknown[f"{obj.cls}/{_INSTANCE_SUFFIX.sub('', name)}"] += 1
                pid = _BODY_IDS[obj.cls]
            mask[part > 0] = pid
    return mask


def _warn_skipped(skipped: dict[str, list[str]], image_dir: Path) -> None:
    """Summarise the skips not already warned about file by file (there may be thousands of them); other
    classes are expected, so that line is only info."""
    messages = {
        "missing_image": f"annotations whose image is missing from {image_dir}",
        "no_objects": "annotations without objects",
    }
    for reason, what in messages.items():
        stems = skipped[reason]
        if stems:
            examples = ", ".join(stems[:5]) + (", ..." if len(stems) > 5 else "")
            warn(f"skipped {len(stems)} {what}: {examples}")
    if skipped["other_class"]:
        info(f"skipped {len(skipped['other_class'])} images whose largest object is not one of {', '.join(CLASSES)}")
