"""Data-parallel training and evaluation (irat.distributed): shards, per-example noise, and two CPU
processes (gloo) giving the same parameters, checkpoints and evaluation as one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from conftest import quick_config
from irat import distributed
from irat.attacks.noise import draw_noise
from irat.distributed import Context, shard_noise, shard_range
from irat.train import Trainer, load_model

# Each method: its config changes. Burn-in 0 so that the instance weights act from the first step;
# a batch of 45 splits 23 / 22 over two ranks (uneven shards), 180 examples make 4 steps per epoch.
METHODS = {
    "at": {},
    "mail-trades": {"weighting": {"burn_in": 0}},
    "bilaw": {"weighting": {"bilaw": {"meta_size": 60}}},
    "gairat": {"weighting": {"burn_in": 0}},
    "awp-at": {"attack": {"bn_mode": "eval"}},
    "mma": {},
}


def ddp_config(method: str):
    return quick_config(
        method=method, epochs=2, batch_size=45, data={"train_subset": 180}, optim={"lr": 0.2}, **METHODS[method]
    )


def test_shard_range_hand_values():
    assert [shard_range(10, r, 3) for r in range(3)] == [(0, 4), (4, 7), (7, 10)]  # as torch.tensor_split
    assert [shard_range(2, r, 4) for r in range(4)] == [(0, 1), (1, 2), (2, 2), (2, 2)]
    assert shard_range(7, 0, 1) == (0, 7)


def test_shard_noise_is_the_slice_of_the_global_draw(monkeypatch):
    """Rank 1 of 3's noise is exactly rows 4..6 of the noise one process draws for 10 examples."""
    torch.manual_seed(5)
    full = torch.rand(10, 3, 2)
    full_n = torch.randn(10, 3, 2)
    monkeypatch.setattr(distributed, "_CTX", Context(rank=1, world=3))
    torch.manual_seed(5)
    lo, hi = shard_range(10)
    assert (lo, hi) == (4, 7)
    noise = shard_noise(10, lo, hi)
    part = noise((3, 3, 2), normal=False, device=torch.device("cpu"), dtype=torch.float32)
    part_n = noise((3, 3, 2), normal=True, device=torch.device("cpu"), dtype=torch.float32)
    assert torch.equal(part, full[4:7]) and torch.equal(part_n, full_n[4:7])
    other = noise((5, 2), normal=False, device=torch.device("cpu"), dtype=torch.float32)
    assert other.shape == (5, 2)  # not this rank's batch: a plain draw
    torch.manual_seed(5)
    assert torch.equal(draw_noise((10, 3, 2), normal=False, device=torch.device("cpu"), dtype=torch.float32), full)


def test_single_process_helpers_are_identities():
    t = torch.arange(4.0)
    assert distributed.all_reduce_sum(t) is t and distributed.gather_cat(t) is t
    assert distributed.gather_objects({"a": 1}) == [{"a": 1}] and distributed.broadcast_object(3) == 3


@pytest.mark.parametrize(
    "over,msg",
    [
        ({"sync_bn": True}, "sync_bn needs CUDA"),
        ({"batch_size": 1}, "batch_size 1 is the global batch and must be at least the number of ranks (2)"),
    ],
)
def test_bad_data_parallel_settings(monkeypatch, tmp_path, over, msg):
    """Refused before any data is loaded or anything written (a rank's view: world 2, no group needed)."""
    from irat.errors import ConfigError

    monkeypatch.setattr(distributed, "_CTX", Context(rank=0, world=2))
    monkeypatch.setattr("irat.train.trainer.load_splits", lambda *a, **k: pytest.fail("data loaded"))
    with pytest.raises(ConfigError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        Trainer(quick_config(**over), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def _worker(rank: int, world: int, tmp: str) -> None:
    torch.set_num_threads(1)
    distributed.init(f"file://{tmp}/store", rank=rank, world=world)
    try:
        out = {}
        for m in METHODS:
            t = Trainer(ddp_config(m), f"{tmp}/ddp_{m}")
            row = t.fit()
            out[m] = {
                "params": {k: v.clone() for k, v in t.model.state_dict().items()},
                "row": row,
                "mma_eps": t.parts.objective.state_dict().get("mma_eps"),
            }
        torch.save(out, f"{tmp}/rank{rank}.pt")
    finally:
        distributed.shutdown()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Every method of METHODS trained 2 epochs by two gloo processes over one global batch of 45."""
    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, str(tmp)), nprocs=2)
    return tmp, [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.mark.parametrize("method", list(METHODS))
def test_two_processes_match_one(two_ranks, tmp_path, method):
    """Same global batch, same steps: the parameters equal one process's within float tolerance, and
    differ from the initial ones by far more (so a wrong gradient scale or shard would show)."""
    tmp, ranks = two_ranks
    one = Trainer(ddp_config(method), tmp_path / "one")
    init = {k: v.clone() for k, v in one.model.state_dict().items()}
    row = one.fit()
    for k, v in one.model.state_dict().items():
        for r in ranks:  # both ranks hold the same model
            torch.testing.assert_close(r[method]["params"][k], v, atol=2e-5, rtol=1e-4)
    moved = max((v - init[k]).abs().max().item() for k, v in one.model.state_dict().items())
    assert moved > 100 * 2e-5
    got = ranks[0][method]["row"]
    assert got["train_adv_acc"] == pytest.approx(row["train_adv_acc"])
    assert got["train_loss"] == pytest.approx(row["train_loss"], rel=1e-4)
    assert got["val_nat"] == row["val_nat"]
    for key in ("weight_mean", "weight_min", "eps_mean", "bilaw_val_loss"):  # statistics over the global batch
        if key in row:
            assert got[key] == pytest.approx(row[key], rel=1e-3, abs=1e-5), key
    if method == "mma":  # every rank holds every example's radius after the epoch
        torch.testing.assert_close(ranks[0][method]["mma_eps"], one.parts.objective.radii, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(ranks[1][method]["mma_eps"], one.parts.objective.radii, atol=1e-5, rtol=1e-4)


def test_only_rank_zero_writes(two_ranks):
    tmp, _ = two_ranks
    run = tmp / "ddp_at"
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]  # one row per epoch, not one per rank
    assert {p.name for p in run.glob("*.pt")} == {"best.pt", "last.pt", "recovery.pt"}


def _torchrun(args: list[str], tmp, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "irat"]
    return subprocess.run(cmd + args, env=env, capture_output=True, text=True, cwd=tmp, check=check, timeout=300)


TRAIN = [
    "train",
    "--dataset",
    "digits",
    "--model",
    "tinycnn",
    "--eps",
    "0.1",
    "--steps",
    "3",
    "--batch-size",
    "45",
    "--lr",
    "0.2",
    "--device",
    "cpu",
    "--quiet",
    "--set",
    "data.train_subset=900",
    "--set",
    "data.val_size=200",
    "--set",
    "val_n=100",
    "--set",
    "val_steps=5",
]


def test_torchrun_train_resume_and_eval(tmp_path):
    """`torchrun -m irat train` for one epoch, `--resume` for a second, `irat eval` split across the ranks:
    the same parameters as the same two commands in one process, and the same per-example evaluation."""
    run = tmp_path / "ddp"
    first = _torchrun(TRAIN + ["--epochs", "1", "--out", str(run)], tmp_path)
    assert "and 1 more ranks (global batch 45)" in first.stderr
    assert len(first.stdout.strip().splitlines()) == 1  # rank 0 prints the final row, once
    _torchrun(["train", "--out", str(run), "--resume", "--epochs", "2", "--quiet"], tmp_path)
    from irat.cli import main

    assert main(TRAIN + ["--epochs", "1", "--out", str(tmp_path / "one")]) == 0
    assert main(["train", "--out", str(tmp_path / "one"), "--resume", "--epochs", "2", "--quiet"]) == 0
    a, b = load_model(run, "last"), load_model(tmp_path / "one", "last")
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(v, w, atol=2e-5, rtol=1e-4, msg=k)
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]

    attacks = "natural,pgd10:start=none"  # deterministic: per-example results must not depend on the ranks
    ev = _torchrun(
        [
            "eval",
            str(run),
            "--checkpoint",
            "last",
            "--attacks",
            attacks,
            "--num-examples",
            "101",
            "--no-sanity",
            "--json",
            str(tmp_path / "ddp_eval.json"),
        ],
        tmp_path,
    )
    assert ev.stdout.count("worst_case") == 1  # one record printed
    assert (
        main(
            [
                "eval",
                str(tmp_path / "one"),
                "--checkpoint",
                "last",
                "--attacks",
                attacks,
                "--n",
                "101",
                "--no-sanity",
                "--json",
                str(tmp_path / "one_eval.json"),
            ]
        )
        == 0
    )
    got, want = (json.loads((tmp_path / f"{k}_eval.json").read_text()) for k in ("ddp", "one"))
    assert got["n"] == want["n"] == 101 and got["attacks"]["pgd10"]["ranks"] == 2
    assert got["results"] == want["results"]
    assert want["results"]["natural"] > 20 and want["results"]["pgd10"] > 5, want["results"]  # it learned something
    flags = [np.load(next((p / "eval").glob("*.npz"))) for p in (run, tmp_path / "one")]
    assert np.array_equal(flags[0]["index"], flags[1]["index"])
    assert np.array_equal(flags[0]["pgd10"], flags[1]["pgd10"])


def test_torchrun_bad_input_one_message(tmp_path):
    """Bad input under torchrun: one message (from rank 0), nothing written."""
    res = _torchrun(TRAIN + ["--epochs", "1", "--batch-size", "1", "--out", str(tmp_path / "r")], tmp_path, check=False)
    assert res.returncode != 0
    assert res.stderr.count("irat: error: batch_size 1 is the global batch") == 1
    assert not (tmp_path / "r").exists()


def test_other_commands_refused_under_torchrun(monkeypatch, capsys):
    """`irat demo` (or report, analyze, bench, methods) under torchrun: one line, before any work."""
    from irat.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["demo", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err == "irat: error: only train and eval run under torchrun; run `irat demo` as one process\n"
    monkeypatch.setenv("RANK", "1")  # the other ranks stay silent: the message appears once
    assert main(["methods"]) == 2
    assert capsys.readouterr().err == ""
