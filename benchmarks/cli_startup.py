"""How fast the command line answers before any work: `irat --help`, an argument error, `irat eval --help`
(which lists the attacks and so imports PyTorch), against `python -c "import torch"` in the same run.

    python benchmarks/cli_startup.py            # medians of 5 runs each, and the ratios to importing torch
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

CASES = {
    "irat --help": [sys.executable, "-m", "irat", "--help"],
    "irat train --bogus (argument error)": [sys.executable, "-m", "irat", "train", "--bogus"],
    "irat eval --help": [sys.executable, "-m", "irat", "eval", "--help"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
}


def median_seconds(argv: list[str], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    res = {name: median_seconds(argv) for name, argv in CASES.items()}
    ref = res["python -c 'import torch'"]
    for name, t in res.items():
        print(f"{name:40s} {t:6.3f} s  ({t / ref:.2f}× importing torch)")


if __name__ == "__main__":
    main()
