"""Every part-model head under the demo's clean-training budget: test accuracy, mIoU and time per head.

Trains each ``--arch`` from scratch with the clean stage of examples/quickstart.sh (1,000 synthetic 64 px images,
DeepLabv3+/ResNet-18, AdamW lr 2e-3, wd 0.01, one warm-up epoch, batch 32, crop scale 0.5, the first
``--seg-only-epochs`` training the segmenter alone) and prints one line per head. It shows that heads other than
the demo's bbox learn with the same budget; ``--seg-only-epochs 0`` shows what joint training from step 0 gives.

    python benchmarks/clean_heads.py --archs downsampled bbox twohead pixel --seg-only-epochs 3 --out /tmp/heads
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from partcli import evaluate_checkpoint
from partcli.data.synthetic import prepare_synthetic
from partcli.progress import set_quiet
from partcli.train.config import TrainConfig
from partcli.train.loop import run_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["downsampled", "bbox", "twohead", "pixel"])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seg-only-epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench-heads"))
    args = parser.parse_args()
    set_quiet(True)
    data = args.out / "data"
    if not data.exists():
        prepare_synthetic(data, n=1000, image_size=64, seed=args.seed)
    for arch in args.archs:
        start = time.perf_counter()
        run = run_training(TrainConfig(
            data=str(data), out=str(args.out / arch), arch=arch, backbone="resnet18", image_size=64, batch_size=32,
            crop_scale=0.5, epochs=args.epochs, optim="adamw", lr=2e-3, wd=0.01, warmup_epochs=1,
            seg_only_epochs=args.seg_only_epochs, seed=args.seed, device="cpu"), overwrite=True)
        seconds = time.perf_counter() - start
        result = evaluate_checkpoint(run / "checkpoints" / "best.pt", data, "test")
        print(f"{arch:12s} test acc {100 * result.clean_acc:5.1f} %  mIoU {100 * (result.miou or 0):5.1f} %  "
              f"foreground pixel acc {100 * (result.fg_pixel_acc or 0):5.1f} %  {seconds:6.0f} s", flush=True)


if __name__ == "__main__":
    main()
