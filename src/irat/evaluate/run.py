"""`irat eval RUN`: evaluate a run's checkpoint on its dataset's test split, by default in the threat
model it was trained with; write the JSON record and per-example correctness beside the run."""

from __future__ import annotations

import glob
import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import torch

from .. import distributed
from ..attacks.checks import check_radius
from ..checkpoints import checkpoint_info, load_external, load_model
from ..data import get_spec, load_splits
from ..errors import IratError
from ..models.normalize import Normalized
from ..rundir import check_file_writable, check_writable
from ..tables import results_table
from ..utils import atomic_write, atomic_write_json, file_md5, parse_number, resolve_device
from .core import Progress, check_options, evaluate, resolve_attacks, worst_case


def evaluate_run(
    run: str | Path,
    *,
    attacks: str | list[str] | None = None,
    checkpoint: str = "best",
    n: int | None = None,
    eps: str | float | None = None,
    norm: str | None = None,
    alpha: str | float | None = None,
    batch_size: int = 512,
    seed: int = 0,
    device: str | None = None,
    data_dir: str | None = None,
    split: str = "test",
    json_path: str | None = None,
    suite: str | None = None,
    backend: str = "irat",
    precision: str = "fp32",
    sanity: bool = True,
    model_arch: str | None = None,
    dataset: str | None = None,
    num_classes: int | None = None,
    normalize: tuple[list[float], list[float]] | None = None,
    progress: bool = False,
) -> dict:
    """Evaluate a run (or one of its checkpoints), or — with `model_arch` and `dataset` — weights irat did not
    train (a state dict for a registry architecture; records go to FILE.irat/eval/). `normalize=(mean, std)`
    wraps a model whose weights expect normalised inputs, so attacks stay in [0, 1] pixel space."""
    if attacks is None and suite is None:
        attacks = "natural,pgd20,cw"
    specs = resolve_attacks(attacks, suite)  # unknown attacks, options and suites stop here, before any work
    if n is not None and n < 1:
        raise IratError(f"--n must be >= 1, got {n}")
    check_options(backend, precision, batch_size, specs)
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
        if json_path:
            check_file_writable(Path(json_path), "--json")
    dev = distributed.device_for(resolve_device(device))
    if external:
        assert model_arch is not None and dataset is not None
        spec = get_spec(dataset)
        model = load_external(
            run,
            arch=model_arch,
            num_classes=num_classes or spec.num_classes,
            in_channels=spec.channels,
            input_size=spec.size,
            device=dev,
        )
        info = checkpoint_info(model)
        info["config"] = {
            "method": "external",
            "attack": {"eps": eps, "norm": norm or "linf"},
            "data": {"dataset": dataset, "data_dir": data_dir or "~/.cache/irat"},
        }
    else:
        model = load_model(run, checkpoint, device=dev)
        info = checkpoint_info(model)
    if normalize is not None:
        model = Normalized(model, *normalize).to(dev).eval()
    cfg = info["config"]
    eps_v = parse_number(eps) if eps is not None else float(cfg["attack"]["eps"])
    norm_v = norm or cfg["attack"]["norm"]
    meta = info["meta"]
    check_radius(eps_v, norm_v, (meta["in_channels"], meta["input_size"], meta["input_size"]), "--eps")
    alpha_v = parse_number(alpha) if alpha is not None else None
    d = cfg["data"]
    splits = load_splits(
        d["dataset"],
        data_dir or d["data_dir"],
        download=d.get("download", True),
        val_size=d.get("val_size"),
        split_seed=d.get("split_seed", 0),
        augment="none",
        device=dev,
    )
    data = (splits.test if split == "test" else splits.val).head(n)
    x, y = data.all()
    stem = f"{checkpoint}_{split}_{norm_v}_eps{eps_v:.6g}_n{len(y)}".replace("/", "-")
    if precision != "fp32":  # another precision is another evaluation: never merged with the fp32 one
        stem += f"_{precision}"
    md5 = file_md5(info["path"])
    identity = json.dumps(
        [
            md5,
            [sp.config() for sp in specs],
            eps_v,
            norm_v,
            alpha_v,
            seed,
            precision,
            backend,
            batch_size,
            data.index.tolist(),
            distributed.context().world,
        ],
        sort_keys=True,
        default=str,
    )
    store = FileProgress(run_dir / "eval" / f".{stem}.partial.pt", identity) if distributed.is_main_process() else None
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
            "normalize": {"mean": normalize[0], "std": normalize[1]} if normalize else None,
        }
    )
    record["checkpoint_md5"] = md5
    per_example = record.pop("per_example")
    if not distributed.is_main_process():  # torchrun: every rank holds the record, rank 0 writes it
        return record
    save_record(run_dir / "eval" / f"{stem}.json", record, per_example, data.index.cpu(), y.cpu())
    if json_path:
        atomic_write_json(json_path, record)
    if store is not None:
        store.finish()
    return record


class FileProgress(Progress):
    """Finished batches of one evaluation in RUN/eval/.<record>.partial.pt, rewritten after each batch;
    used again only by the same evaluation (checkpoint, attacks, threat model, seed, examples), and removed
    once the record is written. An interrupted `irat eval` run again continues where it stopped."""

    def __init__(self, path: Path, identity: str):
        self.path, self.identity = path, identity
        self.done: dict[str, dict[str, torch.Tensor]] = {}
        self.resumed = 0
        if path.is_file():
            try:
                saved = torch.load(path, map_location="cpu", weights_only=True)
                if saved.get("identity") == identity:
                    self.done = saved["done"]
                    self.resumed = len(self.done)
            except Exception:
                self.done = {}

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        return self.done.get(key)

    def put(self, key: str, value: dict[str, torch.Tensor]) -> None:
        self.done[key] = value
        payload = {"identity": self.identity, "done": self.done}
        atomic_write(self.path, lambda tmp: torch.save(payload, tmp))

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)


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
        and set(old.get("results", {})) - {"natural"} <= set(arrays) | {"natural"}
    )
    return (old, arrays) if same else (None, {})


def print_record(record: dict) -> None:
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
        f"eps={record['eps']:.5g}, alpha={record['alpha']:.5g}"
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
