"""Random access across containers and source kinds: gpudecode vs torchcodec (CPU), side by side in one run.

The seed experiment's long clip (640x360 H.264, 23 min, 34,500 frames; ``benchmarks/make_media.py seed``) remuxed
without re-encoding to Matroska and MPEG-TS, and the MP4 also read through an open file object. Per cell: decoder
creation plus ``get_frames_at`` of 10 frames spread over the clip (fixed, sorted), median of interleaved rounds,
one decode thread each. MPEG-TS has no container index (FFmpeg seeks in it by decode timestamp); the file-object
cell reads through Python ``read``/``seek`` calls.

torchcodec's wheel links CUDA torch, so run this from a separate environment (never CI):

    PYTHONPATH=. .bench-venv/bin/python benchmarks/containers.py          # writes benchmarks/results/containers.*
    PYTHONPATH=<a checkout of another commit> ... --name containers_before   # the same cells on older code
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import media
from _common import interleaved, machine, save
from seed_experiment import ensure_media

import gpudecode

INDICES = [int(i) for i in range(1_000, 34_000, 3_300)]  # 10 frames, none a keyframe (keyframes every 250)


def remux(src: Path, fmt: str, ext: str) -> Path:
    """``src`` copied into container ``fmt`` next to it (made once, by the tests' ``media.remux``)."""
    dst = src.with_suffix(f".{ext}")
    return dst if dst.exists() else media.remux(src, dst, fmt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--name", default="containers")
    args = ap.parse_args()
    _, mp4 = ensure_media()
    sources = {"mp4": mp4, "mkv": remux(mp4, "matroska", "mkv"), "mpegts": remux(mp4, "mpegts", "ts")}
    try:
        import torchcodec
        from torchcodec.decoders import VideoDecoder as TCDecoder

        tc_version = torchcodec.__version__
    except Exception as exc:
        print(f"torchcodec unavailable ({exc}); measuring gpudecode only")
        TCDecoder, tc_version = None, None

    def gd(src: Any, mode: str) -> Any:
        return gpudecode.VideoDecoder(src, seek_mode=mode, num_threads=1).get_frames_at(INDICES)

    def tc(src: Any, mode: str) -> Any:
        return TCDecoder(src, seek_mode=mode, num_ffmpeg_threads=1).get_frames_at(INDICES)

    results: dict[str, Any] = {}
    cells = [(name, mode, False) for name in sources for mode in ("exact", "approximate")]
    cells += [("mp4", mode, True) for mode in ("exact", "approximate")]
    for name, mode, as_file in cells:
        path = sources[name]
        label = f"random_10/{name}{' (file object)' if as_file else ''}/{mode}"

        def run(fn: Any, p: Path = path, m: str = mode, f: bool = as_file) -> Any:
            if not f:
                return fn(str(p), m)
            with open(p, "rb") as fh:
                return fn(fh, m)

        cases = {"gpudecode": lambda r=run: r(gd)}
        if TCDecoder is not None:
            cases["torchcodec"] = lambda r=run: r(tc)
        failed: dict[str, Any] = {}
        for lib, fn in list(cases.items()):
            try:
                fn()
            except Exception as exc:  # older code may fail a cell (see the file-object fix): say so, time the rest
                failed[lib] = {"error": f"{type(exc).__name__}: {str(exc)[:120]}"}
                del cases[lib]
        results[label] = {**interleaved(cases, args.rounds, warmup=0), **failed}
        print(label, results[label], flush=True)

    lines = [
        f"# Random access across containers — {machine()['cpu']}, {machine()['date']}",
        "",
        f"gpudecode {gpudecode.__version__} (from {Path(gpudecode.__file__).parent}), torchcodec {tc_version}; "
        f"creation + get_frames_at of 10 spread frames of the 23-min 640x360 H.264 clip, one thread, median of "
        f"{args.rounds} interleaved rounds.",
        "",
        "| cell | library | median ms | ratio to torchcodec |",
        "|---|---|---:|---:|",
    ]
    for key, res in results.items():
        t = res.get("torchcodec", {}).get("median_s")
        for lib, v in res.items():
            if "error" in v:
                lines.append(f"| {key} | {lib} | failed: {v['error']} | |")
                continue
            ratio = f"{v['median_s'] / t:.2f}" if t and lib != "torchcodec" else ""
            lines.append(f"| {key} | {lib} | {v['median_s'] * 1e3:.1f} | {ratio} |")
    save(args.name, {"machine": machine(), "indices": INDICES, "results": results}, "\n".join(lines))


if __name__ == "__main__":
    main()
