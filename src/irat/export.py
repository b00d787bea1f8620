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
from .evaluate.attacks import EvalAttack, is_standard_autoattack, parse_attack, recorded_attack
from .rundir import check_output, run_progress
from .utils import atomic_write, atomic_write_json

FORMATS = ("state-dict", "torchscript", "safetensors")
_SUFFIXES = {".safetensors": "safetensors", ".pt": "state-dict", ".pth": "state-dict", ".bin": "state-dict"}
_SUFFIXES.update({".ts": "torchscript", ".jit": "torchscript", ".torchscript": "torchscript"})
_CARD_KEYS: tuple[str, ...] = (
    "split",
    "n",
    "norm",
    "eps",
    "precision",
    "backend",
    "normalize",
    "results",
    "worst_case",
)
_CARD_KEYS += ("worst_case_n", "warnings", "checkpoint_md5")


def export_format(out: str | Path, fmt: str | None) -> str:
    """The format to write: `fmt`, or the one the file name says (`.safetensors`, `.pt`/`.pth`, `.ts`); a
    name that says another format than `fmt` is refused (a pickle named .safetensors misleads its reader)."""
    said = _SUFFIXES.get(Path(out).suffix.lower())
    if fmt is None:
        if said is None:
            raise IratError(
                f"--format is needed: {Path(out).name} does not say one ({', '.join(sorted(_SUFFIXES))}); "
                f"formats: {', '.join(FORMATS)}"
            )
        return said
    if fmt not in FORMATS:
        raise IratError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if said is not None and said != fmt:
        raise IratError(f"{Path(out).name} names a {said} file but --format is {fmt}; rename it or drop --format")
    return fmt


def _ran(record: dict, name: str, test: Any) -> bool:
    """Whether result `name` of an evaluation record came from an attack that passes `test(attack, config)`: its
    recorded configuration, else the name as `--attacks` reads it (records that state none)."""
    cfg = record.get("attacks", {}).get(name)
    if cfg is None:
        try:
            cfg = parse_attack(name).config()
        except IratError:
            return False
    attack: EvalAttack | None = recorded_attack(cfg)
    return attack is not None and bool(test(attack, cfg))


def card_figures(records: list[dict], norm: str, eps: float) -> dict[str, Any]:
    """The card's headline figures, each from a record of its own threat model (norm, ε), the test split,
    fp32, no input normalisation and an official AutoAttack version — the one with most examples — and where
    each came from; None (with the reason) when no record fits."""

    def fits(r: dict) -> bool:
        return (
            r.get("split") == "test"
            and r.get("norm") == norm
            and abs(float(r.get("eps", -1)) - float(eps)) <= 1e-9 * max(1.0, abs(float(eps)))
            and r.get("precision", "fp32") == "fp32"
            and not r.get("normalize")
        )

    out: dict[str, Any] = {"clean_acc": None, "autoattack_acc": None, "sources": {}}
    good = [r for r in records if fits(r)]
    with_nat = [(r, k) for r in good for k in r.get("results", {}) if _ran(r, k, lambda a, c: a.clean)]
    if with_nat:
        r, k = max(with_nat, key=lambda rk: rk[0].get("n") or 0)
        out["clean_acc"] = r["results"][k]
        out["sources"]["clean_acc"] = {"record": r["file"], "n": r.get("n")}
    aa = [(r, k) for r in good for k in r.get("results", {}) if _ran(r, k, lambda a, c: is_standard_autoattack(c))]
    if aa:
        r, k = max(aa, key=lambda rk: rk[0].get("n") or 0)
        out["autoattack_acc"] = r["results"][k]
        out["sources"]["autoattack_acc"] = {
            "record": r["file"],
            "n": r.get("n"),
            "attack": k,
            "backend": r.get("backend"),
        }
    for key in ("clean_acc", "autoattack_acc"):
        if out[key] is None:
            out["sources"][key] = f"no evaluation of this checkpoint at {norm} eps {eps:.6g} on the test split in fp32"
    return out


def export(
    run: str | Path,
    out: str | Path,
    *,
    fmt: str | None = None,
    checkpoint: str = "best",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the model of `run` to `out` (format from `fmt` or the file name), and its card to `out` +
    '.json'; returns the card. Neither may be a run's own file, nor an existing file without `overwrite`."""
    fmt = export_format(out, fmt)
    out = check_output(out, "--out", overwrite=overwrite)
    card_path = check_output(Path(str(out) + ".json"), "the card", overwrite=overwrite)
    if fmt == "safetensors":
        try:
            from safetensors.torch import save_file
        except ImportError:
            raise IratError("--format safetensors needs the safetensors package: pip install 'irat[export]'") from None
    run_dir = Path(run)
    model = load_model(run_dir, checkpoint, device="cpu")
    info = checkpoint_info(model)
    meta, cfg = info["meta"], info["config"]
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if fmt == "state-dict":
        atomic_write(out, lambda tmp: torch.save(state, tmp))
    elif fmt == "safetensors":
        atomic_write(out, lambda tmp: save_file(state, tmp))
    else:
        example = torch.rand(1, meta["in_channels"], meta["input_size"], meta["input_size"])
        scripted = torch.jit.trace(model, example, check_trace=False)
        atomic_write(out, lambda tmp: torch.jit.save(scripted, tmp))
    md5 = info["md5"]  # of the very bytes the exported weights came from
    records = []
    for f in sorted((run_dir / "eval").glob(f"{checkpoint}_*.json")) if run_dir.is_dir() else []:
        rec = json.loads(f.read_text())
        if rec.get("checkpoint_md5") == md5:  # only evaluations of exactly this checkpoint
            records.append({"file": f.name, **{k: rec.get(k) for k in _CARD_KEYS}})
    norm = cfg.get("attack", {}).get("norm", "linf")
    eps = float(cfg.get("attack", {}).get("eps"))
    figures = card_figures(records, norm, eps)
    card = {
        "name": run_dir.name,
        "architecture": meta["arch"],
        "dataset": cfg.get("data", {}).get("dataset"),
        "threat_model": {"linf": "Linf", "l2": "L2"}.get(norm),
        "eps": eps,
        "clean_acc": figures["clean_acc"],
        "autoattack_acc": figures["autoattack_acc"],
        "figures_from": figures["sources"],
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
    status = run_progress(run_dir)
    if status and (status["training"] or status["epoch"] < status["epochs"]):
        card["run_status"] = status  # exported from a run that has not finished: the card says so
    atomic_write_json(card_path, card)
    return card
