"""Where a command runs: the device (``--device auto``), mixed precision and DataLoader workers (``--workers auto``).

Every command that computes (``pretrain``, ``train``, ``pseudolabel``, ``evaluate``, ``attack``) chooses here, so
``auto`` means the same everywhere, and says what it chose in one info line.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, ContextManager

import torch

from partcli.errors import PartcliError

MAX_AUTO_WORKERS = 8  # per GPU: enough to feed one at 224 px; more only compete for the same cores


def pick_device(requested: str, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA when available, else the CPU; ``cuda`` (or ``cuda:N``) is refused without a CUDA device.

    Under torchrun each rank takes the GPU of its ``local_rank`` (and makes it the current device: NCCL
    collectives run on it).
    """
    kind = str(requested).split(":")[0]
    if kind not in ("auto", "cpu", "cuda"):
        raise PartcliError(f"--device {requested!r}: expected auto, cpu or cuda")
    if kind == "cpu" or (kind == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise PartcliError(f"--device {requested}: no CUDA device is available; use --device cpu or auto")
    device = torch.device(requested) if ":" in str(requested) else torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    return device


def check_device(device: str) -> None:
    """Refuse a device that is not ``cpu`` or ``cuda[:N]``, or CUDA where there is none (the Python APIs that take
    an already chosen device: ``visualize``, ``run_robustness``)."""
    if str(device).split(":")[0] not in ("cpu", "cuda"):
        raise PartcliError(f"--device {device!r}: expected cpu or cuda")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise PartcliError(f"--device {device}: no CUDA device is available; use --device cpu")


def resolve_workers(requested: int | str, device: torch.device) -> int:
    """``auto``: on CUDA the CPUs this process may use, shared by the ranks of this machine, capped; 0 on the CPU
    (the main process decodes while the model waits anyway, and workers would compete with it for the cores)."""
    if requested != "auto":
        return int(requested)
    if device.type != "cuda":
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(MAX_AUTO_WORKERS, cpus // max(ranks_here, 1)))


def loader_options(workers: int, device: torch.device, persistent: bool = False) -> dict[str, Any]:
    """DataLoader keywords: pinned memory on CUDA; ``persistent`` keeps the workers alive between passes."""
    return {"num_workers": workers, "pin_memory": device.type == "cuda",
            "persistent_workers": persistent and workers > 0}


def describe_runtime(requested_device: str, device: torch.device, requested_workers: int | str, workers: int,
                     amp: str = "off") -> str:
    """The info line saying what was chosen: ``device cuda:0 (auto), 8 DataLoader workers (auto), pinned memory``."""
    parts = [f"device {device}" + (" (auto)" if requested_device == "auto" else "")]
    parts.append(f"{workers} DataLoader worker{'s' if workers != 1 else ''}"
                 + (" (auto)" if requested_workers == "auto" else ""))
    if device.type == "cuda":
        parts.append("pinned memory")
        parts.append(f"amp {amp}")
    return ", ".join(parts)


def autocast_factory(amp: str, device: torch.device) -> Callable[[], ContextManager]:
    """A callable returning the autocast context for forward passes (attacks included): same precision."""
    if amp == "off" or device.type != "cuda":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return lambda: torch.autocast("cuda", dtype=dtype)
