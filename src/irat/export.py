"""`irat export`: a trained model as a file plain PyTorch loads, with a model card.

Formats: `state-dict` (torch.save of the weights: `torch.load(f, weights_only=True)` into the registry
architecture, or `irat eval FILE --model ARCH --dataset NAME`), `torchscript` (`torch.jit.load(f)`, no irat
needed), `safetensors` (`safetensors.torch.load_file(f)`; needs `pip install 'irat[export]'`). The card
(`FILE.json`) holds what RobustBench's model zoo records for an entry — architecture, dataset, threat
model, ε, clean and AutoAttack accuracy — plus the method, the training config and every evaluation
record of the exported checkpoint with its checkpoint fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from .checkpoints import checkpoint_info, load_model
from .errors import IratError
from .utils import atomic_write, atomic_write_json, file_md5

FORMATS = ("state-dict", "torchscript", "safetensors")


def export(run: str | Path, out: str | Path, *, fmt: str = "state-dict", checkpoint: str = "best") -> dict[str, Any]:
    """Write the model of `run` to `out` in `fmt`, and its card to `out` + '.json'; returns the card."""
    if fmt not in FORMATS:
        raise IratError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "safetensors":
        try:
            from safetensors.torch import save_file
        except ImportError:
            raise IratError("--format safetensors needs the safetensors package: pip install 'irat[export]'") from None
    run_dir = Path(run)
    model = load_model(run_dir, checkpoint, device="cpu")
    info = checkpoint_info(model)
    meta, cfg = info["meta"], info["config"]
    out = Path(out)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if fmt == "state-dict":
        atomic_write(out, lambda tmp: torch.save(state, tmp))
    elif fmt == "safetensors":
        atomic_write(out, lambda tmp: save_file(state, tmp))
    else:
        example = torch.rand(1, meta["in_channels"], meta["input_size"], meta["input_size"])
        scripted = torch.jit.trace(model, example, check_trace=False)
        atomic_write(out, lambda tmp: torch.jit.save(scripted, tmp))
    md5 = file_md5(info["path"])
    records = []
    for f in sorted((run_dir / "eval").glob(f"{checkpoint}_*.json")) if run_dir.is_dir() else []:
        rec = json.loads(f.read_text())
        if rec.get("checkpoint_md5") == md5:  # only evaluations of exactly this checkpoint
            records.append(
                {
                    k: rec.get(k)
                    for k in (
                        "split",
                        "n",
                        "norm",
                        "eps",
                        "precision",
                        "results",
                        "worst_case",
                        "worst_case_n",
                        "warnings",
                        "checkpoint_md5",
                    )
                }
            )
    best = max(records, key=lambda r: r.get("n") or 0) if records else {}
    results = best.get("results", {})
    card = {
        "name": run_dir.name,
        "architecture": meta["arch"],
        "dataset": cfg.get("data", {}).get("dataset"),
        "threat_model": {"linf": "Linf", "l2": "L2"}.get(cfg.get("attack", {}).get("norm", "linf")),
        "eps": cfg.get("attack", {}).get("eps"),
        "clean_acc": results.get("natural"),
        "autoattack_acc": next((v for k, v in results.items() if k.startswith("aa")), None),
        "method": cfg.get("method"),
        "epoch": info["epoch"],
        "input": {
            "channels": meta["in_channels"],
            "size": meta["input_size"],
            "range": [0, 1],
            "num_classes": meta["num_classes"],
        },
        "format": fmt,
        "checkpoint": checkpoint,
        "checkpoint_md5": md5,
        "file_sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "evaluations": records,
        "config": cfg,
    }
    atomic_write_json(Path(str(out) + ".json"), card)
    return card
