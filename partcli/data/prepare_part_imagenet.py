"""``partcli prepare part-imagenet``: the Part-ImageNet release (COCO json + JPEGs) to a prepared dataset.

The release splits its 158 ImageNet classes into disjoint train/val/test groups. Like the paper (App. A) we
ignore that split: every annotated image of ``train.json``, ``val.json`` and ``test.json`` is pooled and
re-partitioned i.i.d., per class, 80/10/10 with a seed.

Classes are the 11 supercategories in alphabetical order; parts (ids 1..K, 0 is background) are the json
categories grouped by class, named "Class/Part", e.g. "Quadruped/Head". An image's class is the supercategory of
its annotations. Images are copied byte for byte; masks are lossless PNGs.

Two protocols (``--protocol``) differ where the release is ambiguous. ``authors`` (the default) follows the data
scripts behind the paper's numbers: within a class, parts keep the order of the json's ``categories`` list (the
first file that defines a category places it); an image's annotations are painted in json order, each over the
earlier ones, and those whose json ``area`` is 0 are skipped (``zero_area``); an image carrying parts of several
classes (rare, counted as ``mixed_class``) becomes one sample per class, ``<stem>__<Class>``, each with the same
image and the same full mask. ``largest-first``, partcli's earlier rule, orders parts by category id, paints
the largest annotation first (so a small part drawn over a large one stays visible) and labels a mixed image with
its largest-area class only. Either way the train/val/test split is drawn over images, stratified by their
largest-area class, so the samples of one image share a split.

The annotation files are streamed: one json is in memory at a time, its annotations kept only as compressed RLEs
at their image's size, and each image file is read once (decoded, then staged in the output for its split).
"""
from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image

from partcli.data.contract import SPLITS, DatasetInfo, Part, mask_dtype
from partcli.data.splits import stratified_split
from partcli.data.writer import DatasetWriter, prepare_output_dir
from partcli.data.overlap_protocol import AUTHORS, LARGEST_FIRST, check_protocol
from partcli.errors import PartcliError
from partcli.progress import track, warn

NAME = "part-imagenet"
ANNOTATION_FILES = tuple(f"{split}.json" for split in SPLITS)
IMAGE_FOLDERS = ("JPEGImages", "images")


@dataclass
class _Region:
    """One decoded annotation: a compressed RLE at the image's size and the category it paints."""

    category_id: int
    area: int
    order: tuple[int, int]  # (category id, annotation id): a deterministic tie-break between equal areas
    rle: dict[str, Any]


@dataclass
class _Image:
    """One pooled image, read once: its staged copy in the output, its (H, W) and its decoded annotations."""

    file_name: str
    path: Path
    staged: Path
    size: tuple[int, int]
    regions: list[_Region]


def find_annotation_files(src: Path) -> dict[str, Path]:
    """The release's json files by split, looked up in ``src``, ``src/annotations`` and ``src/annotations/<split>``."""
    found = {}
    for split, file in zip(SPLITS, ANNOTATION_FILES):
        for folder in (src, src / "annotations", src / "annotations" / split):
            if (folder / file).is_file():
                found[split] = folder / file
                break
    if not found:
        raise PartcliError(
            f"{src}: no Part-ImageNet annotations found; expected {', '.join(ANNOTATION_FILES)} "
            f"in {src} or {src / 'annotations'}"
        )
    return found


def load_coco(path: Path) -> dict[str, Any]:
    """Read one COCO json; PartcliError naming the file when it does not parse or lacks a COCO section."""
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PartcliError(f"{path}: not a readable JSON file ({exc.__class__.__name__})") from None
    missing = [key for key in ("images", "annotations", "categories") if not isinstance(doc, dict) or not isinstance(doc.get(key), list)]
    if missing:
        raise PartcliError(f"{path}: not a COCO annotation file; missing list(s) {', '.join(missing)}")
    return doc


def part_name(category: str, supercategory: str) -> str:
    """"Quadruped Head" under "Quadruped" -> "Quadruped/Head" (a name without the class prefix is kept whole)."""
    short = re.sub(rf"^{re.escape(supercategory)}[\s_/-]+", "", category.strip(), flags=re.IGNORECASE)
    return f"{supercategory}/{short or category.strip()}"


def build_taxonomy(docs: dict[Path, dict[str, Any]], protocol: str) -> tuple[list[str], list[Part], dict[int, int]]:
    """Classes, parts and the category id -> part id map from the union of the files' categories (``docs`` in
    file order).

    Within a class, parts follow the categories lists (a category's first appearance) under authors and the
    category ids under largest-first. Raises PartcliError when two files give the same category id a different
    name or supercategory.
    """
    categories: dict[int, tuple[str, str, Path]] = {}
    for path, doc in docs.items():
        for cat in doc["categories"]:
            try:
                key, value = int(cat["id"]), (str(cat["name"]), str(cat["supercategory"]), path)
            except (KeyError, TypeError, ValueError) as exc:
                raise PartcliError(f"{path}: category {cat!r} lacks a valid id, name or supercategory ({exc})") from None
            seen = categories.setdefault(key, value)
            if seen[:2] != value[:2]:
                raise PartcliError(
                    f"{path}: category id {key} is {value[1]}/{value[0]!r} but {seen[2]} has {seen[1]}/{seen[0]!r}; "
                    "the annotation files come from different releases"
                )
    if not categories:
        raise PartcliError(f"{', '.join(map(str, docs))}: no categories defined")
    classes = sorted({sup for _, sup, _ in categories.values()})
    first_seen = {cid: n for n, cid in enumerate(categories)}  # the categories lists, file after file
    within = (lambda cid: cid) if protocol == LARGEST_FIRST else first_seen.__getitem__
    ordered = sorted(categories, key=lambda cid: (classes.index(categories[cid][1]), within(cid)))
    parts = [Part(part_name(categories[cid][0], categories[cid][1]), categories[cid][1]) for cid in ordered]
    return classes, parts, {cid: pid for pid, cid in enumerate(ordered, start=1)}


def image_roots(src: Path, split: str) -> list[Path]:
    """Folders that may hold the images of ``split``'s json, the split's own folders first."""
    others = [s for s in SPLITS if s != split]
    names = [f"images/{split}", split, *IMAGE_FOLDERS, *(f"images/{s}" for s in others), *others]
    return [src / n for n in names if (src / n).is_dir()] + [src]


def find_image(roots: list[Path], file_name: str) -> Path | None:
    """The file of ``file_name`` (with or without its ``<wnid>/`` folder) under the first root that has it."""
    rel = Path(file_name.replace("\\", "/"))
    wnid = rel.name.split("_")[0]
    for root in roots:
        for candidate in (root / rel, root / wnid / rel.name, root / rel.name):
            if candidate.is_file():
                return candidate
    return None


def read_annotations(path: Path, doc: dict[str, Any], skipped: dict[str, int]
                     ) -> tuple[dict[str, list[dict[str, Any]]], list[str], dict[int, Any]]:
    """One json's annotations by image file name (in the file's image order), its unannotated image names, and
    the id of the first annotation of each category it uses (to name one if the category turns out unknown)."""
    annotated: dict[str, list[dict[str, Any]]] = {}
    used: dict[int, Any] = {}
    try:
        names = {img["id"]: str(img["file_name"]) for img in doc["images"]}
        for ann in doc["annotations"]:
            used.setdefault(ann["category_id"], ann.get("id"))
            name = names.get(ann["image_id"])
            if name is None:
                skipped["bad_annotation"] += 1
                continue
            if "segmentation" not in ann:
                raise PartcliError(f"{path}: annotation {ann.get('id')} has no segmentation")
            annotated.setdefault(name, []).append(ann)
    except (KeyError, TypeError) as exc:
        raise PartcliError(f"{path}: malformed COCO entry, missing or invalid field {exc}") from None
    return annotated, [n for n in names.values() if n not in annotated], used


def to_rle(segmentation: Any, height: int, width: int) -> dict[str, Any] | None:
    """A COCO segmentation (polygons, compressed or uncompressed RLE) as one compressed RLE; None if unusable."""
    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0]
        if not polygons:
            return None
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        if list(segmentation["size"]) != [height, width]:
            return None
        if isinstance(segmentation["counts"], list):
            # pycocotools does not bound-check RLE counts: a wrong total would write outside the mask
            if sum(segmentation["counts"]) != height * width:
                return None
            return mask_utils.frPyObjects(segmentation, height, width)
        counts = segmentation["counts"]
        return {"size": [height, width], "counts": counts.encode() if isinstance(counts, str) else counts}
    return None


def decoded_size(data: bytes) -> tuple[int, int] | None:
    """Fully decode an encoded image and return its (H, W), or None when it does not decode."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.height, im.width
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def decode_regions(annotations: list[dict[str, Any]], size: tuple[int, int], skipped: dict[str, int],
                   protocol: str) -> list[_Region]:
    """Usable annotations at the image's (H, W), in the given order; empty or malformed ones count as
    ``bad_annotation``, and under authors those whose json ``area`` is 0 are skipped as ``zero_area``."""
    regions = []
    for ann in annotations:
        if protocol == AUTHORS and ann.get("area") == 0:
            skipped["zero_area"] += 1
            continue
        try:
            rle = to_rle(ann["segmentation"], *size)
        except (TypeError, ValueError, IndexError):
            rle = None
        area = int(mask_utils.area(rle)) if rle is not None else 0
        if area == 0:
            skipped["bad_annotation"] += 1
            continue
        regions.append(_Region(ann["category_id"], area, (ann["category_id"], int(ann.get("id", 0))), rle))
    return regions


def class_areas(regions: list[_Region], class_of: dict[int, int]) -> dict[int, int]:
    """Annotated area per class index, largest first (ties: lowest class index); ``class_of`` maps category ids to
    class indices."""
    areas: dict[int, int] = {}
    for r in regions:
        areas[class_of[r.category_id]] = areas.get(class_of[r.category_id], 0) + r.area
    return dict(sorted(areas.items(), key=lambda item: (-item[1], item[0])))


def sample_labels(areas: dict[int, int], protocol: str) -> list[int]:
    """The labels an image's samples get: every class it carries (ascending) under authors, its largest-area class
    under largest-first."""
    return sorted(areas) if protocol == AUTHORS else [next(iter(areas))]


def paint_mask(regions: list[_Region], size: tuple[int, int], part_of: dict[int, int], num_parts: int,
               protocol: str) -> np.ndarray:
    """H×W part ids. authors: regions in the given (json) order, each over the earlier ones. largest-first: larger
    regions first, so smaller, overlapping parts stay on top."""
    mask = np.zeros(size, dtype=mask_dtype(num_parts))
    ordered = regions if protocol == AUTHORS else sorted(regions, key=lambda r: (-r.area, r.order))
    for r in ordered:
        mask[mask_utils.decode(r.rle).astype(bool)] = part_of[r.category_id]
    return mask


def unique_stem(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem_2``, ``stem_3``, ... if already in ``used``; the result is added to ``used``."""
    n, candidate = 1, stem
    while candidate in used:
        n += 1
        candidate = f"{stem}_{n}"
    used.add(candidate)
    return candidate


def prepare_part_imagenet(src: Path, out: Path, *, seed: int = 0, overwrite: bool = False, strict: bool = False,
                          protocol: str = AUTHORS) -> DatasetInfo:
    """Convert the Part-ImageNet release at ``src`` into a prepared dataset at ``out`` (see the module docstring).

    Annotated images whose file is missing are skipped with a warning; so are undecodable images unless
    ``strict``, which makes them an error. Images without a usable annotation are skipped too. The skip
    counts go to ``source.skipped`` in dataset.yaml (``mixed_class`` counts kept images, see above).
    """
    check_protocol(protocol)
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise PartcliError(
            f"{src}: not a folder; expected the Part-ImageNet release (images and {', '.join(ANNOTATION_FILES)})"
        )
    prepare_output_dir(out, overwrite)
    files = find_annotation_files(src)
    skipped = {"missing_image": 0, "undecodable_image": 0, "no_annotation": 0, "mixed_class": 0, "bad_annotation": 0,
               "zero_area": 0}

    with DatasetWriter(out, [], [], name=NAME, overwrite=overwrite) as writer:
        pooled = _Pool(src, writer, skipped, strict, protocol)
        for split, path in files.items():
            pooled.add_file(split, path)
        classes, parts, part_of = build_taxonomy(pooled.categories, protocol)
        pooled.check_categories(set(part_of))
        writer.set_taxonomy(classes, parts)
        class_of = {cid: classes.index(parts[pid - 1].cls) for cid, pid in part_of.items()}
        images = [(image, class_areas(image.regions, class_of)) for image in pooled.usable_images()]
        skipped["mixed_class"] = sum(len(areas) > 1 for _, areas in images)
        if skipped["mixed_class"]:
            fate = "one sample per class" if protocol == AUTHORS else "labelled with the largest-area class"
            warn(f"{skipped['mixed_class']} image(s) have parts of several classes: {fate}")
        if skipped["bad_annotation"]:
            warn(f"{skipped['bad_annotation']} annotation(s) were empty, malformed or did not match their image: "
                 "ignored")
        if skipped["zero_area"]:
            warn(f"{skipped['zero_area']} annotation(s) have area 0 in their json: ignored")

        # Split over images, so that the samples of a mixed image never land in different splits.
        splits = stratified_split([next(iter(areas)) for _, areas in images], seed)
        used: set[str] = set()
        for (image, areas), split in track(list(zip(images, splits)), "part-imagenet: writing"):
            mask = paint_mask(image.regions, image.size, part_of, len(parts), protocol)
            labels = sample_labels(areas, protocol)
            stem = Path(image.file_name.replace("\\", "/")).stem
            for n, label in enumerate(labels, start=1):
                name = stem if len(labels) == 1 else f"{stem}__{classes[label]}"
                # the staged file moves into place with the last sample; earlier ones get a copy of its bytes
                data = image.staged if n == len(labels) else image.staged.read_bytes()
                writer.add(split, unique_stem(name, used), label, image=data,
                           image_ext=image.path.suffix.lower() or ".jpg", mask=mask)
        source = {"command": "prepare part-imagenet", "src": str(src.resolve()), "seed": seed, "strict": strict,
                  "protocol": protocol, "skipped": skipped}
        return writer.finish(source=source)


class _Pool:
    """The images of all json files, pooled by file name, built one file at a time (a file's json is dropped once
    its annotations are RLEs); each image file is read once, when an annotation first names it."""

    def __init__(self, src: Path, writer: DatasetWriter, skipped: dict[str, int], strict: bool, protocol: str):
        self.src, self.writer, self.skipped, self.strict, self.protocol = src, writer, skipped, strict, protocol
        self.categories: dict[Path, dict[str, Any]] = {}  # path -> {"categories": [...]}, for build_taxonomy
        self.images: dict[str, _Image] = {}
        self.split_of: dict[str, str] = {}  # the first file naming an image: where its file is looked for
        self.unannotated: set[str] = set()
        self.missing: list[str] = []
        self.undecodable: list[tuple[str, Path]] = []
        self.no_regions: set[str] = set()
        self.used: list[tuple[Path, dict[int, Any]]] = []  # per file: category id -> its first annotation id

    def add_file(self, split: str, path: Path) -> None:
        doc = load_coco(path)
        self.categories[path] = {"categories": doc["categories"]}
        annotated, unannotated, used = read_annotations(path, doc, self.skipped)
        del doc
        self.used.append((path, used))
        for name in [*annotated, *unannotated]:
            self.split_of.setdefault(name, split)
        self.unannotated.update(unannotated)
        roots = image_roots(self.src, split)
        for name in track(sorted(annotated), f"part-imagenet: reading {split} images"):
            self._add_annotations(name, annotated.pop(name), roots if self.split_of[name] == split
                                  else image_roots(self.src, self.split_of[name]))

    def _add_annotations(self, name: str, annotations: list[dict[str, Any]], roots: list[Path]) -> None:
        if name in self.images:  # named by an earlier file too: its size is known, its file was read
            image = self.images[name]
            image.regions += decode_regions(annotations, image.size, self.skipped, self.protocol)
            return
        if name in self.missing or any(name == n for n, _ in self.undecodable):
            return
        found = find_image(roots, name)
        if found is None:
            self.missing.append(name)
            return
        data = found.read_bytes()
        size = decoded_size(data)
        if size is None:
            if self.strict:
                raise PartcliError(f"{found}: image does not decode (drop --strict to skip such images)")
            self.undecodable.append((name, found))
            return
        self.images[name] = _Image(name, found, self.writer.stage(data), size,
                                   decode_regions(annotations, size, self.skipped, self.protocol))

    def check_categories(self, known: set[int]) -> None:
        for path, used in self.used:
            for cid, ann_id in used.items():
                if cid not in known:
                    raise PartcliError(f"{path}: annotation {ann_id} has unknown category_id {cid}")

    def usable_images(self) -> list[_Image]:
        """The images to keep, by file name; counts and warns about the rest."""
        self.skipped["no_annotation"] += len(self.unannotated - set(self.images) - set(self.missing)
                                             - {n for n, _ in self.undecodable})
        if self.missing:
            self.skipped["missing_image"] = len(self.missing)
            warn(f"{len(self.missing)} annotated image(s) not found under {self.src} (e.g. {sorted(self.missing)[0]}): "
                 "skipped")
        if self.undecodable:
            self.skipped["undecodable_image"] = len(self.undecodable)
            warn(f"{len(self.undecodable)} image(s) do not decode (e.g. {sorted(self.undecodable)[0][1]}): skipped")
        kept = []
        for name in sorted(self.images):
            if self.images[name].regions:
                kept.append(self.images[name])
            else:
                self.skipped["no_annotation"] += 1
        return kept
