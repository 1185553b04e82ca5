"""Command line: ``gpudecode`` / ``python -m gpudecode``.

gpudecode demo [--device auto|cpu|cuda]      decode the bundled sample, print metadata and frames/s
gpudecode info FILE [--json] [--approximate]  metadata and index facts
gpudecode frames FILE (--at I,J | --times T,U) -o DIR   write frames as PNG or .pt
gpudecode bench FILE [--device cpu,cuda]      frames/s per device, side by side
gpudecode --version

Exit codes: 0 success, 1 gpudecode error (message on stderr), 2 bad command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Any

__all__ = ["main"]


def _pick_device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _open(path: str, device: str, seek_mode: str) -> Any:
    from gpudecode import VideoDecoder

    return VideoDecoder(path, device=_pick_device(device), seek_mode=seek_mode)


def _info_dict(dec: Any) -> dict[str, Any]:
    meta = dataclasses.asdict(dec.metadata)
    par = meta["pixel_aspect_ratio"]
    meta["pixel_aspect_ratio"] = f"{par.numerator}:{par.denominator}" if par is not None else None  # JSON-safe
    d: dict[str, Any] = {
        "metadata": meta,
        "device": str(dec.device),
        "decoding_device": dec.decoding_device,
        "cpu_fallback": dec.cpu_fallback.reason,
        "seek_mode": dec.seek_mode,
    }
    idx = dec.index
    if idx is not None:
        tb = idx.time_base
        d["index"] = {
            "method": idx.method,
            "num_frames": idx.num_frames,
            "num_keyframes": idx.num_keyframes,
            "time_base": f"{tb.numerator}/{tb.denominator}",
            "keyframe_pts_seconds": [float(p * tb) for p in idx.key_pts[:1000]],
        }
    return d


def cmd_demo(args: argparse.Namespace) -> int:
    """Decode the bundled sample and report."""
    import torch

    from gpudecode import VideoDecoder, sample_video_path, samplers

    path = str(sample_video_path())
    device = _pick_device(args.device)
    t0 = time.perf_counter()
    dec = VideoDecoder(path, device=device, seek_mode="exact")
    t_open = time.perf_counter() - t0
    m = dec.metadata
    print(f"sample video: {path}")
    print(
        f"{m.width}x{m.height}, {m.average_fps:.3g} fps, {m.duration_seconds:.2f} s, {m.num_frames} frames, "
        f"{m.codec} ({m.pixel_format})"
    )
    print(m)
    print(
        f"requested device: {dec.device}; decoding on: {dec.decoding_device}"
        + (f" (CPU fallback: {dec.cpu_fallback.reason})" if dec.cpu_fallback else "")
    )
    print(
        f"decoder created in {t_open * 1e3:.1f} ms (exact index: {dec.index.num_frames} frames, "
        f"{dec.index.num_keyframes} keyframes, built from {dec.index.method})"
    )
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        frames = dec[:]  # a plain (N, 3, H, W) tensor, as in torchcodec
        if frames.is_cuda:
            torch.cuda.synchronize()
        runs.append(time.perf_counter() - t0)
    best = min(runs)
    print(
        f"sequential decode to RGB: {len(frames)} frames {tuple(frames.shape[1:])} in {best * 1e3:.1f} ms "
        f"= {len(frames) / best:.0f} frames/s"
    )
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    clips = samplers.clips_at_random_indices(dec, num_clips=4, num_frames_per_clip=8, generator=g)
    dt = time.perf_counter() - t0
    print(
        f"4 random clips x 8 frames: shape {tuple(clips.data.shape)} in {dt * 1e3:.1f} ms "
        f"(first clip starts at {clips.pts_seconds[0, 0].item():.2f} s)"
    )
    dec.close()
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Print metadata and index facts of FILE."""
    dec = _open(args.file, "cpu", "approximate" if args.approximate else "exact")
    if args.json:
        print(json.dumps(_info_dict(dec), indent=2))
    else:
        print(dec.metadata)
        idx = dec.index
        if idx is not None:
            tb = idx.time_base
            keys = ", ".join(f"{float(p * tb):.3f}" for p in idx.key_pts[:20])
            more = " ..." if idx.num_keyframes > 20 else ""
            print(f"index: {idx.num_frames} frames, {idx.num_keyframes} keyframes (built from {idx.method})")
            print(f"keyframes at (s): {keys}{more}")
    dec.close()
    return 0


def _write_png(rgb_hwc: Any, path: Any) -> None:
    import av

    h, w = rgb_hwc.shape[:2]
    cc = av.CodecContext.create("png", "w")
    cc.width, cc.height, cc.pix_fmt = w, h, "rgb24"
    frame = av.VideoFrame.from_ndarray(rgb_hwc, format="rgb24")
    data = b"".join(bytes(p) for p in [*cc.encode(frame), *cc.encode(None)])
    with open(path, "wb") as f:
        f.write(data)


def _numbers(text: str, kind: type, option: str) -> list[Any]:
    """A comma-separated list; a malformed one is a usage error (exit code 2)."""
    try:
        values = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values:
        what = "integers" if kind is int else "numbers"
        print(
            f"gpudecode: error: argument {option}: invalid list {text!r}; expected comma-separated {what}, "
            "e.g. 0,10,20",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return values


def cmd_frames(args: argparse.Namespace) -> int:
    """Write the requested frames to a folder."""
    from pathlib import Path

    import torch

    from gpudecode import VideoDecoder

    if args.at is not None:
        _numbers(args.at, int, "--at")  # a usage error before any decoding
    else:
        _numbers(args.times, float, "--times")
    dec = VideoDecoder(
        args.file,
        device=_pick_device(args.device),
        dimension_order="NHWC",
        seek_mode="approximate" if args.approximate else "exact",
    )
    if args.at is not None:
        at = _numbers(args.at, int, "--at")
        batch = dec.get_frames_at(at)
        labels = [f"frame{i:06d}" for i in at]
    else:
        times = _numbers(args.times, float, "--times")
        batch = dec.get_frames_played_at(times)
        labels = [f"t{t:012.6f}" for t in times]
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for k, label in enumerate(labels):
        rgb = batch.data[k].cpu()
        path = out_dir / f"{label}.{args.format}"
        if args.format == "pt":
            torch.save({"data": rgb.permute(2, 0, 1).contiguous(), "pts_seconds": float(batch.pts_seconds[k])}, path)
        else:
            _write_png(rgb.numpy(), path)
        written.append({"path": str(path), "pts_seconds": float(batch.pts_seconds[k])})
    if args.json:
        print(json.dumps({"written": written, "decoding_device": dec.decoding_device}, indent=2))
    else:
        for w in written:
            print(f"{w['path']}  (pts {w['pts_seconds']:.6f} s)")
    dec.close()
    return 0


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        return None


def _progress(total: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar where tqdm is installed (the ``cli`` extra) and wanted, else nothing."""
    if enabled:
        try:
            from tqdm import tqdm

            return tqdm(total=total, unit="frame", desc=desc, leave=False)
        except ImportError:
            pass
    return _NoProgress()


def _bench_device(path: str, device: str, rounds: int, progress: bool) -> dict[str, Any]:
    import numpy as np
    import torch

    from gpudecode import VideoDecoder, samplers

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    res: dict[str, Any] = {"device": device}
    dec = VideoDecoder(path, device=device)
    n = len(dec)
    res["decoding_device"] = dec.decoding_device
    res["cpu_fallback"] = dec.cpu_fallback.reason
    chunk = 64
    best = None
    for _ in range(rounds):
        t0 = time.perf_counter()
        with _progress(n, f"sequential {device}", progress) as bar:
            for start in range(0, n, chunk):
                dec.get_frames_in_range(start, min(n, start + chunk))
                bar.update(min(chunk, n - start))
        sync()
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    res["sequential_frames_per_s"] = n / best
    rng = np.random.default_rng(0)
    idx = rng.integers(0, n, min(32, n)).tolist()
    t0 = time.perf_counter()
    dec.get_frames_at(idx)
    sync()
    res["random_frames_per_s"] = len(idx) / (time.perf_counter() - t0)
    per_clip = min(16, n)
    t0 = time.perf_counter()
    clips = samplers.clips_at_regular_indices(dec, num_clips=8, num_frames_per_clip=per_clip)
    sync()
    res["clip_sampling_frames_per_s"] = clips.data.shape[0] * clips.data.shape[1] / (time.perf_counter() - t0)
    dec.close()
    return res


def cmd_bench(args: argparse.Namespace) -> int:
    """Frames/s on each requested device, side by side; a device that cannot decode gets one line, not a crash."""
    from gpudecode import GpudecodeError

    devices = [d.strip() for d in args.device.split(",") if d.strip()]
    results: list[dict[str, Any]] = []
    for d in devices:
        try:
            results.append(_bench_device(args.file, d, args.rounds, progress=not args.json and sys.stderr.isatty()))
        except GpudecodeError as exc:
            results.append({"device": d, "error": str(exc)})
    if all("error" in r for r in results):  # nothing measured: the first error is the answer
        print(f"gpudecode: error: {results[0]['error']}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"file": args.file, "results": results}, indent=2))
        return 0
    print(f"{'device':10} {'decoder':8} {'sequential':>12} {'random':>10} {'clips':>10}   (frames/s)")
    for r in results:
        if "error" in r:
            print(f"{r['device']:10} not measured: {r['error']}")
            continue
        print(
            f"{r['device']:10} {r['decoding_device']:8} {r['sequential_frames_per_s']:12.0f} "
            f"{r['random_frames_per_s']:10.0f} {r['clip_sampling_frames_per_s']:10.0f}"
            + (f"   CPU fallback: {r['cpu_fallback']}" if r["cpu_fallback"] else "")
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gpudecode`` command."""
    from gpudecode import __version__

    p = argparse.ArgumentParser(prog="gpudecode", description="Video decoding for PyTorch on NVDEC or the CPU.")
    p.add_argument("--version", action="version", version=f"gpudecode {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="decode the bundled sample video and report speed")
    d.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda or cuda:N")
    d.set_defaults(func=cmd_demo)
    i = sub.add_parser("info", help="metadata and index facts of a video")
    i.add_argument("file")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.add_argument("--approximate", action="store_true", help="header only (no exact index)")
    i.set_defaults(func=cmd_info)
    f = sub.add_parser("frames", help="write frames at indices or times as PNG or .pt files")
    f.add_argument("file")
    which = f.add_mutually_exclusive_group(required=True)
    which.add_argument("--at", help="comma-separated frame indices, e.g. 0,10,20")
    which.add_argument("--times", help="comma-separated times in seconds; the frame shown at each")
    f.add_argument("-o", "--output", required=True, help="output folder (created if missing)")
    f.add_argument("--format", choices=["png", "pt"], default="png")
    f.add_argument("--device", default="cpu")
    f.add_argument("--approximate", action="store_true", help="seek_mode='approximate'")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=cmd_frames)
    b = sub.add_parser("bench", help="decoding speed: sequential, random access and clip sampling")
    b.add_argument("file")
    b.add_argument("--device", default="cpu", help="comma-separated devices, e.g. cpu,cuda")
    b.add_argument("--rounds", type=int, default=3, help="sequential passes (best is reported)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 1 decoding error, 2 usage error)."""
    from gpudecode import GpudecodeError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except GpudecodeError as exc:
        print(f"gpudecode: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
