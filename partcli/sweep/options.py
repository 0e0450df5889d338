"""The options of ``partcli sweep``, one definition each (``partcli.options``). Its ``--config`` is the training
options shared by every point (``partcli.sweep.config``), not a file of these options."""
from __future__ import annotations

from dataclasses import dataclass

from partcli.options import DATA, RUN, SEARCH, option


@dataclass
class SweepOptions:
    """Options of ``partcli sweep``."""

    data: str | None = option(None, "Prepared dataset folder (default: the --config file's data).", panel=DATA,
                              path=True)
    sets: list[str] = option(help="KEY=VALUE: fix a training option for every point, e.g. --set adv=pgd; repeatable.",
                             panel=SEARCH, flags="--set", shown="none", default_factory=list)
    grid: list[str] = option(help="KEY=V1,V2,...: sweep an option; the --grid options make one stage, their cartesian "
                             "product; repeatable.", panel=SEARCH, shown="none", default_factory=list)
    stage: list[str] = option(help="\"K=V1,V2 K2=...\": one stage (a cartesian product), repeatable, in order; each "
                              "starts from the values picked in the stages before it.", panel=SEARCH,
                              shown="none", default_factory=list)
    pick: list[str] = option(help="Pick rule: adv (best val adversarial accuracy; clean runs: clean), clean-at-adv "
                             "(best val clean accuracy among val adversarial accuracy ≥ --target-adv − --margin) or "
                             "none (last stage only); one for all stages, or one per stage.", panel=SEARCH,
                             shown="adv", default_factory=list)
    target_adv: str | None = option(None, "clean-at-adv: the validation adversarial accuracy to match, as a fraction "
                                    "(e.g. the baseline's 0.42).", panel=SEARCH)
    margin: str = option("0.01", "clean-at-adv: how far below --target-adv a point may be, as a fraction.",
                         panel=SEARCH)
    out: str | None = option(None, "Sweep folder: sweep.yaml, sweep.csv and one run folder per point.", panel=RUN,
                             path=True)
    config: str | None = option(None, "YAML file of training options shared by every point (as train's --config).",
                                panel=RUN, path=True)
    list_points: bool = option(False, "Print the points, their run folders and status (done, partial, todo); run "
                               "nothing.", panel=RUN, flags="--list")
    point: int | None = option(None, "Run only this point (numbered as --list shows), e.g. one cluster job per point "
                               "of a stage.", panel=RUN, low=0)
    overwrite: bool = option(False, "Accept a changed sweep definition in --out (run folders of changed points are "
                             "still refused).", panel=RUN, flags="--overwrite")
