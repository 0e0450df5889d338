"""The prepared-dataset contract (docs/formats.md, prepared dataset): reading, validating and writing its folder.

A prepared dataset is a folder holding ``dataset.yaml``, ``train.csv``/``val.csv``/``test.csv`` and the
images and masks they reference by relative path. Writers build it in a temporary sibling folder and
rename it into place at the end, so an interrupted run never leaves a folder that passes validation.
"""
from __future__ import annotations

import csv
import io
import os
import re
import secrets
import shutil
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import yaml
from PIL import Image

from partcli.errors import PartcliError, writing
from partcli.progress import info
from partcli.version import __version__

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
CSV_COLUMNS = ("image", "mask", "label", "mask_source")
MASK_SOURCES = ("gt", "pseudo", "")
PARTIAL_SUFFIX = ".partial"  # a dataset being written, in a hidden folder beside its --out
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


def prepare_output_dir(out: str | Path, overwrite: bool, option: str = "--out", dataset: bool = True) -> Path:
    """Refuse an existing, non-empty ``out`` unless ``overwrite``; return it as a Path (not created).

    ``dataset``: ``out`` is a prepared dataset, which ``--overwrite`` replaces whole; a non-empty folder that is not
    one (no dataset.yaml) is refused even with ``--overwrite``, so that unrelated files are never deleted.
    """
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise PartcliError(f"{option} {out}: exists and is not a folder")
        if any(out.iterdir()) and not overwrite:
            raise PartcliError(f"{option} {out}: exists and is not empty; choose another path or pass --overwrite")
        if dataset and any(out.iterdir()) and not (out / "dataset.yaml").is_file():
            raise PartcliError(f"{option} {out}: holds files but no prepared dataset (no dataset.yaml), and "
                               "--overwrite replaces only a prepared dataset: choose another folder or empty it")
    return out


def stratified_assign(
    labels: Iterable[int], fractions: Mapping[str, float], seed: int
) -> list[str]:
    """Assign every sample to a named group, per class, in the given proportions, reproducibly.

    Within each class the samples are shuffled with ``seed`` and cut by cumulative fractions (rounded), so
    each group gets its share of every class. Used for the 80/10/10 splits and for label fractions.
    """
    labels = list(labels)
    names = list(fractions)
    total = sum(fractions.values())
    out = [""] * len(labels)
    rng = np.random.default_rng(seed)
    for cls in sorted(set(labels)):
        idx = [i for i, lab in enumerate(labels) if lab == cls]
        order = rng.permutation(len(idx))
        cuts, acc = [], 0.0
        for name in names[:-1]:
            acc += fractions[name] / total
            cuts.append(int(round(acc * len(idx))))
        cuts.append(len(idx))
        start = 0
        for name, stop in zip(names, cuts):
            for j in order[start:stop]:
                out[idx[j]] = name
            start = stop
    return out


def stratified_split(labels: Iterable[int], seed: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> list[str]:
    """The paper's per-class, seeded train/val/test re-partition (App. A), 80/10/10 by default."""
    return stratified_assign(labels, dict(zip(SPLITS, fractions)), seed)


def partial_folder(out: Path) -> Path:
    """A new, empty ``.<out name>.<8 random characters>.partial`` folder beside ``out``, made with the umask's
    permissions (``tempfile.mkdtemp`` would make it private, and the dataset would stay private once renamed)."""
    while True:
        folder = out.parent / f".{out.name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue


def remove_partial_folders(out: Path) -> None:
    """Delete the ``.<out name>.<random>.partial`` folders that killed writes of ``out`` left beside it."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.[a-z0-9_]{{8}}{re.escape(PARTIAL_SUFFIX)}")  # partial_folder's
    stale = [p for p in out.parent.iterdir() if p.is_dir() and pattern.fullmatch(p.name)]
    for folder in stale:
        shutil.rmtree(folder)
    if stale:
        info(f"removed {len(stale)} partial folder(s) that an interrupted run left beside {out}")


class DatasetWriter:
    """Builds a prepared dataset in a temporary sibling folder and renames it to ``out`` on ``finish``.

    Use as a context manager: if the block raises (or the process dies), ``out`` is left untouched and the
    temporary folder is removed (or, after a kill, left with a ``.partial`` name and no dataset.yaml, until the
    next write of ``out`` removes it).
    """

    STAGED = ".staged"  # images written before their split is known (``stage``), moved into place by ``add``

    def __init__(self, out: str | Path, classes: list[str], parts: list[Part], name: str, overwrite: bool = False):
        self.out = prepare_output_dir(out, overwrite)
        self.tmp: Path | None = None
        self._rows: dict[str, list[Sample]] = {s: [] for s in SPLITS}
        self._staged = 0
        self.info = DatasetInfo(name=name, classes=[], parts=[])
        self.set_taxonomy(classes, parts)

    def set_taxonomy(self, classes: list[str], parts: list[Part]) -> None:
        """Set the classes and parts, for a source that defines them only after it has been read; before any ``add``."""
        assert not any(self._rows.values()), "set the taxonomy before adding samples"
        self.info.classes, self.info.parts = list(classes), list(parts)
        self._dtype = mask_dtype(len(parts))

    def stage(self, data: bytes) -> Path:
        """Write an encoded image now, before its split is known, so that a preparer reads each source image once;
        ``add(image=<the returned path>)`` moves it into place, ``finish`` removes what was never added."""
        assert self.tmp is not None, "use DatasetWriter as a context manager"
        folder = self.tmp / self.STAGED
        folder.mkdir(exist_ok=True)
        self._staged += 1
        path = folder / str(self._staged)
        path.write_bytes(data)
        return path

    def __enter__(self) -> "DatasetWriter":
        with writing(self.out):
            self.out.parent.mkdir(parents=True, exist_ok=True)
            remove_partial_folders(self.out)
            self.tmp = partial_folder(self.out)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tmp is not None and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def add(
        self,
        split: str,
        stem: str,
        label: int,
        image: Image.Image | bytes | Path | None = None,
        image_ext: str = ".png",
        mask: np.ndarray | Path | None = None,
        mask_source: str = "gt",
        image_rel: str | None = None,
    ) -> Sample:
        """Write one sample and record its CSV row.

        ``image`` is a PIL image (saved losslessly as PNG unless ``image_ext`` is .jpg), the raw bytes of
        an already-encoded file (copied as is, so JPEGs are not re-compressed) or the path ``stage`` returned for
        such bytes (moved into place). ``image_rel`` instead
        references an existing file by a path relative to the dataset folder (nothing is written). ``mask`` is an
        H×W array of part ids, or the path of a PNG the caller already encoded in the dataset's mask format (moved
        into place unchecked: a preparer's worker process encodes each mask once).
        ``stem`` names the files: ``images/<split>/<stem><ext>``, ``masks/<split>/<stem>.png``.
        """
        assert self.tmp is not None, "use DatasetWriter as a context manager"
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}")
        if not 0 <= label < self.info.num_classes:
            raise ValueError(f"label {label} outside 0..{self.info.num_classes - 1}")
        if image_rel is None:
            image_rel = f"images/{split}/{stem}{image_ext}"
            dest = self.tmp / image_rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(image, Path):
                os.replace(image, dest)
            elif isinstance(image, (bytes, bytearray)):
                dest.write_bytes(image)
            elif isinstance(image, Image.Image):
                image.convert("RGB").save(dest, quality=95) if image_ext.lower() in (".jpg", ".jpeg") else image.convert("RGB").save(dest)
            else:
                raise ValueError("give either image (PIL image or bytes) or image_rel")
        mask_rel = ""
        if isinstance(mask, Path):
            mask_rel = f"masks/{split}/{stem}.png"
            (self.tmp / mask_rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(mask, self.tmp / mask_rel)
        elif mask is not None:
            if mask.ndim != 2:
                raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
            if mask.size and (int(mask.max()) > self.info.num_parts or int(mask.min()) < 0):
                raise ValueError(f"mask of {stem}: part ids outside 0..{self.info.num_parts}")
            mask_rel = f"masks/{split}/{stem}.png"
            self.write_mask(mask_rel, mask)
        else:
            mask_source = ""
        row = Sample(image_rel, mask_rel, int(label), mask_source)
        self._rows[split].append(row)
        return row

    def write_mask(self, rel: str, mask: np.ndarray) -> None:
        """Save a part-id mask as a lossless single-channel PNG (uint8, or uint16 when K ≥ 255)."""
        assert self.tmp is not None
        dest = self.tmp / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(mask.astype(self._dtype))).save(buf, format="PNG")
        dest.write_bytes(buf.getvalue())

    def finish(self, source: dict[str, Any], extra: dict[str, Any] | None = None) -> DatasetInfo:
        """Write the split CSVs and dataset.yaml, then move the folder into place atomically."""
        assert self.tmp is not None
        for split in SPLITS:
            if not self._rows[split]:
                raise PartcliError(f"{self.out}: split {split!r} would be empty; the source holds too few usable samples for an 80/10/10 split")
        counts: dict[str, dict[str, int]] = {}
        for split, rows in self._rows.items():
            with (self.tmp / f"{split}.csv").open("w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(CSV_COLUMNS)
                for r in rows:
                    writer.writerow([r.image, r.mask, r.label, r.mask_source])
            counts[split] = {c: sum(r.label == i for r in rows) for i, c in enumerate(self.info.classes)}
        self.info.counts = counts
        shutil.rmtree(self.tmp / self.STAGED, ignore_errors=True)  # staged images that were never added
        self.info.source = {**source, "partcli_version": __version__}
        self.info.extra = dict(extra or {})
        (self.tmp / "dataset.yaml").write_text(yaml.safe_dump(self.info.to_yaml_dict(), sort_keys=False))
        if self.out.exists():
            shutil.rmtree(self.out)
        os.replace(self.tmp, self.out)
        self.tmp = None
        return self.info
