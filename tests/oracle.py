"""Cached oracle decodes and comparison helpers."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch
from media import SPECS, oracle_frames, yuv_frames_float_rgb

HIGH_BIT_DEPTH = {"hevc10"}


@cache
def oracle(path: str) -> tuple[list, np.ndarray, np.ndarray]:
    """(frames, pts_seconds, duration_seconds) of the reference decode."""
    frames, tb = oracle_frames(Path(path))
    pts = np.array([f.pts for f in frames], dtype=np.float64) * float(tb)
    dur = np.array([f.duration for f in frames], dtype=np.float64) * float(tb)
    return frames, pts, dur


@cache
def float_reference(path: str) -> dict[int, np.ndarray]:
    return dict(yuv_frames_float_rgb(Path(path)))


def to_hwc(data: torch.Tensor, dimension_order: str) -> np.ndarray:
    """Batch or single frame tensor -> HWC (or NHWC) NumPy array on the CPU."""
    x = data.cpu()
    if dimension_order == "NCHW":
        x = x.movedim(-3, -1)
    return x.numpy()


def assert_frame_matches(name: str, path: str, got_hwc: np.ndarray, index: int) -> None:
    """Bit-exact with the oracle for 8-bit; within 4 of the float reference for 10-bit."""
    frames, _, _ = oracle(path)
    ref = frames[index]
    if name in HIGH_BIT_DEPTH:
        flt = float_reference(path)[ref.pts]
        diff = np.abs(got_hwc.astype(np.float64) - np.round(np.clip(flt, 0, 255)))
        # swscale dithers the 10->8 bit reduction: documented bound is 4 code values, about 1 on average.
        assert diff.max() <= 4, f"frame {index}: max diff {diff.max():.2f} vs float reference"
        assert diff.mean() <= 1.5, f"frame {index}: mean diff {diff.mean():.2f} vs float reference"
    else:
        assert got_hwc.shape == ref.rgb.shape, (got_hwc.shape, ref.rgb.shape)
        if not np.array_equal(got_hwc, ref.rgb):
            d = np.abs(got_hwc.astype(int) - ref.rgb.astype(int))
            raise AssertionError(f"frame {index}: {int((d > 0).sum())} values differ, max {d.max()}")


ALL = sorted(SPECS)
HEADER_EXACT = sorted(n for n, s in SPECS.items() if s.header_exact)
