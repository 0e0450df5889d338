"""torchrun / DistributedDataParallel plumbing: who we are, and sums across ranks."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from partcli.errors import PartcliError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group torchrun set up (WORLD_SIZE > 1); a single process needs nothing."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def leave_distributed() -> None:
    """Destroy the process group at the end of a torchrun command, on success or failure: PyTorch asks for it
    before exit, and its NCCL backend reports a group left alive as leaked resources."""
    if dist.is_initialized():
        dist.destroy_process_group()


def all_sum(values: list[float], info: DistInfo, device: torch.device | str = "cpu") -> list[float]:
    """Element-wise sum of ``values`` over all ranks (identity for one process)."""
    if not info.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def all_sum_tensor(t: torch.Tensor, info: DistInfo, device: torch.device | str = "cpu") -> torch.Tensor:
    """Sum of a (CPU) tensor over all ranks, e.g. a confusion matrix (identity for one process)."""
    if not info.enabled:
        return t
    summed = t.to(device)
    dist.all_reduce(summed)
    return summed.cpu()


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP syncs buffers at the start of each forward pass, so after an epoch's last step every rank holds
    statistics updated by its own batch; validation and checkpoints must all see rank 0's.
    """
    if not info.enabled:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=0)


def synchronise_batchnorm(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """``--sync-bn``: BatchNorm layers as SyncBatchNorm (statistics over every rank's batch, the paper's code) under
    torchrun on CUDA; a single process has nothing to synchronise, and ranks on the CPU keep their own statistics,
    with a warning (PyTorch's SyncBatchNorm trains on GPUs only)."""
    if not info.enabled:
        return model
    if device.type != "cuda":
        from partcli.progress import warn

        if info.is_main:
            warn("--sync-bn applies under torchrun on CUDA; BatchNorm statistics stay per process here")
        return model
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)


def raise_if_any_rank_failed(failure: BaseException | None, info: DistInfo) -> None:
    """Re-raise ``failure`` on its rank; on the others, raise a PartcliError with the first failing rank's message.

    Called by every rank at the same point, before the first collective that a failed rank would never reach
    (e.g. DDP's weight broadcast after rank 0 alone refused ``--out``): all ranks stop instead of waiting.
    """
    if info.enabled:
        messages: list[str | None] = [None] * info.world_size
        dist.all_gather_object(messages, None if failure is None else str(failure) or type(failure).__name__)
        failed = [(rank, text) for rank, text in enumerate(messages) if text is not None]
        if failed and failure is None:
            raise PartcliError(failed[0][1])
    if failure is not None:
        raise failure
