"""Numbers that say what they are: an evaluation's identity keeps records of different models, data or
threat models apart, interrupted evaluations continue only their own, and step sizes are the used ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import QUICK_ARGS
from irat.cli import main

EVAL = ["--n", "40", "--device", "cpu", "--no-sanity", "--batch-size", "8"]
NORM = ["--normalize", "0.1307:0.3081"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("identity") / "run"
    assert main(["train", *QUICK_ARGS, "--epochs", "1", "--out", str(out)]) == 0
    return out


def _records(run: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((run / "eval").glob("*.json"))]


def test_records_of_a_normalised_and_a_plain_model_are_never_merged(run, tmp_path, capsys):
    import shutil

    r = Path(shutil.copytree(run, tmp_path / "r"))
    assert main(["eval", str(r), "--attacks", "natural,pgd5", *EVAL, *NORM]) == 0
    capsys.readouterr()
    assert main(["eval", str(r), "--attacks", "natural,cw5", *EVAL]) == 0
    err = capsys.readouterr().err
    assert "holds an evaluation with another normalize" in err and "never merged" in err
    recs = _records(r)
    assert len(recs) == 2
    with_norm = next(x for x in recs if x["normalize"])
    plain = next(x for x in recs if not x["normalize"])
    assert set(with_norm["results"]) == {"natural", "pgd5"} and set(plain["results"]) == {"natural", "cw5"}
    assert with_norm["identity"]["normalize"] == {"mean": [0.1307], "std": [0.3081]}
    assert plain["identity"]["data_dir"].startswith("/")  # the data folder, resolved
    # the same settings again merge into their own record only
    assert main(["eval", str(r), "--attacks", "natural,pgd3", *EVAL, *NORM]) == 0
    with_norm = next(x for x in _records(r) if x["normalize"])
    assert set(with_norm["results"]) == {"natural", "pgd5", "pgd3"} and len(_records(r)) == 2


def test_an_interrupted_normalised_evaluation_is_not_continued_without_the_flag(run, tmp_path, monkeypatch, capsys):
    import shutil

    from irat.evaluate import run as er

    r = Path(shutil.copytree(run, tmp_path / "r"))
    real_put = er.FileProgress.put

    def put_then_die(self, key, value):
        real_put(self, key, value)
        raise KeyboardInterrupt

    monkeypatch.setattr(er.FileProgress, "put", put_then_die)
    assert main(["eval", str(r), "--attacks", "natural,pgd5", *EVAL, *NORM]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["eval", str(r), "--attacks", "natural,pgd5", *EVAL]) == 0
    err = capsys.readouterr().err
    assert "continuing an interrupted evaluation" not in err
    assert "holds an interrupted evaluation with another normalize" in err and "kept, not continued" in err
    capsys.readouterr()
    assert main(["eval", str(r), "--attacks", "natural,pgd5", *EVAL, *NORM]) == 0  # its own: continued
    assert "continuing an interrupted evaluation (1 batches already done)" in capsys.readouterr().err


def test_a_continued_evaluation_records_its_total_time(run, tmp_path, monkeypatch):
    import shutil
    import time

    from irat.evaluate import run as er

    r = Path(shutil.copytree(run, tmp_path / "r"))
    real_put = er.FileProgress.put

    def slow_put(self, key, value):
        value["time_s"] = value["time_s"] + 0.5  # each stored batch "took" half a second more
        real_put(self, key, value)
        raise KeyboardInterrupt

    one = [*EVAL, "--batch-size", "1"]  # one example a batch: the first stored, the rest continued
    monkeypatch.setattr(er.FileProgress, "put", slow_put)
    assert main(["eval", str(r), "--attacks", "natural,pgd5", *one]) == 130
    monkeypatch.undo()
    t0 = time.perf_counter()
    assert main(["eval", str(r), "--attacks", "natural,pgd5", *one]) == 0
    wall = time.perf_counter() - t0
    rec = _records(r)[0]
    assert 0.5 <= rec["attacks"]["pgd5"]["time_s"] < 0.5 + wall  # the stored batch's 0.5 s counted, once


def test_a_suite_refuses_an_alpha_it_would_not_use_and_the_header_names_the_used_ones(run, capsys):
    assert main(["eval", str(run), "--suite", "gairat", "--alpha", "0.001", *EVAL]) == 2
    err = capsys.readouterr().err
    assert "--alpha 0.001 would not be used by" in err and "suite gairat sets their step sizes" in err
    assert not list((run / "eval").glob("*gairat*"))
    capsys.readouterr()
    assert main(["eval", str(run), "--attacks", "natural,pgd5,pgd5:alpha=0.01", *EVAL]) == 0
    assert "alpha: pgd5 0.025, pgd5#2 0.01" in capsys.readouterr().out  # each attack's own, not one for all


def test_masking_checks_look_across_merged_calls(tmp_path):
    """pgd100 5.52 % and apgd-ce 0.25 % on the same examples, run in two calls: the merged record warns."""
    import numpy as np
    import torch

    from irat.evaluate.run import save_record

    n = 400
    idx, label = torch.arange(n), torch.zeros(n, dtype=torch.long)
    nat = torch.ones(n, dtype=torch.bool)
    pgd = torch.zeros(n, dtype=torch.bool)
    pgd[:22] = True  # 5.5 %
    apgd = torch.zeros(n, dtype=torch.bool)
    apgd[:1] = True  # 0.25 %
    base = {"n": n, "eps": 0.1, "norm": "linf", "checkpoint_md5": "m", "warnings": [], "identity": {"eps": 0.1}}
    pgd_cfg = {"kind": "pgd", "loss": "ce", "steps": 100, "restarts": 1, "first_success": False, "start": "uniform"}
    first = dict(
        base,
        results={"natural": 100.0, "pgd100": 5.5},
        attacks={"natural": {"kind": "natural"}, "pgd100": {**pgd_cfg, "alpha": 0.025, "alpha_eps": None, "n": n}},
    )
    save_record(tmp_path / "r.json", first, {"natural": nat, "pgd100": pgd}, idx, label)
    assert not json.loads((tmp_path / "r.json").read_text())["warnings"]
    second = dict(
        base,
        results={"natural": 100.0, "apgd-ce": 0.25},
        attacks={"natural": {"kind": "natural"}, "apgd-ce": {"kind": "apgd", "loss": "ce", "n": n}},
        warnings=[],
    )
    save_record(tmp_path / "r.json", second, {"natural": nat, "apgd-ce": apgd}, idx, label)
    rec = json.loads((tmp_path / "r.json").read_text())
    assert any(w["check"] == "pgd-above-strong-attack" and "pgd100" in w["message"] for w in rec["warnings"])
    assert set(rec["results"]) == {"natural", "pgd100", "apgd-ce"}
    assert np.isclose(rec["worst_case"], 0.25)


def test_a_checkpoint_of_a_run_still_training_is_said_so(run, tmp_path, capsys):
    import shutil

    from irat.rundir import RunLock

    r = Path(shutil.copytree(run, tmp_path / "r"))
    lock = RunLock(r).acquire()  # as a live training process holds it
    try:
        assert main(["eval", str(r), "--attacks", "natural", *EVAL, "--json", str(tmp_path / "a.json")]) == 0
    finally:
        lock.release()
    assert "of a run still training (epoch 1/1)" in capsys.readouterr().out
    assert json.loads((tmp_path / "a.json").read_text())["run_status"]["training"] is True
    assert main(["export", str(r), "--out", str(tmp_path / "m.pt")]) == 0
    assert "run_status" not in json.loads((tmp_path / "m.pt.json").read_text())  # finished, not held: nothing to say


def test_the_evaluation_config_is_typed_checked_and_recorded(run, tmp_path):
    from irat.errors import IratError
    from irat.evaluate.run import EvalConfig, evaluate_run

    with pytest.raises(IratError, match="unknown setting 'attack'"):
        evaluate_run(run, attack="natural")
    with pytest.raises(IratError, match="split must be test or val"):
        EvalConfig(split="train")
    rec = evaluate_run(run, EvalConfig(attacks="natural,pgd3", n=20, device="cpu", sanity=False))
    assert rec["eval_config"]["attacks"] == "natural,pgd3" and rec["eval_config"]["n"] == 20
