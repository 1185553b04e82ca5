"""Decode + resize on the CPU, gpudecode's decode-time transforms against torchcodec's (issue 16, item 4).

Workload: every frame of a clip, read in chunks of 32 with ``get_frames_in_range``, resized to 224x224 while
decoding (``transforms=[Resize((224, 224))]``). Variants, one process each, A B A B: ``gpudecode``, ``torchcodec``
(the same transform), and ``gd_interp`` (gpudecode at full size, then ``torch.nn.functional.interpolate``, bilinear
antialiased: what a user without decode-time transforms does). Thread settings: ``1`` (pinned to one CPU, one
decode thread) and ``all``. Before timing, the frames of both libraries are compared for a few transform chains
and dtypes (max difference; 0 means identical).

    python benchmarks/transforms.py --rounds 3     # from an environment with torchcodec; writes results/transforms.*
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, save
from sequential import make_clips

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 32
SIZE = (224, 224)
VARIANTS = ("gpudecode", "torchcodec", "gd_interp")


def _decoder(variant: str, path: str, threads: int, transforms: bool) -> object:
    if variant == "torchcodec":
        from torchcodec.decoders import VideoDecoder as TC
        from torchcodec.transforms import Resize as TR

        return TC(path, num_ffmpeg_threads=threads, transforms=[TR(SIZE)] if transforms else None)
    from gpudecode import VideoDecoder
    from gpudecode.transforms import Resize

    return VideoDecoder(
        path, num_threads=None if threads == 0 else threads, transforms=[Resize(SIZE)] if transforms else None
    )


def worker(variant: str, threads: int, paths: dict[str, str]) -> dict[str, float]:
    """Seconds per clip (decode and resize only, opening excluded), one process."""
    if threads == 1:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1 if threads == 1 else len(os.sched_getaffinity(0)))
    out = {}
    for name, path in paths.items():
        dec = _decoder(variant, path, threads, transforms=variant != "gd_interp")
        n = len(dec)
        t0 = time.perf_counter()
        for start in range(0, n, CHUNK):
            data = dec.get_frames_in_range(start, min(n, start + CHUNK)).data
            if variant == "gd_interp":
                x = F.interpolate(data.float(), size=SIZE, mode="bilinear", antialias=True)
                x.round_().clamp_(0, 255).to(torch.uint8)
        out[name] = time.perf_counter() - t0
    return out


def compare(paths: dict[str, str]) -> list[dict[str, object]]:
    """Frames of both libraries for several chains and dtypes: max absolute difference (in uint8 steps)."""
    import torch
    from torchcodec.decoders import VideoDecoder as TC
    from torchcodec.transforms import CenterCrop as TCC
    from torchcodec.transforms import RandomCrop as TRC
    from torchcodec.transforms import Resize as TR

    from gpudecode import VideoDecoder
    from gpudecode.transforms import CenterCrop, RandomCrop, Resize

    chains = {
        "Resize(224,224)": ([TR((224, 224))], [Resize((224, 224))]),
        "CenterCrop(101,203)": ([TCC((101, 203))], [CenterCrop((101, 203))]),
        "Resize(301,401)+RandomCrop(99,201)": (
            [TR((301, 401)), TRC((99, 201))],
            [Resize((301, 401)), RandomCrop((99, 201))],
        ),
    }
    rows = []
    for name, path in paths.items():
        for chain, (theirs, ours) in chains.items():
            for dtype in (torch.uint8, torch.float32):
                torch.manual_seed(0)
                a = TC(path, transforms=theirs, output_dtype=dtype).get_frames_at([0, 7, 30]).data
                torch.manual_seed(0)
                b = VideoDecoder(path, transforms=ours, output_dtype=dtype).get_frames_at([0, 7, 30]).data
                scale = 255.0 if dtype == torch.float32 else 1.0
                d = float((a.double() - b.double()).abs().max() * scale) if a.shape == b.shape else None
                rows.append({"clip": name, "chain": chain, "dtype": str(dtype), "max_diff": d})
    return rows


def _run(variant: str, threads: int, paths: dict[str, Path]) -> dict[str, float] | str:
    cmd = [sys.executable, __file__, "--worker", variant, "--threads", str(threads)]
    cmd += ["--paths", json.dumps({k: str(v) for k, v in paths.items()})]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return f"exit {r.returncode}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ''}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def measure(paths: dict[str, Path], rounds: int) -> dict[str, object]:
    """Interleaved rounds (the first warms caches and is dropped)."""
    samples = {t: {v: {c: [] for c in paths} for v in VARIANTS} for t in (1, 0)}
    failures: dict[str, list[str]] = {}
    for r in range(rounds + 1):
        for t in (1, 0):
            for v in VARIANTS:
                res = _run(v, t, paths)
                if isinstance(res, str):
                    failures.setdefault(f"{v}/{t}", []).append(res)
                elif r:
                    for c, s in res.items():
                        samples[t][v][c].append(s)
    return {"samples": samples, "failures": failures}


def table(data: dict[str, object], diffs: list[dict[str, object]], rounds: int, frames: int) -> str:
    m = machine()
    lines = [
        f"# CPU decode + resize to 224x224 — {m.get('cpu', '?')} ({m.get('cores', '?')} cores), "
        f"{time.strftime('%Y-%m-%d')}",
        "",
        f"Every frame ({frames} per clip) in chunks of {CHUNK}, median of {rounds} interleaved rounds (one process "
        "per variant and round). Ratio = gpudecode's time / the other's (< 1: gpudecode faster). Command: "
        f"`python benchmarks/transforms.py --rounds {rounds} --frames {frames}`.",
        "",
        "| threads | clip | gpudecode s | torchcodec s | gd / torchcodec | gd then interpolate s | gd / that |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for t, label in ((1, "1"), (0, "all")):
        s = data["samples"][t]
        for c in s["gpudecode"]:
            med = {v: statistics.median(s[v][c]) if s[v][c] else None for v in VARIANTS}
            g, tc, gi = med["gpudecode"], med["torchcodec"], med["gd_interp"]
            lines.append(
                f"| {label} | {c} | {g:.2f} | {tc:.2f} | {g / tc:.2f} | {gi:.2f} | {g / gi:.2f} |"
                if g and tc and gi
                else f"| {label} | {c} | {g} | {tc} | - | {gi} | - |"
            )
    if data["failures"]:
        lines += ["", f"Failures: {data['failures']}"]
    lines += ["", "## Frames against torchcodec's", "", "| clip | chain | dtype | max difference (uint8 steps) |"]
    lines += ["|---|---|---|---:|"] + [
        f"| {d['clip']} | {d['chain']} | {d['dtype']} | {d['max_diff']} |" for d in diffs
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--clips", nargs="*", default=["h264_1920x1080", "hevc_1920x1080", "vp9_1280x720"])
    ap.add_argument("--worker")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--paths")
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.threads, json.loads(a.paths))))
        return
    paths = make_clips(a.clips, a.frames)
    diffs = compare({k: str(v) for k, v in paths.items()})
    data = measure(paths, a.rounds)
    payload = {
        "machine": machine(),
        "rounds": a.rounds,
        "frames": a.frames,
        "data": data,
        "frames_vs_torchcodec": diffs,
    }
    save("transforms", payload, table(data, diffs, a.rounds, a.frames))


if __name__ == "__main__":
    main()
