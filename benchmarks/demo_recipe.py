"""The demo's recipe (examples/quickstart.sh) as argument lists, for the benchmarks that repeat or extend it.

``tests/test_benchmarks.py`` reads the quickstart and checks these lists against it, so the two cannot drift.
"""
from __future__ import annotations

DATA = ["--n", "1000", "--image-size", "64"]  # `prepare synthetic`: 80/10/10 splits
COMMON = ["--backbone", "resnet18", "--image-size", "64", "--batch-size", "32", "--crop-scale", "0.5",
          "--optim", "adamw", "--wd", "0.01", "--overwrite"]  # every training command (plus --seed)
CLEAN = ["--warmup-epochs", "1", "--lr", "2e-3"]  # `pretrain`, both models
PGD = ["--adv", "pgd", "--eps", "8/255", "--step-size", "3/255", "--steps", "3", "--val-steps", "5", "--lr", "1.5e-3"]
# each model's own options, given after COMMON and CLEAN / PGD (so they override them)
CLEAN_EPOCHS = {"bbox": ["--epochs", "6", "--seg-only-epochs", "3", "--batch-size", "16"], "resnet": ["--epochs", "8"]}
ADV_EPOCHS = {"bbox": ["--epochs", "4"], "resnet": ["--epochs", "4"]}
PGD20 = ["--split", "test", "--suite", "pgd", "--eps", "8/255", "--steps", "20", "--step-size", "1/255",
         "--restarts", "1", "--no-hygiene"]  # the demo's evaluation attack
