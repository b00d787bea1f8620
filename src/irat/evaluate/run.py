"""`irat eval RUN`: evaluate a run's checkpoint on its dataset's test split, by default in the threat
model it was trained with; write the JSON record and per-example correctness beside the run."""

from __future__ import annotations

import glob
import hashlib
import io
import json
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import distributed
from ..attacks.checks import check_radius
from ..checkpoints import checkpoint_info, load_external, load_model, read_checkpoint_file
from ..data import get_spec, load_splits
from ..errors import IratError
from ..models.normalize import Normalized
from ..plugins import require_recorded
from ..rundir import check_output, check_writable, run_progress
from ..tables import results_table
from ..utils import atomic_write, atomic_write_json, file_md5, parse_number, resolve_device
from .attacks import recorded_attack
from .core import Progress, check_options, evaluate, resolve_attacks, worst_case


@dataclass
class EvalConfig:
    """One `irat eval`: what to attack (attacks or a suite), which weights (checkpoint; or a foreign state dict
    with `model_arch`, `dataset`, `num_classes`; `normalize`), which data (split, its first `n`, `data_dir`), the
    threat model (eps, norm, alpha: the run's own by default), how (batch size, seed, device, backend,
    precision, sanity checks, progress) and where the record also goes (`json_path`, `overwrite`). Built and
    checked like the training Config, and recorded in the evaluation record."""

    attacks: str | list[str] | None = None
    suite: str | None = None
    checkpoint: str = "best"
    n: int | None = None
    eps: str | float | None = None
    norm: str | None = None
    alpha: str | float | None = None
    batch_size: int = 512
    seed: int = 0
    device: str | None = None
    data_dir: str | None = None
    split: str = "test"
    json_path: str | None = None
    overwrite: bool = False
    backend: str = "irat"
    precision: str = "fp32"
    sanity: bool = True
    model_arch: str | None = None
    dataset: str | None = None
    num_classes: int | None = None
    normalize: tuple[list[float], list[float]] | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        if self.split not in ("test", "val"):
            raise IratError(f"split must be test or val, got {self.split!r}")
        if self.checkpoint not in ("best", "last", "external"):
            raise IratError(f"checkpoint must be best or last, got {self.checkpoint!r}")
        if self.norm is not None and self.norm not in ("linf", "l2"):
            raise IratError(f"norm must be linf or l2, got {self.norm!r}")


def evaluate_run(run: str | Path, config: EvalConfig | None = None, **settings: Any) -> dict:
    """Evaluate a run (or one of its checkpoints), or — with `model_arch` and `dataset` — weights irat did not
    train (a state dict for a registry architecture; records go to FILE.irat/eval/). `normalize=(mean, std)`
    wraps a model whose weights expect normalised inputs, so attacks stay in [0, 1] pixel space. Settings come
    as an `EvalConfig` or as its fields by name."""
    if config is None:
        unknown = sorted(set(settings) - {f.name for f in fields(EvalConfig)})
        if unknown:
            raise IratError(
                f"evaluate_run: unknown setting {unknown[0]!r}; settings: {', '.join(f.name for f in fields(EvalConfig))}"
            )
        config = EvalConfig(**settings)
    c = config
    attacks, suite, checkpoint, n, eps, norm, alpha = c.attacks, c.suite, c.checkpoint, c.n, c.eps, c.norm, c.alpha
    batch_size, seed, device, data_dir, split = c.batch_size, c.seed, c.device, c.data_dir, c.split
    json_path, overwrite, backend, precision, sanity = c.json_path, c.overwrite, c.backend, c.precision, c.sanity
    model_arch, dataset, normalize, progress = c.model_arch, c.dataset, c.normalize, c.progress
    if attacks is None and suite is None:
        attacks = "natural,pgd20,cw"
    specs = resolve_attacks(attacks, suite)  # unknown attacks, options and suites stop here, before any work
    if n is not None and n < 1:
        raise IratError(f"--n must be >= 1, got {n}")
    check_options(backend, precision, batch_size, specs)
    own = [sp.name for sp in specs if sp.attack.uses_alpha and sp.alpha_for(1.0, -1.0) != -1.0]
    if alpha is not None and suite and own:  # a suite's own step sizes are not silently overridden
        raise IratError(
            f"--alpha {alpha} would not be used by {', '.join(own)}: suite {suite} sets their step sizes "
            f"(the paper's protocol); to change one, name the attack with its option instead of the suite, "
            f"e.g. --attacks {own[0].split('#')[0]}:alpha={alpha}"
        )
    external = model_arch is not None
    if external and (dataset is None or eps is None):
        raise IratError("a model irat did not train needs --dataset (the data it was trained on) and --eps")
    if external:
        run_dir = Path(str(run) + ".irat")
        checkpoint = "external"
    else:
        run_dir = Path(run) if Path(run).is_dir() else Path(run).parent
    if distributed.is_main_process():  # where the record goes: checked before the model and data are loaded
        check_writable(run_dir / "eval", "the run's eval folder")
        if json_path:  # never a run's own file (a checkpoint, a record), nor an existing file unasked
            check_output(json_path, "--json", overwrite=overwrite)
    dev = distributed.device_for(resolve_device(device))
    model, info = _load_weights(run, c, checkpoint, dev)
    if normalize is not None:
        model = Normalized(model, *normalize).to(dev).eval()
    cfg = info["config"]
    eps_v = parse_number(eps) if eps is not None else float(cfg["attack"]["eps"])
    norm_v = norm or cfg["attack"]["norm"]
    meta = info["meta"]
    check_radius(eps_v, norm_v, (meta["in_channels"], meta["input_size"], meta["input_size"]), "--eps")
    alpha_v = parse_number(alpha) if alpha is not None else None
    d = cfg["data"]
    _dataset_plugins(cfg, str(run))
    splits = load_splits(
        d["dataset"],
        data_dir or d["data_dir"],
        download=d.get("download", True),
        val_size=d.get("val_size"),
        split_seed=d.get("split_seed", 0),
        test_subset=d.get("test_subset"),  # a run on a quick subset is evaluated on it (the record says so)
        augment="none",
        device=dev,
    )
    data = (splits.test if split == "test" else splits.val).head(n)
    x, y = data.all()
    stem = f"{checkpoint}_{split}_{norm_v}_eps{eps_v:.6g}_n{len(y)}".replace("/", "-")
    if precision != "fp32":  # another precision is another evaluation: never merged with the fp32 one
        stem += f"_{precision}"
    md5 = info.get("md5") or file_md5(info["path"])  # of the bytes the weights were loaded from
    identity = evaluation_identity(
        checkpoint_md5=md5,
        normalize=normalize,
        dataset=d["dataset"],
        data_dir=data_dir or d["data_dir"],
        split=split,
        index=data.index,
        eps=eps_v,
        norm=norm_v,
        precision=precision,
        backend=backend,
    )
    stem = record_stem(run_dir / "eval", stem, identity)
    # the interrupted-evaluation store also keys on everything that changes a batch's result
    partial = {
        **identity,
        "attacks": [sp.config() for sp in specs],
        "alpha": alpha_v,
        "seed": seed,
        "batch_size": batch_size,
        "world": distributed.context().world,
    }
    store = FileProgress(run_dir / "eval", partial) if distributed.is_main_process() else None
    if store is not None and store.resumed:
        print(f"irat: continuing an interrupted evaluation ({store.resumed} batches already done)", file=sys.stderr)
    record = evaluate(
        model,
        x,
        y,
        attacks=specs,
        eps=eps_v,
        norm=norm_v,
        alpha=alpha_v,
        batch_size=batch_size,
        seed=seed,
        sanity=sanity,
        backend=backend,
        precision=precision,
        progress=progress,
        store=store,
    )
    record.update(
        {
            "suite": suite,
            "run": str(run),
            "checkpoint": checkpoint,
            "epoch": info["epoch"],
            "split": split,
            "method": cfg.get("method"),
            "dataset": d["dataset"],
            "model": info["meta"]["arch"],
            "seed": seed,
            "train_seed": cfg.get("seed"),
            "normalize": identity["normalize"],
            "test_subset": d.get("test_subset") if split == "test" else None,
            "identity": identity,
            "eval_config": {k: v for k, v in asdict(c).items() if k not in ("progress", "json_path", "overwrite")},
        }
    )
    record["checkpoint_md5"] = md5
    progress_now = None if external else run_progress(run_dir)
    if progress_now and (progress_now["training"] or progress_now["epoch"] < progress_now["epochs"]):
        record["run_status"] = progress_now  # results of a checkpoint of an unfinished run: said, recorded
    per_example = record.pop("per_example")
    if not distributed.is_main_process():  # torchrun: every rank holds the record, rank 0 writes it
        return record
    save_record(run_dir / "eval" / f"{stem}.json", record, per_example, data.index.cpu(), y.cpu())
    if json_path:
        atomic_write_json(json_path, record)
    if store is not None:
        store.finish()
    return record


def _load_weights(run: str | Path, c: EvalConfig, checkpoint: str, dev: torch.device) -> tuple[torch.nn.Module, dict]:
    """The model to evaluate and its checkpoint record: a run's checkpoint, or weights irat did not train."""
    if c.model_arch is None:
        model = load_model(run, checkpoint, device=dev)
        return model, checkpoint_info(model)
    assert c.dataset is not None
    spec = get_spec(c.dataset)
    model = load_external(
        run,
        arch=c.model_arch,
        num_classes=c.num_classes or spec.num_classes,
        in_channels=spec.channels,
        input_size=spec.size,
        device=dev,
    )
    info = checkpoint_info(model)
    info["config"] = {
        "method": "external",
        "attack": {"eps": c.eps, "norm": c.norm or "linf"},
        "data": {"dataset": c.dataset, "data_dir": c.data_dir or "~/.cache/irat"},
    }
    return model, info


def _dataset_plugins(cfg: dict, run: str) -> None:
    """A dataset that a recorded plug-in registers is usable only when that plug-in is named (or trusted)."""
    dataset = cfg["data"]["dataset"]
    if dataset.lower() != "npz" and cfg.get("plugins"):
        try:
            get_spec(dataset)
        except IratError:
            require_recorded(cfg["plugins"], f"{run} (dataset {dataset})")


def evaluation_identity(
    *,
    checkpoint_md5: str,
    normalize: tuple[list[float], list[float]] | None,
    dataset: str,
    data_dir: str,
    split: str,
    index: torch.Tensor,
    eps: float,
    norm: str,
    precision: str,
    backend: str,
) -> dict:
    """Everything that decides what an evaluation measures: the weights (checkpoint content and input
    normalisation), the data (dataset, its folder, split and examples) and the threat model, precision and
    backend. Records merge, and interrupted evaluations continue, only within one identity."""
    idx = index.cpu().numpy().astype(np.int64)
    return {
        "checkpoint_md5": checkpoint_md5,
        "normalize": {"mean": list(normalize[0]), "std": list(normalize[1])} if normalize else None,
        "dataset": dataset,
        "data_dir": str(Path(data_dir).expanduser().resolve()),
        "split": split,
        "examples": f"{len(idx)}:{hashlib.sha256(idx.tobytes()).hexdigest()[:16]}",
        "eps": float(eps),
        "norm": norm,
        "precision": precision,
        "backend": backend,
    }


def _identity_of(record: dict) -> dict:
    """A record's identity (records of earlier releases: the fields they kept)."""
    if "identity" in record:
        return record["identity"]
    keys = ("checkpoint_md5", "normalize", "dataset", "split", "eps", "norm", "precision", "backend")
    return {k: record.get(k) for k in keys if k in record}


def identity_differences(a: dict, b: dict) -> list[str]:
    """The fields two identities both hold and disagree on, said as `field (a vs b)`."""
    return [f"{k} ({a[k]} vs {b[k]})" for k in a if k in b and a[k] != b[k]]


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def record_stem(folder: Path, stem: str, identity: dict) -> str:
    """The record's file stem: `stem`, unless a record of another identity holds that name; then a stem of
    its own (`stem_<digest>`), said once, so that the two are never merged."""
    path = folder / f"{stem}.json"
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return stem
    # a new checkpoint of the same run replaces its record as before (reports leave stale ones out)
    differs = [d for d in identity_differences(identity, _identity_of(old)) if not d.startswith("checkpoint_md5")]
    if not differs:
        return stem
    own = f"{stem}_{_digest(identity)}"
    print(
        f"irat: {path} holds an evaluation with another {', '.join(differs)}; this one is recorded apart "
        f"as {own}.json (never merged)",
        file=sys.stderr,
    )
    return own


class FileProgress(Progress):
    """Finished batches of one evaluation in RUN/eval/.<digest>.partial.pt, rewritten after each
    batch, one file per identity (checkpoint, normalisation, data, attacks, threat model, seed, examples):
    an interrupted `irat eval` run again with the same settings continues where it stopped, and never from
    another identity's batches. Removed once the record is written."""

    def __init__(self, folder: Path, identity: dict):
        self.identity = identity
        self.path = folder / f".{_digest(identity)}.partial.pt"
        self.done: dict[str, dict[str, torch.Tensor]] = {}
        self.resumed = 0
        for other in sorted(folder.glob(".*.partial.pt")):
            if other != self.path:
                theirs = _saved_identity(other)
                if theirs is not None and theirs.get("checkpoint_md5") == identity["checkpoint_md5"]:
                    print(
                        f"irat: {other.name} holds an interrupted evaluation with another "
                        f"{', '.join(identity_differences(identity, theirs)) or 'setting'}: kept, not continued",
                        file=sys.stderr,
                    )
        if self.path.is_file():
            try:  # checked like a checkpoint: every entry's CRC, so a damaged batch is never taken as done
                saved, _ = read_checkpoint_file(self.path)
                if json.loads(saved.get("identity", "null")) == identity:
                    self.done = saved["done"]
                    self.resumed = len(self.done)
            except Exception as exc:
                self.done = {}
                print(
                    f"irat: the interrupted evaluation's store {self.path.name} is damaged ({str(exc)[:120]}); "
                    f"its batches are computed again",
                    file=sys.stderr,
                )

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        return self.done.get(key)

    def put(self, key: str, value: dict[str, torch.Tensor]) -> None:
        self.done[key] = value
        payload = {"identity": json.dumps(self.identity, sort_keys=True, default=str), "done": self.done}
        atomic_write(self.path, lambda tmp: torch.save(payload, tmp))

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)


def _saved_identity(path: Path) -> dict | None:
    try:
        return json.loads(torch.load(path, map_location="cpu", weights_only=True)["identity"])
    except Exception:
        return None


_META_ARRAYS = ("index", "label", "checkpoint_md5")


def per_example_file(json_path: Path, record: dict) -> Path:
    """The per-example file a record goes with (records written before this release: `{stem}.npz`)."""
    name = record.get("per_example_file")
    return json_path.parent / name if name else json_path.with_suffix(".npz")


def save_record(
    json_path: Path, record: dict, per_example: dict[str, torch.Tensor], index: torch.Tensor, label: torch.Tensor
) -> None:
    """Write a record and its per-example correctness so that both change or neither does.

    Earlier attacks on the same checkpoint and examples are kept (their results, settings and warnings,
    and their per-example flags; the worst case is then over all). The per-example file is named after
    its content and written first; the record, which names it, is written second (the commit); older
    per-example files go last. A kill at any point leaves a record with the per-example file it names.
    """
    md5 = record["checkpoint_md5"]
    old, arrays = _earlier(json_path, md5, index.numpy())
    if old is not None and identity_differences(record.get("identity", {}), _identity_of(old)):
        old, arrays = None, {}  # another identity (record_stem keeps them apart; never merged)
    if old is not None:
        record["results"] = {
            **{k: v for k, v in old.get("results", {}).items() if k not in record["results"]},
            **record["results"],
        }
        record["attacks"] = {
            **{k: v for k, v in old.get("attacks", {}).items() if k not in record["attacks"]},
            **record["attacks"],
        }
        seen = {w["message"] for w in record["warnings"]}
        record["warnings"] += [w for w in old.get("warnings", []) if w["message"] not in seen]
    arrays.update(index=index.numpy(), checkpoint_md5=np.array(md5), label=label.numpy())
    for k, v in per_example.items():
        arrays[k] = v.numpy().astype(bool)
    if old is not None:  # the worst case over every attack run on these examples, on the examples all ran on
        flags = np.logical_and.reduce([v for k, v in arrays.items() if k not in _META_ARRAYS])
        ns = [int(a.get("n", len(flags))) for a in record["attacks"].values()]
        record.update(worst_case(flags, ns, len(flags)))
        seen = {w["message"] for w in record["warnings"]}  # the masking checks across the merged calls
        record["warnings"] += [w for w in merged_warnings(record, arrays) if w["message"] not in seen]
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    blob = buf.getvalue()
    name = f"{json_path.stem}.{hashlib.sha256(blob).hexdigest()[:12]}.npz"

    def write(tmp: str) -> None:
        Path(tmp).write_bytes(blob)

    atomic_write(json_path.parent / name, write)
    record["per_example_file"] = name
    atomic_write_json(json_path, record)
    for f in [json_path.with_suffix(".npz"), *json_path.parent.glob(f"{glob.escape(json_path.stem)}.*.npz")]:
        if f.name != name and f.exists():
            f.unlink()


def merged_warnings(record: dict, arrays: dict[str, np.ndarray]) -> list[dict]:
    """The cross-attack masking checks over every attack of a merged record (each with the settings it ran)."""
    from .attacks import ATTACKS, AttackSpec
    from .masking import attack_warnings

    n = len(arrays["index"])
    specs, per_example, covered = [], {}, {}
    for name, cfg in record["attacks"].items():
        if name not in arrays or cfg.get("kind") not in ATTACKS:
            continue
        options = {k: v for k, v in cfg.items() if k not in ("name", "kind")}
        specs.append(AttackSpec(name, cfg["kind"], options))
        per_example[name] = torch.from_numpy(arrays[name].astype(bool))
        covered[name] = torch.arange(n) < int(cfg.get("n") or n)
    clean = [s.name for s in specs if s.attack.clean]
    nat = per_example[clean[0]] if clean else None
    if nat is None or len(specs) < 2:
        return []
    try:
        return attack_warnings(specs, per_example, covered, nat, {})
    except (KeyError, TypeError):  # a record of an earlier release without some option: no cross-call check
        return []


def _clean_names(record: dict) -> set[str]:
    """The results of a record that are clean accuracies (no attack)."""
    return {n for n, c in record.get("attacks", {}).items() if (a := recorded_attack(c)) is not None and a.clean}


def _earlier(json_path: Path, md5: str, index: np.ndarray) -> tuple[dict | None, dict[str, np.ndarray]]:
    """The earlier record and per-example flags to merge with: same checkpoint, same examples, and a
    per-example file that matches its record; else none (a fresh record)."""
    try:
        old = json.loads(json_path.read_text())
        with np.load(per_example_file(json_path, old)) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None, {}
    same = (
        old.get("checkpoint_md5") == md5
        and str(arrays.get("checkpoint_md5")) == md5
        and "index" in arrays
        and np.array_equal(arrays["index"], index)
        and set(old.get("results", {})) - _clean_names(old) <= set(arrays) | _clean_names(old)
    )
    return (old, arrays) if same else (None, {})


def run_status_line(status: dict | None) -> str:
    """`a run still training (epoch 14/40)`, `an unfinished run (stopped at epoch 14/40)`, or ''."""
    if not status:
        return ""
    if status["training"]:
        return f"a run still training (epoch {status['epoch']}/{status['epochs']})"
    return f"an unfinished run (stopped at epoch {status['epoch']}/{status['epochs']})"


def step_sizes(record: dict) -> str:
    """The step size each attack ran with (one value when they agree; none when no attack takes one)."""
    used = {k: a["alpha"] for k, a in record["attacks"].items() if a.get("alpha") is not None}
    if not used:
        return "no step size"
    if len(set(used.values())) == 1:
        return f"alpha={next(iter(used.values())):.5g}"
    return "alpha: " + ", ".join(f"{k} {v:.5g}" for k, v in used.items())


def print_record(record: dict) -> None:
    if record.get("run_status"):
        print(f"note: the {record.get('checkpoint')} checkpoint of {run_status_line(record['run_status'])}")
    row = {
        "checkpoint": f"{record.get('checkpoint', '')} (epoch {record.get('epoch', '?')})",
        **record["results"],
        (
            "worst case"
            if record.get("worst_case_n", record["n"]) == record["n"]
            else f"worst case (first {record['worst_case_n']})"
        ): record["worst_case"],
    }
    print(
        f"{record.get('method', '')} on {record.get('dataset', '')}: n={record['n']}, {record['norm']} "
        f"eps={record['eps']:.5g}, {step_sizes(record)}"
        + (f", normalize={record['normalize']}" if record.get("normalize") else "")
        + (
            f" (the run's data.test_subset: its first {record['test_subset']} test examples)"
            if record.get("test_subset")
            else ""
        )
    )
    print(results_table([row], list(row)))
    timing = {
        k: {"s": a["time_s"], "ex/s": a["examples_per_s"]} for k, a in record["attacks"].items() if a.get("n_attacked")
    }
    if timing:
        print("time per attack: " + ", ".join(f"{k} {v['s']:.1f} s" for k, v in timing.items()))
    for w in record.get("warnings", []):
        print(f"WARNING [{w['check']}]: {w['message']}")
    print(
        json.dumps(
            {
                "results": record["results"],
                "worst_case": record["worst_case"],
                "warnings": len(record.get("warnings", [])),
            }
        )
    )
