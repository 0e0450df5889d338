"""The prepared-dataset contract (docs/formats.md, prepared dataset): its schema, reading and checking its folder.

A prepared dataset is a folder holding ``dataset.yaml``, ``train.csv``/``val.csv``/``test.csv`` and the
images and masks they reference by relative path. ``partcli.data.writer`` writes one; ``partcli.data.splits``
assigns its samples to splits.
"""
from __future__ import annotations

import csv
import io
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import yaml
from PIL import Image

from partcli.errors import PartcliError
from partcli.version import __version__

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
CSV_COLUMNS = ("image", "mask", "label", "mask_source")
MASK_SOURCES = ("gt", "pseudo", "")
PIXEL_LIMIT_VARIABLE = "PARTCLI_MAX_IMAGE_PIXELS"
DEFAULT_PIXEL_LIMIT = 100_000_000  # 100 Mpx: 50 times a Cityscapes image; a larger file is refused, not decoded
INTERNAL = "internal"  # dataset.yaml key of a dataset that is a step of another command (never evaluated)


@dataclass(frozen=True)
class Part:
    """One object part; part ids are 1..K in the order of ``DatasetInfo.parts``."""

    name: str
    cls: str


@dataclass
class Sample:
    """One row of a split CSV; paths are relative to the dataset folder."""

    image: str
    mask: str
    label: int
    mask_source: str = ""


@dataclass
class DatasetInfo:
    """The content of ``dataset.yaml``."""

    name: str
    classes: list[str]
    parts: list[Part]
    source: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def num_parts(self) -> int:
        """K: the number of parts, background excluded."""
        return len(self.parts)

    def part_to_class(self) -> list[int]:
        """Class index of every part id 1..K (index 0 of the result is part 1)."""
        return [self.classes.index(p.cls) for p in self.parts]

    def to_yaml_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format_version": self.format_version,
            "name": self.name,
            "source": self.source,
            "classes": list(self.classes),
            "parts": [{"name": p.name, "class": p.cls} for p in self.parts],
            "counts": self.counts,
        }
        doc.update(self.extra)
        return doc


def mask_dtype(num_parts: int) -> type:
    """uint8 masks while part ids fit (K < 255), uint16 beyond (docs/formats.md)."""
    return np.uint8 if num_parts < 255 else np.uint16


def read_dataset_info(root: str | Path) -> DatasetInfo:
    """Read and check ``root/dataset.yaml``; raise PartcliError naming the file on any problem."""
    path = Path(root) / "dataset.yaml"
    if not Path(root).is_dir():
        raise PartcliError(f"{root}: not a folder; expected a prepared dataset (see `partcli prepare --help`)")
    if not path.is_file():
        raise PartcliError(f"{path}: missing; {root} is not a prepared dataset (run `partcli prepare` first)")
    try:
        doc = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PartcliError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict):
        raise PartcliError(f"{path}: expected a mapping with format_version, classes and parts")
    version = doc.get("format_version")
    if version != FORMAT_VERSION:
        raise PartcliError(
            f"{path}: unknown format_version {version!r}; this partcli ({__version__}) reads version "
            f"{FORMAT_VERSION}: re-run `partcli prepare` or upgrade partcli"
        )
    for key in ("classes", "parts"):
        if key not in doc:
            raise PartcliError(f"{path}: missing field {key!r}")
    if not isinstance(doc["classes"], list):
        raise PartcliError(f"{path}: 'classes' must be a list of class names, got {doc['classes']!r}")
    if not isinstance(doc["parts"], list) or not all(isinstance(p, dict) and {"name", "class"} <= set(p)
                                                     for p in doc["parts"]):
        raise PartcliError(f"{path}: 'parts' must be a list of {{name, class}} mappings, got {doc['parts']!r}")
    classes = [str(c) for c in doc["classes"]]
    parts = [Part(str(p["name"]), str(p["class"])) for p in doc["parts"]]
    if not classes:
        raise PartcliError(f"{path}: 'classes' is empty")
    for p in parts:
        if p.cls not in classes:
            raise PartcliError(f"{path}: part {p.name!r} belongs to unknown class {p.cls!r}")
    known = {"format_version", "name", "source", "classes", "parts", "counts"}
    return DatasetInfo(
        name=str(doc.get("name", Path(root).name)),
        classes=classes,
        parts=parts,
        source=doc.get("source") or {},
        counts=doc.get("counts") or {},
        format_version=version,
        extra={k: v for k, v in doc.items() if k not in known},
    )


def refuse_internal(root: str | Path, info: DatasetInfo) -> None:
    """Refuse a dataset that is a working step of another command (dataset.yaml ``internal``: e.g. the labelled
    subset ``pseudolabel`` trains its segmenter on, left behind by an interrupted run): not a dataset to report on."""
    if info.extra.get(INTERNAL):
        raise PartcliError(f"{root}: {info.extra[INTERNAL]}; not a dataset to evaluate or describe")


def read_split(root: str | Path, split: str, info: DatasetInfo) -> list[Sample]:
    """Read ``root/<split>.csv``; raise PartcliError for a missing, malformed or empty split.

    Paths must be relative and stay inside the dataset folder (or the folders its dataset.yaml declares it reads:
    ``PathsInside``), and an image may be listed once.
    """
    path = Path(root) / f"{split}.csv"
    if split not in SPLITS:
        raise PartcliError(f"--split {split!r}: expected one of {', '.join(SPLITS)}")
    if not path.is_file():
        raise PartcliError(f"{path}: missing split file")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a UTF-8 byte-order mark (spreadsheets write one) is dropped
    except UnicodeDecodeError as exc:
        raise PartcliError(f"{path}: not UTF-8 text (byte {exc.start}); save it as a UTF-8 CSV") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = set(CSV_COLUMNS) - set(reader.fieldnames or [])
    if missing:
        raise PartcliError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    inside = PathsInside(Path(root))
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for lineno, row in enumerate(reader, start=2):
        samples.append(_sample(row, f"{path}:{lineno}", info, inside))
        if row["image"] in seen:
            raise PartcliError(f"{path}:{lineno}: image {row['image']} is listed again (first on line "
                               f"{seen[row['image']]}); a sample would count twice: remove one of the rows")
        seen[row["image"]] = lineno
    if not samples:
        raise PartcliError(f"{path}: split {split!r} is empty")
    return samples


def _sample(row: dict[str, str | None], where: str, info: DatasetInfo, inside: "PathsInside") -> Sample:
    if not row["image"]:
        raise PartcliError(f"{where}: no image path (expected columns {', '.join(CSV_COLUMNS)})")
    try:
        label = int(row["label"])
    except (TypeError, ValueError):  # TypeError: a short row leaves the cell None
        raise PartcliError(f"{where}: label {row['label']!r} is not an integer") from None
    if not 0 <= label < info.num_classes:
        raise PartcliError(f"{where}: label {label} outside 0..{info.num_classes - 1}")
    for column in ("image", "mask"):
        if row[column] and Path(row[column]).is_absolute():
            raise PartcliError(f"{where}: {column} path {row[column]!r} is absolute; the contract wants paths "
                               "relative to the dataset folder")
        if row[column]:
            inside.check(row[column], f"{where}: {column}")
    source = row["mask_source"] or ""
    if source not in MASK_SOURCES:
        raise PartcliError(f"{where}: mask_source {source!r} not one of gt, pseudo or empty")
    return Sample(row["image"], row["mask"] or "", label, source)


class PathsInside:
    """Where a dataset's files may lie: its folder and, for a derived dataset, the folders its dataset.yaml
    declares in ``source`` (``parent``, ``unlabelled``: a pseudo-labelled dataset reads its parent's images), and
    theirs in turn. A path is resolved, symbolic links included, before it is checked."""

    def __init__(self, root: Path, depth: int = 0):
        self.root = root
        self.allowed = [root.resolve()]
        source = read_dataset_info(root).source
        for key in ("parent", "unlabelled"):
            declared = source.get(key) if isinstance(source, dict) else None
            if isinstance(declared, str) and declared:
                folder = (root / declared).resolve()
                self.allowed.append(folder)
                if key == "parent" and depth < 8 and (folder / "dataset.yaml").is_file():
                    try:
                        self.allowed += PathsInside(folder, depth + 1).allowed[1:]
                    except PartcliError:
                        pass  # the parent's own problems are reported when it is read

    def check(self, rel: str, where: str) -> None:
        target = (self.root / rel).resolve()
        if not any(target == a or a in target.parents for a in self.allowed):
            raise PartcliError(f"{where} path {rel!r} leads to {target}, outside the dataset folder (and the folders "
                               "its dataset.yaml declares); paths must stay inside it")


def pixel_limit() -> int:
    """The largest image partcli decodes (pixels): ``PARTCLI_MAX_IMAGE_PIXELS``, default 100 Mpx."""
    value = os.environ.get(PIXEL_LIMIT_VARIABLE, "")
    try:
        return int(value) if value else DEFAULT_PIXEL_LIMIT
    except ValueError:
        raise PartcliError(f"{PIXEL_LIMIT_VARIABLE}={value!r}: expected a number of pixels") from None


@contextmanager
def open_image(path: Path, what: str) -> Iterator[Image.Image]:
    """``Image.open`` (lazy: the header only) with partcli's errors: one line naming the file when it is missing,
    does not decode, or has more pixels than ``pixel_limit`` (checked from the header, before any decoding;
    PIL's own decompression-bomb warning and error are replaced by this check)."""
    limit = pixel_limit()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                im = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = previous
    except FileNotFoundError:
        raise PartcliError(f"{path}: {what} file missing") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise PartcliError(f"{path}: {what} does not decode ({exc.__class__.__name__})") from None
    with im:
        if im.width * im.height > limit:
            raise PartcliError(f"{path}: {what} of {im.width}x{im.height} pixels, more than partcli decodes "
                               f"({limit:,}); set {PIXEL_LIMIT_VARIABLE} higher if the file is genuine")
        yield im


def load_image(root: Path, rel: str) -> Image.Image:
    """Decode an RGB image; PartcliError naming the file if it is missing, too large or does not decode."""
    path = root / rel
    with open_image(path, "image") as im:
        try:
            return im.convert("RGB")
        except (OSError, SyntaxError, ValueError) as exc:
            raise PartcliError(f"{path}: image does not decode ({exc.__class__.__name__})") from None


def load_mask(root: Path, rel: str, num_parts: int, size: tuple[int, int]) -> np.ndarray:
    """Decode a part mask (H×W integer part ids) and check it against its image's ``size`` (W, H) and K."""
    path = root / rel
    with open_image(path, "mask") as im:
        try:
            mask = np.array(im)
        except (OSError, SyntaxError, ValueError) as exc:
            raise PartcliError(f"{path}: mask does not decode ({exc.__class__.__name__})") from None
    if mask.ndim != 2:
        raise PartcliError(f"{path}: mask must be single-channel, got shape {mask.shape}")
    if not np.issubdtype(mask.dtype, np.integer) and mask.dtype != bool:
        raise PartcliError(f"{path}: mask holds {mask.dtype} values; part ids must be integers (an 8- or 16-bit "
                           "PNG), not rounded from fractions")
    if (mask.shape[1], mask.shape[0]) != tuple(size):
        raise PartcliError(
            f"{path}: mask size {mask.shape[1]}x{mask.shape[0]} differs from its image's {size[0]}x{size[1]}"
        )
    top = int(mask.max()) if mask.size else 0
    if top > num_parts:
        raise PartcliError(f"{path}: part id {top} > K={num_parts} declared in dataset.yaml")
    return mask.astype(np.int64)


def check_split_files(root: str | Path, samples: Iterable[Sample], missing_masks_ok: bool = False) -> None:
    """Check that every image and mask of a split exists, is an image and has matching sizes, from headers only.

    PIL reads a file's header without decoding its pixels, so this costs well under a millisecond per file and
    lets a command refuse a broken dataset before it writes anything. Two faults need the pixels and are
    still only found when a sample is loaded (``load_image``/``load_mask``): corrupt pixel data behind a valid
    header, and a part id > K. ``missing_masks_ok`` skips mask files that do not exist (withheld masks).
    """
    root = Path(root)
    for sample in samples:
        size = _header(root / sample.image, "image").size
        if sample.mask and not (missing_masks_ok and not (root / sample.mask).exists()):
            header = _header(root / sample.mask, "mask")
            if len(header.getbands()) != 1:
                raise PartcliError(f"{root / sample.mask}: mask must be single-channel, got mode {header.mode}")
            if header.mode == "F":
                raise PartcliError(f"{root / sample.mask}: mask holds floating-point values; part ids must be "
                                   "integers (an 8- or 16-bit PNG), not rounded from fractions")
            if header.size != size:
                raise PartcliError(
                    f"{root / sample.mask}: mask size {header.size[0]}x{header.size[1]} differs from its image's "
                    f"{size[0]}x{size[1]}"
                )


def _header(path: Path, what: str) -> Image.Image:
    """Open ``path`` lazily (header only) and close it; the returned object still knows size and mode."""
    with open_image(path, what) as im:
        return im
