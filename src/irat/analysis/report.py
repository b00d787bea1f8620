"""`irat report`: paper-style tables from run directories — mean ± std (or median) across seeds.

Rows are groups of runs (by method, or any config key), columns natural accuracy, each attack and
the worst case, for the best and/or last checkpoint side by side. Runs in one group that were
trained with different settings (anything but the seed and where/how they ran) are split into
separate rows and reported, never averaged together; runs without a matching evaluation are listed.
The standard deviation is the sample one (ddof = 1; 0 for a single run).
"""

from __future__ import annotations

import json
import math
import statistics
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .. import parts as _parts  # noqa: F401  (the parts' options show with their defaults)
from ..config import PART_SECTIONS, RENAMED, flatten, from_dict, part_options
from ..errors import IratError
from ..evaluate.run import per_example_file
from ..tables import results_table
from ..utils import file_md5

# config keys that may differ between seeds of one setting
IGNORED_KEYS = {
    "seed",
    "device",
    "progress",
    "data.data_dir",
    "data.download",
    "eval_batch_size",
    "val_every",
    "save_per_example",
    "tensorboard",
    "flatness_n",
    "seeds",
    "eval_suite",
}
FORMATS = ("md", "csv", "latex")


@dataclass
class RunInfo:
    path: Path
    config: dict
    evals: dict[str, list[dict]] = field(default_factory=dict)  # checkpoint → eval records


def load_run(path: str | Path) -> RunInfo:
    p = Path(path)
    cfg_file = p / "config.yaml"
    if not cfg_file.is_file():
        raise IratError(f"{p} is not an irat run directory (no config.yaml)")
    try:
        config = yaml.safe_load(cfg_file.read_text()) or {}
    except yaml.YAMLError as e:
        raise IratError(f"{cfg_file} is not valid YAML: {e}") from None
    info = RunInfo(p, resolved(config))
    for f in sorted((p / "eval").glob("*.json")):
        try:
            rec = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(rec, dict) and "results" in rec:
            rec["_file"] = str(f)
            info.evals.setdefault(rec.get("checkpoint", "best"), []).append(rec)
    return info


def eval_setting(rec: dict) -> tuple:
    """What must match for two evaluations to be averaged: split, threat model, examples, precision."""
    return (
        rec.get("split", "test"),
        rec.get("norm"),
        round(float(rec.get("eps", 0)), 8),
        rec.get("n"),
        rec.get("precision", "fp32"),
    )


def stale(run: RunInfo, rec: dict, cache: dict[Path, str | None]) -> str | None:
    """Why a record no longer describes the run's checkpoint (the file changed since it was measured),
    or None. Records without a fingerprint (older releases) are taken as they are."""
    want = rec.get("checkpoint_md5")
    if not want:
        return None
    path = run.path / f"{rec.get('checkpoint', 'best')}.pt"
    if path not in cache:
        cache[path] = file_md5(path) if path.is_file() else None
    if cache[path] == want:
        return None
    what = "is gone" if cache[path] is None else "has changed since (a resume or a new best epoch)"
    return (
        f"{run.path}: the {rec.get('checkpoint', 'best')} evaluation (epoch {rec.get('epoch', '?')}) measured a "
        f"checkpoint that {what}; left out — re-evaluate: irat eval {run.path} --checkpoint "
        f"{rec.get('checkpoint', 'best')}"
    )


def resolved(config: dict) -> dict:
    """A run's config.yaml as this version reads it — old flat keys under their new names, the chosen parts'
    options with their defaults — keeping only the keys the file sets (a hand-made or partial config stays
    partial), so that runs of different versions compare key by key. As written if it cannot be read (a
    damaged file: the report still shows what it can)."""
    try:
        cfg = from_dict(config)
    except IratError:
        return config
    written = {RENAMED.get(k, k).replace(".options.", ".") for k in flatten(config)}
    chosen = tuple(
        f"{section}.{found[0]}."
        for section in PART_SECTIONS
        if (found := part_options(section, getattr(cfg, section).name))
    )
    out: dict = {}
    for key, value in flatten(cfg.to_dict()).items():
        if key in written or key.startswith(chosen):
            *path, leaf = key.split(".")
            node = out
            for p in path:
                node = node.setdefault(p, {})
            node[leaf] = value
    return out


def group_key(config: dict, by: str) -> str:
    flat = flatten(config)
    if by not in flat:
        raise IratError(f"--group-by {by!r} is not a config key; e.g. method, model.arch, weighting.scheme")
    return str(flat[by])


def settings_diff(configs: list[dict]) -> dict[str, list]:
    """Config keys (other than IGNORED_KEYS) whose values differ across the given runs."""
    flats = [flatten(c) for c in configs]
    keys = set().union(*flats) - IGNORED_KEYS
    return {k: [f.get(k) for f in flats] for k in sorted(keys) if len({json.dumps(f.get(k)) for f in flats}) > 1}


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "median": statistics.median(values),
        "n": len(values),
    }


@dataclass
class Report:
    rows: list[dict]
    columns: list[str]
    notes: list[str]
    group_by: str = "method"  # what the first column names


def build_report(
    run_dirs: list[str | Path],
    *,
    group_by: str = "method",
    checkpoint: str = "best",
    stat: str = "mean",
    paper: bool = False,
) -> Report:
    """Aggregate runs into rows of {column: stats}; `notes` say what is missing or was split apart."""
    if checkpoint not in ("best", "last", "both"):
        raise IratError(f"--checkpoint must be best, last or both, got {checkpoint!r}")
    if stat not in ("mean", "median"):
        raise IratError(f"--stat must be mean or median, got {stat!r}")
    if not run_dirs:
        raise IratError("no run directories given")
    runs = [load_run(p) for p in run_dirs]
    group_by = RENAMED.get(group_by, group_by)  # an old flat key names its new one
    ckpts = ["best", "last"] if checkpoint == "both" else [checkpoint]
    notes: list[str] = []
    cache: dict[Path, str | None] = {}
    for run in runs:  # a record of a checkpoint that has changed since is never reported as its result
        for c, recs in run.evals.items():
            fresh = []
            for r in recs:
                why = stale(run, r, cache) if c in ckpts else None
                if why:
                    notes.append(why)
                else:
                    fresh.append(r)
            run.evals[c] = fresh
    # the evaluation setting used: the most common one across runs and checkpoints
    settings = Counter(eval_setting(r) for run in runs for c in ckpts for r in run.evals.get(c, []))
    if not settings:
        raise IratError(
            f"none of the runs has a current evaluation of the {' or '.join(ckpts)} checkpoint; run `irat eval RUN` "
            f"first" + (f" ({notes[0]})" if notes else "")
        )
    setting = settings.most_common(1)[0][0]
    if len(settings) > 1:
        notes.append(
            f"evaluations with other settings are left out; using split={setting[0]}, norm={setting[1]}, "
            f"eps={setting[2]:.6g}, n={setting[3]}, precision={setting[4]}"
        )
    groups: dict[str, list[RunInfo]] = {}
    for run in runs:
        groups.setdefault(group_key(run.config, group_by), []).append(run)
    rows: list[dict] = []
    columns: list[str] = []
    for name, members in groups.items():
        for label, sub in _split_by_settings(name, members, notes):
            rows.append(_build_row(label, sub, ckpts, setting, columns, notes))
    order = [c for c in columns if not c.startswith("worst case")] + [c for c in columns if c.startswith("worst case")]
    if paper:
        order = _add_paper_columns(rows, order, notes)
    for row in rows:
        for k in ("_presets", "_ckpt", "_configs", "_shortened"):
            row.pop(k, None)
    return Report(rows, order, notes, group_by)


def _build_row(
    label: str, sub: list[RunInfo], ckpts: list[str], setting: tuple, columns: list[str], notes: list[str]
) -> dict[str, Any]:
    """One row of the table: the runs' statistics per column (new columns appended to `columns`)."""
    shortened = {(r.config.get("epochs"), r.config.get("shortened_from")) for r in sub}
    if len(shortened) == 1 and next(iter(shortened))[1]:
        label += " (shortened: {}/{} epochs)".format(*next(iter(shortened)))
    row: dict[str, Any] = {
        "group": label,
        "runs": len(sub),
        "seeds": ",".join(str(r.config.get("seed")) for r in sub),
        "_presets": {r.config.get("preset") for r in sub},
        "_configs": [r.config for r in sub],
        "_shortened": any(r.config.get("shortened_from") for r in sub),
        "_ckpt": ckpts[0] if len(ckpts) == 1 else None,
    }
    for c in ckpts:
        per_col: dict[str, list[float]] = {}
        for run in sub:
            recs = [r for r in run.evals.get(c, []) if eval_setting(r) == setting]
            if not recs:
                notes.append(
                    f"{run.path}: no evaluation of the {c} checkpoint with that setting (missing from row {label!r})"
                )
                continue
            rec = max(recs, key=lambda r: Path(r["_file"]).stat().st_mtime)
            wc_n = rec.get("worst_case_n", rec["n"])  # the examples the worst case covers, said
            wc = "worst case" if wc_n == rec["n"] else f"worst case (first {wc_n})"
            for att, v in {**rec["results"], wc: rec["worst_case"]}.items():
                per_col.setdefault(f"{att} ({c})" if len(ckpts) > 1 else att, []).append(float(v))
        for col, vals in per_col.items():
            if len(vals) < len(sub):
                notes.append(f"row {label!r}, column {col!r}: {len(vals)} of {len(sub)} runs have it")
            row[col] = dict(_stats(vals), of=len(sub))
            if col not in columns:
                columns.append(col)
    return row


def _add_paper_columns(rows: list[dict], columns: list[str], notes: list[str]) -> list[str]:
    """Beside each column the paper reports for the row's preset: its value ± std (`X (paper)`), at the same
    checkpoint where the paper gives best and last."""
    from ..presets import paper_numbers

    shown = list(columns)
    tables = set()
    for row in rows:
        presets = row.pop("_presets", set())
        if len(presets) != 1:
            notes.append(f"row {row['group']!r}: no paper numbers (runs from {len(presets)} presets, need one)")
            continue
        (name,) = presets
        entry = paper_numbers(name) if name else None
        if not entry:
            notes.append(f"row {row['group']!r}: the preset {name!r} carries no paper numbers")
            continue
        differs = [] if row.get("_shortened") else _unlike_preset(name, row.get("_configs", []))
        if differs:  # a grid point or override that is not the paper's setting is not compared with its numbers
            notes.append(
                f"row {row['group']!r}: not compared with the paper — trained with {', '.join(differs[:4])}"
                f"{' …' if len(differs) > 4 else ''}, unlike the paper's row {name}"
            )
            continue
        tables.add(f"{entry['table']}: {entry['columns']}")
        trials = int(entry.get("trials", 2))
        for ckpt, values in entry["results"].items():
            for col, v in values.items():
                for ours in (col, f"{col} ({ckpt})"):
                    if ours not in columns or (ckpt != "any" and ours == col and row.get("_ckpt") != ckpt):
                        continue
                    key = f"{ours} (paper)"
                    n = trials if v["std"] is not None else 1  # no spread given: the value alone
                    row[key] = {"mean": v["mean"], "std": v["std"] or 0.0, "median": v["mean"], "n": n, "of": n}
                    mine = row.get(ours)
                    if isinstance(mine, dict):  # ours − paper, marked (*) beyond the combined spread
                        delta = mine["mean"] - v["mean"]
                        spread = math.hypot(mine.get("std", 0.0), v["std"] or 0.0)
                        mark = "*" if abs(delta) > spread else ""
                        row[f"{ours} (Δ)"] = {
                            "mean": delta,
                            "std": 0.0,
                            "median": delta,
                            "n": 1,
                            "text": f"{delta:+.2f}{mark}",
                        }
                    for k in (key, f"{ours} (Δ)"):
                        if k in row and k not in shown:
                            shown.insert(shown.index(ours) + 1 + (k.endswith("(Δ)")), k)
    notes += [f"paper numbers from {t}" for t in sorted(tables)]
    if tables:
        notes.append(
            "(Δ) = ours − the paper's, in points; * marks a difference beyond the combined spread "
            "√(std_ours² + std_paper²) (0 where only one run or no spread is given)"
        )
    return shown


_NOT_A_SETTING = {
    "seed",
    "device",
    "progress",
    "preset",
    "plugins",
    "data.data_dir",
    "data.download",
    "eval_batch_size",
}


def _unlike_preset(name: str, configs: list[dict]) -> list[str]:
    """The settings in which the runs differ from the shipped preset they name (`key=ours (paper: theirs)`)."""
    from ..presets import preset_config

    try:
        paper = flatten(preset_config(name).to_dict())
    except IratError:
        return []
    out: list[str] = []
    for cfg in configs:
        for k, v in flatten(cfg).items():
            if k in paper and k not in _NOT_A_SETTING and v != paper[k] and str(v) != str(paper[k]):
                item = f"{k}={v} (paper: {paper[k]})"
                if item not in out:
                    out.append(item)
    return out


def _split_by_settings(name: str, members: list[RunInfo], notes: list[str]) -> list[tuple[str, list[RunInfo]]]:
    diff = settings_diff([m.config for m in members])
    if not diff:
        return [(name, members)]
    keys = list(diff)
    subs: dict[str, list[RunInfo]] = {}
    for m in members:
        flat = flatten(m.config)
        label = f"{name} [" + ", ".join(f"{k}={flat.get(k)}" for k in keys[:3]) + ("…" if len(keys) > 3 else "") + "]"
        subs.setdefault(label, []).append(m)
    notes.append(
        f"group {name!r}: runs were trained with different settings ({', '.join(keys)}); "
        f"shown as separate rows, not averaged"
    )
    return list(subs.items())


def render(report: Report, fmt: str = "md", stat: str = "mean", digits: int = 2) -> str:
    """The table as markdown, CSV (mean, std and median as separate columns) or LaTeX."""
    if fmt not in FORMATS:
        raise IratError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        header = ["group", "runs", "seeds"] + [f"{c} {s}" for c in report.columns for s in ("mean", "std", "median")]
        w = csv.writer(buf)
        w.writerow(header)
        for r in report.rows:
            w.writerow(
                [r["group"], r["runs"], r["seeds"]]
                + [
                    (f"{r[c][s]:.{digits + 2}f}" if c in r else "")
                    for c in report.columns
                    for s in ("mean", "std", "median")
                ]
            )
        return buf.getvalue()
    pm = r"$\pm$" if fmt == "latex" else "±"

    def cell(v: dict) -> str:
        """mean ± std over the runs; a single value has no spread, and fewer runs than the row's say so."""
        if "text" in v:
            return str(v["text"])
        text = f"{v[stat]:.{digits}f}" + (f" {pm} {v['std']:.{digits}f}" if v["n"] > 1 else "")
        return text + (f" (n={v['n']})" if v["n"] < v.get("of", v["n"]) else "")

    first = report.group_by  # the first column names what groups the rows (method, or the --group-by key)
    table = [
        {first: r["group"], "runs": r["runs"], **{c: (cell(r[c]) if c in r else "–") for c in report.columns}}
        for r in report.rows
    ]
    text = results_table(table, [first, "runs"] + report.columns, fmt="latex_raw" if fmt == "latex" else "github")
    return text + ("\n\n" + "\n".join(f"note: {n}" for n in report.notes) if report.notes else "")


def by_class(run_dirs: list[str | Path], *, checkpoint: str = "best", group_by: str = "method") -> Report:
    """Per-class natural and robust accuracy (mean over runs) from the per-example evaluation files. Only
    evaluations of the same examples, ε, norm and precision are aggregated (the most common such setting);
    the others, and records of checkpoints that have changed since, are left out with a note."""
    rows: list[dict] = []
    columns: list[str] = []
    notes: list[str] = []
    groups: dict[str, list[RunInfo]] = {}
    runs = [load_run(p) for p in run_dirs]
    group_by = RENAMED.get(group_by, group_by)
    cache: dict[Path, str | None] = {}
    found: dict[Path, list[tuple[dict, Path]]] = {}
    for run in runs:
        groups.setdefault(group_key(run.config, group_by), []).append(run)
        found[run.path] = []
        for rec in run.evals.get(checkpoint, []):
            why = stale(run, rec, cache)
            path = per_example_file(Path(rec["_file"]), rec)
            if why:
                notes.append(why)
            elif rec.get("split", "test") == "test" and path.exists():
                found[run.path].append((rec, path))
    settings = Counter(eval_setting(rec) for pairs in found.values() for rec, _ in pairs)
    if not settings:
        raise IratError("no per-example evaluation files found; run `irat eval RUN` first")
    setting = settings.most_common(1)[0][0]
    if len(settings) > 1:
        notes.append(
            f"per-example files of other evaluations are left out; using norm={setting[1]}, "
            f"eps={setting[2]:.6g}, n={setting[3]}, precision={setting[4]}"
        )
    for name, members in groups.items():
        per_class: dict[int, dict[str, list[float]]] = {}
        for run in members:
            pairs = [(r, f) for r, f in found[run.path] if eval_setting(r) == setting]
            if not pairs:
                notes.append(f"{run.path}: no per-example evaluation of the {checkpoint} checkpoint with that setting")
                continue
            path = max(pairs, key=lambda rf: Path(rf[0]["_file"]).stat().st_mtime)[1]
            try:
                with np.load(path) as zf:
                    z = {k: zf[k] for k in zf.files}
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                notes.append(f"{path}: damaged ({type(exc).__name__}); left out — re-run irat eval")
                continue
            if "label" not in z:
                notes.append(f"{path}: written before labels were saved; re-run irat eval")
                continue
            labels = z["label"]
            attacks = [k for k in z if k not in ("index", "label", "checkpoint_md5")]
            for c in np.unique(labels):
                m = labels == c
                for a in attacks:
                    per_class.setdefault(int(c), {}).setdefault(a, []).append(100.0 * float(z[a][m].mean()))
                    if a not in columns:
                        columns.append(a)
        for c in sorted(per_class):
            rows.append(
                {
                    "group": f"{name} / class {c}",
                    "runs": len(per_class[c][columns[0]]) if columns else 0,
                    "seeds": "",
                    **{a: dict(_stats(v), of=len(members)) for a, v in per_class[c].items()},
                }
            )
    if not rows:
        raise IratError("no per-example evaluation files found; run `irat eval RUN` first")
    return Report(rows, columns, notes, group_by)
