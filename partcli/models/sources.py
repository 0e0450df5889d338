"""Models to evaluate, whatever made them: a partcli checkpoint (``--ckpt``) or any model (``--model``).

``--model`` takes, as RobustBench and AutoAttack do, an ``nn.Module`` that maps N×3×H×W images in [0, 1] to class
logits:

- ``FILE.py:FUNCTION``: the file is imported (it is the user's own code, run on request) and ``FUNCTION()`` must
  return the module. A module with the attribute ``has_segmenter = True`` is a part model: called as
  ``module(x, return_seg=True)`` it returns ``(logits, part_logits)``, part_logits N×(K+1)×H×W, which the
  segmentation-guided attacks and pixel metrics use.
- ``FILE.pt2``: a ``torch.export.save``d program (export it with a dynamic batch dimension).
- a TorchScript file (``torch.jit.save``).
- a partcli checkpoint, as with ``--ckpt``.

Any other file, in particular a pickle, is refused without being unpickled: loading one could run its code.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from partcli.errors import PartcliError
from partcli.files import file_sha256

if TYPE_CHECKING:
    from partcli.checkpoint import Checkpoint


@dataclass
class ModelSource:
    """A model ready to evaluate and what partcli knows about it."""

    model: nn.Module  # forward(x, return_seg=False): logits, or (logits, part logits or None)
    name: str  # what results CSVs record in their checkpoint column
    option: str  # "--ckpt" or "--model", for messages
    fingerprint: str  # sha256 of the file(s) it came from
    checkpoint: Checkpoint | None = None  # the partcli checkpoint, when it is one

    @property
    def config(self) -> dict[str, Any]:
        """The checkpoint's stored configuration (model, train, dataset); empty for another model."""
        return self.checkpoint.config if self.checkpoint is not None else {}

    @property
    def num_classes(self) -> int | None:
        return self.checkpoint.model_config.num_classes if self.checkpoint is not None else None

    @property
    def image_size(self) -> int | None:
        """The resolution a partcli model was trained at; None for other models."""
        size = self.checkpoint.dataset.image_size if self.checkpoint is not None else None
        return int(size) if size is not None else None

    @property
    def train_adv(self) -> str | None:
        return self.checkpoint.train.get("adv") if self.checkpoint is not None else None


class ExternalModel(nn.Module):
    """A user's module under partcli's calling convention (``forward(x, return_seg=False)``).

    Its own train/eval state is left alone (an exported program refuses ``eval()``; the user's module is expected in
    the mode it should be evaluated in, and is put in eval mode when it supports that)."""

    def __init__(self, inner: nn.Module, has_segmenter: bool):
        super().__init__()
        self.inner = inner
        self.has_segmenter = has_segmenter

    def train(self, mode: bool = True) -> "ExternalModel":
        self.training = mode
        return self

    def forward(self, x: torch.Tensor, return_seg: bool = False):
        if return_seg and self.has_segmenter:
            return self.inner(x, return_seg=True)
        out = self.inner(x)
        if not isinstance(out, torch.Tensor):
            raise PartcliError(f"--model: the module returned {type(out).__name__}, not a tensor of logits")
        return (out, None) if return_seg else out


def open_model(ckpt: str | Path | None = None, model: str | Path | nn.Module | None = None) -> ModelSource:
    """The model named by ``--ckpt`` (a partcli checkpoint) or ``--model`` (see the module docstring; from Python
    also an ``nn.Module``): exactly one."""
    if isinstance(model, ModelSource):
        return model
    if (ckpt is None) == (model is None):
        raise PartcliError("give the model to evaluate as --ckpt CHECKPOINT or --model FILE (one of them)")
    if ckpt is not None:
        return _partcli_checkpoint(Path(ckpt), "--ckpt")
    if isinstance(model, nn.Module):
        return _module(model)
    path, function = _split_spec(str(model))
    if function is not None:
        return _python_function(path, function)
    if not path.is_file():
        raise PartcliError(f"--model {path}: file not found")
    if path.suffix == ".pt2":
        return _exported_program(path)
    kind = _zip_kind(path)
    if kind == "torchscript":
        return _torchscript(path)
    if kind == "torch.save":
        return _partcli_checkpoint(path, "--model")
    raise PartcliError(f"--model {path}: not a model partcli can load without running its code (expected "
                       "FILE.py:FUNCTION, a torch.export .pt2 file, a TorchScript file or a partcli checkpoint)")


def check_logits(source: ModelSource, x: torch.Tensor, num_classes: int) -> None:
    """One forward pass on ``x``: the output must be N×num_classes logits (not probabilities of another shape)."""
    try:
        with torch.no_grad():
            out = source.model(x)
    except Exception as exc:  # noqa: BLE001 - the user's model: its failure is a one-line refusal, not a traceback
        first = (str(exc).strip().splitlines() or [""])[0]
        raise PartcliError(f"{source.option} {source.name}: fails on {len(x)} images of {'×'.join(map(str, x.shape[1:]))} "
                           f"({type(exc).__name__}: {first}); --image-size sets the size it is given") from None
    if not isinstance(out, torch.Tensor) or out.shape != (len(x), num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise PartcliError(f"{source.option} {source.name}: returned {shape} for {len(x)} images; expected "
                           f"{len(x)}×{num_classes} logits (the dataset has {num_classes} classes)")


# ---------------------------------------------------------------------------------------------------- kinds
def _split_spec(spec: str) -> tuple[Path, str | None]:
    text = str(spec)
    head, sep, tail = text.rpartition(":")
    if sep and head.endswith(".py"):
        if not tail.isidentifier():
            raise PartcliError(f"--model {text}: {tail!r} is not a function name (FILE.py:FUNCTION)")
        return Path(head), tail
    if text.endswith(".py"):
        raise PartcliError(f"--model {text}: name the function that builds the model, FILE.py:FUNCTION")
    return Path(text), None


def _python_function(path: Path, function: str) -> ModelSource:
    if not path.is_file():
        raise PartcliError(f"--model {path}:{function}: file {path} not found")
    name = f"partcli_user_model_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling inside the file need their module registered
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's file may raise anything
        sys.modules.pop(name, None)
        raise PartcliError(f"--model {path}:{function}: importing {path} failed ({_describe(exc)})") from None
    fn = getattr(module, function, None)
    if not callable(fn):
        raise PartcliError(f"--model {path}:{function}: {path} defines no function {function}")
    try:
        built = fn()
    except Exception as exc:  # noqa: BLE001
        raise PartcliError(f"--model {path}:{function}: {function}() raised {_describe(exc)}") from None
    if not isinstance(built, nn.Module):
        raise PartcliError(f"--model {path}:{function}: {function}() returned {type(built).__name__}, not a "
                           "torch.nn.Module")
    built.eval()
    return ModelSource(ExternalModel(built, bool(getattr(built, "has_segmenter", False))), f"{path}:{function}",
                       "--model", file_sha256(path))


def _module(module: nn.Module) -> ModelSource:
    """A module given from Python: named by its class, fingerprinted by its weights."""
    digest = hashlib.sha256()
    for key, tensor in module.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    if getattr(module, "has_segmenter", False) and hasattr(module, "segment"):  # a partcli model
        return ModelSource(module.eval(), type(module).__name__, "model", digest.hexdigest())
    try:
        module.eval()
    except NotImplementedError:  # an exported program's module
        pass
    return ModelSource(ExternalModel(module, bool(getattr(module, "has_segmenter", False))), type(module).__name__,
                       "model", digest.hexdigest())


def _exported_program(path: Path) -> ModelSource:
    program = load_exported_program(path, "--model")
    return ModelSource(ExternalModel(program.module(), False), str(path), "--model", file_sha256(path))


def load_exported_program(path: str | Path, option: str, hint: str = "") -> Any:
    """``torch.export.load(path)``, or one line naming ``option`` and the file (followed by ``hint``) when it is not
    an exported program. torch logs a whole traceback as warnings before it raises on such a file: that log is
    silenced, and a file that is not even a zip archive (a pickle) is refused without calling torch."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise PartcliError(f"{option} {path}: not a torch.export program (not a zip archive: a pickle or another "
                           f"format){hint}")
    try:
        with warnings.catch_warnings(), _quiet_logger("torch.export"):
            warnings.simplefilter("ignore")
            return torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file raises many types
        raise PartcliError(f"{option} {path}: not a torch.export program (a zip archive torch.export.load refused: "
                           f"{type(exc).__name__}){hint}") from None


@contextlib.contextmanager
def _quiet_logger(name: str):
    """Nothing below CRITICAL from the logger ``name`` and its children while the block runs."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _torchscript(path: Path) -> ModelSource:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001
        raise PartcliError(f"--model {path}: not a loadable TorchScript file ({_describe(exc)})") from None
    module.eval()
    return ModelSource(ExternalModel(module, False), str(path), "--model", file_sha256(path))


def _partcli_checkpoint(path: Path, option: str) -> ModelSource:
    from partcli.checkpoint import Checkpoint, model_from_checkpoint

    checkpoint = Checkpoint.load(path)
    model = model_from_checkpoint(checkpoint, f"{option} {path}").eval()
    return ModelSource(model, str(path), option, file_sha256(path), checkpoint)


def _zip_kind(path: Path) -> str | None:
    """"torchscript", "torch.save" (a zip holding a pickle: loaded only with weights_only) or None."""
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if any(n.split("/", 1)[-1].startswith("code/") for n in names):
        return "torchscript"
    if any(n.endswith("data.pkl") for n in names):
        return "torch.save"
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
