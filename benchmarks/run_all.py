"""One entry point for the benchmarks: the seed experiment, ResilientLoader's cost, the GPU benchmark where a GPU
exists, then charts.

    python benchmarks/run_all.py [--rounds 15]

Run it from an environment with torchcodec (and, on a GPU machine, PyNvVideoCodec); results and charts land in
benchmarks/results/. Benchmarks are run by hand, never in CI.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    subprocess.run([sys.executable, str(HERE / "seed_experiment.py"), "--rounds", str(args.rounds)], check=True)
    subprocess.run([sys.executable, str(HERE / "loader_overhead.py")], check=True)
    import torch

    if torch.cuda.is_available():
        subprocess.run([sys.executable, str(HERE / "gpu_decode.py")], check=True)
    else:
        print("no CUDA GPU: skipping benchmarks/gpu_decode.py")
    subprocess.run([sys.executable, str(HERE / "charts.py")], check=True)


if __name__ == "__main__":
    main()
