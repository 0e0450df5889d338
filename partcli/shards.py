"""Sharded evaluation under torchrun: which batches this rank computes, and every rank's results.

``partcli attack`` and ``partcli robustness`` run as one process or as ``torchrun --nproc_per_node N -m partcli
...``. Under torchrun (WORLD_SIZE > 1) every rank loads the model, the split and the same samples; of a list of
work units (a suite's batches, or a robustness suite's corruption type × severity pairs) unit ``k`` is computed by
rank ``k % world_size`` (``Shard.map``), and every rank receives all the units' results, so that all ranks take the
same decisions afterwards (which samples the next attack attacks, which hygiene checks run) and rank 0 alone writes
files. A unit's result depends only on its inputs and its index (attacks seed their random draws per batch), so a
sharded run gives a single process's results, bit for bit on the CPU at the same number of threads.

The ranks exchange small Python objects (flags, logits, predicted classes) through a gloo group of their own with a
long timeout (``WAIT``), on GPUs too: the default NCCL group gives up after 10 minutes, and the ranks' shares of a
suite may take hours more on one rank than on another (one rank's corruption pair may be glass blur).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any, Callable, Iterator, Sequence, TypeVar

import torch
import torch.distributed as dist

from partcli.errors import PartcliError
from partcli.progress import set_quiet, track
from partcli.train.distributed import init_distributed

T = TypeVar("T")
R = TypeVar("R")
WAIT = timedelta(hours=24)  # how long a rank waits for the others at an exchange
SHOWN = 60  # characters of an option's value quoted when ranks disagree on it

Exchange = Callable[[Any], list[Any]]  # this rank's object -> every rank's, in rank order


@dataclass(frozen=True)
class Shard:
    """This process's place among the ranks of one evaluation (``rank`` 0 of 1 for a single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    exchange: Exchange | None = None  # needed when world_size > 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (all ranks must call it)."""
        return self.exchange(obj) if self.enabled else [obj]

    def map(self, items: Sequence[T], fn: Callable[[int, T], R], progress: str | None = None,
            every: int | None = None, status: Callable[[list[R]], str] | None = None) -> list[R]:
        """``[fn(k, items[k]) for every k]``: this rank computes the k with ``k % world_size == rank``, and every
        rank gets all the results. ``progress``: the description of the progress over this rank's units
        (``progress.track``: a line every ``every`` units off a terminal), with ``status(results so far)``."""
        mine = range(self.rank, len(items), self.world_size)
        local: list[tuple[int, R]] = []
        shown = (lambda: status([result for _, result in local])) if status else None
        for k in track(mine, progress, every=every, status=shown) if progress else mine:
            local.append((k, fn(k, items[k])))
        if not self.enabled:
            return [result for _, result in local]
        results = dict(pair for part in self.gather(local) for pair in part)
        return [results[k] for k in range(len(items))]

    def on_main(self, fn: Callable[[], R]) -> R:
        """``fn()`` run by rank 0 alone (e.g. reading or writing a file that only rank 0 keeps); every rank gets its
        result, and every rank stops when it fails (rank 0 with its own exception, the others with its message)."""
        result, failure = None, None
        if self.is_main:
            try:
                result = fn()
            except Exception as exc:  # noqa: BLE001 - passed on to the other ranks, then re-raised
                failure = exc
        if self.enabled:
            message = None if failure is None else str(failure) or type(failure).__name__
            result, message = self.gather((result, message))[0]
            if failure is None and message is not None:
                raise PartcliError(message)
        if failure is not None:
            raise failure
        return result

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """A set-up step that may fail on one rank only (a file missing on one node): when it fails on any rank,
        every rank stops, with that rank's one line, instead of leaving the others waiting at the next exchange."""
        failure = None
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - re-raised below, on every rank
            failure = exc
        if self.enabled:  # as raise_if_any_rank_failed, through this shard's exchange
            messages = self.gather(None if failure is None else str(failure) or type(failure).__name__)
            failed = [text for text in messages if text is not None]
            if failed and failure is None:
                raise PartcliError(failed[0])
        if failure is not None:
            raise failure

    def agree(self, values: dict[str, Any]) -> None:
        """Refuse, on every rank alike, values that differ between ranks: ``values`` maps an option as the user
        writes it (``--eps``) to this rank's value. Values are compared by a digest of their JSON form."""
        if not self.enabled:
            return
        mine = {name: (_digest(value), _shown(value)) for name, value in values.items()}
        everyone = self.gather(mine)
        for name in mine:
            for rank, theirs in enumerate(everyone):
                if theirs[name][0] != everyone[0][name][0]:
                    raise PartcliError(f"{name} differs between ranks (rank 0: {everyone[0][name][1]}, rank {rank}: "
                                       f"{theirs[name][1]}); start every rank with the same options and files")


SINGLE = Shard()
_group_of: dict[str, Any] = {}  # the evaluation group, and the default group it was made in


def join_ranks(device: object = "auto") -> Shard:
    """This process's shard: a single process, or under torchrun (WORLD_SIZE > 1) its rank, joining the process
    group if no one has yet (``init_distributed``: NCCL when ``device`` may use CUDA, else gloo). On GPUs the
    current device becomes the LOCAL_RANK's; ranks other than 0 go quiet (no info lines or progress bars; errors
    and warnings still print). The caller leaves the group at the end (``leave_distributed``)."""
    requested = str(getattr(device, "value", device))
    device_type = "cuda" if requested.split(":")[0] != "cpu" and torch.cuda.is_available() else "cpu"
    info = init_distributed(device_type)
    if not info.enabled:
        return SINGLE
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    if not info.is_main:
        set_quiet(True)
    return Shard(info.rank, info.world_size, info.local_rank, partial(_all_gather, group=_evaluation_group()))


def _evaluation_group() -> Any:
    """A gloo group over all ranks with the ``WAIT`` timeout, made once per process group (every rank calls this at
    the same point: making a group is collective)."""
    world = dist.group.WORLD
    if _group_of.get("world") is not world:
        _group_of.update(world=world, group=dist.new_group(backend="gloo", timeout=WAIT))
    return _group_of["group"]


def _all_gather(obj: Any, group: Any) -> list[Any]:
    out: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(out, obj, group=group)
    return out


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= SHOWN else text[:SHOWN - 1] + "…"


def tensor_digest(*tensors: torch.Tensor) -> str:
    """SHA-256 of tensors' bytes (any dtype and device): what ranks compare when they must hold the same weights or
    samples."""
    digest = hashlib.sha256()
    for t in tensors:
        flat = t.detach().cpu().contiguous().reshape(-1)
        digest.update(str(flat.dtype).encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()
