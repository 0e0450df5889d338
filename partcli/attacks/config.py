"""The options of ``partcli attack`` (defaults: paper App. B), one definition each (``partcli.options``).

``AttackConfig`` is the one home of the attack defaults: the CLI's options and ``run_attack_suite``'s keywords
come from it.

Radii and steps follow ``--norm``: ℓ∞ keeps the paper's 8/255 and 0.001 (App. B). An ℓ2 radius has no default (a
useful one grows with the image size, and 8/255 would be a near-zero ℓ2 budget), so ``--norm L2`` without ``--eps``
is refused; the ℓ2 PGD step defaults to 2.5·ε/steps, long enough for the steps to cross the ball.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from partcli.attacks.registry import SUITE_REGISTRY, suite_choices, suites_help
from partcli.errors import PartcliError
from partcli.options import (ADVERSARY, DATA, RESULT_JSON_HELP, RUN, Choice, Split, batch_size_option, device_option,
                             json_option, option, parse_fraction, seed_option)


class SweepAttack(Choice):
    AUTOATTACK = "autoattack"
    PGD = "pgd"


class Norm(Choice):
    LINF = "Linf"
    L2 = "L2"


class Strategy(Choice):
    UNTARGETED = "untargeted"
    RANDOM = "random"
    MC_RANDOM = "mc-random"
    MC_SORTED = "mc-sorted"


STRATEGIES = tuple(s.value for s in Strategy)  # the two-stage attack's stage-1 target choices
LINF_EPS = 8 / 255  # the paper's radius
LINF_STEP_SIZE = 0.001  # App. B
BALL_CROSSING = 2.5  # steps·α = 2.5·ε: PGD steps long enough to cross the ball (the ℓ2 default step)
ATTACK_CSV = Path("results/attacks.csv")  # where `partcli attack` appends its rows unless told otherwise


def norm_help() -> str:
    """The ``--norm`` help text, naming the registered suites that are ℓ∞ only."""
    linf_only = [name for name, entry in SUITE_REGISTRY.items() if "L2" not in entry.norms]
    return ("The attacks' threat model: Linf (the paper's) or L2 balls of radius --eps. Linf only: "
            f"{', '.join(linf_only)}.")


@dataclass
class AttackConfig:
    """Options of ``partcli attack`` (defaults: paper App. B)."""

    suite: str = option("autoattack", suites_help, panel=ADVERSARY, choices=suite_choices)
    eps: float | None = option(None, "Radius on [0, 1] pixels: a number or a fraction such as 8/255. Required with "
                               "--norm L2 (e.g. 0.5 for 32 px images).", panel=ADVERSARY, parse=parse_fraction,
                               shown="8/255 for Linf")
    norm: str = option("Linf", norm_help, panel=ADVERSARY, choices=Norm)
    split: str = option("test", "Split to attack.", panel=DATA, choices=Split)
    n: int | None = option(None, "Attack this many samples, drawn with --seed and kept in split order (--n-samples: "
                           "the same, the spelling torchrun passes on).", panel=DATA, shown="the whole split",
                           aliases=("--n-samples",), low=1)
    survivors_of: str | None = option(None, "Attack only the samples robust in this earlier *.samples.csv (same "
                                      "checkpoint and split); rows report over its samples, named '<attack> after "
                                      "<file>'.", panel=DATA, path=True)
    batch_size: int = batch_size_option(256, "Samples per attack batch.")
    seed: int = seed_option("Seed of the sample draw and of the attacks' random starts.")
    device: str = device_option()
    attack_cseg: float = option(0.5, "Weight of the segmentation loss in the seg-single attack (Table 11).",
                                panel=ADVERSARY, low=0, high=1)
    restarts: int = option(5, "PGD random restarts; the worst case per sample is kept (App. B).", panel=ADVERSARY,
                           low=1)
    steps: int = option(100, "PGD steps (App. B).", panel=ADVERSARY, low=1)
    step_size: float | None = option(None, "PGD step size: a number or a fraction.", panel=ADVERSARY,
                                     parse=parse_fraction, shown="0.001 for Linf (App. B), 2.5·eps/steps for L2",
                                     low=0, low_open=True)
    strategies: tuple[str, ...] = option(tuple(s.value for s in Strategy), "Two-stage stage-1 strategy; repeat the "
                                         "option for several.", panel=ADVERSARY, choices=Strategy, flags="--strategy")
    sweep_attack: str = option("autoattack", "Attack of --suite eps-sweep (Table 10).", panel=ADVERSARY,
                               choices=SweepAttack)
    aa_attacks: tuple[str, ...] | None = option(None, panel=ADVERSARY, cli=False)  # a custom AutoAttack list
    hygiene: bool = option(True, "The evaluation-hygiene checks (and their extra PGD runs).", panel=RUN,
                           flags="--hygiene/--no-hygiene")

    def __post_init__(self) -> None:
        if self.eps is None:
            if self.norm == Norm.L2:
                raise PartcliError("--norm L2: give --eps, e.g. 0.5 (the ℓ∞ default 8/255 is not an ℓ2 radius)")
            self.eps = LINF_EPS
        # Python callers may pass fractions ("8/255"), lists and paths, as the CLI does
        self.eps = parse_fraction(self.eps, "--eps")
        self.step_size = None if self.step_size is None else parse_fraction(self.step_size, "--step-size")
        self.strategies = tuple(self.strategies)
        self.aa_attacks = None if self.aa_attacks is None else tuple(self.aa_attacks)
        self.survivors_of = None if self.survivors_of is None else str(self.survivors_of)

    @property
    def pgd_step_size(self) -> float:
        """--step-size, else the norm's default: 0.001 for ℓ∞ (App. B), 2.5·ε/steps for ℓ2."""
        if self.step_size is not None:
            return self.step_size
        return LINF_STEP_SIZE if self.norm == Norm.LINF else BALL_CROSSING * self.eps / max(self.steps, 1)


@dataclass
class AttackOutput:
    """Where ``partcli attack`` writes and how it ends: options that do not change what is measured."""

    out: str = option(str(ATTACK_CSV), "Metrics CSV to append to; per-sample outcomes go beside it as "
                      "<stem>.<suite>.<k>.samples.csv.", panel=RUN, path=True)
    json_output: bool = json_option(RESULT_JSON_HELP)
    strict: bool = option(False, "Exit with status 3 when a hygiene check fails (results are still written), e.g. to "
                          "fail a CI job.", panel=RUN)
