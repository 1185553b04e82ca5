"""The seed tutorial's experiment: gpudecode vs torchcodec (CPU) vs plain PyAV, side by side in one run.

Clips (made by ``benchmarks/make_media.py seed``): 640x360 25 fps ~500 kb/s H.264, 13.8 s, and the same clip looped
100x (23 min, 34,500 frames). Measured, each as the median of interleaved rounds:

* decoder creation, exact and approximate, short and long clip (and exact served from gpudecode's index cache);
* ``clips_at_random_indices(num_clips=5, num_frames_per_clip=2)`` on the long clip, decoder creation included;
* ``clips_at_regular_indices(num_clips=8, num_frames_per_clip=16)`` on the long clip, creation included;
* sequential RGB decode of the short clip.

torchcodec's wheel links CUDA torch, so run this from a separate environment (never CI):

    python -m venv .bench-venv && .bench-venv/bin/pip install torch torchcodec && .bench-venv/bin/pip install -e .
    .bench-venv/bin/python benchmarks/seed_experiment.py            # writes benchmarks/results/seed_experiment.*

Without torchcodec installed the gpudecode and PyAV columns are still measured.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, machine, save

import gpudecode
from gpudecode import samplers

MEDIA = Path(__file__).resolve().parent / "media"


def ensure_media() -> tuple[Path, Path]:
    short, long = MEDIA / "seed_short.mp4", MEDIA / "seed_long.mp4"
    if not (short.exists() and long.exists()):
        subprocess.run([sys.executable, str(Path(__file__).parent / "make_media.py"), "seed"], check=True)
    return short, long


def pyav_sequential(path: Path) -> int:
    c = av.open(str(path))
    s = c.streams.video[0]
    s.codec_context.thread_type = "AUTO"
    n = 0
    for f in c.decode(s):
        f.to_ndarray(format="rgb24")
        n += 1
    c.close()
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--name", default="seed_experiment")
    args = ap.parse_args()
    short, long = ensure_media()
    try:
        import torchcodec
        from torchcodec.decoders import VideoDecoder as TCDecoder
        from torchcodec.samplers import clips_at_random_indices as tc_random
        from torchcodec.samplers import clips_at_regular_indices as tc_regular

        tc_version = torchcodec.__version__
    except Exception as exc:
        print(f"torchcodec unavailable ({exc}); measuring gpudecode and PyAV only")
        TCDecoder = None
        tc_version = None

    cache_dir = Path(tempfile.mkdtemp(prefix="gpudecode-index-"))
    os.environ.pop("GPUDECODE_INDEX_CACHE", None)
    results: dict[str, Any] = {}
    r = args.rounds

    # -- decoder creation ---------------------------------------------------------------------------------------
    for clip_name, clip in (("short", short), ("long", long)):
        for mode in ("exact", "approximate"):
            cases = {"gpudecode": lambda c=clip, m=mode: gpudecode.VideoDecoder(c, seek_mode=m)}
            if TCDecoder is not None:
                cases["torchcodec"] = lambda c=clip, m=mode: TCDecoder(str(c), seek_mode=m)
            if mode == "exact":

                def cached(c: Path = clip) -> Any:
                    os.environ["GPUDECODE_INDEX_CACHE"] = str(cache_dir)
                    try:
                        return gpudecode.VideoDecoder(c, seek_mode="exact")
                    finally:
                        os.environ.pop("GPUDECODE_INDEX_CACHE", None)

                cached()  # populate
                cases["gpudecode (index cache)"] = cached
            results[f"create/{clip_name}/{mode}"] = interleaved(cases, r if clip_name == "long" else 3 * r)
    results["pyav/open_long"] = interleaved({"pyav": lambda: av.open(str(long)).close()}, r)

    # -- clip sampling on the long clip, creation included ------------------------------------------------------
    def gd_sample(mode: str, fn: Any, **kw: Any) -> Any:
        torch.manual_seed(0)
        return fn(gpudecode.VideoDecoder(long, seek_mode=mode), **kw)

    for label, gfn, tfn, kw, rounds in (
        ("random_5x2", samplers.clips_at_random_indices, "random", {"num_clips": 5, "num_frames_per_clip": 2}, r),
        (
            "regular_8x16",
            samplers.clips_at_regular_indices,
            "regular",
            {"num_clips": 8, "num_frames_per_clip": 16},
            max(3, r // 3),
        ),
    ):
        for mode in ("exact", "approximate"):
            cases = {"gpudecode": lambda m=mode, f=gfn, k=kw: gd_sample(m, f, **k)}
            if TCDecoder is not None:
                tc_fn = tc_random if tfn == "random" else tc_regular

                def tc_case(m: str = mode, f: Any = tc_fn, k: dict = kw) -> Any:
                    torch.manual_seed(0)
                    return f(TCDecoder(str(long), seek_mode=m), **k)

                cases["torchcodec"] = tc_case
            results[f"sample/{label}/{mode}"] = interleaved(cases, rounds)

    # -- sequential RGB decode of the short clip ------------------------------------------------------------------
    n_short = len(gpudecode.VideoDecoder(short))
    cases = {"gpudecode": lambda: gpudecode.VideoDecoder(short)[:], "pyav (to_ndarray)": lambda: pyav_sequential(short)}
    if TCDecoder is not None:
        cases["torchcodec"] = lambda: TCDecoder(str(short))[:]
        cases["torchcodec (all threads)"] = lambda: TCDecoder(str(short), num_ffmpeg_threads=0)[:]
    results["sequential/short"] = interleaved(cases, max(3, r // 3))
    for v in results["sequential/short"].values():
        v["frames_per_s"] = n_short / v["median_s"]

    # -- frames are the same ----------------------------------------------------------------------------------------
    agree = None
    if TCDecoder is not None:
        idx = [0, 100, 7, 344, 250]
        a = gpudecode.VideoDecoder(short).get_frames_at(idx).data
        b = TCDecoder(str(short)).get_frames_at(idx).data
        agree = {
            "max_abs_diff_vs_torchcodec": int((a.int() - b.int()).abs().max()),
            "equal_fraction": float((a == b).double().mean()),
        }

    shutil.rmtree(cache_dir, ignore_errors=True)
    payload = {
        "machine": machine(),
        "gpudecode": gpudecode.__version__,
        "torchcodec": tc_version,
        "rounds": r,
        "results": results,
        "frames_agree": agree,
    }
    table = render(payload)
    save(args.name, payload, table)


TARGETS = {
    "create/long/exact": ("gpudecode", 1.0),
    "create/long/approximate": ("gpudecode", 1.0),
    "sample/random_5x2/exact": ("gpudecode", 0.7),
    "sample/random_5x2/approximate": ("gpudecode", 0.7),
    "sequential/short": ("gpudecode", 1.0),
}


def render(payload: dict[str, Any]) -> str:
    """Markdown table: medians in ms, ratio to torchcodec (lower is better), target where the issues set one."""
    mach = payload["machine"]
    lines = [
        f"# Seed experiment — {mach.get('cpu')} ({mach.get('cores')} cores), {mach['date'][:10]}",
        "",
        f"gpudecode {payload['gpudecode']}, torchcodec {payload['torchcodec']} (CPU), PyAV {mach.get('av')}, "
        f"torch {mach.get('torch')}; median of {payload['rounds']} interleaved rounds (fewer for long runs).",
        "",
        "| measurement | library | median ms | ratio to torchcodec | target |",
        "|---|---|---:|---:|---|",
    ]
    for key, libs in payload["results"].items():
        tc = libs.get("torchcodec", {}).get("median_s")
        for lib, v in libs.items():
            ratio = f"{v['median_s'] / tc:.2f}" if tc and lib != "torchcodec" else ""
            target = ""
            if key in TARGETS and TARGETS[key][0] == lib and tc:
                ok = v["median_s"] / tc <= TARGETS[key][1]
                target = f"<= {TARGETS[key][1]} {'met' if ok else 'MISSED'}"
            if key == "create/long/exact" and lib == "gpudecode (index cache)" and tc:
                ok = v["median_s"] / tc <= 0.1
                target = f"<= 0.1 {'met' if ok else 'MISSED'}"
            extra = f" ({v['frames_per_s']:.0f} frames/s)" if "frames_per_s" in v else ""
            lines.append(f"| {key} | {lib} | {v['median_s'] * 1e3:.2f}{extra} | {ratio} | {target} |")
    if payload.get("frames_agree"):
        fa = payload["frames_agree"]
        lines += [
            "",
            f"Frames vs torchcodec (short clip, 5 frames): max abs diff {fa['max_abs_diff_vs_torchcodec']}, "
            f"{fa['equal_fraction'] * 100:.2f}% of values equal.",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
