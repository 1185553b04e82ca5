"""Sequential CPU decode against its floor, a bare PyAV loop, and against torchcodec (issue 15, item 1).

The floor: ``for frame in container.decode(stream): frame.to_ndarray(format="rgb24")`` — FFmpeg's decode and its
RGB conversion, one frame alive at a time, nothing kept. gpudecode reads the stream as a training loader does,
``get_frames_in_range`` in chunks of 32 frames, each chunk a fresh tensor the caller owns; torchcodec the same.

Each round starts one process per variant (A B A B ...); a process decodes every clip and reports, per clip, the
in-process time of the decode only (opening excluded) and the peak resident memory during that clip above the
resident memory before it (VmHWM, reset before each clip through ``/proc/self/clear_refs``, minus VmRSS). Two
thread settings: ``1`` (the process pinned to one CPU, one decode thread) and ``all`` (every CPU this process may
use, each library's default threading).

    python benchmarks/sequential.py --rounds 3            # writes benchmarks/results/sequential.{json,md}
    python benchmarks/sequential.py --frames 120 --clips h264_1280x720 av1_1920x1080
    python benchmarks/sequential.py --seek-mode approximate --name sequential_approximate   # both libraries' mode
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, save

ROOT = Path(__file__).resolve().parent.parent
MEDIA = Path(__file__).resolve().parent / "media"
# name: (encoder, container, width, height, encoder options)
CLIPS = {
    "h264_640x360": ("libx264", "mp4", 640, 360, {"preset": "veryfast"}),
    "h264_1280x720": ("libx264", "mp4", 1280, 720, {"preset": "veryfast"}),
    "h264_1920x1080": ("libx264", "mp4", 1920, 1080, {"preset": "veryfast"}),
    "hevc_1280x720": ("libx265", "mp4", 1280, 720, {"preset": "ultrafast", "x265-params": "log-level=none"}),
    "hevc_1920x1080": ("libx265", "mp4", 1920, 1080, {"preset": "ultrafast", "x265-params": "log-level=none"}),
    "vp9_1280x720": ("libvpx-vp9", "webm", 1280, 720, {"deadline": "realtime", "cpu-used": "8"}),
    "vp9_1920x1080": ("libvpx-vp9", "webm", 1920, 1080, {"deadline": "realtime", "cpu-used": "8"}),
    "av1_1280x720": ("libsvtav1", "mkv", 1280, 720, {"preset": "10"}),
    "av1_1920x1080": ("libsvtav1", "mkv", 1920, 1080, {"preset": "10"}),
}
CHUNK = 32
SEEK_MODE_ENV = "GPUDECODE_BENCH_SEEK_MODE"
SEEK_MODE = os.environ.get(SEEK_MODE_ENV, "exact")  # gpudecode's and torchcodec's (the loop has none)
VARIANTS = ("pyav", "gpudecode", "gd_nopool", "torchcodec")  # gd_nopool: GPUDECODE_FRAME_POOL_MB=0


def make_clips(names: list[str], frames: int) -> dict[str, Path]:
    """Encode the clips that are not in ``benchmarks/media`` yet."""
    from make_media import encode

    paths = {}
    for name in names:
        codec, ext, w, h, opts = CLIPS[name]
        p = MEDIA / f"seq_{name}_{frames}.{ext}"
        if not p.exists():
            encode(p, codec=codec, w=w, h=h, n=frames, options=dict(opts), bit_rate=w * h * 4)
        paths[name] = p
    return paths


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _decode_pyav(path: str, threads: int) -> tuple[int, float]:
    import av

    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_count = threads
        s.thread_type = "AUTO" if threads != 1 else "SLICE"
        t0 = time.perf_counter()
        n = 0
        for frame in c.decode(s):
            frame.to_ndarray(format="rgb24")
            n += 1
        return n, time.perf_counter() - t0


def _decode_chunks(dec: object, n: int) -> float:
    t0 = time.perf_counter()
    for start in range(0, n, CHUNK):
        dec.get_frames_in_range(start, min(n, start + CHUNK))
    return time.perf_counter() - t0


def worker(variant: str, threads: int, paths: dict[str, str]) -> dict[str, list[float]]:
    """Per clip: [seconds, peak MiB over the RSS before it, frames, CPU seconds, minor faults], one process."""
    if threads == 1:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import torch

    torch.set_num_threads(1 if threads == 1 else len(os.sched_getaffinity(0)))
    out = {}
    for name, path in paths.items():
        if variant.startswith("g"):
            from gpudecode._memory import POOL

            POOL.clear()  # each clip's peak is its own: no buffer kept from the clip before
        gc.collect()
        _reset_peak()
        base = _status_mib("VmRSS")
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        if variant == "pyav":
            n, dt = _decode_pyav(path, threads)
        elif variant == "torchcodec":
            from torchcodec.decoders import VideoDecoder as TC

            dec = TC(path, num_ffmpeg_threads=threads, seek_mode=SEEK_MODE)
            n = dec.metadata.num_frames
            dt = _decode_chunks(dec, n)
        else:
            from gpudecode import VideoDecoder

            dec = VideoDecoder(
                path, device="cpu", num_ffmpeg_threads=None if threads == 0 else threads, seek_mode=SEEK_MODE
            )
            n = len(dec)
            dt = _decode_chunks(dec, n)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
        out[name] = [dt, _status_mib("VmHWM") - base, n, cpu, r1.ru_minflt - r0.ru_minflt]
        dec = None
    return out


def _run(variant: str, threads: int, paths: dict[str, Path]) -> dict[str, list[float]] | str:
    cmd = [sys.executable, __file__, "--worker", variant, "--threads", str(threads)]
    cmd += ["--paths", json.dumps({k: str(v) for k, v in paths.items()})]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    if variant == "gd_nopool":
        env["GPUDECODE_FRAME_POOL_MB"] = "0"
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return f"exit {r.returncode}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ''}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def _variants() -> list[str]:
    try:
        import torchcodec  # noqa: F401

        return list(VARIANTS)
    except Exception:
        return [v for v in VARIANTS if v != "torchcodec"]


def measure(paths: dict[str, Path], rounds: int, thread_modes: list[int]) -> dict[str, object]:
    """Interleaved rounds (the first one warms caches and is dropped): samples per threads, variant and clip."""
    variants = _variants()
    samples = {t: {v: {c: [] for c in paths} for v in variants} for t in thread_modes}
    failures: dict[str, list[str]] = {}
    for r in range(rounds + 1):
        for t in thread_modes:
            for v in variants:
                res = _run(v, t, paths)
                if isinstance(res, str):
                    failures.setdefault(f"{v}/{t}", []).append(res)
                    continue
                if r:
                    for c, s in res.items():
                        samples[t][v][c].append(s)
    return {"samples": samples, "failures": failures}


def _paired(by_variant: dict, clip: str) -> str:
    """gpudecode's time over the loop's round by round (the two ran back to back): median (min-max)."""
    gd, py = by_variant.get("gpudecode", {}).get(clip) or [], by_variant.get("pyav", {}).get(clip) or []
    if not gd or len(gd) != len(py):  # a failed process: the rounds no longer pair up
        return "—"
    r = [g[0] / p[0] for g, p in zip(gd, py, strict=True)]
    return f"{statistics.median(r):.2f} ({min(r):.2f}-{max(r):.2f})"


def table(paths: dict[str, Path], data: dict[str, object], rounds: int, seek_mode: str) -> str:
    """The markdown summary: median time per clip and variant, ratios, peak memory."""
    m = machine()
    lines = [
        f"# Sequential CPU decode vs a bare PyAV loop — {m['cpu']} ({m['cores']} cores), {m['date'][:10]}",
        "",
        f"`python benchmarks/sequential.py --rounds {rounds} --seek-mode {seek_mode}`. In-process decode time (open "
        "excluded), median of "
        f"{rounds} interleaved rounds, one process per variant per round; `gd` = gpudecode (chunks of {CHUNK}), "
        "`gd no pool` = the same with `GPUDECODE_FRAME_POOL_MB=0` (fresh memory for every chunk, as before the "
        "pool), `pyav` = `to_ndarray('rgb24')` per frame, `tc` = torchcodec (chunks of 32). Peak = VmHWM during "
        "the clip minus VmRSS before it (MiB). `gd/pyav` is the ratio of the medians; `per round` pairs the two "
        "processes of each round (they ran back to back, so drift in the machine's speed cancels).",
        "",
        "| threads | clip | frames | pyav ms | gd ms | gd no pool ms | tc ms | gd/pyav | gd/pyav per round | "
        "no pool/pyav | gd/tc | peak MiB pyav / gd / no pool / tc |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for t, by_variant in data["samples"].items():
        for c in paths:

            def med(v: str, k: int, c: str = c, by_variant: dict = by_variant) -> float | None:
                s = by_variant.get(v, {}).get(c) or []
                return statistics.median(x[k] for x in s) if s else None

            py, gd, nopool, tc = (med(v, 0) for v in VARIANTS)
            n = next((s[0][2] for s in (by_variant.get(v, {}).get(c) for v in by_variant) if s), 0)
            ms = lambda x: f"{x * 1e3:.0f}" if x else "—"  # noqa: E731
            ratio = lambda a, b: f"{a / b:.2f}" if a and b else "—"  # noqa: E731
            peaks = " / ".join(f"{p:.0f}" if p else "—" for p in (med(v, 1) for v in VARIANTS))
            row = f"| {t or 'all'} | {c} | {n} | {ms(py)} | {ms(gd)} | {ms(nopool)} | {ms(tc)} | {ratio(gd, py)} |"
            row += f" {_paired(by_variant, c)} | {ratio(nopool, py)} | {ratio(gd, tc)} |"
            lines.append(f"{row} {peaks} |")
    for k, f in data["failures"].items():
        lines.append(f"\n`{k}` failed in {len(f)} processes: {f[0]}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--clips", nargs="*", default=list(CLIPS))
    ap.add_argument("--threads", nargs="*", type=int, default=[1, 0], help="1: one core; 0: all")
    ap.add_argument("--name", default="sequential", help="results file name")
    ap.add_argument("--seek-mode", default="exact", choices=["exact", "approximate"])
    ap.add_argument("--worker")
    ap.add_argument("--paths")
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.threads[0], json.loads(a.paths))))
        return
    os.environ[SEEK_MODE_ENV] = a.seek_mode  # read by the worker processes
    paths = make_clips(a.clips, a.frames)
    data = measure(paths, a.rounds, a.threads)
    payload = {"machine": machine(), "frames": a.frames, "chunk": CHUNK, "seek_mode": a.seek_mode, **data}
    save(a.name, payload, table(paths, data, a.rounds, a.seek_mode))


if __name__ == "__main__":
    main()
