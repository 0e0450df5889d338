"""Bad input to the commands that read a checkpoint or results — evaluate, attack, robustness, visualize, report,
compare and info: one-line errors naming the option or file, exit code 2, nothing written."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from bad_input_fixtures import (SIZE, assert_user_error, data, first_row, good,  # noqa: F401 (fixtures)
                                good_checkpoint)
from helpers import run_cli, write_tiny_checkpoint
from partcli.checkpoint import CHECKPOINT_VERSION
from partcli.data.contract import Part
from partcli.data.writer import DatasetWriter
from partcli.errors import PartcliError
from partcli.train.run_files import METRIC_COLUMNS


# ------------------------------------------------------------------------------ checkpoints
BAD_CHECKPOINTS = {
    "random.pt": bytes(range(256)) * 8,
    "plain.pt": {"weights": torch.zeros(3)},
    "future.pt": {"format_version": CHECKPOINT_VERSION + 1, "model": {}, "config": {"model": {}}},
}


@pytest.mark.parametrize("name", BAD_CHECKPOINTS)
def test_not_a_partcli_checkpoint(name, good, tmp_path):
    path = tmp_path / name
    content = BAD_CHECKPOINTS[name]
    path.write_bytes(content) if isinstance(content, bytes) else torch.save(content, path)
    csv = tmp_path / "eval.csv"
    assert_user_error(run_cli("evaluate", "--ckpt", path, "--data", good, "--out", csv), str(path))
    assert not csv.exists()
    assert_user_error(run_cli("info", path), str(path))
    out = tmp_path / "run"
    assert_user_error(run_cli("--quiet", "train", "--data", good, "--out", out, "--init", path, "--epochs", 1,
                              "--image-size", SIZE, "--device", "cpu"), str(path))
    assert not out.exists()


def test_checkpoint_for_another_dataset(good_checkpoint, tmp_path):
    other = tmp_path / "other"
    with DatasetWriter(other, ["a", "b", "c"], [Part("a/x", "a")], name="other") as writer:
        for split in ("train", "val", "test"):
            writer.add(split, "s", 0, Image.new("RGB", (SIZE, SIZE)), mask=np.zeros((SIZE, SIZE), np.uint8))
        writer.finish({})
    result = run_cli("evaluate", "--ckpt", good_checkpoint, "--data", other, "--out", tmp_path / "e.csv")
    assert_user_error(result, "--ckpt", "2 classes", "3")


def test_weights_that_do_not_fit_their_config(tmp_path):
    import partcli

    state = torch.load(write_tiny_checkpoint(tmp_path, SIZE), weights_only=True)
    state["config"]["model"]["num_parts"] = 3  # the segmenter would have 4 output channels, the weights have 3
    path = tmp_path / "edited.pt"
    torch.save(state, path)
    with pytest.raises(PartcliError, match="do not fit the model its configuration describes"):
        partcli.load_model(path)
    good3 = tmp_path / "good3"  # a dataset with 3 parts, so that evaluate gets as far as the weights
    with DatasetWriter(good3, ["a", "b"], [Part("a/x", "a"), Part("b/y", "b"), Part("b/z", "b")], name="g3") as w:
        for split in ("train", "val", "test"):
            w.add(split, "s", 0, Image.new("RGB", (SIZE, SIZE)), mask=np.zeros((SIZE, SIZE), np.uint8))
        w.finish({})
    result = run_cli("evaluate", "--ckpt", path, "--data", good3, "--out", tmp_path / "e.csv")
    assert_user_error(result, f"--ckpt {path}", "of another shape")
    assert not (tmp_path / "e.csv").exists()


# ------------------------------------------------------------------------------ evaluate and attack
@pytest.mark.parametrize("command, option, value", [
    *(("evaluate", o, v) for o, v in [("--batch-size", "0"), ("--image-size", "20"), ("--device", "tpu"),
                                      ("--workers", "-1"), ("--split", "nope")]),
    *(("attack", o, v) for o, v in [("--suite", "nope"), ("--split", "nope"), ("--strategy", "nope"),
                                    ("--device", "tpu"), ("--eps", "x/255")])])
def test_bad_evaluate_or_attack_option(command, option, value, good, good_checkpoint, tmp_path):
    csv = tmp_path / "out.csv"
    assert_user_error(run_cli(command, "--ckpt", good_checkpoint, "--data", good, "--out", csv, option, value),
                      option)
    assert not csv.exists()


@pytest.mark.parametrize("option, value", [("--eps", "eight"), ("--step-size", "0"), ("--suite", "fgsm"),
                                           ("--strategy", "sideways"), ("--split", "holdout")])
def test_attack_options_are_refused_through_its_config(option, value, good, good_checkpoint, tmp_path):
    """The attack command builds an AttackConfig; whatever it refuses is one line naming the option, nothing written."""
    out = tmp_path / "a.csv"
    result = run_cli("--quiet", "attack", "--ckpt", good_checkpoint, "--data", good, "--suite", "pgd", "--steps", 1,
                     "--restarts", 1, option, value, "--out", out)
    assert_user_error(result, option)
    assert not list(tmp_path.iterdir())


def test_attack_survivors_of_with_n(good, good_checkpoint, tmp_path):
    earlier = tmp_path / "a.pgd.1.samples.csv"
    earlier.write_text("index,image,label,clean_correct,split,checkpoint,robust:pgd\n")
    result = run_cli("--quiet", "attack", "--ckpt", good_checkpoint, "--data", good, "--survivors-of", earlier,
                     "--n", 1, "--out", tmp_path / "b.csv")
    assert_user_error(result, "--n 1", "--survivors-of")
    assert sorted(p.name for p in tmp_path.iterdir()) == [earlier.name]


# ------------------------------------------------------------------------------ robustness
@pytest.mark.parametrize("option, value", [("--suite", "weather"), ("--corruption", "rain"), ("--severity", 0),
                                           ("--severity", 6)])
def test_bad_robustness_option(option, value, good, good_checkpoint, tmp_path):
    out = tmp_path / "r.csv"
    assert_user_error(run_cli("robustness", "--ckpt", good_checkpoint, "--data", good, "--out", out,
                              "--cache", tmp_path / "cache", option, value), option, str(value))
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_robustness_refuses_what_its_suites_cannot_use(data, good_checkpoint, tmp_path):
    out = tmp_path / "r.csv"
    run = lambda *args: run_cli("robustness", "--ckpt", good_checkpoint, "--data", data,  # noqa: E731
                                "--out", out, *args)
    assert_user_error(run("--suite", "corruptions"), "--suite corruptions", f"{SIZE} px", "32 px")
    assert_user_error(run("--suite", "foreground"), "--suite foreground", "one class")
    assert_user_error(run("--suite", "shape-texture", "--stylizer", tmp_path / "none.pt2"), "--stylizer",
                      "not found")
    row = first_row(data, "test")
    (data / "test.csv").write_text(f"image,mask,label,mask_source\n{row['image']},,{row['label']},\n")
    for suite in ("foreground", "shape-texture"):
        assert_user_error(run("--suite", suite), "--suite", "1 of 1 test samples", row["image"], "no part mask")
    assert not out.exists()


# ------------------------------------------------------------------------------ visualize
@pytest.mark.parametrize("option, value", [("--out", "fig.jpg"), ("--out", "fig.gif"), ("--format", "gif"),
                                           ("--format", "pdf"), ("--n", "0"), ("--n", "5"), ("--attack", "fgsm"),
                                           ("--eps", "2"), ("--steps", "0"), ("--batch-size", "0"),
                                           ("--split", "nope")])
def test_bad_visualize_option(option, value, good, good_checkpoint, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    args = ["visualize", "--ckpt", good_checkpoint, "--data", good, "--out", out / "v.png", option, value]
    if option == "--out":
        args[-1] = str(out / value)
    assert_user_error(run_cli(*args), option if option != "--split" else "nope")
    assert not any(out.iterdir())


# ------------------------------------------------------------------------------ report
def test_report_refuses_missing_empty_or_unrelated_folders(tmp_path):
    out = tmp_path / "report"
    assert_user_error(run_cli("report", tmp_path / "nowhere", "--out", out), str(tmp_path / "nowhere"),
                      "no such file or folder")
    for option, value in (("--split", "testing"), ("--eps", "8"), ("--eps", "x"), ("--format", "gif")):
        assert_user_error(run_cli("report", tmp_path, "--out", out, option, value), option, value)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_user_error(run_cli("report", empty, "--out", out), str(empty), "nothing to report",
                      "no run folder with metrics.csv")
    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    (unrelated / "notes.txt").write_text("hello")
    (unrelated / "scores.csv").write_text("name,score\nx,1\n")
    assert_user_error(run_cli("report", unrelated, "--out", out), "nothing to report",
                      f"{unrelated / 'scores.csv'}: unknown CSV kind (columns name, score)")
    assert not out.exists()


def test_report_says_what_it_skipped_and_why(good, tmp_path):
    from partcli.evaluate.results_csv import append_results
    from test_report import make_run, rows_for

    root = tmp_path / "results"
    run = make_run(root / "runs", "bbox-pgd", adv="pgd")
    append_results(root / "attacks.csv", rows_for(run, 0.9, pgd=0.3)
                   + [{**rows_for(run, 0.9, pgd=0.2)[0], "suite": "imagenet-r", "attack": "renditions", "eps": None}])
    (root / "other-tool.csv").write_text("epoch;loss\n1;0.5\n")
    (root / "runs" / "crashed").mkdir()
    (root / "runs" / "crashed" / "config.yaml").write_text("arch: bbox\n")
    empty = make_run(root / "runs", "empty-metrics")
    (empty / "metrics.csv").write_text(",".join(METRIC_COLUMNS) + "\n")
    shutil.copytree(good, root / "data")
    (root / "broken.hygiene.json").write_text("{not json")
    out = tmp_path / "report"
    result = run_cli("report", root, "--out", out)
    assert result.code == 0 and "Traceback" not in result.err, result.err
    skipped = (out / "index.md").read_text().split("## Skipped", 1)[1]
    for culprit, reason in ((root / "other-tool.csv", "unknown CSV kind"),
                            (root / "runs" / "crashed", "a run folder without metrics.csv"),
                            (empty / "metrics.csv", "no epochs yet"),
                            (root / "data", "a prepared dataset, not results"),
                            (root / "broken.hygiene.json", "not a hygiene checklist"),
                            (root / "attacks.csv", "1 row(s) of suite 'imagenet-r'")):
        assert f"- {culprit}: {reason}" in skipped.replace("\\", ""), (culprit, skipped)
    assert (out / "curves-runs-bbox-pgd.png").is_file()


def test_report_refuses_a_foreign_out_folder(tmp_path):
    from test_report import make_run

    make_run(tmp_path / "runs", "a")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("keep me")
    assert_user_error(run_cli("report", tmp_path / "runs", "--out", out), f"--out {out}", "holds no partcli report",
                      "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]
    result = run_cli("report", tmp_path / "runs", "--out", out, "--overwrite")
    assert result.code == 0, result.err
    assert sorted(p.name for p in out.iterdir()) == ["curves-a.png", "index.html", "index.md", "thesis.tex"]


# ------------------------------------------------------------------------------ compare
def test_bad_compare_input(good_checkpoint, tmp_path):
    from partcli.evaluate.results_csv import append_results

    results = tmp_path / "r.csv"
    append_results(results, [{"checkpoint": str(good_checkpoint), "dataset": "d", "split": "test", "suite": "pgd",
                              "attack": "pgd", "eps": 0.03, "n": 1, "clean_acc": 1.0, "adv_acc": 0.5}])
    compare = lambda *args: run_cli("compare", *args)  # noqa: E731
    assert_user_error(compare(results, "--by", "colour"), "--by 'colour'", "arch")
    assert_user_error(compare(results, "--metric", "speed"), "--metric 'speed'", "adv_acc")
    assert_user_error(compare(results, "--ref", "vit"), "--ref 'vit'", "bbox")
    assert_user_error(compare(results, "--attack", "fgsm*"), "--attack fgsm*", "no row")
    assert_user_error(compare(tmp_path / "none.csv"), str(tmp_path / "none.csv"), "not found")
    other = tmp_path / "other.csv"
    other.write_text("epoch,lr\n1,0.1\n")
    assert_user_error(compare(other), str(other), "not a partcli results CSV", "checkpoint")
    moved = tmp_path / "moved.csv"
    moved.write_text(results.read_text().replace(str(good_checkpoint), "gone/best.pt"))
    assert_user_error(compare(moved), f"{moved}:2", "gone/best.pt", "not found")
    bad_number = tmp_path / "bad.csv"
    bad_number.write_text(results.read_text().replace(",0.5,", ",half,"))
    assert_user_error(compare(bad_number), f"{bad_number}:2", "'half'", "not a number")
    result = compare(results)  # one checkpoint: a mean, a note, no interval and never NaN
    assert result.code == 0 and "fewer than two" in result.err and "nan" not in result.err.lower()
