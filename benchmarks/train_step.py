"""Cost of a PGD-k adversarial training step relative to k + 1 plain forward+backward passes.

Times, interleaved in the same run, (a) one plain forward+backward of the training loss (Eq. 5) and (b) one
PGD-k training step as the loop runs it (``training_loss`` with ``--adv pgd``, then backward), and prints
the medians and the ratio (b) / ((k + 1)·(a)). A ratio near 1 means the attack adds no overhead beyond its
k forward+backward passes; below 1 is possible because attack passes compute no parameter gradients.

    python benchmarks/train_step.py --arch bbox --backbone resnet18 --batch-size 16 --image-size 64 --steps 10
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

import torch

from partcli.models.registry import ModelConfig, build_model
from partcli.train.config import TrainConfig
from partcli.train.losses import combined_loss
from partcli.runtime import autocast_factory
from partcli.train.step import training_loss

NUM_CLASSES, PARTS_PER_CLASS = 5, 4


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="bbox")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="PGD steps k")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="off", choices=("off", "bf16", "fp16"))
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions of each (after one warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    return parser.parse_args()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    k = NUM_CLASSES * PARTS_PER_CLASS
    model_cfg = ModelConfig(arch=args.arch, backbone=args.backbone, num_classes=NUM_CLASSES, num_parts=k,
                            part_to_class=[i // PARTS_PER_CLASS for i in range(k)])
    model = build_model(model_cfg).to(device).train()
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    x = torch.rand(args.batch_size, 3, args.image_size, args.image_size, device=device)
    x = x.contiguous(memory_format=memory_format)
    y = torch.randint(0, NUM_CLASSES, (args.batch_size,), device=device)
    masks = torch.randint(0, k + 1, (args.batch_size, args.image_size, args.image_size), device=device)
    cfg = TrainConfig(adv="pgd", steps=args.steps, amp=args.amp)
    autocast = autocast_factory(args.amp, device)

    def plain() -> None:
        with autocast():
            logits, seg = model(x, return_seg=True)
            loss, _, _ = combined_loss(logits, seg, y, masks, cfg.cseg)
        loss.backward()

    def adversarial() -> None:
        loss, _ = training_loss(model, model, x, y, masks, cfg, autocast)
        loss.backward()

    def timed(fn) -> float:
        model.zero_grad(set_to_none=True)
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        return time.perf_counter() - start

    timed(plain), timed(adversarial)  # warm-up (allocator, kernels, lazy imports)
    plain_s, adv_s = [], []
    for _ in range(args.reps):  # interleaved, so load changes hit both alike
        plain_s.append(timed(plain))
        adv_s.append(timed(adversarial))
    a, b = statistics.median(plain_s), statistics.median(adv_s)
    print(f"{args.arch}/{args.backbone} batch {args.batch_size} at {args.image_size} px on {device}"
          f" ({torch.get_num_threads()} CPU threads, amp {args.amp}, {args.reps} reps, medians)")
    print(f"(a) plain forward+backward: {a * 1000:.1f} ms   [{', '.join(f'{t * 1000:.0f}' for t in plain_s)}]")
    print(f"(b) PGD-{args.steps} training step:  {b * 1000:.1f} ms   [{', '.join(f'{t * 1000:.0f}' for t in adv_s)}]")
    print(f"ratio (b) / ((k+1)·(a)) = {b / ((args.steps + 1) * a):.3f}   (b) / (a) = {b / a:.2f}")
    if device.type == "cuda":
        print(f"peak memory: {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB (torch.cuda.max_memory_allocated)")
    else:
        print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (process max RSS)")


if __name__ == "__main__":
    main()
