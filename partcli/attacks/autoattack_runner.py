"""The real AutoAttack (PyPI ``pyautoattack`` 0.2.0, Croce & Hein 2020) configured as the paper did (App. B).

Attacks run one at a time on the samples that are still robust, exactly as ``run_standard_evaluation`` does
inside one call (each attack reseeds torch's RNG with ``seed`` before every batch, and its batches are the
survivors in order), so the robust flags equal those of a single direct call with the same samples, norm, ε, seed
and batch size. Running them one at a time is what makes a long run resumable: after each attack the flags go to a
small JSON state file.

Under torchrun (``shard``) each attack's batches of survivors are shared out, batch ``b`` to rank ``b %
world_size``, one ``run_standard_evaluation`` call per batch; as AutoAttack reseeds before every batch, a batch's
result depends on its samples alone, and the ranks' flags, gathered after each attack, equal a single process's.
Rank 0 alone reads and writes the state file, which holds whole attacks over all the samples: a killed sharded run
resumes after its last finished attack with any number of ranks (the attack it was in is run again).
pyautoattack's own ``state_path`` cannot be used for that: in 0.2.0 a saved state can never be restored (it
writes the attack set as ``str(set)`` and then refuses the file as "created with a different set of
attacks"), and a restored run would also hit an unbound ``y_adv``. ``state_path_for`` names the state file beside
the results CSV, one per run (checkpoint, data, split, samples, seed, norm, radius).

The ℓ2 standard version (``norm="L2"``) runs the same attacks with the same settings as the ℓ∞ one (1 restart each,
9 target classes, square with 5000 queries), so the few-class rules of ``autoattack_plan`` apply to both norms.

AutoAttack's own sanity checks (randomised or dynamic defence, probabilities instead of logits, zero gradients,
Square stronger than the gradient attacks) log warnings to the ``auto-attack`` logger or emit Python warnings;
both are collected into ``AutoAttackResult.warnings`` for the suite's notes instead of reaching stderr raw.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from partcli.config import eps_label
from partcli.errors import PartcliError, writing
from partcli.progress import info
from partcli.shards import SINGLE, Shard

STANDARD_ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")
FEW_CLASS_ATTACKS = ("apgd-ce", "fab", "square")  # App. B: DLR / targeted attacks need ≥ 4 classes
KNOWN_ATTACKS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")
TARGETED_ATTACKS = ("apgd-t", "fab-t")
DEFAULT_TARGET_CLASSES = 9


@dataclass(frozen=True)
class AutoAttackPlan:
    """What AutoAttack runs: always the standard version's settings (1 restart each, square with 5000 queries),
    with this list of attacks and this many target classes for apgd-t / fab-t."""

    attacks: tuple[str, ...]
    n_target_classes: int
    note: str | None = None  # what was changed from the standard version, for the user

    @property
    def name(self) -> str:
        """The ``attack`` cell of the results CSV: ``autoattack`` for the standard version verbatim, else the
        attacks that ran (and the target classes, where fewer than 9), e.g. ``autoattack[apgd-ce,fab,square]``."""
        if self.attacks == STANDARD_ATTACKS and self.n_target_classes == DEFAULT_TARGET_CLASSES:
            return "autoattack"
        fewer_targets = (any(a in TARGETED_ATTACKS for a in self.attacks)
                         and self.n_target_classes != DEFAULT_TARGET_CLASSES)
        targets = f";targets={self.n_target_classes}" if fewer_targets else ""
        return f"autoattack[{','.join(self.attacks)}{targets}]"


@dataclass
class AutoAttackResult:
    robust: torch.Tensor  # bool, one flag per sample: correct clean and after every attack
    plan: AutoAttackPlan
    accuracy_after: dict[str, float]  # robust accuracy after each attack, in order
    resumed_after: list[str]  # attacks that had finished in an earlier, interrupted run (state file)
    earlier_seconds: float  # the time those attacks took in that run
    warnings: list[str] = field(default_factory=list)  # AutoAttack's own warnings, "<attack>: <message>", unique
    adversarial: torch.Tensor | None = None  # with keep_adversarial: per sample the image that fooled it, else clean


def autoattack_plan(num_classes: int, attacks: tuple[str, ...] | list[str] | None = None) -> AutoAttackPlan:
    """Standard AutoAttack, adapted to few classes (App. B; apgd-t and fab-t use at most C − 1 target classes);
    ``attacks`` picks another list."""
    n_target = min(DEFAULT_TARGET_CLASSES, num_classes - 1)
    if attacks is not None:
        unknown = [a for a in attacks if a not in KNOWN_ATTACKS]
        if unknown or not attacks:
            raise PartcliError(f"AutoAttack attacks {list(attacks)!r}: expected some of {', '.join(KNOWN_ATTACKS)}")
        return AutoAttackPlan(tuple(attacks), n_target, f"AutoAttack runs only {', '.join(attacks)}")
    if num_classes < 4:
        return AutoAttackPlan(FEW_CLASS_ATTACKS, n_target,
                              f"{num_classes} classes: AutoAttack runs apgd-ce, fab, square with the standard "
                              "settings (the targeted attacks need 4 or more classes; paper App. B)")
    note = None
    if n_target < DEFAULT_TARGET_CLASSES:
        note = f"{num_classes} classes: apgd-t and fab-t use {n_target} target classes instead of 9"
    return AutoAttackPlan(STANDARD_ATTACKS, n_target, note)


def build_autoattack(model: nn.Module, plan: AutoAttackPlan, eps: float, seed: int, device: str,
                     attacks: list[str] | None = None, norm: str = "Linf") -> Any:
    """A quiet ``pyautoattack.AutoAttack`` in the ``norm`` ball (Linf or L2) with the standard version's settings
    (App. B: "default hyperparameters"), the plan's attacks and target classes; ``attacks`` narrows the list for
    one call."""
    from pyautoattack import AutoAttack

    aa = AutoAttack(model, norm=norm, eps=eps, version="standard", device=device, seed=seed)
    aa.verbose = False
    aa.attacks_to_run = list(plan.attacks if attacks is None else attacks)
    aa.apgd_targeted.n_target_classes = plan.n_target_classes
    aa.fab.n_target_classes = plan.n_target_classes
    return aa


def run_autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, num_classes: int,
                   seed: int = 0, batch_size: int = 256, device: str = "cpu",
                   attacks: tuple[str, ...] | list[str] | None = None, clean_correct: torch.Tensor | None = None,
                   state_path: str | Path | None = None, state_key: dict[str, Any] | None = None,
                   norm: str = "Linf", shard: Shard = SINGLE, keep_adversarial: bool = False) -> AutoAttackResult:
    """Robust flags of ``model`` (eval mode, [0, 1] inputs → logits) under AutoAttack at radius ``eps`` of ``norm``
    (Linf or L2).

    ``clean_correct`` saves the clean pass when the caller has it. With ``state_path`` the flags are saved after
    every attack and a rerun with the same ``state_key`` continues after the last finished attack (the result
    says which, and the seconds they took); the file is removed when the run completes. Torch's global RNG is
    left as it was found (AutoAttack reseeds it). ``shard``: this rank's share under torchrun (module docstring);
    every rank gets the whole result.

    ``keep_adversarial``: the result also holds, per sample, the image of the attack that fooled it (AutoAttack's
    final x_adv), or the clean image for the samples still robust and those misclassified clean (not attacked); it
    cannot resume (``state_path``), which keeps flags only.
    """
    if keep_adversarial and state_path:
        raise ValueError("run_autoattack: keep_adversarial cannot resume from a state file; pass state_path=None")
    plan = autoattack_plan(num_classes, attacks)
    model.eval()
    if clean_correct is None:
        clean_correct = _clean_correct(model, x, y, batch_size, device)
    key = {**(state_key or {}), "attacks": list(plan.attacks), "n": len(y)}
    done, robust, earlier = shard.on_main(lambda: _load_state(state_path, key)) if state_path else ([], None, 0.0)
    resumed_after, seconds = list(done), earlier
    robust = clean_correct.clone().cpu() if robust is None else robust
    found = x.detach().cpu().clone() if keep_adversarial else None
    accuracy_after: dict[str, float] = {}
    notes: list[str] = []
    cuda = [torch.device(device)] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        for attack in plan.attacks:
            if attack not in done:
                start = time.perf_counter()
                if robust.any():
                    aa = build_autoattack(model, plan, eps, seed, device, attacks=[attack], norm=norm)
                    survivors = robust.nonzero().squeeze(1)
                    batches = [survivors[i:i + batch_size] for i in range(0, len(survivors), batch_size)]

                    def run(_: int, batch: torch.Tensor) -> tuple[torch.Tensor, list[str], torch.Tensor | None]:
                        """Robust flags of one batch of survivors under ``attack``, AutoAttack's warnings and,
                        with keep_adversarial, its x_adv."""
                        warned: list[str] = []
                        with _collect_warnings(attack, warned):
                            # contiguous: pyautoattack's ℓ2 APGD reshapes with .view, which channels-last input breaks
                            x_adv, y_adv = aa.run_standard_evaluation(x[batch].contiguous(), y[batch],
                                                                      batch_size=batch_size)
                        return y_adv.cpu() == y[batch].cpu(), warned, x_adv.cpu() if keep_adversarial else None

                    info(f"AutoAttack {attack}: {len(survivors)} of {len(y)} samples still robust, "
                         f"{len(batches)} batch(es)")
                    done_batches = shard.map(batches, run, f"AutoAttack {attack}", every=1, status=_robust_so_far)
                    for batch, (flags, warned, x_adv) in zip(batches, done_batches):
                        robust[batch] = flags
                        if found is not None:
                            found[batch[~flags]] = x_adv[~flags]
                        notes.extend(w for w in warned if w not in notes)
                done.append(attack)
                seconds += time.perf_counter() - start
            accuracy_after[attack] = robust.float().mean().item()
            if state_path:
                shard.on_main(lambda: _save_state(state_path, key, done, robust, seconds))
    with _collect_warnings("square", notes):  # one attack per call: AutoAttack's own end-of-run check, on the whole
        from pyautoattack.checks import check_square_sr
        check_square_sr({"clean": clean_correct.float().mean().item(), **accuracy_after},
                        logger=logging.getLogger(AUTOATTACK_LOGGER))
    if state_path and shard.is_main:
        Path(state_path).unlink(missing_ok=True)
    return AutoAttackResult(robust, plan, accuracy_after, resumed_after, earlier, notes, found)


AUTOATTACK_LOGGER = "auto-attack"  # pyautoattack's logging.getLogger name


def _robust_so_far(results: list[tuple[torch.Tensor, list[str], torch.Tensor | None]]) -> str:
    """A progress line's status: of the survivors this rank has attacked so far, how many are still robust."""
    robust = sum(int(flags.sum()) for flags, *_ in results)
    return f"{robust}/{sum(len(flags) for flags, *_ in results)} still robust"


def state_path_for(out: str | Path, key: dict[str, Any]) -> Path:
    """The resume state file of a run keyed by ``key`` (checkpoint, data, split, samples, seed, --norm, --eps),
    beside the results CSV ``out``: ``<stem>.autoattack-state.<digest>.json``."""
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return Path(out).with_name(f"{Path(out).stem}.autoattack-state.{digest}.json")


def state_path_at_radius(state_path: Path, eps: float) -> Path:
    """The state file of the same run at another radius (the ε sweep): ``<state stem>.<k>-255.json``."""
    return state_path.with_suffix(f".{eps_label(eps, sep='-')}.json")


@contextlib.contextmanager
def _collect_warnings(attack: str, notes: list[str]) -> Iterator[None]:
    """Append the ``auto-attack`` logger's warnings and the Python warnings raised meanwhile to ``notes``, as
    ``"AutoAttack <attack>: <message>"``, each message once."""
    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger, handler = logging.getLogger(AUTOATTACK_LOGGER), _Collect(logging.WARNING)
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        messages += [str(w.message) for w in caught]
    finally:
        logger.removeHandler(handler)
        for message in messages:
            note = f"AutoAttack {attack}: {message}"
            if note not in notes:
                notes.append(note)


def _clean_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: str) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for i in range(0, len(y), batch_size):
            out.append(model(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size].cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def _load_state(path: str | Path, key: dict[str, Any]) -> tuple[list[str], torch.Tensor | None, float]:
    """Finished attacks, robust flags and the seconds those attacks took, from an interrupted run's state file."""
    path = Path(path)
    if not path.exists():
        return [], None, 0.0
    try:
        doc = json.loads(path.read_text())
        if doc["key"] != json.loads(json.dumps(key)):
            raise PartcliError(f"{path}: AutoAttack state of another run (other samples or settings); delete it "
                               "to start afresh")
        return list(doc["done"]), torch.tensor(doc["robust"], dtype=torch.bool), float(doc.get("seconds", 0.0))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise PartcliError(f"{path}: unreadable AutoAttack state file; delete it to start afresh") from None


def _save_state(path: str | Path, key: dict[str, Any], done: list[str], robust: torch.Tensor, seconds: float) -> None:
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump({"key": key, "done": done, "robust": robust.int().tolist(), "seconds": seconds}, fh)
        os.replace(tmp, path)
