"""Command line: ``gpudecode`` / ``python -m gpudecode``.

gpudecode demo [--device auto|cpu|cuda]      decode the bundled sample, print metadata and frames/s
gpudecode info FILE [--json] [--approximate]  metadata and index facts
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
    d: dict[str, Any] = {"metadata": dataclasses.asdict(dec.metadata), "device": str(dec.device),
                         "decoding_device": dec.decoding_device, "cpu_fallback": str(dec.cpu_fallback) or None,
                         "seek_mode": dec.seek_mode}
    idx = dec.index
    if idx is not None:
        tb = idx.time_base
        d["index"] = {"method": idx.method, "num_frames": idx.num_frames, "num_keyframes": idx.num_keyframes,
                      "time_base": f"{tb.numerator}/{tb.denominator}",
                      "keyframe_pts_seconds": [float(p * tb) for p in idx.key_pts[:1000]]}
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
    print(f"sample video: {path}")
    print(dec.metadata)
    print(f"requested device: {dec.device}; decoding on: {dec.decoding_device}"
          + (f" (CPU fallback: {dec.cpu_fallback})" if dec.cpu_fallback else ""))
    print(f"decoder created in {t_open * 1e3:.1f} ms (exact index: {dec.index.num_frames} frames, "
          f"{dec.index.num_keyframes} keyframes, built from {dec.index.method})")
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        batch = dec[:]
        if batch.data.is_cuda:
            torch.cuda.synchronize()
        runs.append(time.perf_counter() - t0)
    best = min(runs)
    print(f"sequential decode to RGB: {len(batch)} frames {tuple(batch.data.shape[1:])} in {best * 1e3:.1f} ms "
          f"= {len(batch) / best:.0f} frames/s")
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    clips = samplers.clips_at_random_indices(dec, num_clips=4, num_frames_per_clip=8, generator=g)
    dt = time.perf_counter() - t0
    print(f"4 random clips x 8 frames: shape {tuple(clips.data.shape)} in {dt * 1e3:.1f} ms "
          f"(first clip starts at {clips.pts_seconds[0, 0].item():.2f} s)")
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gpudecode`` command."""
    p = argparse.ArgumentParser(prog="gpudecode", description="Video decoding for PyTorch on NVDEC or the CPU.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="decode the bundled sample video and report speed")
    d.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda or cuda:N")
    d.set_defaults(func=cmd_demo)
    i = sub.add_parser("info", help="metadata and index facts of a video")
    i.add_argument("file")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.add_argument("--approximate", action="store_true", help="header only (no exact index)")
    i.set_defaults(func=cmd_info)
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
