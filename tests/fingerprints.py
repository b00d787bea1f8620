"""Behaviour fingerprints: a hash of the trained weights of every method, recorded before a redesign.

Two variants per method, both `irat train --method M --dataset digits --epochs 2 --burn-in 1 --seed 0
--device cpu` with one CPU thread:
- `full`: that command (ResNet-18, ~30 s a method; BiLAW's validation set cut to 200 examples to fit
  the digits); checked by
  `python tests/fingerprints.py --check full` (too slow for the suite);
- `fast`: the same on the tiny CNN and a 300-example subset, with the second phases switched on in
  epoch 2 (MWPB's radii, AWP's warm-up) so that every part runs; checked by the test suite
  (tests/test_fingerprints.py).

RST methods need a teacher: a `standard` run of the same variant trained first, with 100 training
examples withheld as the unlabeled set.

    python tests/fingerprints.py --record fast      # write tests/fixtures/fingerprints_fast.json
    python tests/fingerprints.py --check full       # compare with the stored record

Bit-identity holds on one machine and PyTorch build (float summation order depends on the CPU's
vector width), which is where CI runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import torch

FIXTURES = Path(__file__).resolve().parent / "fixtures"
COMMON = ["--dataset", "digits", "--epochs", "2", "--burn-in", "1", "--seed", "0", "--device", "cpu", "--quiet"]
FAST = [
    "--model",
    "tinycnn",
    "--set",
    "data.train_subset=300",
    "--set",
    "val_n=100",
    "--set",
    "val_steps=3",
    "--set",
    "radius.phase1_epochs=1",
    "--set",
    "awp.warmup=1",
    "--set",
    "weighting.bilaw_meta_size=100",
]
FULL = ["--set", "weighting.bilaw_meta_size=200"]  # BiLAW's default 1000 exceeds the digits' training set
TEACHER_OF = ("rst", "gair-rst")


def state_hash(path: Path) -> str:
    """sha256 over the names, shapes, dtypes and bytes of a checkpoint's model weights (sorted by name)."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    h = hashlib.sha256()
    for k in sorted(data["model"]):
        t = data["model"][k].detach().cpu().contiguous()
        h.update(f"{k}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
    return h.hexdigest()


def methods() -> list[str]:
    from irat.methods import METHODS

    return sorted(METHODS)


def train_args(method: str, variant: str, out: Path, teacher: Path | None) -> list[str]:
    args = ["train", "--method", method, *COMMON, "--out", str(out)]
    args += FAST if variant == "fast" else FULL
    if method in TEACHER_OF:
        assert teacher is not None
        args += ["--set", "unlabeled.withhold=100", "--set", f"unlabeled.teacher={teacher}"]
    return args


def fingerprint(method: str, variant: str, work: Path) -> str:
    """Train one method in `work` (one thread) and return the hash of its last weights."""
    from irat.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        teacher = None
        if method in TEACHER_OF:
            teacher = work / "teacher"
            if not (teacher / "last.pt").exists():
                assert main(train_args("standard", variant, teacher, None)) == 0
        out = work / method
        assert main(train_args(method, variant, out, teacher)) == 0, f"training {method} failed"
        return state_hash(out / "last.pt")
    finally:
        torch.set_num_threads(threads)


def record_path(variant: str) -> Path:
    return FIXTURES / f"fingerprints_{variant}.json"


def main_(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--record", choices=["fast", "full"])
    g.add_argument("--check", choices=["fast", "full"])
    p.add_argument("--methods", help="comma list (default: all)")
    args = p.parse_args(argv)
    variant = args.record or args.check
    names = args.methods.split(",") if args.methods else methods()
    stored = json.loads(record_path(variant).read_text()) if record_path(variant).exists() else {}
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for m in names:
            got = fingerprint(m, variant, Path(tmp))
            if args.record:
                stored[m] = got
            ok = stored.get(m) == got
            bad += not ok
            print(f"{m:18s} {got[:16]} {'ok' if ok else 'DIFFERS from ' + str(stored.get(m))[:16]}", flush=True)
    if args.record:
        FIXTURES.mkdir(exist_ok=True)
        record_path(variant).write_text(json.dumps(dict(sorted(stored.items())), indent=1) + "\n")
        return 0
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main_())
