"""Cached oracle decodes and comparison helpers."""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path

import av
import numpy as np
import torch
from media import SPECS, oracle_frames


@cache
def oracle(path: str) -> tuple[list, np.ndarray, np.ndarray]:
    """(frames, pts_seconds, duration_seconds) of the reference decode."""
    frames, tb = oracle_frames(Path(path))
    pts = np.array([f.pts for f in frames], dtype=np.float64) * float(tb)
    dur = np.array([f.duration for f in frames], dtype=np.float64) * float(tb)
    return frames, pts, dur


def to_hwc(data: torch.Tensor, dimension_order: str) -> np.ndarray:
    """Batch or single frame tensor -> HWC (or NHWC) NumPy array on the CPU."""
    x = data.cpu()
    if dimension_order == "NCHW":
        x = x.movedim(-3, -1)
    return x.numpy()


def assert_frame_matches(name: str, path: str, got_hwc: np.ndarray, index: int) -> None:
    """Bit-exact with the oracle (libavfilter's ``format=rgb24``, as the CLI runs it) at every bit depth."""
    frames, _, _ = oracle(path)
    ref = frames[index]
    assert got_hwc.shape == ref.rgb.shape, (got_hwc.shape, ref.rgb.shape)
    if not np.array_equal(got_hwc, ref.rgb):
        d = np.abs(got_hwc.astype(int) - ref.rgb.astype(int))
        raise AssertionError(f"{name} frame {index}: {int((d > 0).sum())} values differ, max {d.max()}")


ALL = sorted(SPECS)
HEADER_EXACT = sorted(n for n, s in SPECS.items() if s.header_exact)


def ffmpeg_cli() -> str | None:
    """The ffmpeg command-line tool: the one the ``imageio-ffmpeg`` test dependency ships, else one on PATH."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return shutil.which("ffmpeg")


def run_ffmpeg(*args: str) -> None:
    """Run the ffmpeg CLI quietly (``-y``: overwrite) to make a fixture; fails where the CLI is missing."""
    exe = ffmpeg_cli()
    assert exe is not None, "no ffmpeg CLI: install the test extra (imageio-ffmpeg)"
    subprocess.run([exe, "-v", "error", "-y", *args], check=True)


def cli_frames(path: str, chain: str, width: int, height: int, rgb48: bool = False) -> np.ndarray:
    """Every frame of ``ffmpeg -i path -vf chain`` as ``(N, H, W, 3)`` uint8, or float32 RGB48 / 65535."""
    exe = ffmpeg_cli()
    assert exe is not None, "no ffmpeg CLI: install the test extra (imageio-ffmpeg)"
    fmt = "rgb48le" if rgb48 else "rgb24"
    cmd = [exe, "-v", "error", "-nostdin", "-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough"]
    raw = subprocess.run(
        [*cmd, "-vf", f"format={fmt}{',' if chain else ''}{chain}", "-pix_fmt", fmt, "-f", "rawvideo", "-"],
        capture_output=True,
        check=True,
    ).stdout
    if not rgb48:
        return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)
    return np.frombuffer(raw, "<u2").reshape(-1, height, width, 3).astype(np.float32) / np.float32(65535)


@cache
def cli_rgb_frames(path: str) -> np.ndarray:
    """``ffmpeg -i PATH -vf format=rgb24 -f rawvideo -``, every frame as decoded (no frame-rate conversion)."""
    with av.open(path) as c:
        s = c.streams.video[0]
        w, h = s.codec_context.width, s.codec_context.height
    return cli_frames(path, "", w, h)


@cache
def nearest_chroma_reference(path: str) -> dict[float, np.ndarray]:
    """Frame pts (seconds, rounded to 1 µs) -> RGB computed in float64 with nearest chroma, rounded to uint8 values.

    What the CUDA kernel computes (DESIGN.md §4). FFmpeg (the CPU path) interpolates chroma bicubically wherever it
    leaves its 8-bit fast path (10/12-bit, odd sizes), so there the GPU is held to this reference, not to the CPU.
    """
    from media import yuv_frames_float_rgb

    with av.open(path) as c:
        tb = c.streams.video[0].time_base
    return {round(float(pts * tb), 6): np.round(np.clip(rgb, 0, 255)) for pts, rgb in yuv_frames_float_rgb(path)}


def assert_matches_nearest_chroma(path: str, batch_hwc: np.ndarray, pts_seconds: list[float]) -> None:
    """Each frame within 1 code value of :func:`nearest_chroma_reference` (the kernel's own exactness)."""
    ref = nearest_chroma_reference(path)
    for k, t in enumerate(pts_seconds):
        d = np.abs(batch_hwc[k].astype(np.float64) - ref[round(t, 6)])
        assert d.max() <= 1, f"frame at {t}s: max diff {d.max()} against the nearest-chroma reference"
