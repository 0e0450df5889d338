"""Split assignment: which samples of a prepared dataset go to train, val and test (or to any named groups).

Pure functions of the labels and a seed; the preparers and ``train --label-fraction`` call them.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

import numpy as np

from partcli.data.contract import SPLITS


def _cut_per_class(labels: Iterable[int], seed: int,
                   sizes: Callable[[int], list[tuple[str, int]]]) -> list[str]:
    """Within each class (in sorted order) shuffle the samples with ``seed`` and give consecutive runs of them to the
    groups ``sizes(class size)`` names, in its order: [(group, how many)], adding up to the class size."""
    labels = list(labels)
    out = [""] * len(labels)
    rng = np.random.default_rng(seed)
    for cls in sorted(set(labels)):
        idx = [i for i, lab in enumerate(labels) if lab == cls]
        order = rng.permutation(len(idx))
        start = 0
        for name, size in sizes(len(idx)):
            for j in order[start:start + size]:
                out[idx[j]] = name
            start += size
    return out


def stratified_assign(
    labels: Iterable[int], fractions: Mapping[str, float], seed: int
) -> list[str]:
    """Assign every sample to a named group, per class, in the given proportions, reproducibly.

    Within each class the samples are shuffled with ``seed`` and cut by cumulative fractions (rounded), so
    each group gets its share of every class. Used for the 80/10/10 splits and for label fractions.
    """
    names = list(fractions)
    total = sum(fractions.values())

    def sizes(n: int) -> list[tuple[str, int]]:
        cuts, acc = [], 0.0
        for name in names[:-1]:
            acc += fractions[name] / total
            cuts.append(int(round(acc * n)))
        cuts.append(n)
        return [(name, stop - start) for name, start, stop in zip(names, [0, *cuts[:-1]], cuts)]

    return _cut_per_class(labels, seed, sizes)


def stratified_split(labels: Iterable[int], seed: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> list[str]:
    """The paper's per-class, seeded train/val/test re-partition (App. A), 80/10/10 by default."""
    return stratified_assign(labels, dict(zip(SPLITS, fractions)), seed)


def stratified_split_counts(labels: Iterable[int], seed: int, per_class: Mapping[str, int]) -> list[str]:
    """Train/val/test with exactly ``per_class[split]`` samples of every class in the named splits, the rest in train.

    For benchmarks that need a test split of a given size (a binomial standard error they can state); each class
    is shuffled with ``seed`` and cut in the order val, test, train. Raises ``ValueError`` when a class has too
    few samples to leave at least one for training.
    """
    held = [(name, per_class.get(name, 0)) for name in ("val", "test")]

    def sizes(n: int) -> list[tuple[str, int]]:
        rest = n - sum(size for _, size in held)
        if rest <= 0:
            raise ValueError(f"a class of {n} samples leaves none for train after val and test")
        return [*held, ("train", rest)]

    return _cut_per_class(labels, seed, sizes)
