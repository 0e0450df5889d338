"""``partcli pseudolabel`` (paper §5.3, App. D.6, Table 15): keep a fraction of the part masks, fill in the rest.

A part segmenter is trained on the training samples that keep their ground-truth mask (a stratified, seeded
``frac``, the same choice as ``partcli train --seg-frac`` with the same seed); it predicts masks for every other
training sample (and for optional extra class-labelled images, ``--unlabelled``), and a new prepared dataset is
written whose ``train.csv`` marks each mask ``gt`` or ``pseudo``. See ``build.py`` for the output layout.
"""
from partcli.pseudolabel.config import PseudoLabelConfig


def __getattr__(name: str):
    # Lazy, so that the CLI can read PseudoLabelConfig's options without importing torch.
    if name in ("PseudoLabelResult", "pseudolabel"):
        from partcli.pseudolabel import build

        return getattr(build, name)
    raise AttributeError(f"module 'partcli.pseudolabel' has no attribute {name!r}")


__all__ = ["PseudoLabelConfig", "PseudoLabelResult", "pseudolabel"]
