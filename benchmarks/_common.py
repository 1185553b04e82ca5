"""Shared helpers for the benchmarks: machine description, interleaved timing, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "date": datetime.now(timezone.utc).isoformat(),
    }
    try:
        import av
        import torch

        info["torch"] = torch.__version__
        info["av"] = av.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True
            )
            info["driver"] = out.stdout.strip()
    except Exception:
        pass
    return info


def interleaved(cases: dict[str, Callable[[], Any]], rounds: int, warmup: int = 1) -> dict[str, dict[str, float]]:
    """Time each case once per round, cases interleaved within a round; return median/min/max seconds."""
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    for _ in range(rounds):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {
        k: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v), "n": len(v)} for k, v in times.items()
    }


def save(name: str, payload: dict[str, Any], table: str) -> tuple[Path, Path]:
    """Write ``results/<name>.json`` and ``results/<name>.md``, print the table and where they went."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    j = RESULTS / f"{name}.json"
    m = RESULTS / f"{name}.md"
    j.write_text(json.dumps(payload, indent=2) + "\n")
    m.write_text(table + "\n")
    print(table)
    print(f"\nwrote {j} and {m}")
    return j, m


def tree_at(rev: str, *paths: str, prefix: str = "gpudecode-before-") -> Path:
    """A scratch folder holding ``paths`` of the repository (everything when none) as of git revision ``rev``."""
    import tempfile

    root = Path(__file__).resolve().parent.parent
    d = Path(tempfile.mkdtemp(prefix=prefix))
    archive = subprocess.run(["git", "-C", str(root), "archive", rev, *paths], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(d)], input=archive, check=True)
    return d
