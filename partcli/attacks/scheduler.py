"""The scheduler of ``partcli attack``: runs a suite's attacks over one set of samples, batch by batch.

``Scheduler`` does the clean pass once (logits, clean-correct flags, part pixels), builds the suite's attacks from
the registry (``partcli.attacks.registry``) and gives the builders (``partcli.attacks.suites``) the attacks they
are made of: AutoAttack (resumable), PGD, the segmenter-guided attacks. Batch ``b`` of an attack is attacked by
rank ``b % world_size`` (``partcli.shards``) with random draws from a generator seeded by (``--seed``, attack,
``b``) alone (``batch_seed``), so the outcomes do not depend on the ranks or on the attacks that ran before.
Classification attacks only attack the clean-correct samples (the others count as not robust, as in AutoAttack).
With ``keep_adversarial`` the classification attacks and AutoAttack leave the images they counted in ``found``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from partcli.attacks.autoattack_runner import autoattack_plan, run_autoattack, state_path_at_radius
from partcli.attacks.config import BALL_CROSSING, AttackConfig
from partcli.attacks.pgd import craft_adversarial, frozen_eval
from partcli.attacks.registry import ALL, SUITE_REGISTRY, Attack, suite_entry
from partcli.attacks.samples import AttackSamples, MaskPool
from partcli.attacks.seg_attacks import (choose_targets, correct_pixels, reference_masks, seg_single_attack,
                                         segmenter_attack, two_stage_attack)
from partcli.attacks.suites import same_radius
from partcli.config import eps_label
from partcli.errors import PartcliError
from partcli.evaluate.results_csv import PGD_SETTINGS
from partcli.shards import Shard


class Scheduler:
    """Builds the suite's attacks over one set of samples and shares the clean pass between them."""

    def __init__(self, model: nn.Module, samples: AttackSamples, cfg: AttackConfig, num_classes: int,
                 pool: MaskPool, state_path: Path | None, state_key: dict[str, Any] | None, shard: Shard,
                 keep_adversarial: bool = False):
        self.model, self.s, self.cfg, self.num_classes, self.pool = model, samples, cfg, num_classes, pool
        self.state_path, self.state_key, self.shard = state_path, state_key, shard
        self.keep_adversarial = keep_adversarial
        self.found: torch.Tensor | None = None  # with keep_adversarial: the images of the attack run last
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

    def attacks(self) -> list[Attack]:
        """The suite's attacks in order (``all``: every registered suite's, those that need a segmenter only for
        part models under ℓ∞)."""
        if self.cfg.suite != ALL:
            return suite_entry(self.cfg.suite).build(self)
        wanted = [entry for entry in SUITE_REGISTRY.values() if self.cfg.norm in entry.norms]
        names = [e.name for e in SUITE_REGISTRY.values() if e.needs_segmenter]
        skipped = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)
        if not self.part_model:
            self.notes.append(f"model without a part segmenter: {skipped} skipped")
            wanted = [entry for entry in wanted if not entry.needs_segmenter]
        elif self.cfg.norm != "Linf":
            self.notes.append(f"--norm {self.cfg.norm}: {skipped} skipped (ℓ∞ only)")
        return [attack for entry in wanted for attack in entry.build(self)]

    def row(self, attack: Attack, robust: torch.Tensor, seconds: float) -> dict[str, Any]:
        return {"suite": self.cfg.suite, "attack": attack.name, "norm": self.cfg.norm, "eps": attack.eps,
                "n": len(self.s.y), "clean_acc": self.clean_correct.float().mean().item(),
                "adv_acc": robust.float().mean().item(), "clean_pixel_acc": self.clean_pixel_acc,
                "adv_pixel_acc": attack.pixel_acc() if attack.pixel_acc else None, "seconds": seconds,
                **dict.fromkeys(PGD_SETTINGS), **attack.settings}

    def pgd_settings(self, step_size: float) -> dict[str, Any]:
        """The results row's record of a PGD-type attack (``ATTACK_COLUMNS``): --steps, this step size, --restarts."""
        return dict(zip(PGD_SETTINGS, (self.cfg.steps, step_size, self.cfg.restarts)))

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
        step = cfg.pgd_step_size if same_radius(eps, cfg.eps) else self.sweep_step_size(eps)
        return self.pgd(eps, step, restarts, f"hygiene-{restarts}").float().mean().item()

    def sweep_step_size(self, eps: float) -> float:
        """The PGD step at a radius above --eps (``sweep_step_size``)."""
        return sweep_step_size(eps, self.cfg.pgd_step_size, self.cfg.steps)

    # -- the attacks the suites use --------------------------------------------------------------------------------------
    def autoattack(self, eps: float) -> Attack:
        at_eps = same_radius(eps, self.cfg.eps)
        state_path = (self.state_path if at_eps or self.state_path is None  # one resume file per radius
                      else state_path_at_radius(self.state_path, eps))
        state_key = None if self.state_key is None else {**self.state_key, "attack_eps": eps}

        def run() -> torch.Tensor:
            result = run_autoattack(self.model, self.s.x, self.s.y, eps, num_classes=self.num_classes,
                                    seed=self.cfg.seed, batch_size=self.cfg.batch_size, device=self.cfg.device,
                                    attacks=self.cfg.aa_attacks, clean_correct=self.clean_correct,
                                    state_path=state_path, state_key=state_key, norm=self.cfg.norm,
                                    shard=self.shard, keep_adversarial=self.keep_adversarial)
            self.found = result.adversarial
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
        attack = Attack(plan.name, eps, run)
        return attack

    def pgd(self, eps: float, step: float, restarts: int, name: str) -> torch.Tensor:
        def attack(x, y, masks, has_mask, sl, gen):
            return craft_adversarial(self.model, x, y, eps, step, self.cfg.steps, norm=self.cfg.norm,
                                     restarts=restarts, generator=gen)
        return self._classification_attack(f"{name}@{eps}", attack, f"{name} at {eps_label(eps, self.cfg.norm)}")

    def seg_single(self) -> torch.Tensor:
        cfg = self.cfg

        def attack(x, y, masks, has_mask, sl, gen):
            return seg_single_attack(self.model, x, y, masks, has_mask, cfg.eps, cfg.pgd_step_size, cfg.steps,
                                     cfg.restarts, cfg.attack_cseg, gen)
        return self._classification_attack("seg-single", attack)

    def two_stage(self, strategy: str) -> torch.Tensor:
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

    def segmenter(self) -> Attack:
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
        return Attack("segmenter", cfg.eps, run, pixel_acc, settings=self.pgd_settings(cfg.pgd_step_size))

    # -- helpers ------------------------------------------------------------------------------------------
    def strategies(self) -> tuple[str, ...]:
        """The two-stage strategies to run: mc-sorted needs a head that reads part masks (not ``twohead``)."""
        if "mc-sorted" not in self.cfg.strategies or getattr(self.model.head, "reads_masks", True):
            return self.cfg.strategies
        rest = tuple(s for s in self.cfg.strategies if s != "mc-sorted")
        if not rest:
            raise PartcliError("--strategy mc-sorted: scores guide masks with the classifier on masks, but this "
                               "twohead model classifies decoder features; choose another strategy")
        self.notes.append("twohead model: seg-two-stage/mc-sorted skipped (its classifier reads no masks)")
        return rest

    def _classification_attack(self, name: str, attack: Callable[..., torch.Tensor], label: str | None = None
                               ) -> torch.Tensor:
        """Robust flags: ``attack(x, y, masks, has_mask, batch indices, generator) -> x_adv`` runs on the
        clean-correct samples only, batch by batch (sharded over the ranks), with the parameters frozen and the
        batch's own generator (``_generator(name, batch)``); a sample is robust if x_adv is still classified right.
        With ``keep_adversarial`` the x_adv go to ``found`` (the clean images of the samples not attacked).
        ``label`` names the attack in progress lines (default ``name``, which also seeds the generators)."""
        dev = self.cfg.device

        def batch(k: int, sl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            x, y = self.s.x[sl].to(dev), self.s.y[sl].to(dev)
            masks, has_mask = self.s.masks[sl].long().to(dev), self.s.has_mask[sl].to(dev)
            with frozen_eval(self.model):
                x_adv = attack(x, y, masks, has_mask, sl, self._generator(name, k))
            with torch.no_grad():
                flags = (self.model(x_adv).argmax(1) == y).cpu()
            return flags, x_adv.cpu() if self.keep_adversarial else None

        robust = torch.zeros(len(self.s.y), dtype=torch.bool)
        found = self.s.x.clone() if self.keep_adversarial else None
        batches = self._batches(self.clean_correct.nonzero().squeeze(1).tolist())
        for sl, (flags, x_adv) in zip(batches, self.shard.map(batches, batch, label or name)):
            robust[sl] = flags
            if found is not None:
                found[sl] = x_adv
        self.found = found
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


def batch_seed(seed: int, attack: str, batch: int) -> int:
    """The seed of the random draws (starts, restarts, two-stage targets) of ``attack`` (its name, e.g. ``pgd@0.031``)
    on its batch ``batch``: the first 63 bits of SHA-256("<seed>/<attack>/<batch>"), a function of these alone."""
    digest = hashlib.sha256(f"{seed}/{attack}/{batch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def sweep_step_size(eps: float, step_size: float, steps: int) -> float:
    """Step size for radii above --eps: large enough that the steps can cross the ball (steps·α ≥ 2.5ε)."""
    return max(step_size, BALL_CROSSING * eps / steps)
