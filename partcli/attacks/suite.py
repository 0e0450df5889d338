"""``partcli attack``: run an attack suite on a checkpoint and a split (paper §4, App. B, App. D.3).

Suites: ``autoattack`` (the real AutoAttack), ``pgd`` (App. B: 100 steps of 0.001, 5 restarts), ``seg-single``
(Table 11), ``seg-two-stage`` (Table 12, one row per strategy), ``segmenter`` (Table 13), ``eps-sweep``
(Table 10: AutoAttack, or PGD with ``sweep_attack="pgd"``, at 8, 16, 24 and 32/255) and ``all`` (everything,
plus an ``all`` row: robust only if a sample survives every attack at ε).

``norm`` (Linf or L2) is the ball of every attack but the seg ones, which are ℓ∞ only (refused with L2; ``all``
skips them). The ℓ2 ε sweep (``sweep_radii``) is 0.25, 0.5, 1 and 2 for 32-pixel images (0.5 is the usual ℓ2
budget there) scaled by √(d / 3072), d the pixel values per image, since an ℓ2 budget grows with √d: at 224 px
1.75, 3.5, 7 and 14.

Samples (``samples`` module): the whole split, or ``n`` of them drawn with ``seed``. ``survivors_of`` attacks only
the samples robust in an earlier run's per-sample file (same checkpoint and split) and reports over that run's
samples: its rows are named ``<attack> after <file name>``, ``n`` is the earlier set's size and ``adv_acc`` the fraction of it
robust under the earlier attacks and this one. Classification attacks only attack the clean-correct samples
(the others count as not robust, as in AutoAttack).

Before any attack runs, the hygiene check ``input-dependence`` looks at the clean pass and the input gradients and
warns at once about a model that ignores its input (``hygiene`` module); the other checks follow the attacks.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from partcli.attacks.autoattack_runner import autoattack_plan, run_autoattack, state_path_at_radius, state_path_for
from partcli.attacks.config import ATTACK_CSV, BALL_CROSSING, SUITES, AttackConfig
from partcli.attacks.hygiene import (Check, check_input_dependence, check_radii, checklist_path, run_hygiene,
                                     write_checklist)
from partcli.attacks.outcomes import (FINGERPRINT_DIGITS, SampleOutcomes, on_earlier_set, outcomes_path,
                                      read_outcomes, write_outcomes)
from partcli.attacks.pgd import craft_adversarial, frozen_eval
from partcli.attacks.samples import AttackSamples, MaskPool, load_samples, select_indices
from partcli.attacks.seg_attacks import (choose_targets, correct_pixels, reference_masks,
                                         seg_single_attack, segmenter_attack, two_stage_attack)
from partcli.attacks.validate import SEG_SUITES, validate_config
from partcli.config import check_value
from partcli.data.dataset import PreparedDataset
from partcli.errors import PartcliError
from partcli.evaluate.results_csv import append_results, check_results_file
from partcli.options import flag_name
from partcli.progress import info, on_interrupt, warn
from partcli.runtime import pick_device
from partcli.shards import SINGLE, Shard, join_ranks, tensor_digest

SWEEP_EPS = (8 / 255, 16 / 255, 24 / 255, 32 / 255)  # Table 10
SWEEP_EPS_L2 = (0.25, 0.5, 1.0, 2.0)  # for 3×32×32 images; ``sweep_radii`` scales them to other sizes
L2_SWEEP_DIMS = 3 * 32 * 32


@dataclass
class SuiteResult:
    rows: list[dict[str, Any]]
    outcomes: SampleOutcomes
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    samples_path: Path | None = None
    checklist_path: Path | None = None  # the hygiene checklist's JSON file, when the checks ran


@dataclass
class _Attack:
    """One attack of a suite: its row name, radius, and a function giving per-sample robust flags."""

    name: str
    eps: float
    run: Callable[[], torch.Tensor]
    pixel_acc: Callable[[], float | None] | None = None
    earlier_seconds: float = 0.0  # spent on this attack by an interrupted earlier run that ``run`` resumed


def run_attack_suite(ckpt: str | Path | None, data: str | Path, cfg: AttackConfig | None = None,
                     out: str | Path | None = ATTACK_CSV, *, model: str | Path | nn.Module | None = None,
                     image_size: int | None = None, shard: Shard | None = None, **options: Any) -> SuiteResult:
    """Python API of ``partcli attack``: attack ``cfg.n`` samples of ``cfg.split``, append rows to ``out`` (if
    given), write the per-sample outcomes beside it and return the rows, notes and hygiene checklist.

    The model is the partcli checkpoint ``ckpt`` or ``model``: ``FILE.py:FUNCTION``, a torch.export ``.pt2`` or
    TorchScript file, or an ``nn.Module`` mapping [0, 1] images to logits (``partcli.models.sources``), evaluated
    at ``image_size`` (default 224; a checkpoint at its training size). ``options``: ``AttackConfig`` fields
    overriding ``cfg`` (default ``AttackConfig()``), e.g. ``suite="pgd"``; ``eps`` and ``step_size`` may be
    fractions such as "8/255".

    Under torchrun the ranks share the work (``shard``, default: joined from torchrun's environment, see
    ``partcli.shards``); every rank returns the whole result, and rank 0 alone writes the files.
    """
    from partcli.evaluate.evaluate import load_for_dataset
    from partcli.models.sources import open_model

    shard = shard or join_ranks(options.get("device") or (cfg.device if cfg else "auto"))
    with shard.together():  # before the model is loaded and anything is printed
        cfg = attack_config(cfg, options)
        validate_config(cfg)
        device = pick_device(cfg.device, shard.local_rank)
        if out is not None and shard.is_main:  # the folder is made only when the rows are written
            check_results_file(out)
    shard.agree({"--ckpt": ckpt, "--model": model, "--data": data, "--image-size": image_size, "--out": out,
                 **{flag_name(k): v for k, v in dataclasses.asdict(cfg).items()}})
    with shard.together():  # the files every rank reads must be there on every node
        source = open_model(ckpt, model)
        model, ds = load_for_dataset(source, data, cfg.split, image_size)
        _require_segmenter(model, cfg.suite, source.name)
        fingerprint = source.fingerprint[:FINGERPRINT_DIGITS]  # as outcomes.checkpoint_fingerprint
        survivors_of = cfg.survivors_of
        earlier = _earlier_outcomes(survivors_of, ds, fingerprint) if survivors_of is not None else None
        indices = select_indices(len(ds), cfg.n, cfg.seed, earlier.survivors() if earlier else None, cfg.split)
        if earlier is not None and not indices:
            raise PartcliError(f"--survivors-of {survivors_of}: no sample survived its attacks; robust accuracy "
                               f"over its {len(earlier.index)} samples is already 0")
        samples = load_samples(ds, indices)
    shard.agree({"the checkpoint or model file (sha256)": source.fingerprint})
    where = str(Path(source.name).resolve()) if source.checkpoint is not None else source.fingerprint  # resume key
    key = {"checkpoint": where, "data": str(Path(data).resolve()), "split": cfg.split,
           "eps": cfg.eps, "seed": cfg.seed, "samples": hashlib.sha1(json.dumps(indices).encode()).hexdigest()}
    if cfg.norm != "Linf":  # ℓ∞ keys stay those of the state files written before --norm
        key["norm"] = cfg.norm
    state_path = state_path_for(out, key) if out is not None else None
    on_interrupt(lambda: _kept(state_path))
    ranks = f" on each of {shard.world_size} ranks" if shard.enabled else ""
    info(f"device {device}" + (" (auto)" if cfg.device == "auto" else "") + ranks)
    result = attack_model(model, samples, cfg, num_classes=ds.info.num_classes, pool=MaskPool.from_dataset(ds),
                          train_adv=source.train_adv, state_path=state_path, state_key=key, shard=shard)
    result.outcomes.split, result.outcomes.checkpoint = cfg.split, fingerprint
    if earlier is not None:
        result.rows, result.outcomes = on_earlier_set(result.rows, result.outcomes, earlier, Path(survivors_of).name)
        result.notes.append(f"--survivors-of: {len(indices)} of {len(earlier.index)} samples attacked; rows report "
                            "over all of them (robust under the earlier attacks and this one), pixel accuracies "
                            "left empty")
    for row in result.rows:
        row.update(checkpoint=source.name, dataset=str(data), split=cfg.split)
    if out is not None and shard.is_main:
        append_results(out, result.rows)
        result.samples_path = outcomes_path(out, cfg.suite)
        write_outcomes(result.samples_path, result.outcomes)
        if result.checks:
            result.checklist_path = checklist_path(result.samples_path)
            write_checklist(result.checklist_path, result.checks, {"checkpoint": source.name, "dataset": str(data),
                                                                   "split": cfg.split, "suite": cfg.suite,
                                                                   "norm": cfg.norm, "eps": cfg.eps})
    return result


def attack_config(cfg: AttackConfig | None, options: dict[str, Any]) -> AttackConfig:
    """``cfg`` with ``options`` applied, checked against each field (type, choices, fractions)."""
    fields = {f.name: f for f in dataclasses.fields(AttackConfig)}
    unknown = set(options) - set(fields)
    if unknown:
        raise TypeError(f"run_attack_suite: unknown option(s) {', '.join(sorted(unknown))}")
    plain = {k: str(v) if isinstance(v, Path) else tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    checked = {k: v if v is None else check_value(fields[k], v, flag_name(k)) for k, v in plain.items()}
    base = cfg or AttackConfig()
    if checked.get("norm", base.norm) != base.norm:  # a radius of the other norm does not carry over
        checked.setdefault("eps", None)
    return dataclasses.replace(base, **checked)


def attack_model(model: nn.Module, samples: AttackSamples, cfg: AttackConfig, *, num_classes: int,
                 pool: MaskPool | None = None, train_adv: str | None = None, state_path: Path | None = None,
                 state_key: dict[str, Any] | None = None, shard: Shard = SINGLE) -> SuiteResult:
    """Run ``cfg.suite`` on a model (any module mapping [0, 1] images to logits; part models for seg suites).

    ``shard``: this rank's share under torchrun (``partcli.shards``); every rank must call this with the same model,
    samples and configuration (checked), and every rank gets the whole result. Batch ``b`` of an attack (the
    ``cfg.batch_size`` chunks of the samples it attacks, in order) is attacked by rank ``b % world_size`` with
    random starts drawn from a generator seeded by (``cfg.seed``, attack, ``b``) only (``batch_seed``).
    """
    validate_config(cfg)
    _check_l2_radius(cfg, samples.x.shape[1:])
    if shard.enabled:
        shard.agree({**{flag_name(k): v for k, v in dataclasses.asdict(cfg).items()}, "the classes": num_classes,
                     "the samples": tensor_digest(torch.tensor(samples.index), samples.x, samples.y, samples.masks),
                     "the model's weights": tensor_digest(*model.state_dict().values())})
    cfg = dataclasses.replace(cfg, device=str(pick_device(cfg.device, shard.local_rank)))
    _require_segmenter(model, cfg.suite, "the model")
    model = model.to(cfg.device).eval()
    runner = _Runner(model, samples, cfg, num_classes, pool or MaskPool.from_samples(samples), state_path, state_key,
                     shard)
    early: list[Check] = []
    if cfg.hygiene:  # before the expensive attacks: a model that ignores its input wastes them
        early.append(check_input_dependence(runner.clean_logits.argmax(1), samples.y, runner.zero_input_gradients()))
        if early[-1].status == "warn" and shard.is_main:
            warn(f"{early[-1].name}: {early[-1].message}")
    rows, robust = [], {}
    for attack in runner.attacks():
        start = time.perf_counter()
        flags = attack.run()
        column = attack.name if _same(attack.eps, cfg.eps) else f"{attack.name}@{eps_label(attack.eps, cfg.norm)}"
        robust[column] = flags
        rows.append(runner.row(attack, flags, time.perf_counter() - start + attack.earlier_seconds))
    if cfg.suite == "all":
        at_eps = [flags for name, flags in robust.items() if "@" not in name]
        combined = torch.stack(at_eps).all(0)
        robust["all"] = combined
        rows.append(runner.row(_Attack("all", cfg.eps, lambda: combined), combined,
                               sum(r["seconds"] for r in rows)))
    outcomes = SampleOutcomes(samples.index, samples.image, samples.y.tolist(), runner.clean_correct.tolist(),
                              {k: v.tolist() for k, v in robust.items()})
    checks = (early + run_hygiene(rows, cfg.suite, cfg.eps, cfg.restarts, train_adv, runner.pgd_accuracy,
                                  check_radii(cfg.norm, samples.x[0].numel()))
              if cfg.hygiene else [])
    return SuiteResult(rows, outcomes, checks, runner.notes)


def batch_seed(seed: int, attack: str, batch: int) -> int:
    """The seed of the random draws (starts, restarts, two-stage targets) of ``attack`` (its name, e.g. ``pgd@0.031``)
    on its batch ``batch``: the first 63 bits of SHA-256("<seed>/<attack>/<batch>"), a function of these alone."""
    digest = hashlib.sha256(f"{seed}/{attack}/{batch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def eps_label(eps: float, norm: str = "Linf") -> str:
    """A radius as people write it: k/255 for ℓ∞ radii on that grid, else the number (every ℓ2 radius)."""
    k = eps * 255
    return f"{round(k)}/255" if norm == "Linf" and math.isclose(k, round(k), abs_tol=1e-6) else f"{eps:g}"


def sweep_radii(norm: str, dims: int) -> tuple[float, ...]:
    """The eps-sweep's radii for images of ``dims`` pixel values: Table 10's for ℓ∞, ``SWEEP_EPS_L2`` scaled by
    √(dims / 3072) for ℓ2 (see the module docstring)."""
    if norm == "Linf":
        return SWEEP_EPS
    return tuple(e * math.sqrt(dims / L2_SWEEP_DIMS) for e in SWEEP_EPS_L2)


def sweep_step_size(eps: float, step_size: float, steps: int) -> float:
    """Step size for radii above --eps: large enough that the steps can cross the ball (steps·α ≥ 2.5ε)."""
    return max(step_size, BALL_CROSSING * eps / steps)


def _check_l2_radius(cfg: AttackConfig, shape: torch.Size) -> None:
    """Refuse an ℓ2 radius beyond the diagonal √d of the [0, 1] image cube: such a ball holds every image."""
    diagonal = math.sqrt(math.prod(shape))
    if cfg.norm == "L2" and cfg.eps > diagonal:
        raise PartcliError(f"--eps {cfg.eps:g}: larger than {diagonal:.4g}, the ℓ2 diagonal of a "
                           f"{'×'.join(map(str, shape))} image in [0, 1], so the ball holds every image; give a "
                           "smaller radius")


def _require_segmenter(model: nn.Module, suite: str, what: str) -> None:
    if suite in SEG_SUITES and not getattr(model, "has_segmenter", False):
        raise PartcliError(f"--suite {suite}: {what} has no part segmenter; use autoattack, pgd, eps-sweep or all")


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def _earlier_outcomes(path: str | Path, ds: PreparedDataset, fingerprint: str) -> SampleOutcomes:
    """The ``--survivors-of`` file, refused unless it was written for this checkpoint and split."""
    outcomes = read_outcomes(path)
    if outcomes.checkpoint != fingerprint:
        raise PartcliError(f"--survivors-of {path}: written for another checkpoint (sha256 {outcomes.checkpoint}, "
                           f"this one is {fingerprint}); attack the checkpoint it was written for")
    if outcomes.split != ds.split:
        raise PartcliError(f"--survivors-of {path}: written for the {outcomes.split} split, not {ds.split}; "
                           f"pass --split {outcomes.split}")
    for i, image in zip(outcomes.index, outcomes.image):
        if not 0 <= i < len(ds) or ds.samples[i].image != image:
            raise PartcliError(f"--survivors-of {path}: written for another split or dataset (sample {i} is not "
                               f"{image} in the {ds.split} split of {ds.root})")
    return outcomes


class _Runner:
    """Builds the suite's attacks over one set of samples and shares the clean pass between them."""

    def __init__(self, model: nn.Module, samples: AttackSamples, cfg: AttackConfig, num_classes: int,
                 pool: MaskPool, state_path: Path | None, state_key: dict[str, Any] | None, shard: Shard):
        self.model, self.s, self.cfg, self.num_classes, self.pool = model, samples, cfg, num_classes, pool
        self.state_path, self.state_key, self.shard = state_path, state_key, shard
        self.part_model = bool(getattr(model, "has_segmenter", False))
        self.notes: list[str] = []
        self.seg_channels = 0  # K + 1 of a part model, set by the clean pass
        self._clean_pass()

    def _clean_pass(self) -> None:
        def batch(_: int, sl: slice) -> tuple[torch.Tensor, int, int]:
            """Logits, correct part pixels and part channels (K + 1) of one batch."""
            with torch.no_grad():
                x = self.s.x[sl].to(self.cfg.device)
                if not self.part_model:
                    return self.model(x).float().cpu(), 0, 0
                out, seg = self.model(x, return_seg=True)
                correct = int(correct_pixels(seg, self.s.masks[sl].long().to(self.cfg.device)).sum())
                return out.float().cpu(), correct, seg.shape[1]

        results = self.shard.map(self._batches(range(len(self.s.y))), batch, "clean pass")
        self.clean_logits = torch.cat([logits for logits, _, _ in results])
        self.clean_correct = self.clean_logits.argmax(1) == self.s.y
        self.seg_channels = results[0][2]
        labelled = (self.s.masks != -1).flatten(1).sum(1)
        self.labelled_pixels = int(labelled.sum())
        self.clean_pixel_acc = (sum(correct for _, correct, _ in results) / self.labelled_pixels
                                if self.part_model and self.labelled_pixels else None)

    def attacks(self) -> list[_Attack]:
        """The suite's attacks in order (``all``: every suite's, seg suites only for part models)."""
        wanted = SUITES[:-1] if self.cfg.suite == "all" else (self.cfg.suite,)
        if self.cfg.suite == "all" and not self.part_model:
            self.notes.append("model without a part segmenter: seg-single, seg-two-stage and segmenter skipped")
            wanted = tuple(w for w in wanted if w not in SEG_SUITES)
        elif self.cfg.suite == "all" and self.cfg.norm != "Linf":
            self.notes.append(f"--norm {self.cfg.norm}: seg-single, seg-two-stage and segmenter skipped (ℓ∞ only)")
            wanted = tuple(w for w in wanted if w not in SEG_SUITES)
        return [attack for suite in wanted for attack in SUITE_ATTACKS[suite](self)]

    def row(self, attack: _Attack, robust: torch.Tensor, seconds: float) -> dict[str, Any]:
        return {"suite": self.cfg.suite, "attack": attack.name, "norm": self.cfg.norm, "eps": attack.eps,
                "n": len(self.s.y), "clean_acc": self.clean_correct.float().mean().item(),
                "adv_acc": robust.float().mean().item(), "clean_pixel_acc": self.clean_pixel_acc,
                "adv_pixel_acc": attack.pixel_acc() if attack.pixel_acc else None, "seconds": seconds}

    def zero_input_gradients(self) -> torch.Tensor:
        """Per sample of the first batch: whether the input gradient of the top-2 logit margin is exactly zero
        (a margin, not the loss, so that a confident prediction's saturated softmax does not count as zero)."""
        sl = self._batches(range(len(self.s.y)))[0]
        x = self.s.x[sl].to(self.cfg.device).requires_grad_(True)
        with frozen_eval(self.model), torch.enable_grad():
            logits = self.model(x).float()
            if logits.shape[1] < 2:
                return torch.zeros(0, dtype=torch.bool)
            top2 = logits.topk(2, dim=1).values
            (grad,) = torch.autograd.grad((top2[:, 0] - top2[:, 1]).sum(), x)
        return (grad.flatten(1) == 0).all(1).cpu()

    def pgd_accuracy(self, eps: float, restarts: int) -> float:
        """The hygiene checks' extra runs: PGD at ``eps`` with ``restarts``; robust accuracy. At --eps the step is
        --step-size, as in the suite's own PGD row that the restarts check compares with."""
        cfg = self.cfg
        step = cfg.pgd_step_size if _same(eps, cfg.eps) else sweep_step_size(eps, cfg.pgd_step_size, cfg.steps)
        return self._pgd(eps, step, restarts, f"hygiene-{restarts}").float().mean().item()

    # -- the suites ---------------------------------------------------------------------------------------
    def autoattack_suite(self) -> list[_Attack]:
        return [self._autoattack(self.cfg.eps)]

    def pgd_suite(self) -> list[_Attack]:
        cfg = self.cfg
        return [_Attack("pgd", cfg.eps, lambda: self._pgd(cfg.eps, cfg.pgd_step_size, cfg.restarts, "pgd"))]

    def seg_single_suite(self) -> list[_Attack]:
        return [_Attack("seg-single", self.cfg.eps, self._seg_single)]

    def two_stage_suite(self) -> list[_Attack]:
        return [_Attack(f"seg-two-stage/{s}", self.cfg.eps, lambda s=s: self._two_stage(s))
                for s in self._strategies()]

    def segmenter_suite(self) -> list[_Attack]:
        return [self._segmenter()]

    def eps_sweep_suite(self) -> list[_Attack]:
        cfg, out = self.cfg, []
        for e in sweep_radii(cfg.norm, self.s.x[0].numel()):
            if cfg.suite == "all" and _same(e, cfg.eps):
                continue  # the autoattack and pgd rows at --eps are this radius already
            if cfg.sweep_attack == "autoattack":
                out.append(self._autoattack(e))
                continue
            step = sweep_step_size(e, cfg.pgd_step_size, cfg.steps)
            out.append(_Attack("pgd", e, lambda e=e, step=step: self._pgd(e, step, cfg.restarts, "pgd")))
        return out

    # -- the attacks --------------------------------------------------------------------------------------
    def _autoattack(self, eps: float) -> _Attack:
        at_eps = _same(eps, self.cfg.eps)
        state_path = (self.state_path if at_eps or self.state_path is None  # one resume file per radius
                      else state_path_at_radius(self.state_path, eps))
        state_key = None if self.state_key is None else {**self.state_key, "attack_eps": eps}

        def run() -> torch.Tensor:
            result = run_autoattack(self.model, self.s.x, self.s.y, eps, num_classes=self.num_classes,
                                    seed=self.cfg.seed, batch_size=self.cfg.batch_size, device=self.cfg.device,
                                    attacks=self.cfg.aa_attacks, clean_correct=self.clean_correct,
                                    state_path=state_path, state_key=state_key, norm=self.cfg.norm,
                                    shard=self.shard)
            if result.resumed_after:
                attack.earlier_seconds = result.earlier_seconds
                self.notes.append(f"AutoAttack resumed an interrupted run after {', '.join(result.resumed_after)} "
                                  f"(state {state_path}); its seconds include their {result.earlier_seconds:.1f} "
                                  "s in that run")
            self.notes.extend(w for w in result.warnings if w not in self.notes)
            return result.robust

        plan = autoattack_plan(self.num_classes, self.cfg.aa_attacks)
        if plan.note and plan.note not in self.notes:
            self.notes.append(plan.note)
        attack = _Attack(plan.name, eps, run)
        return attack

    def _pgd(self, eps: float, step: float, restarts: int, name: str) -> torch.Tensor:
        def attack(x, y, masks, has_mask, sl, gen):
            return craft_adversarial(self.model, x, y, eps, step, self.cfg.steps, norm=self.cfg.norm,
                                     restarts=restarts, generator=gen)
        return self._classification_attack(f"{name}@{eps}", attack)

    def _seg_single(self) -> torch.Tensor:
        cfg = self.cfg

        def attack(x, y, masks, has_mask, sl, gen):
            return seg_single_attack(self.model, x, y, masks, has_mask, cfg.eps, cfg.pgd_step_size, cfg.steps,
                                     cfg.restarts, cfg.attack_cseg, gen)
        return self._classification_attack("seg-single", attack)

    def _two_stage(self, strategy: str) -> torch.Tensor:
        cfg = self.cfg
        targeted = strategy != "untargeted"
        if targeted and len(self.pool.labels) == 0:
            raise PartcliError(f"--strategy {strategy}: the split has no part masks to use as targets")
        scores = (self.pool.scores(self.model.head, self.seg_channels, cfg.device, cfg.batch_size)
                  if strategy == "mc-sorted" else None)

        def attack(x, y, masks, has_mask, sl, gen):
            """Per sample the first restart that fools the model (else the clean input); the batch's targets come
            from its own generator, before its random starts."""
            targets = (choose_targets(strategy, self.s.y[sl], self.clean_logits[sl], self.pool.labels, scores,
                                      cfg.restarts, gen) if targeted else None)
            best, fooled = x.clone(), torch.zeros(len(y), dtype=torch.bool, device=x.device)
            reference = None if targeted else reference_masks(self.model, x, masks, has_mask)
            for r in range(cfg.restarts):
                stage1 = self.pool.masks(targets[r]).to(x.device) if targeted else reference
                x_adv = two_stage_attack(self.model, x, y, stage1, targeted, cfg.eps, cfg.pgd_step_size, cfg.steps,
                                         gen)
                with torch.no_grad():
                    take = (self.model(x_adv).argmax(1) != y) & ~fooled
                best[take], fooled = x_adv[take], fooled | take
            return best
        return self._classification_attack(f"seg-two-stage/{strategy}", attack)

    def _segmenter(self) -> _Attack:
        cfg = self.cfg
        adv_correct_px = [0]

        def batch(k: int, sl: slice) -> tuple[torch.Tensor, int]:
            """Robust flags and correct part pixels of one batch (every sample, not only the clean-correct ones)."""
            x, y = self.s.x[sl].to(cfg.device), self.s.y[sl].to(cfg.device)
            masks, has_mask = self.s.masks[sl].long().to(cfg.device), self.s.has_mask[sl].to(cfg.device)
            reference = reference_masks(self.model, x, masks, has_mask)
            with frozen_eval(self.model):
                x_adv = segmenter_attack(self.model, x, reference, cfg.eps, cfg.pgd_step_size, cfg.steps,
                                         cfg.restarts, self._generator("segmenter", k))
            with torch.no_grad():
                logits, seg = self.model(x_adv, return_seg=True)
                return (logits.argmax(1) == y).cpu() & self.clean_correct[sl], int(correct_pixels(seg, masks).sum())

        def run() -> torch.Tensor:
            results = self.shard.map(self._batches(range(len(self.s.y))), batch, "segmenter")
            adv_correct_px[0] = sum(correct for _, correct in results)
            return torch.cat([flags for flags, _ in results])

        def pixel_acc() -> float | None:
            return adv_correct_px[0] / self.labelled_pixels if self.labelled_pixels else None
        return _Attack("segmenter", cfg.eps, run, pixel_acc)

    # -- helpers ------------------------------------------------------------------------------------------
    def _strategies(self) -> tuple[str, ...]:
        """The two-stage strategies to run: mc-sorted needs a head that reads part masks (not ``twohead``)."""
        if "mc-sorted" not in self.cfg.strategies or getattr(self.model.head, "reads_masks", True):
            return self.cfg.strategies
        rest = tuple(s for s in self.cfg.strategies if s != "mc-sorted")
        if not rest:
            raise PartcliError("--strategy mc-sorted: scores guide masks with the classifier on masks, but this "
                               "twohead model classifies decoder features; choose another strategy")
        self.notes.append("twohead model: seg-two-stage/mc-sorted skipped (its classifier reads no masks)")
        return rest

    def _classification_attack(self, name: str, attack: Callable[..., torch.Tensor]) -> torch.Tensor:
        """Robust flags: ``attack(x, y, masks, has_mask, batch indices, generator) -> x_adv`` runs on the
        clean-correct samples only, batch by batch (sharded over the ranks), with the parameters frozen and the
        batch's own generator (``_generator(name, batch)``); a sample is robust if x_adv is still classified right."""
        dev = self.cfg.device

        def batch(k: int, sl: torch.Tensor) -> torch.Tensor:
            x, y = self.s.x[sl].to(dev), self.s.y[sl].to(dev)
            masks, has_mask = self.s.masks[sl].long().to(dev), self.s.has_mask[sl].to(dev)
            with frozen_eval(self.model):
                x_adv = attack(x, y, masks, has_mask, sl, self._generator(name, k))
            with torch.no_grad():
                return (self.model(x_adv).argmax(1) == y).cpu()

        robust = torch.zeros(len(self.s.y), dtype=torch.bool)
        batches = self._batches(self.clean_correct.nonzero().squeeze(1).tolist())
        for sl, flags in zip(batches, self.shard.map(batches, batch, name)):
            robust[sl] = flags
        return robust

    def _batches(self, indices) -> list[Any]:
        """Index batches of ``cfg.batch_size``: slices for a range, index tensors for a list."""
        if isinstance(indices, range):
            return [slice(i, min(i + self.cfg.batch_size, len(indices))) for i in range(0, len(indices),
                                                                                  self.cfg.batch_size)]
        return [torch.tensor(indices[i:i + self.cfg.batch_size], dtype=torch.long)
                for i in range(0, len(indices), self.cfg.batch_size)]

    def _generator(self, name: str, batch: int) -> torch.Generator:
        """The generator of attack ``name`` on its batch ``batch``: its draws do not depend on which attacks or
        batches ran before (in this process, or on another rank)."""
        return torch.Generator().manual_seed(batch_seed(self.cfg.seed, name, batch))


# suite name -> the runner's attacks for it, in row order (``all`` runs every other suite, then its own row)
SUITE_ATTACKS: dict[str, Callable[[_Runner], list[_Attack]]] = {
    "autoattack": _Runner.autoattack_suite,
    "pgd": _Runner.pgd_suite,
    "seg-single": _Runner.seg_single_suite,
    "seg-two-stage": _Runner.two_stage_suite,
    "segmenter": _Runner.segmenter_suite,
    "eps-sweep": _Runner.eps_sweep_suite,
}


def _kept(state_path: Path | None) -> str:
    """What an interrupted ``attack`` kept: AutoAttack's finished attacks (its state files), or nothing."""
    kept = sorted(state_path.parent.glob(f"{state_path.stem}*.json")) if state_path is not None else []
    if not kept:
        return "no results row was written"
    return (f"AutoAttack's finished attacks are kept in {', '.join(map(str, kept))}; the same command continues "
            "after them")
