"""Sharded evaluation (``partcli.shards``): ``attack`` and ``robustness`` under torchrun give a single process's
results, rank 0 alone writes and prints, and ranks that disagree or fail stop together.

The end-to-end tests spawn 2 gloo ranks on the CPU with torchrun's environment (as ``test_ddp.py`` does) and run the
CLI in each; the others simulate ranks with threads exchanging objects in memory, which is enough for what does not
touch torch's global RNG (AutoAttack reseeds it, so it runs in processes only).
"""
from __future__ import annotations

import copy
import csv
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import torch.multiprocessing as mp

from helpers import attack_samples, run_cli, tiny_conv
from known_robustness import PART_COLOURS, LinearPartModel, linear_model, part_images, samples_around
from partcli.attacks import autoattack_runner
from partcli.attacks.samples import AttackSamples
from partcli.attacks.suite import AttackConfig, attack_model
from partcli.data.dataset import PreparedDataset, eval_transform
from partcli.data.synthetic import prepare_synthetic
from partcli.errors import PartcliError
from partcli.shards import Shard
from test_ddp import free_port

WORLD = 2
ATTEMPTS = 3  # a rank may abort in gloo's teardown after its work (see test_ddp.spawn_ranks)
MODEL_FILE = '''import torch
from pathlib import Path
from torch import nn


def build():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 5))
    model.load_state_dict(torch.load(Path(__file__).with_name("linear.pt"), weights_only=True))
    return model
'''


# ------------------------------------------------------------------------------------------ ranks as threads
def thread_shards(world: int) -> list[Shard]:
    """``world`` shards whose exchange passes (copies of) objects between threads, as gloo passes them between
    processes."""
    barrier, slots = threading.Barrier(world, timeout=60), [None] * world

    def exchange(rank: int, obj: Any) -> list[Any]:
        slots[rank] = copy.deepcopy(obj)
        barrier.wait()
        out = copy.deepcopy(slots)
        barrier.wait()
        return out
    return [Shard(rank, world, rank, lambda obj, rank=rank: exchange(rank, obj)) for rank in range(world)]


def on_threads(world: int, fn: Callable[[Shard], Any]) -> list[Any]:
    """``fn(shard)`` on each of ``world`` thread ranks; the results (or exceptions) in rank order."""
    results: list[Any] = [None] * world

    def run(shard: Shard) -> None:
        torch.set_num_threads(1)
        try:
            results[shard.rank] = fn(shard)
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            results[shard.rank] = exc
    threads = [threading.Thread(target=run, args=(s,)) for s in thread_shards(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def outcome(result) -> tuple:
    """What a suite run decided: per-sample flags and the rows without their timings."""
    rows = [{k: v for k, v in row.items() if k != "seconds"} for row in result.rows]
    return result.outcomes.clean_correct, result.outcomes.robust, rows, [(c.name, c.status) for c in result.checks]


def linear_samples(n: int) -> tuple[torch.nn.Module, AttackSamples]:
    """A 5-class linear model and n samples, half within 1.5/255 of its boundary and half 2.5/255 to 5/255 away (one
    of them mislabelled): for one PGD step of 0.5/255 from a start in the 32/255 ball, the start decides."""
    model = linear_model(5)
    x, y, _ = samples_around(model, [2 / 255], per_gap=n // 2)
    y[1] = (y[1] + 1) % 5
    return model, attack_samples(x, y)


def test_pgd_outcomes_are_the_same_whatever_the_number_of_ranks():
    """Batch b's random starts come from a generator of (seed, attack, b): 2 or 3 ranks, each attacking its own
    batches, decide exactly what one process decides, hygiene's extra 1-restart PGD included (with the previous
    one-generator-per-attack rule, rank 1's first batch drew batch 0's starts)."""
    model, samples = linear_samples(10)
    cfg = AttackConfig(suite="pgd", eps=32 / 255, steps=1, step_size=0.5 / 255, restarts=2, batch_size=2)
    single = outcome(attack_model(model, samples, cfg, num_classes=5))
    assert 0 < sum(single[1]["pgd"]) < sum(single[0]) < len(samples.y)  # robust, fooled and wrong samples
    for world in (2, 3):
        results = on_threads(world, lambda shard: attack_model(copy.deepcopy(model), samples, cfg, num_classes=5,
                                                                shard=shard))
        assert [outcome(r) for r in results] == [single] * world, world


def test_segmenter_guided_outcomes_are_the_same_on_two_ranks():
    """The two-stage targets come from each batch's generator: sharded, the targets and starts are unchanged."""
    x, y, masks = part_images(12)
    model = LinearPartModel(PART_COLOURS)
    samples = AttackSamples(x, y, masks.to(torch.int16), torch.ones(len(y), dtype=torch.bool), list(range(len(y))),
                            [f"{i}.png" for i in range(len(y))])
    for suite in ("seg-single", "seg-two-stage", "segmenter"):
        cfg = AttackConfig(suite=suite, steps=4, step_size=4 / 255, eps=16 / 255, restarts=2, batch_size=3,
                           strategies=("untargeted", "random"), hygiene=False)
        single = outcome(attack_model(model, samples, cfg, num_classes=2))
        results = on_threads(2, lambda shard: attack_model(copy.deepcopy(model), samples, cfg, num_classes=2,
                                                            shard=shard))
        assert [outcome(r) for r in results] == [single] * 2, suite


def test_ranks_that_disagree_on_an_option_or_fail_stop_together():
    model, samples = linear_samples(4)
    eps = {0: 8 / 255, 1: 4 / 255}
    results = on_threads(2, lambda shard: attack_model(model, samples, AttackConfig(suite="pgd", eps=eps[shard.rank]),
                                                       num_classes=5, shard=shard))
    assert all(isinstance(r, PartcliError) for r in results)
    assert str(results[0]) == str(results[1]) == (
        f"--eps differs between ranks (rank 0: {8 / 255}, rank 1: {4 / 255}); start every rank with the same options "
        "and files")

    def rank_1_fails(shard: Shard) -> None:
        with shard.together():
            if shard.rank == 1:
                raise PartcliError("--data here: no such folder")
    failed = [isinstance(r, PartcliError) and str(r) for r in on_threads(2, rank_1_fails)]
    assert failed == ["--data here: no such folder"] * 2


class FakeAutoAttack:
    """Stands in for pyautoattack (whose global RNG reseeding threads would share): an attack fools the samples whose
    mean pixel lies below its threshold; records the attack and batch size of every call."""

    THRESHOLD = {"apgd-ce": 0.45, "square": 0.5}

    def __init__(self, attack: str, calls: list):
        self.attack, self.calls = attack, calls

    def run_standard_evaluation(self, x, y, batch_size):
        self.calls.append((self.attack, len(x)))
        fooled = x.flatten(1).mean(1) < self.THRESHOLD[self.attack]
        return x, torch.where(fooled, (y + 1) % 11, y)


def test_autoattack_resumes_a_sharded_run_with_any_number_of_ranks(tmp_path, monkeypatch):
    """Rank 0 alone reads the state of an interrupted run (apgd-ce done) and writes/removes it; every rank skips the
    finished attack and shares the rest, whatever the number of ranks."""
    calls: list = []
    monkeypatch.setattr(autoattack_runner, "build_autoattack",
                        lambda model, plan, eps, seed, device, attacks, norm: FakeAutoAttack(attacks[0], calls))
    model = tiny_conv(11)
    x = torch.rand(10, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.4 + 0.3
    with torch.no_grad():
        y = model(x).argmax(1)
    means = x.flatten(1).mean(1)
    done_flags = torch.ones(10, dtype=torch.bool)
    done_flags[0] = False  # fooled by apgd-ce in the interrupted run
    state = tmp_path / "aa-state.json"
    key = {"run": 1}
    stored = {"key": {**key, "attacks": ["apgd-ce", "square"], "n": 10}, "done": ["apgd-ce"],
              "robust": done_flags.int().tolist(), "seconds": 3.0}
    expected = done_flags & (means >= FakeAutoAttack.THRESHOLD["square"])
    assert 0 < expected.sum() < done_flags.sum()
    for world in (1, 2, 3):
        state.write_text(json.dumps(stored))
        calls.clear()
        results = on_threads(world, lambda shard: autoattack_runner.run_autoattack(
            model, x, y, 2 / 255, num_classes=11, attacks=["apgd-ce", "square"], batch_size=2, state_path=state,
            state_key=key, shard=shard))
        for r in results:
            assert torch.equal(r.robust, expected), world
            assert (r.resumed_after, r.earlier_seconds) == (["apgd-ce"], 3.0)
        assert sorted(calls) == [("square", 1)] + [("square", 2)] * 4  # 9 survivors, each batch attacked once
        assert not state.exists()


# ------------------------------------------------------------------------------------------ ranks as processes
@pytest.fixture(scope="module")
def dataset_and_model(module_tmp) -> tuple[Path, str]:
    """A 5-class synthetic dataset of 32-px images and ``--model FILE.py:build``: a linear model fitted (ridge, in
    closed form) to half of the train split, so that some train samples are misclassified and the rest sit a few
    /255 from the boundary."""
    data = module_tmp / "data"
    prepare_synthetic(data, n=60, image_size=32, seed=0)
    ds = PreparedDataset(data, "train", eval_transform(32))
    x = torch.stack([ds[i][0] for i in range(0, len(ds), 2)]).flatten(1).double()
    y = torch.tensor([ds[i][2] for i in range(0, len(ds), 2)])
    centred, targets = x - 0.5, torch.nn.functional.one_hot(y, 5).double() * 2 - 1
    weight = (centred.T @ torch.linalg.solve(centred @ centred.T + torch.eye(len(y), dtype=torch.double), targets)).T
    bias = -(weight.sum(1) * 0.5)
    torch.save({"1.weight": weight.float(), "1.bias": bias.float()}, module_tmp / "linear.pt")
    (module_tmp / "model.py").write_text(MODEL_FILE)
    return data, f"{module_tmp / 'model.py'}:build"


def commands(data: Path, model: str, out: Path) -> list[list[str]]:
    """The CLI runs compared: PGD (with its hygiene runs) and AutoAttack at 8/255 on 20 train samples in batches of 4
    (the 13 clean-correct ones in 4 batches, 2 per rank), and 2 corruption pairs of the whole train split."""
    common = ["--data", data, "--model", model, "--image-size", "32", "--split", "train", "--out"]
    attack = ["attack", *common, out / "attacks.csv", "--n", "20", "--batch-size", "4", "--json"]
    return [[*attack, "--suite", "pgd", "--steps", "5", "--step-size", "2/255", "--restarts", "2"],
            [*attack, "--suite", "autoattack"],
            ["robustness", *common, out / "robustness.csv", "--suite", "corruptions", "--corruption", "gaussian_noise",
             "--corruption", "contrast", "--severity", "3", "--batch-size", "8", "--cache", out / "cache", "--json"]]


def cli_rank(rank: int, ports: list[int], runs: list[list[list[str]]], result_dir: str,
             cwds: tuple[str | None, ...]) -> None:
    """One torchrun-like rank running CLI commands in turn (each joins and leaves the group; a port each) in the
    folder ``cwds[rank]``: its exit codes and what it printed go to ``rank<r>.json``."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1")
    torch.set_num_threads(1)
    if cwds[rank]:
        os.chdir(cwds[rank])
    printed = []
    for port, args in zip(ports, runs[rank]):
        os.environ["MASTER_PORT"] = str(port)
        result = run_cli(*args)
        printed.append([result.code, result.out, result.err])
    (Path(result_dir) / f"rank{rank}.json").write_text(json.dumps(printed))


def spawn_cli(runs: list[list[list[str]]], result_dir: Path, clean: list[Path],
              cwds: tuple[str | None, ...] = (None,) * WORLD) -> list[list]:
    """Run ``runs[rank]`` on 2 spawned ranks (in the folders ``cwds``; retried, the folders in ``clean`` emptied,
    when a rank dies without a Python error); what each rank printed."""
    for attempt in range(ATTEMPTS):
        for folder in [result_dir, *clean]:
            shutil.rmtree(folder, ignore_errors=True)
        result_dir.mkdir(parents=True)
        context = mp.spawn(cli_rank, args=([free_port() for _ in runs[0]], runs, str(result_dir), cwds),
                           nprocs=WORLD, join=False)
        deadline = time.monotonic() + 240
        try:
            while not context.join(timeout=1):
                if time.monotonic() > deadline:
                    for process in context.processes:
                        process.kill()
                    pytest.fail("a rank hung")
            break
        except mp.ProcessExitedException:
            if attempt == ATTEMPTS - 1:
                raise
    return [json.loads((result_dir / f"rank{r}.json").read_text()) for r in range(WORLD)]


def rows_of(path: Path) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(path.open())]


def json_rows(path: Path) -> list[dict[str, Any]]:
    rows = json.loads(path.read_text())
    return [{k: v for k, v in row.items() if k != "seconds"} for row in (rows if isinstance(rows, list) else [rows])]


def test_two_ranks_write_what_one_process_writes(dataset_and_model, tmp_path):
    """PGD, AutoAttack and corruptions on 2 gloo ranks: the per-sample outcomes, hygiene verdicts and rows equal a
    single process's; only rank 0 wrote files and printed; each rank made the images of its own corruption pair."""
    data, model = dataset_and_model
    single_out, sharded_out = tmp_path / "single", tmp_path / "sharded"
    for args in commands(data, model, single_out):
        result = run_cli(*args)
        assert result.code == 0, result.output
    printed = spawn_cli([commands(data, model, sharded_out)] * WORLD, tmp_path / "ranks", [sharded_out])

    assert [code for code, _, _ in printed[0]] == [0, 0, 0], printed[0]
    assert printed[1] == [[0, "", ""]] * 3  # rank 1 printed nothing
    assert all("appended to" in err for _, _, err in printed[0])
    files = sorted(p.name for p in single_out.iterdir() if p.is_file())
    assert sorted(p.name for p in sharded_out.iterdir() if p.is_file()) == files  # no rank-1 copies (*.2.*)
    assert "attacks.pgd.1.samples.csv" in files and "attacks.autoattack.1.hygiene.json" in files
    for name in files:
        if name.endswith(".samples.csv"):
            assert (sharded_out / name).read_text() == (single_out / name).read_text(), name
        elif name.endswith(".hygiene.json"):
            assert json.loads((sharded_out / name).read_text()) == json.loads((single_out / name).read_text())
        elif name.endswith(".json"):
            assert json_rows(sharded_out / name) == json_rows(single_out / name), name
        else:
            assert rows_of(sharded_out / name) == rows_of(single_out / name), name
    for suite in ("pgd", "autoattack"):  # the comparisons are not vacuous: robust, fooled and misclassified samples
        rows = list(csv.DictReader((single_out / f"attacks.{suite}.1.samples.csv").open()))
        (column,) = [c for c in rows[0] if c.startswith("robust:")]
        assert 0 < sum(r[column] == "1" for r in rows) < sum(r["clean_correct"] == "1" for r in rows) < len(rows)
    made = {p.parent.parent.name for p in (sharded_out / "cache").rglob("*.png")}
    assert made == {"gaussian_noise", "contrast"}


def test_ranks_stop_together_with_one_line(dataset_and_model, tmp_path):
    """Ranks started with different --eps stop before any work with one line naming it; a --data that rank 1 does
    not find (the same relative path, rank 1 in another folder) stops both ranks with rank 1's line; nothing is
    written."""
    data, model = dataset_and_model
    out = tmp_path / "out"
    here, elsewhere = tmp_path / "here", tmp_path / "else" / "where"  # where the relative path leads nowhere
    here.mkdir()
    elsewhere.mkdir(parents=True)
    base = ["attack", "--model", model, "--image-size", "32", "--split", "train", "--n", "4", "--suite", "pgd",
            "--steps", "1", "--out", out / "attacks.csv"]
    relative = os.path.relpath(data, here)
    runs = [[[*base, "--data", data, "--eps", eps], [*base, "--data", relative]] for eps in ("8/255", "4/255")]
    printed = spawn_cli(runs, tmp_path / "ranks", [], cwds=(str(here), str(elsewhere)))
    differ, missing = zip(*printed)
    assert [code for code, _, _ in differ] == [2, 2]
    assert differ[0][2] == differ[1][2] == (f"error: --eps differs between ranks (rank 0: {8 / 255}, rank 1: "
                                            f"{4 / 255}); start every rank with the same options and files\n")
    assert [code for code, _, _ in missing] == [2, 2]
    assert missing[0][2] == missing[1][2] and missing[0][2].count("\n") == 1 and relative in missing[0][2]
    assert not out.exists()


def test_every_option_of_the_torchrun_commands_has_a_spelling_torchrun_passes_on():
    """``torchrun ... -m partcli attack --n 8`` stops in torchrun's own parser (``--n`` abbreviates its --nnodes,
    --nproc-per-node ...): each option of the commands that run under torchrun has a name that parser neither takes
    nor refuses, and ``--n`` is the one that needed another."""
    import click
    import typer
    from torch.distributed.run import get_args_parser

    from partcli.cli import app

    parser = get_args_parser()

    def passed_on(name: str) -> bool:
        try:
            found = parser._parse_optional(name)
        except SystemExit:  # ambiguous: torchrun's parser exits
            return False
        return found is None or found[0] is None

    commands = typer.main.get_command(app).commands
    needed_another = set()
    for name in ("pretrain", "train", "evaluate", "attack", "robustness", "pseudolabel", "visualize"):
        command: click.Command = commands[name]
        for param in command.params:
            names = [o for o in [*param.opts, *param.secondary_opts] if o.startswith("--")]
            assert any(passed_on(o) for o in names), (name, names)
            if not passed_on(names[0]):
                needed_another.add((name, names[0]))
    assert needed_another == {("attack", "--n"), ("visualize", "--n")}
    with pytest.raises(SystemExit):
        parser.parse_args(["--nproc_per_node", "2", "-m", "partcli", "attack", "--n", "8"])
    args = parser.parse_args(["--nproc_per_node", "2", "-m", "partcli", "attack", "--n-samples", "8"])
    assert args.training_script_args == ["attack", "--n-samples", "8"]
