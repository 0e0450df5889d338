"""Sharded evaluation: samples/s of ``partcli attack`` under torchrun against the number of ranks, and whether every
number of ranks gives the one-process per-sample outcomes.

Writes a prepared dataset of random images labelled with a fixed-seed torchvision model's own clean predictions
(so every sample is attacked), then times, in one run, ``torchrun --nproc_per_node K -m partcli attack --model
FILE.py:build ... --suite SUITE`` for each K in ``--ranks`` (wall time of the whole command: start-up, model
load, attacks and files), prints seconds, attacked samples/s, the speed-up over the first K, and whether the
``*.samples.csv`` of every K equals the first K's byte for byte. On the CPU each rank gets ``--cores / K`` torch
threads, so that the ranks share the same cores as the one process; on GPUs (``--device cuda``) K must not exceed
the visible GPUs.

    python benchmarks/sharded_eval.py --ranks 1 2 --n 256 --image-size 32 --suite pgd --steps 10        # 2-core CPU
    python benchmarks/sharded_eval.py --ranks 1 2 4 8 --n 1000 --image-size 224 --suite autoattack --device cuda
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from partcli.data.contract import Part
from partcli.data.writer import DatasetWriter
from partcli.data.dataset import PreparedDataset, eval_transform

MODEL_FILE = '''import torch
import torchvision


def build():
    """A fixed-seed untrained model whose BatchNorm statistics are those of random images, so that its predictions
    depend on the input (with the initial statistics it predicts one class for everything, and no attack moves it)."""
    torch.manual_seed(0)
    model = torchvision.models.{arch}(num_classes={classes})
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # a cumulative average over the calibration batch
    with torch.no_grad():
        model.train()(torch.rand(64, 3, {size}, {size}))
    return model.eval()
'''
CLASSES = ["a", "b", "c", "d", "e"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--n", type=int, default=64, help="samples attacked")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--arch", default="resnet18", help="a torchvision classification model")
    parser.add_argument("--suite", default="pgd")
    parser.add_argument("--steps", type=int, default=10, help="PGD steps (--suite pgd)")
    parser.add_argument("--eps", default="0.0008", help="small enough (0.2/255) that the untrained model keeps some samples")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="CPU cores shared by the ranks")
    return parser.parse_args()


def write_inputs(root: Path, args: argparse.Namespace) -> tuple[Path, str]:
    """The model file, and a dataset whose test split is labelled with that model's predictions (as partcli reads
    the images: a first copy labelled 0 is read back to find them)."""
    model_file = root / "model.py"
    model_file.write_text(MODEL_FILE.format(arch=args.arch, classes=len(CLASSES), size=args.image_size))
    namespace: dict = {}
    exec(compile(model_file.read_text(), str(model_file), "exec"), namespace)  # noqa: S102 - our own file
    model = namespace["build"]()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.n, args.image_size, args.image_size, 3), dtype=np.uint8)
    unlabelled = write_dataset(root / "unlabelled", images, [0] * args.n)
    test = PreparedDataset(unlabelled, "test", eval_transform(args.image_size))
    with torch.no_grad():
        labels = [int(model(test[i][0][None]).argmax()) for i in range(args.n)]
    return write_dataset(root / "data", images, labels), f"{model_file}:build"


def write_dataset(out: Path, images: np.ndarray, labels: list[int]) -> Path:
    """``images`` as the test split (one train and one val image besides, which the benchmark does not read)."""
    parts = [Part(f"{c}/whole", c) for c in CLASSES]
    size = images.shape[1]
    with DatasetWriter(out, CLASSES, parts, name="sharded-benchmark") as writer:
        for split, count in (("train", 1), ("val", 1), ("test", len(images))):
            for i in range(count):
                writer.add(split, f"{split}{i}", labels[i], Image.fromarray(images[i]),
                           mask=np.zeros((size, size), np.uint8))
        writer.finish({"command": "benchmarks/sharded_eval.py"})
    return out


def run(ranks: int, data: Path, model: str, out: Path, args: argparse.Namespace) -> float:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
               "-m", "partcli", "--quiet", "attack", "--model", model, "--data", data, "--image-size",
               str(args.image_size), "--n-samples", str(args.n), "--suite", args.suite, "--batch-size", str(args.batch_size),
               "--device", args.device, "--eps", args.eps, "--no-hygiene", "--out", out / "attacks.csv"]
    if args.suite == "pgd":
        command += ["--steps", str(args.steps)]
    threads = str(max(1, args.cores // ranks)) if args.device == "cpu" else os.environ.get("OMP_NUM_THREADS", "4")
    start = time.perf_counter()
    subprocess.run([str(c) for c in command], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "OMP_NUM_THREADS": threads})
    return time.perf_counter() - start


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data, model = write_inputs(root, args)
        print(f"{args.arch} at {args.image_size} px, {args.n} samples, suite {args.suite}, device {args.device}")
        print(f"{'ranks':>5} {'seconds':>8} {'samples/s':>10} {'speed-up':>9} {'adv acc':>8}  outcomes")
        first = None
        for ranks in args.ranks:
            out = root / f"ranks{ranks}"
            seconds = run(ranks, data, model, out, args)
            outcomes = sorted(p.read_text() for p in out.glob("*.samples.csv"))
            first = first or (seconds, outcomes)
            same = "= first" if outcomes == first[1] else "DIFFER from the first"
            (row,) = csv.DictReader((out / "attacks.csv").open())
            print(f"{ranks:>5} {seconds:>8.1f} {args.n / seconds:>10.2f} {first[0] / seconds:>8.2f}× "
                  f"{float(row['adv_acc']):>8.1%}  {same}", flush=True)


if __name__ == "__main__":
    main()
