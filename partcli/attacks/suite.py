"""``partcli attack``'s Python API: run an attack suite on a checkpoint and a split (paper §4, App. B, App. D.3).

``run_attack_suite`` loads the model and the samples, runs ``attack_model`` and writes the files (``outputs``);
``attack_model`` runs a suite on any model and samples. The suites are a registry (``registry``, the built-ins in
``suites``); the ``scheduler`` runs their attacks batch by batch. ``norm`` (Linf or L2) is the ball of every
attack; the suites that support only ℓ∞ (the seg ones) are refused with L2, and ``all`` skips them.

Samples (``samples`` module): the whole split, or ``n`` of them drawn with ``seed``. ``survivors_of`` attacks only
the samples robust in an earlier run's per-sample file (same checkpoint and split) and reports over that run's
samples: its rows are named ``<attack> after <file name>``, ``n`` is the earlier set's size and ``adv_acc`` the
fraction of it robust under the earlier attacks and this one.

Before any attack runs, the hygiene check ``input-dependence`` looks at the clean pass and the input gradients and
warns at once about a model that ignores its input (``hygiene`` module); the other checks follow the attacks.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from partcli.attacks.autoattack_runner import state_path_for
from partcli.attacks.config import ATTACK_CSV, AttackConfig
from partcli.attacks.hygiene import Check, check_input_dependence, check_radii, run_hygiene
from partcli.attacks.outcomes import FINGERPRINT_DIGITS, SampleOutcomes, on_earlier_set, read_outcomes
from partcli.attacks.outputs import SuiteResult, kept, write_result
from partcli.attacks.registry import ALL, SUITE_REGISTRY, Attack, suite_entry
from partcli.attacks.samples import AttackSamples, MaskPool, load_samples, select_indices
from partcli.attacks.scheduler import Scheduler
from partcli.attacks.suites import SWEEP_EPS, same_radius, sweep_radii
from partcli.attacks.validate import validate_config
from partcli.config import check_value, eps_label
from partcli.data.dataset import PreparedDataset
from partcli.errors import PartcliError
from partcli.evaluate.results_csv import ATTACK_COLUMNS, check_results_file
from partcli.options import flag_name
from partcli.progress import info, on_interrupt, warn
from partcli.runtime import pick_device
from partcli.shards import SINGLE, Shard, join_ranks, tensor_digest

# importable from here as before the split: the configuration, the sample draw, the result and the ε sweep
__all__ = ["AttackConfig", "AttackSamples", "SWEEP_EPS", "SuiteResult", "attack_config", "attack_model",
           "eps_label", "load_samples", "run_attack_suite", "select_indices", "sweep_radii"]


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
            check_results_file(out, ATTACK_COLUMNS)
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
    on_interrupt(lambda: kept(state_path))
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
        write_result(out, result, cfg, source.name, str(data))
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
                 state_key: dict[str, Any] | None = None, shard: Shard = SINGLE,
                 keep_adversarial: bool = False) -> SuiteResult:
    """Run ``cfg.suite`` on a model (any module mapping [0, 1] images to logits; part models for seg suites).

    ``shard``: this rank's share under torchrun (``partcli.shards``); every rank must call this with the same model,
    samples and configuration (checked), and every rank gets the whole result. Batch ``b`` of an attack (the
    ``cfg.batch_size`` chunks of the samples it attacks, in order) is attacked by rank ``b % world_size`` with
    random starts drawn from a generator seeded by (``cfg.seed``, attack, ``b``) only (``batch_seed``).

    ``keep_adversarial``: ``result.adversarial`` also holds, per attack (keyed as ``outcomes.robust``), the images
    its accuracy counts, on the CPU (held in memory only when asked). PGD: per sample the worst case over the
    restarts (the first that fools, else the highest loss; with one restart its last step). AutoAttack: the final
    x_adv of a fooled sample, the clean image of one still robust. A sample misclassified clean is not attacked and
    keeps its clean image. The ``pgd``, ``autoattack`` and ``eps-sweep`` suites keep images, and so do the
    ``seg-single`` and ``seg-two-stage`` attacks (the image each returns); ``segmenter`` and the ``all`` row keep
    none. Not with ``state_path``: a resumed AutoAttack has flags only for the attacks that ran before.
    """
    if keep_adversarial and state_path is not None:
        raise ValueError("attack_model: keep_adversarial cannot resume from a state file; pass state_path=None")
    validate_config(cfg)
    _check_l2_radius(cfg, samples.x.shape[1:])
    if shard.enabled:
        shard.agree({**{flag_name(k): v for k, v in dataclasses.asdict(cfg).items()}, "the classes": num_classes,
                     "the samples": tensor_digest(torch.tensor(samples.index), samples.x, samples.y, samples.masks),
                     "the model's weights": tensor_digest(*model.state_dict().values())})
    cfg = dataclasses.replace(cfg, device=str(pick_device(cfg.device, shard.local_rank)))
    _require_segmenter(model, cfg.suite, "the model")
    model = model.to(cfg.device).eval()
    runner = Scheduler(model, samples, cfg, num_classes, pool or MaskPool.from_samples(samples), state_path,
                       state_key, shard, keep_adversarial)
    early: list[Check] = []
    if cfg.hygiene:  # before the expensive attacks: a model that ignores its input wastes them
        early.append(check_input_dependence(runner.clean_logits.argmax(1), samples.y, runner.zero_input_gradients()))
        if early[-1].status == "warn" and shard.is_main:
            warn(f"{early[-1].name}: {early[-1].message}")
    rows, robust, adversarial = [], {}, {}
    for attack in runner.attacks():
        start = time.perf_counter()
        runner.found = None
        flags = attack.run()
        radius = "" if same_radius(attack.eps, cfg.eps) else f"@{eps_label(attack.eps, cfg.norm)}"
        robust[attack.name + radius] = flags
        if runner.found is not None:
            adversarial[attack.name + radius] = runner.found
        rows.append(runner.row(attack, flags, time.perf_counter() - start + attack.earlier_seconds))
    runner.keep_adversarial, runner.found = False, None  # the hygiene checks' extra PGD runs keep no images
    if cfg.suite == ALL:
        at_eps = [flags for name, flags in robust.items() if "@" not in name]
        combined = torch.stack(at_eps).all(0)
        robust["all"] = combined
        rows.append(runner.row(Attack("all", cfg.eps, lambda: combined), combined,
                               sum(r["seconds"] for r in rows)))
    outcomes = SampleOutcomes(samples.index, samples.image, samples.y.tolist(), runner.clean_correct.tolist(),
                              {k: v.tolist() for k, v in robust.items()})
    checks = (early + run_hygiene(rows, cfg.suite, cfg.eps, cfg.restarts, train_adv, runner.pgd_accuracy,
                                  check_radii(cfg.norm, samples.x[0].numel()))
              if cfg.hygiene else [])
    return SuiteResult(rows, outcomes, checks, runner.notes, adversarial=adversarial)


def _check_l2_radius(cfg: AttackConfig, shape: torch.Size) -> None:
    """Refuse an ℓ2 radius beyond the diagonal √d of the [0, 1] image cube: such a ball holds every image."""
    diagonal = math.sqrt(math.prod(shape))
    if cfg.norm == "L2" and cfg.eps > diagonal:
        raise PartcliError(f"--eps {cfg.eps:g}: larger than {diagonal:.4g}, the ℓ2 diagonal of a "
                           f"{'×'.join(map(str, shape))} image in [0, 1], so the ball holds every image; give a "
                           "smaller radius")


def _require_segmenter(model: nn.Module, suite: str, what: str) -> None:
    if suite != ALL and suite_entry(suite).needs_segmenter and not getattr(model, "has_segmenter", False):
        others = [name for name, entry in SUITE_REGISTRY.items() if not entry.needs_segmenter]
        raise PartcliError(f"--suite {suite}: {what} has no part segmenter; use {', '.join(others)} or all")


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
