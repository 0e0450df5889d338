"""``partcli visualize``: what a part model sees, on clean and attacked images (paper Fig. 5, App. D.12).

Samples are drawn as ``partcli attack`` draws them (``--n`` of the split, seeded, in split order). The masks
shown are the ones the segmenter was trained to predict (part, object or box labels, from the checkpoint's
``--seg-labels``). The progress bar counts PGD steps, or AutoAttack's attacks, so its ETA means something even
for a single batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from partcli.attacks.autoattack_runner import autoattack_plan, build_autoattack
from partcli.attacks.pgd import pgd_linf, pgd_linf_from
from partcli.attacks.suite import AttackSamples, load_samples, select_indices
from partcli.config import eps_label
from partcli.config import parse_fraction
from partcli.data.label_kinds import label_kind
from partcli.errors import PartcliError, check_writable, writing
from partcli.evaluate.evaluate import load_for_dataset
from partcli.models.sources import open_model
from partcli.progress import track
from partcli.report.figure_files import figure_path, save_figure
from partcli.report.masks_figure import MaskRow, masks_figure
from partcli.report.models import describe

ATTACKS = ("pgd", "autoattack")


@dataclass
class VisualizeResult:
    out: Path
    n: int
    clean_correct: int
    adv_correct: int | None = None
    notes: list[str] = field(default_factory=list)


def visualize(ckpt: str | Path | None, data: str | Path, out: str | Path | None = None, *, split: str = "test",
              n: int = 8, seed: int = 0, attack: str | None = None, eps: float | str = 8 / 255, steps: int = 20,
              step_size: float | str = 2 / 255, device: str = "cpu", batch_size: int = 32,
              aa_attacks: tuple[str, ...] | list[str] | None = None, model: str | Path | nn.Module | None = None,
              image_size: int | None = None, fmt: str | None = None) -> VisualizeResult:
    """Python API of ``partcli visualize``: draw ``n`` samples of ``split`` and write the figure ``out``.

    The format is ``out``'s extension (png, pdf or svg), or ``fmt`` when ``out`` is None (``fig/masks.<fmt>``).

    The model is the checkpoint ``ckpt`` or ``model`` (any model, ``partcli.models.sources``, at ``image_size``).
    ``aa_attacks`` replaces AutoAttack's list of attacks (e.g. a cheaper one in tests); None = App. B.
    """
    eps, step_size = parse_fraction(eps, "--eps"), parse_fraction(step_size, "--step-size")
    out, fmt = figure_path(out, fmt, "fig/masks")
    _check_options(n, attack, eps, steps, step_size, device, batch_size)
    source = open_model(ckpt, model)
    model, ds = load_for_dataset(source, data, split, image_size)
    model = model.to(device).eval()
    samples = load_samples(ds, select_indices(len(ds), n, seed, None, split))
    check_writable(out)
    notes = []
    part_model = bool(getattr(model, "has_segmenter", False))
    if not part_model:
        kind = source.config.get("model", {}).get("arch", "no part segmenter")
        notes.append(f"{source.name}: a model without a part segmenter ({kind}); drawing images and predictions only")
    if not bool(samples.has_mask.any()):
        notes.append(f"{data}: none of the {len(samples.y)} samples drawn has a part mask; no true parts shown")
    pred, pred_masks = _predict(model, samples.x, device, batch_size)
    x_adv = adv_pred = adv_masks = None
    attack_name = attack or ""
    if attack is not None:
        x_adv, attack_name, note = _attack(model, samples, attack, eps, steps, step_size, seed, device,
                                           ds.info.num_classes, batch_size, aa_attacks)
        notes += [note] if note else []
        adv_pred, adv_masks = _predict(model, x_adv, device, batch_size)
    rows = [MaskRow(image=samples.x[i].permute(1, 2, 0).numpy(), label=int(samples.y[i]), pred=int(pred[i]),
                    true_mask=samples.masks[i].long().numpy() if samples.has_mask[i] else None,
                    pred_mask=None if pred_masks is None else pred_masks[i].numpy(),
                    adv_image=None if x_adv is None else x_adv[i].permute(1, 2, 0).numpy(),
                    adv_pred=None if adv_pred is None else int(adv_pred[i]),
                    adv_mask=None if adv_masks is None else adv_masks[i].numpy())
            for i in range(len(samples.y))]
    title = (f"{model_name(source.config, source.name)}: {ds.info.name}, {split} split"
             + (f", {attack_name} at ε = {eps_label(eps)}" if attack else ""))
    column = "AutoAttack" if attack == "autoattack" else attack_name  # the plan's full name is in the title
    labels = label_kind(source.config.get("dataset", {}).get("seg_labels", "part"))  # "part" for another model
    fig = masks_figure(rows, ds.info.classes, labels.mask_names(ds.info), title, column or "attack")
    with writing(out):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        save_figure(fig, out, fmt)
    return VisualizeResult(out, len(rows), int((pred == samples.y).sum()),
                           None if adv_pred is None else int((adv_pred == samples.y).sum()), notes)


def model_name(config: dict, name: str) -> str:
    """A figure title's name of the model: what a partcli checkpoint is (architecture, backbone, training), else
    the last part of what ``--model`` named."""
    described = {**config.get("model", {}), **config.get("train", {})}
    return describe(described) if described.get("arch") else Path(name).name or name


def _check_options(n: int, attack: str | None, eps: float, steps: int, step_size: float, device: str,
                   batch_size: int) -> None:
    if n < 1:
        raise PartcliError(f"--n {n}: expected a positive number of samples")
    if attack is not None and attack not in ATTACKS:
        raise PartcliError(f"--attack {attack!r}: expected one of {', '.join(ATTACKS)}")
    if not 0 < eps <= 1:
        raise PartcliError(f"--eps {eps:g}: expected a radius in (0, 1], e.g. 8/255")
    for option, value in (("--steps", steps), ("--batch-size", batch_size)):
        if value < 1:
            raise PartcliError(f"{option} {value}: expected a positive integer")
    if step_size <= 0:
        raise PartcliError(f"--step-size {step_size:g}: expected a positive number")
    if str(device).split(":")[0] not in ("cpu", "cuda"):
        raise PartcliError(f"--device {device!r}: expected cpu or cuda")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise PartcliError(f"--device {device}: no CUDA device is available; use --device cpu")


def _predict(model: nn.Module, x: torch.Tensor, device: str, batch_size: int
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Predicted classes and, for a part model, predicted part ids (argmax over the K + 1 channels)."""
    classes, parts = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            logits, seg = model(x[i:i + batch_size].to(device), return_seg=True)
            classes.append(logits.argmax(1).cpu())
            parts.append(None if seg is None else seg.argmax(1).cpu())
    return torch.cat(classes), None if parts[0] is None else torch.cat(parts)


def _attack(model: nn.Module, s: AttackSamples, attack: str, eps: float, steps: int, step_size: float, seed: int,
            device: str, num_classes: int, batch_size: int, aa_attacks) -> tuple[torch.Tensor, str, str | None]:
    """Adversarial images: partcli's PGD or the real AutoAttack (App. B settings), with the clean samples' labels."""
    if attack == "pgd":
        return _pgd(model, s, eps, steps, step_size, seed, device, batch_size), f"PGD-{steps}", None
    plan = autoattack_plan(num_classes, aa_attacks)
    x_adv = s.x.clone()
    robust = _predict(model, s.x, device, batch_size)[0] == s.y  # AutoAttack attacks the clean-correct samples
    cuda = [torch.device(device)] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):  # AutoAttack reseeds torch's global RNG
        for name in track(plan.attacks, "AutoAttack"):  # each on the samples still robust, as AutoAttack runs them
            idx = robust.nonzero().squeeze(1)
            if len(idx):
                aa = build_autoattack(model, plan, eps, seed, device, attacks=[name])
                found, y_adv = aa.run_standard_evaluation(s.x[idx].to(device), s.y[idx].to(device),
                                                          batch_size=batch_size)
                fooled = (y_adv.cpu() != s.y[idx])
                x_adv[idx[fooled]] = found.cpu()[fooled]
                robust[idx[fooled]] = False
    return x_adv.clamp(0, 1), plan.name, plan.note


def _pgd(model: nn.Module, s: AttackSamples, eps: float, steps: int, step_size: float, seed: int, device: str,
         batch_size: int) -> torch.Tensor:
    """``pgd_linf`` batch by batch, one step at a time so that the progress bar counts steps: from its random
    start (``pgd_linf`` with 0 steps), ``pgd_linf_from`` with 1 step repeated is ``pgd_linf`` with ``steps``."""
    gen = torch.Generator().manual_seed(seed)
    batches = [slice(i, i + batch_size) for i in range(0, len(s.y), batch_size)]
    out = []
    for b, step in track([(b, k) for b in range(len(batches)) for k in range(steps)], f"PGD-{steps}"):
        if step == 0:
            x, y = s.x[batches[b]].to(device), s.y[batches[b]].to(device)
            x_adv = pgd_linf(model, x, y, eps, step_size, 0, generator=gen)
        x_adv = pgd_linf_from(model, x, x_adv, y, eps, step_size, 1)
        if step == steps - 1:
            out.append(x_adv.cpu())
    return torch.cat(out)
