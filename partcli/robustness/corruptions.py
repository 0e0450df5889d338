"""Common corruptions (Hendrycks & Dietterich 2019; paper §5.1, Table 22): the 15 ImageNet-C types × 5 severities.

The corruptions come from ``imagecorruptions-imaug`` (import name ``imagecorruptions``), with ImageNet-C's own
parameter tables, applied at the model's resolution (the library needs at least 32 px). Those tables were made for
224-px images, so on small images blurs, zoom and pixelation are relatively stronger, and four of the tables are not
monotone in pixel distance from the clean image (glass blur's iteration counts go 2, 1, 3, 2, 2; frost and fog mix
the image and their overlay with weights that do not grow together; snow's layers differ per severity).

Determinism: image ``index`` of a split, corrupted with type ``name`` at ``severity``, is made with numpy's global
RNG seeded from ``(seed, index, type, severity)`` (the library draws from ``np.random``; impulse noise and glass blur
also take that seed explicitly), so an image does not depend on which others were made before it.

Cache (:class:`CorruptionCache`): one PNG per (corruption, severity, sample) in
``<cache>/<split>-<size>px-seed<seed>-<key>/<corruption>/<severity>/<index>.png``, where ``key`` hashes the dataset's
resolved path, its ``dataset.yaml`` and split CSV, and the corruption library's version (``key.json`` in the folder
says so in words). Files are written to a temporary name and renamed, so an interrupted run leaves only whole
images, and later runs (other checkpoints of the same resolution) read them instead of corrupting again.
"""
from __future__ import annotations

import hashlib
import io
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from PIL import Image

from partcli.errors import PartcliError, writing
from partcli.files import write_atomically

CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)  # ImageNet-C's 15 benchmark types, in its order (the library's 4 extra validation types are not used)
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
MIN_SIZE = 32  # the library refuses smaller images
_SEEDED_BY_ARGUMENT = ("impulse_noise", "glass_blur")  # these draw from their own generators, given a seed
SCHEME_VERSION = 1  # how partcli seeds and stores the images; part of the cache key


def check_corruptions(names: list[str] | tuple[str, ...], severities: list[int] | tuple[int, ...]) -> None:
    """Refuse unknown corruption names and severities outside 1–5, naming the option."""
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown or not names:
        raise PartcliError(f"--corruption {', '.join(unknown) or '(none)'}: expected some of {', '.join(CORRUPTIONS)}")
    bad = [s for s in severities if s not in SEVERITIES]
    if bad or not severities:
        raise PartcliError(f"--severity {', '.join(map(str, bad)) or '(none)'}: expected integers from 1 to 5")


def corruption_seed(seed: int, index: int, name: str, severity: int) -> int:
    """The 32-bit seed of one corrupted image: a function of (seed, sample index, type, severity) only."""
    return int(np.random.SeedSequence([seed, index, CORRUPTIONS.index(name), severity]).generate_state(1)[0])


def corrupt_image(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """``image`` (H×W×3 uint8, H, W ≥ 32) corrupted by ``name`` at ``severity`` with ``seed``; H×W×3 uint8."""
    from imagecorruptions import corrupt

    state = np.random.get_state()
    np.random.seed(seed)
    try:
        extra = {"seed": seed} if name in _SEEDED_BY_ARGUMENT else {}
        out = corrupt(np.ascontiguousarray(image), severity=severity, corruption_name=name, **extra)
    finally:
        np.random.set_state(state)  # leave the caller's global numpy RNG as it was
    return np.asarray(out, dtype=np.uint8).reshape(image.shape)


def library_version() -> str:
    try:
        return version("imagecorruptions-imaug")
    except PackageNotFoundError:
        return "unknown"


def require_library() -> None:
    try:
        import imagecorruptions  # noqa: F401
    except ImportError:
        raise PartcliError("--suite corruptions needs the package imagecorruptions-imaug: "
                           "pip install imagecorruptions-imaug") from None


class CorruptionCache:
    """Corrupted images of one (dataset, split, size, seed), made on first use and kept as PNG files."""

    def __init__(self, cache_root: str | Path, data: str | Path, split: str, size: int, seed: int):
        root = Path(data).resolve()
        key = {"dataset": str(root), "split": split, "image_size": size, "seed": seed,
               "dataset_yaml_sha1": _sha1(root / "dataset.yaml"), "split_csv_sha1": _sha1(root / f"{split}.csv"),
               "imagecorruptions_imaug": library_version(), "scheme": SCHEME_VERSION}
        digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
        self.folder = Path(cache_root) / f"{split}-{size}px-seed{seed}-{digest}"
        self.seed = seed
        self._key = key

    def get(self, images: np.ndarray, name: str, severity: int) -> np.ndarray:
        """All ``images`` (N×H×W×3 uint8, split order) corrupted; cached files are read, missing ones made."""
        folder = self.folder / name / str(severity)
        with writing(self.folder, "--cache"):
            folder.mkdir(parents=True, exist_ok=True)
            if not (self.folder / "key.json").exists():
                _atomic_write(self.folder / "key.json", json.dumps(self._key, indent=1).encode())
            out = np.empty_like(images)
            for index, image in enumerate(images):
                path = folder / f"{index}.png"
                cached = _read(path, image.shape)
                if cached is None:
                    cached = corrupt_image(image, name, severity, corruption_seed(self.seed, index, name, severity))
                    buffer = io.BytesIO()
                    Image.fromarray(cached).save(buffer, format="PNG")
                    _atomic_write(path, buffer.getvalue())
                out[index] = cached
        return out


def _read(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """A cached image, or None when it is missing or unreadable (then it is made again)."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError):
        return None
    return arr if arr.shape == tuple(shape) else None


def _atomic_write(path: Path, data: bytes) -> None:
    """A cache file, written atomically without an fsync: a file damaged by a power cut is made again (``_read``)."""
    write_atomically(path, data, sync=False)


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else ""
