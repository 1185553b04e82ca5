"""Decode + resize + normalize on the GPU: the fused kernel against decode-then-``interpolate`` (issue 16, item 4).

Variants over the same 1080p clips, interleaved per round: ``fused`` (``transforms=[Resize((224, 224)),
Normalize(...)]``, float32: the NVDEC surface is converted, resized and normalized by one kernel), ``interpolate``
(full-size uint8 frames, then ``torch.nn.functional.interpolate(antialias=True)`` and normalization in torch) and
``full`` (full-size uint8 frames only, for reference). Reports frames/s and the peak GPU memory per frame of a
32-frame batch (``torch.cuda.max_memory_allocated`` above the baseline, divided by 32).

    python benchmarks/gpu_transforms.py --rounds 3     # on a GPU; writes benchmarks/results/gpu_transforms.{json,md}
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, save
from sequential import make_clips

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CHUNK = 32


def _decoder(path: str, variant: str) -> object:
    from gpudecode import VideoDecoder
    from gpudecode.transforms import Normalize, Resize

    if variant == "fused":
        tr = [Resize((224, 224)), Normalize(MEAN, STD)]
        return VideoDecoder(path, device="cuda", transforms=tr, output_dtype=torch.float32)
    return VideoDecoder(path, device="cuda")


def _post(data: torch.Tensor, variant: str) -> torch.Tensor:
    if variant != "interpolate":
        return data
    x = F.interpolate(data.float().div_(255), size=(224, 224), mode="bilinear", antialias=True)
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(torch.tensor(STD, device=x.device).view(1, 3, 1, 1))


def run_once(path: str, variant: str) -> tuple[float, int, float]:
    """(seconds, frames, peak bytes per frame of one chunk) for every frame of ``path``."""
    dec = _decoder(path, variant)
    n = len(dec)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for start in range(0, n, CHUNK):
        out = _post(dec.get_frames_in_range(start, min(n, start + CHUNK)).data, variant)
        del out
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() - base) / CHUNK
    dec.close()
    return dt, n, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--clips", nargs="*", default=["h264_1920x1080", "hevc_1920x1080"])
    a = ap.parse_args()
    paths = make_clips(a.clips, a.frames)
    variants = ("fused", "interpolate", "full")
    res: dict[str, dict[str, list[tuple[float, int, float]]]] = {c: {v: [] for v in variants} for c in paths}
    for r in range(a.rounds + 1):
        for c, p in paths.items():
            for v in variants:
                s = run_once(str(p), v)
                if r:
                    res[c][v].append(s)
    m = machine()
    lines = [
        f"# GPU decode + resize to 224x224 + normalize — {torch.cuda.get_device_name()}, {time.strftime('%Y-%m-%d')}",
        "",
        f"Median of {a.rounds} rounds; every frame in chunks of {CHUNK}. Command: `python benchmarks/gpu_transforms.py "
        f"--rounds {a.rounds}`.",
        "",
        "| clip | variant | frames/s | peak GPU MiB per frame | fused speed-up |",
        "|---|---|---:|---:|---:|",
    ]
    for c in paths:
        fps = {v: statistics.median(s[1] / s[0] for s in res[c][v]) for v in variants}
        for v in variants:
            mib = statistics.median(s[2] for s in res[c][v]) / 2**20
            lines.append(f"| {c} | {v} | {fps[v]:.0f} | {mib:.2f} | {fps['fused'] / fps[v]:.2f} |")
    save("gpu_transforms", {"machine": m, "rounds": a.rounds, "results": res}, "\n".join(lines))


if __name__ == "__main__":
    main()
