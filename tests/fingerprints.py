"""Behaviour fingerprints: what training did to the weights of every method, comparable across machines.

Each method trains `irat train --method M --dataset digits --epochs 2 --burn-in 1 --seed 0 --device cpu`
with one CPU thread, in one of two variants:
- `fast`: the tiny CNN on a 300-example subset, batch 50, constant learning rate 0.05, no weight decay
  (so that the loss, not weight decay, moves the weights) and float64 arithmetic (`precision=fp64`), with
  the second phases switched on in epoch 2 (MWPB's radii, AWP's warm-up) so that every part runs;
  checked by the test suite (tests/test_fingerprints.py);
- `full`: that command on ResNet-18 in float32 (~30 s a method; BiLAW's validation set cut to 200
  examples to fit the digits); `python tests/fingerprints.py --record full` on one machine, then
  `--check full` on the same machine (float32: comparable only there).

The fingerprint is a random projection of the weight *update* (trained weights minus the seeded
initial weights) onto `K` fixed Gaussian directions (Johnson-Lindenstrauss): the distance between two
fingerprints estimates ‖Δ_a − Δ_b‖ to within a few per cent, and two runs are compared by their
relative distance ‖P(Δ_a − Δ_b)‖ / ‖P Δ_a‖.

Why float64: in float32, float summation order (the CPU's vector width, the thread count) moved the
fast update by up to 4e-3 of its norm (GAIR-TRADES: a κ count flipped at a near-tie), more than a
1 % change of TRADES' β moved it (3e-5). In float64 the same machines differ by at most 1.6e-15, while
a 1e-4 relative change of β, γ, λ or α moves it by 5e-8 to 5e-4: `TOLERANCE` sits between, five orders
of magnitude from either (numbers and commands: tests/test_fingerprints.py).
Bit-identical pins are kept only where both sides run in one process on one machine (kill-and-resume).

RST methods need a teacher: a `standard` run of the same variant trained first, with 100 training
examples withheld as the unlabeled set.

    python tests/fingerprints.py --record fast      # write tests/fixtures/fingerprints_fast.json
    python tests/fingerprints.py --check fast       # compare with the stored record (prints distances)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).resolve().parent / "fixtures"
COMMON = ["--dataset", "digits", "--epochs", "2", "--burn-in", "1", "--seed", "0", "--device", "cpu", "--quiet"]
FAST = [
    "--model", "tinycnn", "--batch-size", "50",
    "--set", "data.train_subset=300", "--set", "val_n=100", "--set", "val_steps=3",
    "--set", "optim.schedule=constant", "--set", "optim.lr=0.05", "--set", "optim.weight_decay=0",
    "--set", "radius.mwpb.phase1_epochs=1", "--set", "awp.warmup=1", "--set", "weighting.bilaw.meta_size=100",
    "--set", "precision=fp64",
]  # fmt: skip
FULL = ["--set", "weighting.bilaw.meta_size=200"]  # BiLAW's default 1000 exceeds the digits' training set
TEACHER_OF = ("rst", "gair-rst")
K = 128  # projections: the distance estimate's relative standard error is about 1/sqrt(2K) = 6 %
# The largest relative distance accepted as "the same training" (see the module's docstring).
TOLERANCE = 1e-10


def flat_weights(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().double().flatten().numpy() for k, v in state.items() if v.is_floating_point()}


def initial_weights(
    arch: str, in_channels: int, num_classes: int, input_size: int, dtype: torch.dtype
) -> dict[str, np.ndarray]:
    """The weights a run starts from (seed 0, as the trainer seeds them)."""
    from irat.models import create_model
    from irat.utils import default_dtype

    torch.manual_seed(0)
    with default_dtype(dtype):  # drawn in the run's float type, as the trainer draws them
        model = create_model(arch, in_channels=in_channels, num_classes=num_classes, input_size=input_size)
    return flat_weights(model.state_dict())


def project(update: dict[str, np.ndarray], k: int = K) -> np.ndarray:
    """P·Δ with P's rows N(0, I)/sqrt(k): per tensor, directions drawn from a generator seeded by the name."""
    out = np.zeros(k)
    for name in sorted(update):
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        vec = update[name]
        for start in range(0, vec.size, 1 << 16):  # chunks keep ResNet-18's projection in memory
            chunk = vec[start : start + (1 << 16)]
            out += rng.standard_normal((k, chunk.size)) @ chunk
    return out / np.sqrt(k)


def fingerprint_of(run: Path) -> list[float]:
    """The projected update of a run's last weights."""
    ck = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    meta = ck["meta"]
    dtype = torch.float64 if ck["config"]["precision"] == "fp64" else torch.float32
    start = initial_weights(meta["arch"], meta["in_channels"], meta["num_classes"], meta["input_size"], dtype)
    final = flat_weights(ck["model"])
    return project({k: final[k] - start[k] for k in final}).tolist()


def distance(a: list[float], b: list[float]) -> float:
    """‖a − b‖ / ‖b‖: how far run a's update lies from the recorded update b, relative to b."""
    va, vb = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(va - vb) / np.linalg.norm(vb))


def methods() -> list[str]:
    from irat.methods import METHODS

    return sorted(METHODS)


def train_args(method: str, variant: str, out: Path, teacher: Path | None, extra: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    args = ["train", "--method", method, *COMMON, "--out", str(out)]
    args += FAST if variant == "fast" else FULL
    if method in TEACHER_OF:
        assert teacher is not None
        args += ["--set", "unlabeled.withhold=100", "--set", f"unlabeled.teacher={teacher}"]
    return args + list(extra)


def fingerprint(method: str, variant: str, work: Path, extra: list[str] = ()) -> list[float]:  # type: ignore[assignment]
    """Train one method in `work` (one thread; `extra` arguments appended) and return its fingerprint."""
    from irat.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("IRAT_FINGERPRINT_THREADS", "1")))  # another count: another float order
    try:
        teacher = None
        if method in TEACHER_OF:
            teacher = work / "teacher"
            if not (teacher / "last.pt").exists():
                assert main(train_args("standard", variant, teacher, None)) == 0
        out = work / method
        assert main(train_args(method, variant, out, teacher, extra)) == 0, f"training {method} failed"
        return fingerprint_of(out)
    finally:
        torch.set_num_threads(threads)


def record_path(variant: str) -> Path:
    return FIXTURES / f"fingerprints_{variant}.json"


def load_record(variant: str) -> dict[str, list[float]]:
    data = json.loads(record_path(variant).read_text())
    assert data["k"] == K, "the record was made with another number of projections: re-record it"
    return data["fingerprints"]


def main_(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--record", choices=["fast", "full"])
    g.add_argument("--check", choices=["fast", "full"])
    p.add_argument("--methods", help="comma list (default: all)")
    p.add_argument("--set", action="append", default=[], help="an extra --set for every run (to try a change)")
    args = p.parse_args(argv)
    variant = args.record or args.check
    names = args.methods.split(",") if args.methods else methods()
    stored = load_record(variant) if record_path(variant).exists() else {}
    extra = [a for s in args.set for a in ("--set", s)]
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for m in names:
            got = fingerprint(m, variant, Path(tmp), extra)
            if args.record:
                stored[m] = got
            d = distance(got, stored[m]) if m in stored else float("inf")
            bad += d > TOLERANCE
            print(f"{m:18s} distance {d:.2e} {'ok' if d <= TOLERANCE else 'DIFFERS'}", flush=True)
    if args.record:
        FIXTURES.mkdir(exist_ok=True)
        record_path(variant).write_text(json.dumps({"k": K, "fingerprints": dict(sorted(stored.items()))}) + "\n")
        return 0
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main_())
