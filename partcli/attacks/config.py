"""The options of ``partcli attack`` (defaults: paper App. B), one definition each (``partcli.options``).

``AttackConfig`` is the one home of the attack defaults: the CLI's options and ``run_attack_suite``'s keywords
come from it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from partcli.config import parse_fraction
from partcli.options import ADVERSARY, DATA, RUN, RUNTIME, Choice, Device, Split, option


class Suite(Choice):
    AUTOATTACK = "autoattack"
    PGD = "pgd"
    SEG_SINGLE = "seg-single"
    SEG_TWO_STAGE = "seg-two-stage"
    SEGMENTER = "segmenter"
    EPS_SWEEP = "eps-sweep"
    ALL = "all"


class SweepAttack(Choice):
    AUTOATTACK = "autoattack"
    PGD = "pgd"


class Strategy(Choice):
    UNTARGETED = "untargeted"
    RANDOM = "random"
    MC_RANDOM = "mc-random"
    MC_SORTED = "mc-sorted"


SUITES = tuple(s.value for s in Suite)
SWEEP_ATTACKS = tuple(a.value for a in SweepAttack)  # Table 10 reports AutoAttack
ATTACK_CSV = Path("results/attacks.csv")  # where `partcli attack` appends its rows unless told otherwise


@dataclass
class AttackConfig:
    """Options of ``partcli attack`` (defaults: paper App. B)."""

    suite: str = option("autoattack", "autoattack (the real AutoAttack), pgd (App. B), seg-single (Table 11), "
                        "seg-two-stage (Table 12), segmenter (Table 13), eps-sweep (Table 10) or all.",
                        panel=ADVERSARY, choices=Suite)
    eps: float = option(8 / 255, "ℓ∞ radius on [0, 1] pixels: a number or a fraction such as 8/255.",
                        panel=ADVERSARY, parse=parse_fraction, shown="8/255")
    split: str = option("test", "Split to attack.", panel=DATA, choices=Split)
    n: int | None = option(None, "Attack this many samples, drawn with --seed and kept in split order.", panel=DATA,
                           shown="the whole split")
    survivors_of: str | None = option(None, "Attack only the samples robust in this earlier *.samples.csv (same "
                                      "checkpoint and split); rows report over its samples, named '<attack> after "
                                      "<file>'.", panel=DATA, path=True)
    batch_size: int = option(256, "Samples per attack batch.", panel=RUNTIME)
    seed: int = option(0, "Seed of the sample draw and of the attacks' random starts.", panel=RUN)
    device: str = option("auto", "auto (CUDA when available), cpu or cuda.", panel=RUNTIME, choices=Device)
    attack_cseg: float = option(0.5, "Weight of the segmentation loss in the seg-single attack (Table 11).",
                                panel=ADVERSARY)
    restarts: int = option(5, "PGD random restarts; the worst case per sample is kept (App. B).", panel=ADVERSARY)
    steps: int = option(100, "PGD steps (App. B).", panel=ADVERSARY)
    step_size: float = option(0.001, "PGD step size (App. B): a number or a fraction.", panel=ADVERSARY,
                              parse=parse_fraction, shown="0.001")
    strategies: tuple[str, ...] = option(tuple(s.value for s in Strategy), "Two-stage stage-1 strategy; repeat the "
                                         "option for several.", panel=ADVERSARY, choices=Strategy, flags="--strategy")
    sweep_attack: str = option("autoattack", "Attack of --suite eps-sweep (Table 10).", panel=ADVERSARY,
                               choices=SweepAttack)
    aa_attacks: tuple[str, ...] | None = option(None, panel=ADVERSARY, cli=False)  # a custom AutoAttack list
    hygiene: bool = option(True, "The evaluation-hygiene checks (and their extra PGD runs).", panel=RUN,
                           flags="--hygiene/--no-hygiene")

    def __post_init__(self) -> None:
        # Python callers may pass fractions ("8/255"), lists and paths, as the CLI does
        self.eps = parse_fraction(self.eps, "--eps")
        self.step_size = parse_fraction(self.step_size, "--step-size")
        self.strategies = tuple(self.strategies)
        self.aa_attacks = None if self.aa_attacks is None else tuple(self.aa_attacks)
        self.survivors_of = None if self.survivors_of is None else str(self.survivors_of)
