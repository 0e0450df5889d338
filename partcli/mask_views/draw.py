"""``partcli visualize``: what a part model sees, on clean and attacked images (paper Fig. 5, App. D.12).

Samples are drawn as ``partcli attack`` draws them (``--n`` of the split, seeded, in split order), and attacked by
its runner (``partcli.attacks.suite.attack_model``): ``--attack pgd`` is its ``pgd`` suite with one restart and
``--steps``/``--step-size``, ``--attack autoattack`` its ``autoattack`` suite (App. B settings), both with
``--seed``; so the figure's adversarial accuracy is the robust accuracy ``partcli attack`` reports for the same
samples and settings. As there, only the clean-correct samples are attacked; the others are drawn unperturbed.
The masks shown are the ones the segmenter was trained to predict (part, object or box labels, from the
checkpoint's ``--seg-labels``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from partcli.attacks.config import AttackConfig
from partcli.attacks.samples import load_samples, select_indices
from partcli.attacks.suite import attack_model
from partcli.config import check_fields, eps_label
from partcli.data.label_kinds import label_kind
from partcli.errors import check_writable, writing
from partcli.evaluate.evaluate import load_for_dataset
from partcli.mask_views.config import VisualAttack, VisualizeConfig
from partcli.models.sources import open_model
from partcli.options import parse_fraction
from partcli.report.figure_files import figure_path, save_figure
from partcli.report.masks_figure import MaskRow, masks_figure
from partcli.report.models import describe
from partcli.runtime import check_device

ATTACKS = tuple(a.value for a in VisualAttack)


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
    check_fields(VisualizeConfig(split=split, n=n, seed=seed, attack=attack, eps=eps, steps=steps, step_size=step_size,
                                 batch_size=batch_size))
    check_device(device)
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
        # partcli attack's suite, PGD with one restart; the images it counts
        cfg = AttackConfig(suite=attack, eps=eps, steps=steps, step_size=step_size, restarts=1, seed=seed,
                           device=device, batch_size=batch_size, aa_attacks=aa_attacks, hygiene=False)
        found = attack_model(model, samples, cfg, num_classes=ds.info.num_classes, keep_adversarial=True)
        ((row_name, x_adv),) = found.adversarial.items()
        attack_name = f"PGD-{steps}" if attack == "pgd" else row_name
        notes += found.notes
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

