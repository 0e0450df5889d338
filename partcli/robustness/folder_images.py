"""Images of a folder outside the prepared dataset (ImageNet-9, Stylized-ImageNet), evaluated as the split is.

Each image is resized and centre-cropped to the model's resolution exactly as the split (``eval_transform``) and
predicted in batches, so only one batch of decoded images is held at a time. A file that does not decode is
skipped and counted, not fatal: one bad JPEG among thousands should not end a long run.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors

from partcli.data.dataset import eval_transform
from partcli.errors import PartcliError
from partcli.progress import track

T = TypeVar("T")
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")  # compared lower-cased: ImageNet's .JPEG included
UNREADABLE = -1  # the prediction recorded for an image that did not decode


def check_folder(path: str | Path, option: str) -> Path:
    """``path`` as a Path; refuse, naming ``option``, one that does not exist or is not a folder."""
    path = Path(path)
    if not path.exists():
        raise PartcliError(f"{option} {path}: no such folder")
    if not path.is_dir():
        raise PartcliError(f"{option} {path}: a file, not a folder")
    return path


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder`` (by suffix), sorted by name."""
    with os.scandir(folder) as entries:
        return sorted(Path(e.path) for e in entries
                      if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES)


def subfolders(folder: Path) -> list[Path]:
    """The folders directly in ``folder``, sorted by name."""
    with os.scandir(folder) as entries:
        return sorted(Path(e.path) for e in entries if e.is_dir())


def read_rgb(path: Path) -> np.ndarray | None:
    """H×W×3 uint8 pixels of an image file, or None when it does not decode."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def at_model_size(image: np.ndarray, size: int) -> np.ndarray:
    """H×W×3 uint8 ``image`` resized and centre-cropped to size×size×3 as the split is (``eval_transform``)."""
    tensor = tv_tensors.Image(torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1))  # a copy
    return eval_transform(size)(tensor).as_subclass(torch.Tensor).permute(1, 2, 0).numpy()


def read_at_size(path: Path, size: int) -> np.ndarray | None:
    """An image file at the model's size (``at_model_size``), or None when it does not decode."""
    image = read_rgb(path)
    return None if image is None else at_model_size(image, size)


def predict_items(items: Sequence[T], load: Callable[[T], np.ndarray | None],
                  predict: Callable[[np.ndarray], np.ndarray], batch_size: int, description: str) -> np.ndarray:
    """The predicted class of every item's image, ``UNREADABLE`` where ``load`` (the image at the model's size, None
    when it does not decode) gave none; ``predict`` maps N×S×S×3 uint8 images to N labels."""
    out = np.full(len(items), UNREADABLE, dtype=np.int64)
    for start in track(range(0, len(items), batch_size), description):
        loaded = [(i, load(items[i])) for i in range(start, min(start + batch_size, len(items)))]
        ok = [(i, image) for i, image in loaded if image is not None]
        if ok:
            out[[i for i, _ in ok]] = predict(np.stack([image for _, image in ok]))
    return out


def accuracy(pred: np.ndarray, labels: np.ndarray) -> tuple[float | None, int]:
    """(accuracy over the readable images, their number); accuracy None when none was readable."""
    readable = pred != UNREADABLE
    if not readable.any():
        return None, 0
    return float((pred[readable] == labels[readable]).mean()), int(readable.sum())
