"""--device auto and --workers auto (issue 12): what is chosen, and the info line that says so."""
from __future__ import annotations

import pytest
import torch

from partcli.errors import PartcliError
from partcli.runtime import MAX_AUTO_WORKERS, describe_runtime, loader_options, pick_device, resolve_workers
from partcli.train.config import TrainConfig
from partcli.train.loop import Trainer


def test_auto_device_is_cuda_when_there_is_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    with pytest.raises(PartcliError, match="--device cuda: no CUDA device"):
        pick_device("cuda")
    with pytest.raises(PartcliError, match="--device 'tpu'"):
        pick_device("tpu")


def test_auto_workers_on_cuda_share_the_cpus_and_none_on_the_cpu(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(32)))
    cuda = torch.device("cuda", 0)
    assert resolve_workers("auto", torch.device("cpu")) == 0
    assert resolve_workers("auto", cuda) == MAX_AUTO_WORKERS == 8  # capped
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # torchrun: 8 ranks on this machine share its 32 CPUs
    assert resolve_workers("auto", cuda) == 4
    assert resolve_workers(3, torch.device("cpu")) == 3  # a number is kept
    assert loader_options(4, cuda, persistent=True) == {"num_workers": 4, "pin_memory": True,
                                                        "persistent_workers": True}
    assert loader_options(0, torch.device("cpu"), persistent=True) == {"num_workers": 0, "pin_memory": False,
                                                                       "persistent_workers": False}
    assert describe_runtime("auto", cuda, "auto", 8, "bf16") == \
        "device cuda:0 (auto), 8 DataLoader workers (auto), pinned memory, amp bf16"


def test_training_says_what_it_chose(synthetic_data, tmp_path, capsys, monkeypatch):
    from partcli.progress import is_quiet, set_quiet

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    quiet = is_quiet()
    set_quiet(False)
    try:
        trainer = Trainer(TrainConfig(data=str(synthetic_data), out=str(tmp_path / "run"), image_size=32,
                                      batch_size=16, epochs=1))
    finally:
        set_quiet(quiet)
    assert trainer.device.type == "cpu" and trainer.workers == 0
    assert not trainer.train_loader.pin_memory and trainer.train_loader.num_workers == 0
    assert "device cpu (auto), 0 DataLoader workers (auto)" in capsys.readouterr().err
