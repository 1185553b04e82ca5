"""What the memory-safe swscale layout costs: sequential CPU decode before vs after, and vs torchcodec (issue 10).

The fix converts straight into the output tensor where its rows are FFmpeg's rows (width a multiple of 64: 640,
1280, 1920) and through an aligned scratch frame plus one copy everywhere else (854, 1366, ...). This measures
both kinds of width, 8 and 10-bit, side by side in one run: each round spawns one process per variant (A B A B ...),
and each process times the decode of every clip in-process (``get_frames_in_range`` in chunks of 32 frames, as a
training loader reads; creation excluded). Variants:

* ``after``: this checkout;
* ``before``: the package as of ``--before REV`` (default: the commit before the fix), from ``git archive``;
* ``torchcodec``: torchcodec's CPU decoder with all FFmpeg threads, where it is importable.

    python benchmarks/frame_layout.py --rounds 5     # writes benchmarks/results/frame_layout.{json,md}
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
from _common import machine, save, tree_at

ROOT = Path(__file__).resolve().parent.parent
MEDIA = Path(__file__).resolve().parent / "media"
CLIPS = {  # name: (codec, width, height, pix_fmt, frames)
    "h264_640x360": ("libx264", 640, 360, "yuv420p", 240),
    "h264_854x480": ("libx264", 854, 480, "yuv420p", 240),
    "h264_1280x720": ("libx264", 1280, 720, "yuv420p", 120),
    "h264_1366x768": ("libx264", 1366, 768, "yuv420p", 120),
    "h264_1920x1080": ("libx264", 1920, 1080, "yuv420p", 96),
    "hevc10_1280x720": ("libx265", 1280, 720, "yuv420p10le", 96),
}
CHUNK = 32


def make_clips() -> dict[str, Path]:
    from make_media import encode

    paths = {}
    for name, (codec, w, h, pix_fmt, n) in CLIPS.items():
        p = MEDIA / f"layout_{name}.mp4"
        if not p.exists():
            opts = {"preset": "veryfast"} if codec == "libx264" else {"x265-params": "log-level=none", "preset": "fast"}
            encode(p, codec=codec, w=w, h=h, n=n, pix_fmt=pix_fmt, options=opts)
        paths[name] = p
    return paths


def worker(variant: str, paths: dict[str, str]) -> dict[str, float]:
    """Seconds to decode each clip sequentially (one process, one variant)."""
    out = {}
    for name, path in paths.items():
        if variant == "torchcodec":
            from torchcodec.decoders import VideoDecoder as TC

            dec = TC(path, num_ffmpeg_threads=0)
            n = dec.metadata.num_frames
        else:
            from gpudecode import VideoDecoder

            dec = VideoDecoder(path)
            n = len(dec)
        t0 = time.perf_counter()
        for start in range(0, n, CHUNK):
            dec.get_frames_in_range(start, min(n, start + CHUNK))
        out[name] = time.perf_counter() - t0
    return out


def _run(variant: str, code_dir: Path | None, paths: dict[str, Path]) -> dict[str, float] | str:
    env_path = [str(code_dir)] if code_dir else []
    cmd = [sys.executable, __file__, "--worker", variant, "--paths", json.dumps({k: str(v) for k, v in paths.items()})]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*env_path, os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return f"exit {r.returncode}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ''}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--before", default="ea7f0ae", help="git revision of the 'before' variant")
    ap.add_argument("--worker")
    ap.add_argument("--paths")
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, json.loads(a.paths))))
        return
    paths = make_clips()
    variants: dict[str, Path | None] = {"after": ROOT, "before": tree_at(a.before, "gpudecode", "kernels")}
    try:
        import torchcodec  # noqa: F401

        variants["torchcodec"] = None
    except Exception:
        pass
    times: dict[str, dict[str, list[float]]] = {v: {c: [] for c in paths} for v in variants}
    failures: dict[str, list[str]] = {v: [] for v in variants}
    for _ in range(a.rounds + 1):  # the first round warms caches and is not counted
        for v, code in variants.items():
            res = _run(v, code, paths)
            if isinstance(res, str):
                failures[v].append(res)
                continue
            for c, t in res.items():
                times[v][c].append(t)
    for v in variants:
        for c in paths:
            times[v][c] = times[v][c][1:]
    med = {v: {c: statistics.median(ts) if ts else None for c, ts in cs.items()} for v, cs in times.items()}
    lines = [
        f"# Frame layout — {machine()['cpu']} ({machine()['cores']} cores), {machine()['date'][:10]}",
        "",
        f"Sequential CPU decode, chunks of {CHUNK} frames, in-process time of the decode only; median of "
        f"{a.rounds} interleaved rounds (one process per variant per round). `before` = {a.before}.",
        "",
        "| clip | frames | before ms | after ms | after/before | torchcodec ms | after/torchcodec |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c, spec in CLIPS.items():
        b, af, tc = med["before"][c], med["after"][c], med.get("torchcodec", {}).get(c)
        fmt = lambda x: f"{x * 1e3:.0f}" if x else "—"  # noqa: E731
        lines.append(
            f"| {c} | {spec[4]} | {fmt(b)} | {fmt(af)} | {af / b:.3f} |"
            if b and af
            else f"| {c} | {spec[4]} | {fmt(b)} | {fmt(af)} | — |"
        )
        lines[-1] += f" {fmt(tc)} | {af / tc:.3f} |" if tc and af else " — | — |"
    for v, f in failures.items():
        if f:
            lines.append(f"\n`{v}` failed in {len(f)} of {a.rounds + 1} processes: {f[0]}")
    save("frame_layout", {"machine": machine(), "times_s": times, "failures": failures}, "\n".join(lines))


if __name__ == "__main__":
    main()
