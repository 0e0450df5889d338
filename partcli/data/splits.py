"""Split assignment: which samples of a prepared dataset go to train, val and test (or to any named groups).

Pure functions of the labels and a seed; the preparers and ``train --label-fraction`` call them.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from partcli.data.contract import SPLITS


def stratified_assign(
    labels: Iterable[int], fractions: Mapping[str, float], seed: int
) -> list[str]:
    """Assign every sample to a named group, per class, in the given proportions, reproducibly.

    Within each class the samples are shuffled with ``seed`` and cut by cumulative fractions (rounded), so
    each group gets its share of every class. Used for the 80/10/10 splits and for label fractions.
    """
    labels = list(labels)
    names = list(fractions)
    total = sum(fractions.values())
    out = [""] * len(labels)
    rng = np.random.default_rng(seed)
    for cls in sorted(set(labels)):
        idx = [i for i, lab in enumerate(labels) if lab == cls]
        order = rng.permutation(len(idx))
        cuts, acc = [], 0.0
        for name in names[:-1]:
            acc += fractions[name] / total
            cuts.append(int(round(acc * len(idx))))
        cuts.append(len(idx))
        start = 0
        for name, stop in zip(names, cuts):
            for j in order[start:stop]:
                out[idx[j]] = name
            start = stop
    return out


def stratified_split(labels: Iterable[int], seed: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> list[str]:
    """The paper's per-class, seeded train/val/test re-partition (App. A), 80/10/10 by default."""
    return stratified_assign(labels, dict(zip(SPLITS, fractions)), seed)


def stratified_split_counts(labels: Iterable[int], seed: int, per_class: Mapping[str, int]) -> list[str]:
    """Train/val/test with exactly ``per_class[split]`` samples of every class in the named splits, the rest in train.

    For benchmarks that need a test split of a given size (a binomial standard error they can state); each class
    is shuffled with ``seed`` and cut in the order val, test, train. Raises ``ValueError`` when a class has too
    few samples to leave at least one for training.
    """
    labels = list(labels)
    out = [""] * len(labels)
    rng = np.random.default_rng(seed)
    for cls in sorted(set(labels)):
        idx = [i for i, lab in enumerate(labels) if lab == cls]
        order = [idx[j] for j in rng.permutation(len(idx))]
        start = 0
        for name in ("val", "test"):
            for i in order[start:start + per_class.get(name, 0)]:
                out[i] = name
            start += per_class.get(name, 0)
        if start >= len(order):
            raise ValueError(f"class {cls}: {len(order)} samples leave none for train after val and test")
        for i in order[start:]:
            out[i] = "train"
    return out
