"""Build and call kernels/yuv420_to_rgb.cu on the host (g++ and tests/cuda_host_shim.h)."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def build_host_library(source: Path) -> ctypes.CDLL:
    """Compile a C++ file that includes CUDA kernel source through tests/cuda_host_shim.h into a loaded library.

    Its includes are looked up in ``kernels/``, in ``tests/`` and beside ``source``.
    """
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        raise RuntimeError("no C++ compiler")
    includes = [f"-I{d}" for d in (ROOT / "kernels", ROOT / "tests", source.parent)]
    with tempfile.TemporaryDirectory(prefix="gpudecode-host-") as tmp:  # a loaded library outlives its file
        out = Path(tmp) / f"{source.stem}.so"
        cmd = [cxx, "-O2", "-std=c++17", "-shared", "-fPIC", *includes, str(source), "-o", str(out)]
        subprocess.run(cmd, check=True)
        return ctypes.CDLL(str(out))


@lru_cache(maxsize=1)
def host_kernel() -> ctypes.CDLL:
    lib = build_host_library(ROOT / "tests" / "kernel_host_runner.cpp")
    i, p, ll = ctypes.c_int, ctypes.c_void_p, ctypes.c_longlong
    lib.run_yuv420_resample.argtypes = [i, p, p, ll, i, i, i, p, ll, i, i, i, i, i, p, p, i, p, p, i, p, p, i, i]
    lib.run_yuv420_to_rgb.argtypes = [
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_longlong,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_longlong,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
    ]
    return lib


def run(
    bits: int,
    luma_ptr: int,
    chroma_ptr: int,
    pitch: int,
    width: int,
    height: int,
    dst_ptr: int,
    planar: bool,
    matrix12: np.ndarray,
    frames: int = 1,
    src_frame_stride: int = 0,
    dst_frame_stride: int = 0,
) -> None:
    m = np.ascontiguousarray(matrix12, dtype=np.float32)
    host_kernel().run_yuv420_to_rgb(
        bits,
        luma_ptr,
        chroma_ptr,
        src_frame_stride,
        pitch,
        width,
        height,
        dst_ptr,
        dst_frame_stride,
        int(planar),
        m.ctypes.data,
        frames,
        16 - bits if bits > 8 else 0,
    )


def resample(
    *,
    luma_ptr: int,
    chroma_ptr: int,
    pitch: int,
    coded_width: int,
    coded_height: int,
    dst_ptr: int,
    out_width: int,
    out_height: int,
    planar: bool,
    out_float: bool,
    quarter_turns: int,
    tables: tuple[int, int, int, int, int, int],
    scale_offset: tuple[float, ...],
    spec,
    stream_ptr: int = 0,
    frames: int = 1,
    src_frame_stride: int = 0,
    dst_frame_stride: int = 0,
) -> None:
    """The fused resampling kernel on the host, with the launcher's keyword interface (``Yuv420ToRgb.resample``)."""
    from gpudecode._backends._kernels import matrix_arg

    m = np.ascontiguousarray(matrix_arg(spec), dtype=np.float32)
    so = np.ascontiguousarray(scale_offset, dtype=np.float32)
    xs, xw, xt, ys, yw, yt = tables
    bits = spec.bit_depth
    host_kernel().run_yuv420_resample(
        bits,
        luma_ptr,
        chroma_ptr,
        src_frame_stride,
        pitch,
        coded_width,
        coded_height,
        dst_ptr,
        dst_frame_stride,
        out_width,
        out_height,
        int(planar),
        int(out_float),
        quarter_turns,
        xs,
        xw,
        xt,
        ys,
        yw,
        yt,
        so.ctypes.data,
        m.ctypes.data,
        frames,
        16 - bits if bits > 8 else 0,
    )
