"""Command line: `irat train | eval | report | analyze | bench | demo | methods`. Errors print one line and exit with 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import IratError


def _add_plugin_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="FILE.py|MODULE",
        help="load a plug-in that registers parts or attacks (repeatable; see docs/extending.md)",
    )


_SEE = "(`irat methods` lists them)"


def _names(argv: list[str]) -> dict[str, str]:
    """The name lists the help shows, read from the registries — only when that help is asked for, so that other
    commands and usage errors answer without importing PyTorch (then the help points at `irat methods`)."""
    helping = bool({"-h", "--help"} & set(argv))
    out = {k: _SEE for k in ("objective", "weighting", "radius", "dataset", "model", "attacks", "suite")}
    if helping and {"train", "sweep"} & set(argv):
        from .data.datasets import SPECS
        from .models.registry import MODELS
        from .parts import SECTIONS

        out.update({k: ", ".join(r.names()) for k, r in SECTIONS.items()})
        out.update(dataset=", ".join([*SPECS.names(), "npz"]), model=", ".join(MODELS.names()))
    if helping and "eval" in argv:
        from .evaluate.attacks import attack_names
        from .evaluate.suites import SUITES

        out.update(attacks=", ".join(attack_names()), suite=", ".join(SUITES))
    return out


def _add_train_args(p: argparse.ArgumentParser, names: dict[str, str]) -> None:
    _add_plugin_arg(p)
    p.add_argument("--out", required=True, help="run directory (config, metrics, checkpoints)")
    p.add_argument("--method", help="method name (see `irat methods`); default at")
    p.add_argument("--preset", help="YAML preset: a shipped name (see `irat methods`) or a file path")
    p.add_argument("--dataset", help=f"{names['dataset']}, or a plug-in's")
    p.add_argument(
        "--data-dir",
        help="folder holding the dataset files, or a parent with one folder per dataset (default ~/.cache/irat)",
    )
    p.add_argument("--no-download", action="store_true", help="never download; fail if files are missing")
    p.add_argument("--model", help=f"architecture: {names['model']}, or a plug-in's")
    p.add_argument("--eps", help="perturbation radius, e.g. 8/255 or 0.3")
    p.add_argument("--alpha", help="attack step size (default eps/4)")
    p.add_argument("--steps", type=int, help="attack steps during training")
    p.add_argument("--norm", choices=["linf", "l2"])
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", help="initial learning rate")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument("--objective", help=f"{names['objective']}, or a plug-in's (composes with a method)")
    p.add_argument("--weighting", help=f"{names['weighting']}, or a plug-in's scheme")
    p.add_argument("--radius", help=f"{names['radius']}, or a plug-in's radius scheme")
    p.add_argument("--awp", action="store_true", help="wrap the step in adversarial weight perturbation")
    p.add_argument("--burn-in", type=int, help="epochs with all instance weights 1")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config field, e.g. --set optim.milestones=[75,90] (repeatable)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def explicit_settings(args: argparse.Namespace) -> list[tuple[str, object]]:
    """The settings the command line names explicitly, as (dotted key, value), in precedence order:
    flags, then --set."""
    flags = {
        "data.dataset": args.dataset,
        "data.data_dir": args.data_dir,
        "model.arch": args.model,
        "attack.eps": args.eps,
        "attack.alpha": args.alpha,
        "attack.steps": args.steps,
        "attack.norm": args.norm,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optim.lr": args.lr,
        "seed": args.seed,
        "device": args.device,
        "objective.name": args.objective,
        "weighting.name": args.weighting,
        "radius.name": args.radius,
        "weighting.burn_in": args.burn_in,
        "awp.enabled": True if args.awp else None,
        "data.download": False if args.no_download else None,
        "progress": False if args.quiet else None,
    }
    return [(k, v) for k, v in flags.items() if v is not None] + set_pairs(args.set)


def set_pairs(sets: list[str]) -> list[tuple[str, object]]:
    """`--set key=value` options as (key, value) pairs, in order."""
    out: list[tuple[str, object]] = []
    for s in sets:
        if "=" not in s:
            raise IratError(f"--set expects key=value, got {s!r}")
        k, v = s.split("=", 1)
        out.append((k.strip(), v.strip()))
    return out


def build_config(args: argparse.Namespace):
    """defaults < method < preset < explicit flags < --set."""
    from .presets import build_config as build

    return build(args.preset, args.method, explicit_settings(args), args.plugin)


def _check_resume_names(args: argparse.Namespace) -> None:
    """`--resume` with `--method`/`--preset`: accepted when they name the run's own (the same command again
    with --resume appended); else refused, naming only what differs."""
    if not (args.method or args.preset):
        return
    from .checkpoints import run_state
    from .config import flatten, load_yaml
    from .methods import get_method

    state = run_state(Path(args.out))
    if state is None:
        return  # the Trainer says there is nothing to resume
    cfg = state["data"]["config"]
    differ = []
    if args.method:
        try:
            name = get_method(args.method).name
        except IratError:
            name = args.method
        if cfg.get("method") not in (args.method, name):
            differ.append(f"--method {args.method} (the run's: {cfg.get('method')})")
    if args.preset:
        same = args.preset == cfg.get("preset")
        if not same and Path(args.preset).suffix in (".yaml", ".yml"):
            run = flatten(cfg)
            given = {k: v for k, v in flatten(load_yaml(args.preset)).items() if k in run}
            same = all(str(run[k]) == str(v) for k, v in given.items())
        if not same:
            differ.append(f"--preset {args.preset} (the run's: {cfg.get('preset') or 'none'})")
    if differ:
        raise IratError(
            f"--resume continues the run in --out with its own method and preset; these differ: {'; '.join(differ)}"
        )


def cmd_train(args: argparse.Namespace) -> int:
    from .distributed import is_main_process
    from .train import Trainer

    if args.resume:  # settings named on the command line change the run where a resume may (else: refused)
        from .plugins import load_plugins

        load_plugins(args.plugin)  # the plug-ins the user names (a run's recorded ones are not imported unasked)
        _check_resume_names(args)
        changes = [(k, v) for k, v in explicit_settings(args) if k != "progress"]
        trainer = Trainer(None, args.out, resume=True, changes=changes)  # type: ignore[arg-type]
        if args.quiet:
            trainer.cfg.progress = False
        if trainer.epoch >= trainer.cfg.epochs:
            if is_main_process():
                print(
                    f"{args.out}: the run already finished ({trainer.epoch}/{trainer.cfg.epochs} epochs); nothing to do"
                )
            return 0
    else:
        cfg = build_config(args)
        trainer = Trainer(cfg, args.out, overwrite=args.overwrite)
    world = trainer.dist.world
    if is_main_process():
        print(
            f"irat: training {trainer.cfg.method} ({trainer.cfg.model.arch} on {trainer.cfg.data.dataset}, "
            f"{trainer.cfg.attack.norm} eps={trainer.cfg.attack.eps:.5g}) on {trainer.device}"
            + (f" and {world - 1} more ranks (global batch {trainer.cfg.batch_size})" if world > 1 else "")
            + f" into {args.out}"
            + (f", resuming after epoch {trainer.epoch}" if args.resume else ""),
            file=sys.stderr,
        )
    row = trainer.fit()
    if is_main_process():
        print(json.dumps({k: row[k] for k in row if not isinstance(row[k], (list, dict))}))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from .distributed import is_main_process
    from .evaluate.run import EvalConfig, evaluate_run, print_record
    from .models.normalize import parse_normalize
    from .plugins import load_plugins

    load_plugins(args.plugin)
    derived = {  # the settings whose flag says them otherwise
        "json_path": args.json,
        "sanity": not args.no_sanity,
        "normalize": parse_normalize(args.normalize) if args.normalize else None,
        "progress": not args.quiet and sys.stderr.isatty(),  # bars with ETA on a terminal only
    }
    same = {
        f.name: getattr(args, f.name) for f in fields(EvalConfig) if f.name not in derived and hasattr(args, f.name)
    }
    record = evaluate_run(args.run, EvalConfig(**same, **derived))
    if is_main_process():
        print_record(record)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .analysis.report import build_report, by_class, render
    from .rundir import check_output

    if args.out:  # before any work: never a run's own file, an existing one only with --overwrite
        check_output(args.out, "--out", overwrite=args.overwrite)

    if args.by_class:
        rep = by_class(args.runs, checkpoint="last" if args.checkpoint == "last" else "best", group_by=args.group_by)
    else:
        rep = build_report(
            args.runs, group_by=args.group_by, checkpoint=args.checkpoint, stat=args.stat, paper=args.paper
        )
    text = render(rep, args.format, args.stat)
    if args.out:
        from .utils import atomic_write_text

        atomic_write_text(args.out, text)  # checked (not a run's file, not existing unless --overwrite) in main
    print(text)
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from .analysis.analyze import analyze_run
    from .rundir import check_writable, run_file_owner

    owner = run_file_owner(Path(args.out) / "figure.png")
    if owner is not None:  # figures never go among a run's own files (eval records, per-example files)
        raise IratError(f"--out {args.out} is inside the run {owner}'s own folders; choose another folder")
    check_writable(Path(args.out), "--out")

    res = analyze_run(
        args.run,
        args.out,
        checkpoint=args.checkpoint,
        n=args.n,
        compare=args.compare,
        device=args.device,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    for p in res["written"]:
        print(f"wrote {p} (+ .pdf)")
    for name, why in res["skipped"].items():
        print(f"skipped {name}: {why}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import BenchCase, run_bench
    from .tables import results_table
    from .utils import atomic_write_json

    case = BenchCase(
        method="at",
        model=args.model,
        size=args.input_size,
        channels=args.channels,
        classes=args.classes,
        batch_size=1,
        steps=args.steps,
        iters=args.iters,
        repeats=args.repeats,
        precision=args.precision,
        channels_last=args.channels_last,
        compile=args.compile,
    )
    res = run_bench(
        case,
        methods=args.methods.split(","),
        batch_sizes=[int(b) for b in args.batch_size.split(",")],
        device=args.device,
        eval_n=args.eval_n,
        eval_attacks=args.eval_attacks.split(","),
    )
    print(f"irat bench on {res['device']} (torch {res['torch']})")
    cols = [
        "method",
        "batch_size",
        "precision",
        "irat_examples_per_s",
        "reference_examples_per_s",
        "speedup",
        "fraction_of_floor",
    ]
    print(results_table(res["training"], cols))
    if res["evaluation"]:
        print(results_table(res["evaluation"], ["attack", "n", "time_s", "examples_per_s"]))
    if args.json:
        atomic_write_json(args.json, res)
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    """Methods, presets, parts, models and attacks; filtered by paper, table or a name pattern, and cut to the
    terminal's width (`--wide` for every character)."""
    import fnmatch
    import shutil

    from .evaluate.attacks import attack_table
    from .methods import METHODS
    from .models import describe
    from .parts import part_table
    from .plugins import load_plugins
    from .presets import preset_info, preset_names
    from .tables import results_table

    load_plugins(args.plugin)
    width = None if args.wide or not sys.stdout.isatty() else shutil.get_terminal_size().columns

    def show(title: str, rows: list[dict], cols: list[str]) -> None:
        if not rows:
            return
        if width:  # long text columns share what the short ones leave
            fixed = sum(max(len(str(r.get(c, ""))) for r in rows) + 2 for c in cols[:1])
            room = max(20, (width - fixed) // max(len(cols) - 1, 1) - 2)
            rows = [
                {c: (v if len(str(v)) <= room or c == cols[0] else str(v)[: room - 1] + "…") for c, v in r.items()}
                for r in rows
            ]
        print(f"\n{title}")
        print(results_table(rows, cols, fmt="simple"))

    def wanted(name: str, source: str = "") -> bool:
        if args.pattern and not fnmatch.fnmatchcase(name, args.pattern):
            return False
        if args.paper and not name.startswith(args.paper.lower() + "/"):
            return False
        return not args.table or f"table {args.table}" in source.lower()

    only_presets = bool(args.paper or args.table)
    if not only_presets:
        show(
            "Methods (irat train --method NAME):",
            [
                {"method": m.name, "description": m.description, "source": m.source}
                for m in METHODS.values()
                if wanted(m.name)
            ],
            ["method", "description", "source"],
        )
    show(
        "Presets (irat train --preset NAME):",
        [i for i in (preset_info(n) for n in preset_names()) if wanted(i["name"], i["source"])],
        ["name", "method", "source"],
    )
    if not (only_presets or args.pattern):
        show(
            "Parts (--objective / --weighting / --radius NAME; a part's options: --set SECTION.NAME.KEY=VALUE):",
            part_table(),
            ["section", "name", "what", "options"],
        )
        show(
            "Models (--model NAME):",
            [{"model": k, "description": v} for k, v in describe().items()],
            ["model", "description"],
        )
        show(
            "Evaluation attacks (irat eval --attacks NAME[:KEY=VALUE...]):",
            attack_table(),
            ["names", "what", "options (defaults)"],
        )
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import sweep

    if args.sweep_command == "status":
        out = Path(args.out)
        states = sweep.status(sweep.load_plan(out), out)
        print("\n".join(sweep.status_lines(states)))
        if sys.stdout.isatty():  # the whole sweep at a glance: cells done, epochs done
            from tqdm.auto import tqdm

            epochs = sum(s.get("epochs", 0) for s in states) or len(states)
            done = sum(s.get("epoch", 0) for s in states)
            tqdm(
                total=epochs,
                initial=min(done, epochs),
                desc=f"{sum(s['state'] == 'done' for s in states)}/{len(states)} cells done; epochs",
                unit="ep",
            ).close()
        return 0
    out = Path(args.out)
    if args.spec:
        spec = sweep.load_spec(args.spec)
    elif args.presets or args.methods:
        spec = {
            "presets": args.presets.split(",") if args.presets else [],
            "methods": args.methods.split(",") if args.methods else [],
        }
    else:
        raise IratError("irat sweep: give a sweep YAML, or --presets / --methods")
    if args.seeds is not None:
        spec["seeds"] = args.seeds
    for k, v in set_pairs(args.set):
        spec.setdefault("set", {})[k] = v
    if args.attacks:
        spec.setdefault("eval", {})["attacks"] = args.attacks
    if args.shorten:
        spec["shorten"] = args.shorten
    cells = sweep.expand(spec)
    sweep.plan(cells, out)
    if args.sweep_command == "plan":
        print(f"{len(cells)} cells planned in {out}/sweep.json")
        return 0
    if args.executor == "slurm":
        jobs = sweep.run_slurm(
            cells,
            out,
            partition=args.partition,
            time_min=args.time_min,
            gpus=args.gpus,
            account=args.account,
            parallel=args.parallel,
            retry_failed=args.retry_failed,
        )
        print(f"submitted {len(jobs)} jobs; follow them with irat sweep status {out}")
        return 0
    states = sweep.run_local(
        cells,
        out,
        jobs=args.jobs,
        jobs_per_device=args.jobs_per_device,
        retry_failed=args.retry_failed,
        devices=args.devices.split(",") if args.devices else None,
    )
    print("\n".join(sweep.status_lines(states)))
    return 0 if all(s["state"] == "done" for s in states) else 1


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export

    card = export(args.run, args.out, fmt=args.format, checkpoint=args.checkpoint, overwrite=args.overwrite)
    print(
        f"wrote {args.out} ({card['format']}, {card['architecture']}, epoch {card['epoch']}) and {args.out}.json "
        f"({len(card['evaluations'])} evaluation records)"
    )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import doctor_lines, exit_code, run_doctor
    from .rundir import check_output
    from .utils import atomic_write_json

    if args.json:
        check_output(args.json, "--json", overwrite=args.overwrite)
    say = (lambda s: print(f"irat doctor: {s} …", file=sys.stderr, flush=True)) if not args.quiet else (lambda s: None)
    rep = run_doctor(device=args.device, quick=args.quick, preset=args.preset, reference=args.reference, say=say)
    print("\n".join(doctor_lines(rep)))
    if args.json:
        atomic_write_json(args.json, rep)
    return exit_code(rep)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(out=args.out, epochs=args.epochs, device=args.device, overwrite=args.overwrite, quiet=args.quiet)
    return 0


def make_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The command line. PyTorch is imported only for `irat train --help` and `irat eval --help` (their name
    lists, read from the registries), so that `irat --help` and argument errors answer at once."""
    argv = sys.argv[1:] if argv is None else argv
    lists = _names(argv)
    names = lists["attacks"]
    parser = argparse.ArgumentParser(
        prog="irat", description="Instance-reweighted adversarial training and robustness evaluation"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a model")
    _add_train_args(p, lists)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a run under attacks")
    p.add_argument("run", help="run directory or checkpoint file")
    p.add_argument(
        "--attacks",
        help=f"comma list (default natural,pgd20,cw without --suite): "
        f"{names}, or a plug-in's; options as name:key=value, e.g. "
        f"pgd100:alpha=0.003, aa:n=1000 (`irat methods` lists every option and default)",
    )
    _add_plugin_arg(p)
    p.add_argument("--suite", help=f"a paper's protocol: {lists['suite']} (see docs/evaluation.md)")
    p.add_argument(
        "--backend",
        default="irat",
        choices=["irat", "autoattack"],
        help="who runs aa/aa-plus/aa-rand: irat's implementation or the official autoattack package",
    )
    p.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "bf16"],
        help="bf16 autocast is faster on GPUs but may weaken attacks (the record says so)",
    )
    p.add_argument("--no-sanity", action="store_true", help="skip the model checks and the PGD sanity probe")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument(
        "--n",
        "--num-examples",
        dest="n",
        type=int,
        help="evaluate the first N test examples (default all; under torchrun write --num-examples)",
    )
    p.add_argument("--eps", help="radius (default: the run's training eps)")
    p.add_argument("--norm", choices=["linf", "l2"], help="default: the run's training norm")
    p.add_argument("--alpha", help="PGD/CW step size (default eps/4; MAIL 0.003, MWPB 1/255)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device")
    p.add_argument("--data-dir", help="default: the run's data directory")
    p.add_argument("--split", default="test", choices=["test", "val"])
    p.add_argument("--json", help="write the result record to this JSON file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.add_argument(
        "--model",
        dest="model_arch",
        help="evaluate weights irat did not train: their architecture "
        "(a registry name; RUN is then a state-dict file; needs --dataset and --eps)",
    )
    p.add_argument("--dataset", help="with --model: the dataset the weights were trained on")
    p.add_argument("--num-classes", type=int, help="with --model: classes, if not the dataset's")
    p.add_argument(
        "--normalize",
        help="MEAN,...:STD,... when the weights expect (x - mean)/std inputs; attacks stay in [0,1] pixel space",
    )
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("report", help="paper-style table (mean ± std across seeds) from run directories")
    p.add_argument("runs", nargs="+", help="run directories (each evaluated with irat eval)")
    p.add_argument("--group-by", default="method", help="config key whose value names a row (default method)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last", "both"])
    p.add_argument(
        "--paper",
        action="store_true",
        help="beside each column, what the paper reports for the row's preset (mean ± std)",
    )
    p.add_argument("--format", default="md", choices=["md", "csv", "latex"])
    p.add_argument(
        "--stat",
        default="mean",
        choices=["mean", "median"],
        help="centre of each cell: mean (MAIL, MWPB) or median (GAIRAT); ± is the sample std",
    )
    p.add_argument("--by-class", action="store_true", help="per-class natural and robust accuracy")
    p.add_argument("--out", help="also write the table to this file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("analyze", help="the papers' analysis figures (PNG + PDF) from a run")
    p.add_argument("run", help="run directory")
    p.add_argument("--out", required=True, help="folder for the figures")
    p.add_argument("--checkpoint", default="last", choices=["best", "last"])
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--n", type=int, default=1000, help="training examples to analyse (default 1000)")
    p.add_argument("--compare", help="a second run: scatter of the two runs' weights on the same examples")
    p.add_argument("--device")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("bench", help="training/evaluation throughput: irat vs a reference-style loop")
    p.add_argument("--methods", default="at,trades")
    p.add_argument("--model", default="resnet18")
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batch-size", default="128,512", help="comma list (the papers' 128 and a larger one)")
    p.add_argument("--steps", type=int, default=10, help="PGD steps of the training attack")
    p.add_argument("--iters", type=int, default=10, help="batches per timed window")
    p.add_argument("--repeats", type=int, default=3, help="timed windows per side (median reported)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--eval-n", type=int, default=256, help="examples for the evaluation throughput (0: skip)")
    p.add_argument("--eval-attacks", default="pgd20,apgd-ce,aa")
    p.add_argument("--device")
    p.add_argument("--json", help="write the figures to this JSON file")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("demo", help="the main job on the embedded digits dataset: train, evaluate, print a table")
    p.add_argument("--out", help="keep the runs in this folder (default: a temporary folder)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--device")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("sweep", help="presets × seeds × a grid, trained and evaluated here or on Slurm (idempotent)")
    sweep = p.add_subparsers(dest="sweep_command", required=True)
    for name in ("run", "plan"):
        q = sweep.add_parser(name, help="run the sweep" if name == "run" else "expand and write the plan only")
        q.add_argument("spec", nargs="?", help="sweep YAML (presets/methods, seeds, grid, set, eval)")
        q.add_argument("--out", required=True, help="the sweep's folder (one run directory per cell)")
        q.add_argument("--presets", help="comma list of preset names or globs (instead of a YAML)")
        q.add_argument("--methods", help="comma list of methods (instead of a YAML)")
        q.add_argument("--seeds", type=int, help="seeds 0..N-1 (default: each preset's `seeds`)")
        q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="common override")
        q.add_argument("--attacks", help="what to evaluate (default: each preset's suite)")
        q.add_argument(
            "--shorten",
            type=int,
            help="train N epochs, each preset's schedule (milestones, burn-in, "
            "warm-ups, tables) scaled with it; recorded as shortened_from",
        )
        if name == "run":
            q.add_argument("--executor", default="local", choices=["local", "slurm"])
            q.add_argument("--jobs", type=int, default=1, help="local: runs at a time (threads split between them)")
            q.add_argument("--devices", help="local: comma list of GPU ids, one per job (CUDA_VISIBLE_DEVICES)")
            q.add_argument(
                "--jobs-per-device",
                type=int,
                help="local: runs per device at a time (each device: --devices, or the CPU), threads and GPU memory "
                "split between them; replaces --jobs (irat doctor recommends a value)",
            )
            q.add_argument("--retry-failed", action="store_true", help="also run the cells that failed before")
            q.add_argument("--partition", help="slurm partition")
            q.add_argument("--time-min", type=int, default=24 * 60, help="slurm time limit per job (minutes)")
            q.add_argument("--gpus", type=int, default=1, help="slurm GPUs per job")
            q.add_argument("--account", help="slurm account")
            q.add_argument("--parallel", type=int, default=16, help="slurm array throttle (jobs at once)")
        q.set_defaults(func=cmd_sweep)
    q = sweep.add_parser("status", help="one line per cell: pending, running, unfinished (epoch k/n), done, failed")
    q.add_argument("out", help="the sweep's folder")
    q.set_defaults(func=cmd_sweep)

    p = sub.add_parser("export", help="a run's model as a state dict, TorchScript or safetensors file, with a card")
    p.add_argument("run", help="run directory")
    p.add_argument("--out", required=True, help="the model file to write (its card goes to OUT.json)")
    p.add_argument(
        "--format",
        choices=["state-dict", "torchscript", "safetensors"],
        help="default: from the file name (.pt/.pth state dict, .ts TorchScript, .safetensors)",
    )
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument("--overwrite", action="store_true", help="replace an existing file and card")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("doctor", help="does irat run correctly and fast here, and which settings to use")
    p.add_argument("--quick", action="store_true", help="small sizes: about two minutes on a 2-core CPU")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when available)")
    p.add_argument("--reference", default="cpu", help="the device this one is compared with (default: cpu)")
    p.add_argument("--preset", help="also estimate this preset's training time here")
    p.add_argument("--json", help="write the whole record to this JSON file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.add_argument("--quiet", action="store_true", help="no stage lines on stderr")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("methods", help="list methods, parts, presets, models and evaluation attacks")
    p.add_argument("pattern", nargs="?", help="only names matching this pattern, e.g. 'mail-*' or 'gairat/*'")
    p.add_argument("--paper", help="only this paper's presets: mail, gairat, mwpb, bilaw")
    p.add_argument("--table", help="only the presets of this table number, e.g. 2")
    p.add_argument("--wide", action="store_true", help="do not cut long text to the terminal's width")
    _add_plugin_arg(p)
    p.set_defaults(func=cmd_methods)
    return parser


DATA_PARALLEL_COMMANDS = ("train", "eval")


def main(argv: list[str] | None = None) -> int:
    """Under torchrun (WORLD_SIZE > 1) `train` and `eval` run data-parallel; only rank 0 prints."""
    args = None
    try:
        args = make_parser(argv).parse_args(argv)  # before PyTorch is imported: help and usage errors at once
        from . import distributed  # imports torch: Ctrl-C here is an interrupt like any other

        if distributed.requested():
            if args.command not in DATA_PARALLEL_COMMANDS:
                raise IratError(
                    f"only {' and '.join(DATA_PARALLEL_COMMANDS)} run under torchrun; run "
                    f"`irat {args.command}` as one process"
                )
            distributed.init()
        return int(args.func(args) or 0)
    except IratError as exc:
        if "distributed" not in locals() or distributed.is_main_process():  # the ranks fail alike: rank 0 says it
            print(f"irat: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"irat: interrupted; {_after_interrupt(args)}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `irat methods | head`: the reader left; nothing to say
        sys.stderr.close()
        return 0
    finally:
        if "distributed" in locals():
            distributed.shutdown()


def _after_interrupt(args: argparse.Namespace | None) -> str:
    """What an interrupted command left behind, and how to go on."""
    from pathlib import Path

    command = getattr(args, "command", None)
    if command == "train" and args is not None:
        rec = Path(args.out) / "recovery.pt"
        if rec.is_file():
            return f"the last completed epoch is in {rec}: continue with irat train --out {args.out} --resume"
        return "no epoch was completed, nothing to resume"
    if command == "eval":
        return "no evaluation record was written; earlier records of the run are unchanged"
    return "nothing was written" if command in ("methods", "report") else "stopped"
