"""Read a ``torch.save`` file from elsewhere without executing anything it contains.

A pickle can name any Python callable and have the unpickler call it. ``torch.load(..., weights_only=True)``
only rebuilds tensors, containers and plain values, and refuses every other name before calling it; the one
addition allowed here is ``argparse.Namespace``, in which training scripts commonly store their options.
"""
from __future__ import annotations

import argparse
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from partcli.errors import PartcliError

ALLOWED_CLASSES = (argparse.Namespace,)
# How torch's restricted unpickler names what it refused, e.g. "Unsupported global: GLOBAL posix.system was not an
# allowed global" or "Trying to load unsupported GLOBAL posix.system whose module posix is blocked".
_REFUSED_NAME = re.compile(r"GLOBAL ([\w.]+)")


def read_untrusted(path: str | Path) -> Any:
    """The object stored in ``path``, rebuilt from tensors, plain values and ``argparse.Namespace`` only.

    A file that names anything else (a function, another class) is refused in one line naming it; nothing it
    names is imported or called.
    """
    path = Path(path)
    if path.is_dir():
        raise PartcliError(f"{path}: a folder; give the checkpoint file (.pt or .pth)")
    if not path.is_file():
        raise PartcliError(f"{path}: no such file")
    try:
        with torch.serialization.safe_globals(list(ALLOWED_CLASSES)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _REFUSED_NAME.search(str(exc))
        if found is None:
            raise PartcliError(f"{path}: not a PyTorch checkpoint (its pickle cannot be read safely)") from None
        raise PartcliError(f"{path}: refused: loading it would call {found.group(1)} (code, not data); partcli reads "
                           "only tensors, plain values and argparse.Namespace from it") from None
    except OSError as exc:
        raise PartcliError(f"{path}: cannot be read ({exc.strerror or exc.__class__.__name__})") from None
    except Exception as exc:  # noqa: BLE001 - arbitrary bytes make torch.load raise almost any type
        raise PartcliError(f"{path}: not a PyTorch checkpoint (torch.load failed: {exc.__class__.__name__})") from None
