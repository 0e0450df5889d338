"""Overhead of partcli's AutoAttack suite over calling pyautoattack directly on the same model and samples.

Times, interleaved in the same run, (a) ``AutoAttack(...).run_standard_evaluation`` called directly and (b) the
``autoattack`` suite of ``partcli attack`` on an in-memory model (``attack_model``: clean pass, one
AutoAttack call per attack on the survivors, RNG save/restore, result rows; no hygiene checks, no files), and
prints the medians, the ratio (b) / (a) and whether both gave the same robust accuracy. The model is an
untrained partcli model; the labels are its own clean predictions, so every sample is attacked.

    python benchmarks/attack_overhead.py --arch resnet --backbone resnet18 --n 16 --image-size 32 --eps 1/255
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from partcli.attacks.autoattack_runner import autoattack_plan, build_autoattack
from partcli.attacks.suite import AttackConfig, AttackSamples, attack_model
from partcli.options import parse_fraction
from partcli.models.registry import ModelConfig, build_model

NUM_CLASSES, PARTS = 5, 19


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--n", type=int, default=16, help="samples attacked")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--eps", default="1/255", help="small enough that several attacks run on survivors")
    parser.add_argument("--attacks", default=None, help="comma-separated custom AutoAttack list (default: standard)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions of each (after one warm-up pair)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=args.arch, backbone=args.backbone, num_classes=NUM_CLASSES,
                                    num_parts=PARTS, part_to_class=[p % NUM_CLASSES for p in range(PARTS)]))
    model = model.to(args.device).eval()
    eps = parse_fraction(args.eps, "--eps")
    attacks = tuple(args.attacks.split(",")) if args.attacks else None
    x = torch.rand(args.n, 3, args.image_size, args.image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x.to(args.device)).argmax(1).cpu()
    samples = AttackSamples(x, y, torch.full((args.n, args.image_size, args.image_size), -1, dtype=torch.int16),
                            torch.zeros(args.n, dtype=torch.bool), list(range(args.n)), [""] * args.n)
    cfg = AttackConfig(suite="autoattack", eps=eps, batch_size=args.batch_size, device=args.device,
                       aa_attacks=attacks, hygiene=False)
    plan = autoattack_plan(NUM_CLASSES, attacks)

    def direct() -> float:
        aa = build_autoattack(model, plan, eps, seed=0, device=args.device)  # the same configuration, one call
        _, y_adv = aa.run_standard_evaluation(x, y, batch_size=args.batch_size)
        return (y_adv == y).float().mean().item()

    def ours() -> float:
        return attack_model(model, samples, cfg, num_classes=NUM_CLASSES).rows[0]["adv_acc"]

    times: dict[str, list[float]] = {"direct": [], "partcli": []}
    accs: dict[str, float] = {}
    for rep in range(args.reps + 1):
        for name, fn in (("direct", direct), ("partcli", ours)):
            start = time.perf_counter()
            accs[name] = fn()
            if rep:  # the first pair warms up
                times[name].append(time.perf_counter() - start)
                print(f"  rep {rep} {name}: {times[name][-1]:.2f} s", flush=True)
    a, b = statistics.median(times["direct"]), statistics.median(times["partcli"])
    print(f"model {args.arch}/{args.backbone}, {args.n} samples of {args.image_size} px, eps {args.eps}, "
          f"attacks {', '.join(plan.attacks)}, {torch.get_num_threads()} threads, device {args.device}")
    print(f"pyautoattack direct: median {a:.2f} s  {['%.2f' % t for t in times['direct']]}")
    print(f"partcli suite:       median {b:.2f} s  {['%.2f' % t for t in times['partcli']]}")
    print(f"robust accuracy: direct {accs['direct']:.3f}, partcli {accs['partcli']:.3f}")
    print(f"overhead ratio (partcli / direct): {b / a:.3f}")


if __name__ == "__main__":
    main()
