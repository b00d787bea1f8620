"""irat report (aggregation maths, missing runs, mismatched settings, formats, by-class), irat analyze
(every figure from a tiny digits run) and TensorBoard logging."""

from __future__ import annotations

import builtins
import json
import statistics
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import quick_config
from irat.analysis.report import Report, build_report, by_class, render
from irat.cli import main
from irat.errors import IratError


def fake_run(
    root: Path,
    name: str,
    method: str,
    seed: int,
    results: dict | None,
    *,
    lr: float = 0.1,
    checkpoint: str = "best",
    n: int = 100,
    eps: float = 0.1,
) -> Path:
    run = root / name
    (run / "eval").mkdir(parents=True)
    cfg = {"method": method, "seed": seed, "device": "cpu", "optim": {"lr": lr}, "data": {"data_dir": f"/d/{seed}"}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    if results is not None:
        rec = {
            "checkpoint": checkpoint,
            "split": "test",
            "norm": "linf",
            "eps": eps,
            "n": n,
            "results": results,
            "worst_case": min(results.values()),
        }
        (run / "eval" / f"{checkpoint}_test_linf_eps{eps}_n{n}.json").write_text(json.dumps(rec))
    return run


def test_mean_std_median_across_seeds(tmp_path):
    pgd = [50.0, 52.0, 57.0]
    runs = [fake_run(tmp_path, f"at{s}", "at", s, {"natural": 80.0 + s, "pgd20": p}) for s, p in enumerate(pgd)]
    runs.append(fake_run(tmp_path, "tr", "trades", 0, {"natural": 78.0, "pgd20": 55.0}))
    rep = build_report(runs)
    at = next(r for r in rep.rows if r["group"] == "at")
    assert at["runs"] == 3 and at["seeds"] == "0,1,2"
    assert at["pgd20"]["mean"] == pytest.approx(53.0)
    assert at["pgd20"]["std"] == pytest.approx(statistics.stdev(pgd))  # sample std, ddof = 1
    assert at["pgd20"]["median"] == 52.0
    assert at["worst case"]["mean"] == pytest.approx(53.0)
    tr = next(r for r in rep.rows if r["group"] == "trades")
    assert tr["pgd20"]["std"] == 0.0 and rep.notes == []
    md = render(rep)
    assert "53.00 ± 3.61" in md and "| trades" in md
    assert "52.00 ± 3.61" in render(rep, stat="median")
    csv = render(rep, "csv").splitlines()
    assert csv[0].startswith("group,runs,seeds,natural mean,natural std,natural median")
    assert r"$\pm$" in render(rep, "latex") and "\\begin{tabular}" in render(rep, "latex")


def test_missing_evaluations_and_mismatched_settings_are_reported(tmp_path):
    runs = [
        fake_run(tmp_path, "a0", "at", 0, {"natural": 80.0, "pgd20": 50.0}),
        fake_run(tmp_path, "a1", "at", 1, None),  # never evaluated
        fake_run(tmp_path, "a2", "at", 2, {"natural": 82.0, "pgd20": 52.0}, lr=0.05),  # other setting
        fake_run(tmp_path, "a3", "at", 3, {"natural": 84.0, "pgd20": 54.0}, n=50),
    ]  # other eval setting
    rep = build_report(runs)
    groups = {r["group"]: r for r in rep.rows}
    assert set(groups) == {"at [optim.lr=0.1]", "at [optim.lr=0.05]"}  # not averaged together
    notes = "\n".join(rep.notes)
    assert "different settings (optim.lr)" in notes
    assert "a1: no evaluation of the best checkpoint" in notes and "a3: no evaluation" in notes
    assert "evaluations with other settings are left out" in notes
    assert groups["at [optim.lr=0.1]"]["pgd20"]["n"] == 1


def test_best_and_last_side_by_side(tmp_path):
    r0 = fake_run(tmp_path, "r0", "at", 0, {"natural": 80.0, "pgd20": 50.0})
    rec = {
        "checkpoint": "last",
        "split": "test",
        "norm": "linf",
        "eps": 0.1,
        "n": 100,
        "results": {"natural": 82.0, "pgd20": 45.0},
        "worst_case": 45.0,
    }
    (r0 / "eval" / "last_test_linf_eps0.1_n100.json").write_text(json.dumps(rec))
    rep = build_report([r0], checkpoint="both")
    assert rep.columns == [
        "natural (best)",
        "pgd20 (best)",
        "natural (last)",
        "pgd20 (last)",
        "worst case (best)",
        "worst case (last)",
    ]
    assert rep.rows[0]["pgd20 (last)"]["mean"] == 45.0


def test_by_class_from_per_example_files(tmp_path):
    runs = []
    for s in range(2):
        run = fake_run(tmp_path, f"r{s}", "at", s, {"natural": 75.0, "pgd20": 50.0}, n=4)
        np.savez(
            run / "eval" / "best_test_linf_eps0.1_n4.npz",
            index=np.arange(4),
            label=np.array([0, 0, 1, 1]),
            natural=np.array([1, 1, 1, 0], bool),
            pgd20=np.array([1, s, 0, 0], bool),
            checkpoint_md5=np.array("x"),
        )
        runs.append(run)
    rep = by_class(runs)
    rows = {r["group"]: r for r in rep.rows}
    assert rows["at / class 0"]["natural"]["mean"] == 100.0
    assert rows["at / class 0"]["pgd20"]["mean"] == pytest.approx(75.0)  # (50 + 100) / 2
    assert rows["at / class 1"]["natural"]["mean"] == 50.0 and rows["at / class 1"]["pgd20"]["mean"] == 0.0


def test_report_bad_input(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "not an irat run directory" in capsys.readouterr().err
    run = fake_run(tmp_path, "r", "at", 0, {"natural": 80.0})
    assert main(["report", str(run), "--group-by", "optim.nothing"]) == 2
    assert "not a config key" in capsys.readouterr().err
    bare = fake_run(tmp_path, "bare", "at", 0, None)
    with pytest.raises(IratError, match="run `irat eval RUN` first"):
        build_report([bare])


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    from irat.train import Trainer

    root = tmp_path_factory.mktemp("analysis")
    out = {}
    for method in ("gairat", "mwpb-at"):
        cfg = quick_config(
            method=method,
            save_per_example=[2],
            flatness_n=32,
            tensorboard=True,
            weighting={"burn_in": 1} if method == "gairat" else {},
            radius={"mwpb": {"phase1_epochs": 1}} if method == "mwpb-at" else {},
        )
        Trainer(cfg, root / method).fit()
        out[method] = root / method
    return out


def test_every_figure_renders(tiny_runs, tmp_path, capsys):
    figs = tmp_path / "figs"
    assert (
        main(
            [
                "analyze",
                str(tiny_runs["gairat"]),
                "--out",
                str(figs),
                "--n",
                "120",
                "--compare",
                str(tiny_runs["mwpb-at"]),
            ]
        )
        == 0
    )
    expected = {
        "lps_vs_pm",
        "kappa_histogram",
        "path_dependence",
        "training_curves",
        "flatness",
        "weights_per_class",
        "weights_scatter",
        "radius_histogram",
        "weight_extremes",
        "pca_outputs",
    }
    assert {p.stem for p in figs.glob("*.png")} == expected
    for name in expected:
        img = Image.open(figs / f"{name}.png")
        assert img.size == (800, 500)
        assert len(set(np.asarray(img.convert("L")).ravel().tolist())) > 10  # not blank
        assert (figs / f"{name}.pdf").stat().st_size > 1000
    assert "skipped" not in capsys.readouterr().out


def test_analyze_says_what_is_missing(tmp_path, capsys):
    from irat.train import Trainer

    Trainer(quick_config(epochs=1), tmp_path / "plain").fit()
    assert main(["analyze", str(tmp_path / "plain"), "--out", str(tmp_path / "f"), "--n", "50"]) == 0
    out = capsys.readouterr().out
    assert "skipped flatness: train with --set flatness_n=N" in out
    assert "skipped weights_per_class" in out and "save_per_example" in out
    assert (
        main(["analyze", str(tmp_path / "plain"), "--out", str(tmp_path / "f"), "--compare", str(tmp_path / "plain")])
        == 2
    )
    assert "saved no per-example values" in capsys.readouterr().err


def test_tensorboard_logs_scalars_and_histograms(tiny_runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ev = EventAccumulator(str(tiny_runs["gairat"] / "tensorboard"))
    ev.Reload()
    tags = ev.Tags()
    assert {"train_loss", "val_pgd", "flat_adv"} <= set(tags["scalars"])
    assert [s.step for s in ev.Scalars("train_loss")] == [1, 2]
    assert {"weight", "kappa"} <= set(tags["histograms"])


def test_tensorboard_missing_is_one_clear_error(tmp_path, monkeypatch):
    from irat.train import Trainer

    real_import = builtins.__import__

    def no_tb(name, *a, **kw):
        if name.startswith("torch.utils.tensorboard") or name.startswith("tensorboard"):
            raise ImportError("no tensorboard")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_tb)
    with pytest.raises(IratError, match="needs the `tensorboard` package"):
        Trainer(quick_config(tensorboard=True), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def _quick_run(out, *extra):
    from irat.cli import main

    argv = [
        "train",
        "--dataset",
        "digits",
        "--model",
        "tinycnn",
        "--eps",
        "0.1",
        "--device",
        "cpu",
        "--quiet",
        "--batch-size",
        "64",
        "--set",
        "attack.steps=3",
        "--set",
        "val_n=40",
        "--set",
        "data.train_subset=256",
    ]
    assert main([*argv, "--out", str(out), *extra]) == 0


def test_a_record_of_a_changed_checkpoint_is_never_reported(tmp_path, capsys):
    from irat.cli import main

    run = tmp_path / "run"
    _quick_run(run, "--epochs", "1")
    assert (
        main(
            [
                "eval",
                str(run),
                "--checkpoint",
                "last",
                "--attacks",
                "natural,pgd5",
                "--n",
                "30",
                "--device",
                "cpu",
                "--no-sanity",
            ]
        )
        == 0
    )
    assert build_report([run], checkpoint="last").rows[0]["pgd5"]["n"] == 1
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--quiet"]) == 0  # last.pt moves on
    capsys.readouterr()
    assert main(["report", str(run), "--checkpoint", "last"]) == 2
    err = capsys.readouterr().err
    assert "measured a checkpoint that has changed since" in err and f"irat eval {run} --checkpoint last" in err


def test_one_value_is_not_shown_as_a_spread():
    rep = Report(
        rows=[
            {
                "group": "at",
                "runs": 2,
                "seeds": "0,1",
                "pgd20": {"mean": 27.5, "std": 0.0, "median": 27.5, "n": 1, "of": 2},
            }
        ],
        columns=["pgd20"],
        notes=[],
    )
    text = render(rep)
    assert "27.50 (n=1)" in text and "±" not in text


def test_by_class_aggregates_only_the_same_evaluation(tmp_path):
    from irat.cli import main

    runs = []
    for seed, n in ((0, "20"), (1, "40")):
        run = tmp_path / f"r{seed}"
        _quick_run(run, "--epochs", "1", "--seed", str(seed))
        assert main(["eval", str(run), "--attacks", "natural,pgd5", "--n", n, "--device", "cpu", "--no-sanity"]) == 0
        runs.append(run)
    rep = by_class(runs)
    assert any("per-example files of other evaluations are left out" in note for note in rep.notes)
    assert all(r["natural"]["n"] == 1 for r in rep.rows)  # one run per class row, never a mix of n=20 and n=40
    for r in rep.rows:
        assert r["pgd5"]["mean"] <= r["natural"]["mean"]


def test_paper_numbers_beside_ours(tmp_path):
    import yaml as _yaml

    runs = []
    for seed, pgd in ((0, 50.0), (1, 52.0)):
        run = fake_run(
            tmp_path,
            f"m{seed}",
            "mail-at",
            seed,
            {"natural": 82.0, "pgd100": pgd, "apgd-ce": 51.0, "cw30": 47.0, "aa": 44.0},
            lr=0.01,  # the preset's (a run trained otherwise is not compared with the paper)
        )
        cfg = _yaml.safe_load((run / "config.yaml").read_text())
        cfg["preset"] = "mail/cifar10-resnet18/mail-at"
        (run / "config.yaml").write_text(_yaml.safe_dump(cfg))
        runs.append(run)
    rep = build_report(runs, paper=True)
    assert rep.columns[:4] == ["natural", "natural (paper)", "natural (Δ)", "pgd100"]
    row = rep.rows[0]
    assert row["pgd100 (paper)"]["mean"] == 55.25 and row["pgd100 (paper)"]["std"] == 0.23  # MAIL Table 2
    assert row["aa (paper)"]["mean"] == 44.10 and row["pgd100"]["mean"] == 51.0
    assert any("MAIL Table 2" in n for n in rep.notes)
    assert row["pgd100 (Δ)"]["text"] == "-4.25*"  # 51.00 vs 55.25: beyond √(1.41² + 0.23²)
    assert row["natural (Δ)"]["text"] == "-1.15*" and row["aa (Δ)"]["text"] == "-0.10"  # 44.0 vs 44.10 ± 0.21
    text = render(rep)
    assert "55.25 ± 0.23" in text and "51.00 ± 1.41" in text and "-4.25*" in text


def test_paper_numbers_follow_the_checkpoint(tmp_path):
    import yaml as _yaml

    runs = []
    for seed in (0, 1):
        run = fake_run(tmp_path, f"g{seed}", "gairat", seed, {"natural": 85.0, "pgd20": 57.0, "pgdplus": 55.0})
        (run / "eval" / "last_test_linf_eps0.1_n100.json").write_text(
            json.dumps(
                {
                    "checkpoint": "last",
                    "split": "test",
                    "norm": "linf",
                    "eps": 0.1,
                    "n": 100,
                    "results": {"natural": 85.0, "pgd20": 53.0, "pgdplus": 50.0},
                    "worst_case": 50.0,
                }
            )
        )
        cfg = _yaml.safe_load((run / "config.yaml").read_text())
        cfg["preset"] = "gairat/cifar10-wrn32/gairat"
        (run / "config.yaml").write_text(_yaml.safe_dump(cfg))
        runs.append(run)
    row = build_report(runs, checkpoint="both", paper=True, stat="median").rows[0]
    assert row["pgd20 (best) (paper)"]["mean"] == 57.81 and row["pgd20 (last) (paper)"]["mean"] == 53.76
    last_only = build_report(runs, checkpoint="last", paper=True).rows[0]
    assert last_only["pgdplus (paper)"]["mean"] == 50.32  # GAIRAT Table 1, last checkpoint


def test_paper_numbers_without_a_spread_show_the_value_alone(tmp_path):
    import yaml as _yaml

    run = fake_run(tmp_path, "m", "mwpb-at", 0, {"natural": 83.0, "pgd20": 55.0, "cw20": 52.0, "aa": 49.0})
    cfg = _yaml.safe_load((run / "config.yaml").read_text())
    cfg["preset"] = "mwpb/cifar10-rn18/mwpb-at"
    (run / "config.yaml").write_text(_yaml.safe_dump(cfg))
    rep = build_report([run], paper=True)
    assert rep.rows[0]["aa (paper)"]["mean"] == 49.96  # MWPB Table 1 gives no standard deviations
    import re

    assert re.search(r"\|\s*49\.96\s*\|", render(rep))  # the value alone: no ± where the paper gives none


def test_a_row_unlike_the_papers_setting_is_not_compared(tmp_path):
    """A grid point that is not the paper's setting (GAIRAT Table 1 with λ = −1 against the paper's λ = 0)
    gets no paper column, and a note says how it differs."""
    runs = []
    for lam in (-1.0, 0.0):
        run = fake_run(tmp_path, f"g{lam}", "gairat", 0, {"natural": 85.0, "pgd20": 55.0, "pgdplus": 53.0})
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        cfg["preset"] = "gairat/cifar10-wrn32/gairat"
        cfg["weighting"] = {"name": "gair", "gair": {"lam": lam}}
        (run / "config.yaml").write_text(yaml.safe_dump(cfg))
        runs.append(run)
    rep = build_report(runs, paper=True, group_by="weighting.gair.lam")
    rows = {r["group"]: r for r in rep.rows}
    assert "pgd20 (paper)" in rows["0.0"] and "pgd20 (paper)" not in rows["-1.0"]
    assert any("not compared with the paper" in n and "weighting.gair.lam=-1.0 (paper: 0.0)" in n for n in rep.notes)
    assert render(rep).splitlines()[0].startswith("| weighting.gair.lam")  # the column names its grouping
    # a run written before the options were the parts' own (flat keys) groups and compares the same way
    legacy = yaml.safe_load((runs[0] / "config.yaml").read_text())
    legacy["weighting"] = {"name": "gair", "gair_lambda": -1.0}
    (runs[0] / "config.yaml").write_text(yaml.safe_dump(legacy))
    old = build_report(runs, paper=True, group_by="weighting.gair_lambda")  # the old key names the new one
    assert {r["group"] for r in old.rows} == {"-1.0", "0.0"} and old.notes == rep.notes


def test_the_worst_case_column_says_which_examples_it_covers(tmp_path):
    run = fake_run(tmp_path, "a", "at", 0, {"natural": 90.0, "pgd20": 50.0})
    rec_file = next((run / "eval").glob("*.json"))
    rec = json.loads(rec_file.read_text())
    rec["worst_case_n"] = 40
    rec_file.write_text(json.dumps(rec))
    rep = build_report([run])
    assert "worst case (first 40)" in rep.columns and "worst case" not in rep.columns
