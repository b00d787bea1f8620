"""The times the README quotes, measured on this machine: `irat demo` and the README's test command.

python benchmarks/readme_times.py            # both (the suite takes minutes)
python benchmarks/readme_times.py --demo     # the demo only
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(argv: list[str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0, proc.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demo", action="store_true", help="time the demo only")
    args = p.parse_args()
    print(f"machine: {os.cpu_count()} cores, {' '.join(os.uname()[3:5])}")
    with tempfile.TemporaryDirectory() as tmp:
        s, out = timed([sys.executable, "-m", "irat", "demo", "--out", str(Path(tmp) / "demo")], ROOT)
    print(out)
    print(f"irat demo: {s:.0f} s")
    if not args.demo:
        s, out = timed([sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider"], ROOT)
        print(out.strip().splitlines()[-1])
        print(f"python -m pytest -q -n 2: {s / 60:.1f} min")


if __name__ == "__main__":
    main()
