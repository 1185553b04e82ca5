"""Finding and compiling gpudecode's CUDA kernels (CuPy RawModule, compiled once per device)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from gpudecode._color import ColorSpec, yuv_to_rgb_matrix

__all__ = ["KERNEL_FILES", "kernel_path", "kernel_source", "matrix_arg", "Yuv420ToRgb"]

KERNEL_FILES = ("yuv420_to_rgb.cu",)
BLOCK = (32, 8, 1)
RESAMPLE_BLOCK = (16, 16, 1)
_MODULES: dict[tuple[str, int], Any] = {}  # compiled once per device (CuPy also caches the binary on disk)


def kernel_path(name: str) -> Path:
    """Path of a kernel source: inside the installed wheel, else the source checkout's ``kernels/``.

    Raises:
        FileNotFoundError: The source is in neither place.
    """
    packaged = resources.files("gpudecode") / "kernels" / name
    if packaged.is_file():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[2] / "kernels" / name
    if checkout.is_file():
        return checkout
    raise FileNotFoundError(f"gpudecode kernel source {name!r} is missing from the installation")


@cache
def kernel_source(name: str) -> str:
    """Text of a kernel source file."""
    return kernel_path(name).read_text()


def matrix_arg(spec: ColorSpec) -> np.ndarray:
    """The kernel's ``Mat34`` argument: 12 float32 values, row-major."""
    return np.ascontiguousarray(yuv_to_rgb_matrix(spec).astype(np.float32).reshape(12))


class _StreamHandle:
    """A CUDA stream handle behind the CUDA stream protocol (``__cuda_stream__``: version 0, the handle)."""

    def __init__(self, ptr: int) -> None:
        self.ptr = ptr

    def __cuda_stream__(self) -> tuple[int, int]:
        return (0, self.ptr)


class Yuv420ToRgb:
    """Launches the YUV 4:2:0 → RGB kernels through CuPy on one device."""

    def __init__(self, cupy: Any, device_index: int) -> None:
        self._cp = cupy
        self._device_index = device_index
        self._module = self._compile(cupy, device_index)
        with cupy.cuda.Device(device_index):  # load the module's functions on the device it was compiled for
            self._k8 = self._module.get_function("yuv420_8_to_rgb")
            self._k16 = self._module.get_function("yuv420_16_to_rgb")
            self._r8 = self._module.get_function("yuv420_8_resample")
            self._r16 = self._module.get_function("yuv420_16_resample")
        self._streams: dict[int, Any] = {}  # CUstream handle -> CuPy ExternalStream, made once
        self._matrices: dict[ColorSpec, tuple[np.float32, ...]] = {}  # per colour spec, computed once

    @staticmethod
    def _compile(cupy: Any, device_index: int) -> Any:
        key = ("gpudecode-yuv420", device_index)
        if key not in _MODULES:
            with cupy.cuda.Device(device_index):
                _MODULES[key] = cupy.RawModule(code=kernel_source("yuv420_to_rgb.cu"), options=("--std=c++14",))
        return _MODULES[key]

    def __call__(
        self,
        *,
        luma_ptr: int,
        chroma_ptr: int,
        pitch: int,
        width: int,
        height: int,
        dst_ptr: int,
        planar: bool,
        spec: ColorSpec,
        stream_ptr: int,
        frames: int = 1,
        src_frame_stride: int = 0,
        dst_frame_stride: int = 0,
    ) -> None:
        """Convert ``frames`` surfaces into ``dst`` on the given CUDA stream (asynchronously)."""
        cp = self._cp
        mat = self._matrix(spec)
        stream = self._stream(stream_ptr)
        grid = ((width + BLOCK[0] - 1) // BLOCK[0], (height + BLOCK[1] - 1) // BLOCK[1], frames)
        args = [
            np.uint64(luma_ptr),
            np.uint64(chroma_ptr),
            np.int64(src_frame_stride),
            np.int32(pitch),
            np.int32(width),
            np.int32(height),
            np.uint64(dst_ptr),
            np.int64(dst_frame_stride),
            np.int32(1 if planar else 0),
            *mat,
        ]
        with cp.cuda.Device(self._device_index), stream:
            if spec.bit_depth > 8:
                self._k16(grid, BLOCK, (*args, np.int32(16 - spec.bit_depth)))
            else:
                self._k8(grid, BLOCK, tuple(args))

    def _matrix(self, spec: ColorSpec) -> tuple[np.float32, ...]:
        mat = self._matrices.get(spec)
        if mat is None:
            mat = self._matrices[spec] = tuple(np.float32(v) for v in matrix_arg(spec))
        return mat

    def _stream(self, stream_ptr: int) -> Any:
        """CuPy's view of the CUDA stream ``stream_ptr`` (made once per handle).

        CuPy 14 deprecates ``ExternalStream`` (a ``DeprecationWarning`` at each one made) for ``Stream.from_external``
        over the CUDA stream protocol; CuPy 13 has only the former.
        """
        stream = self._streams.get(stream_ptr)
        if stream is None:
            cuda = self._cp.cuda
            from_external = getattr(cuda.Stream, "from_external", None)
            with cuda.Device(self._device_index):
                if from_external is not None:
                    stream = from_external(_StreamHandle(stream_ptr))
                else:
                    stream = cuda.ExternalStream(stream_ptr, self._device_index)
            self._streams[stream_ptr] = stream
        return stream

    def resample(
        self,
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
        scale_offset: tuple[float, float, float, float, float, float],
        spec: ColorSpec,
        stream_ptr: int,
        frames: int = 1,
        src_frame_stride: int = 0,
        dst_frame_stride: int = 0,
    ) -> None:
        """Convert, rotate, crop and resize ``frames`` surfaces into ``dst`` in one pass (asynchronously).

        ``tables`` are device pointers and tap counts of a :class:`gpudecode._shaping.ResamplePlan`: ``(x_start,
        x_weights, x_taps, y_start, y_weights, y_taps)``; ``scale_offset`` the per-channel output scale, then offset.
        """
        cp = self._cp
        mat = self._matrix(spec)
        bx, by, _ = RESAMPLE_BLOCK
        grid = ((out_width + bx - 1) // bx, (out_height + by - 1) // by, frames)
        xs, xw, xt, ys, yw, yt = tables
        args = [
            np.uint64(luma_ptr),
            np.uint64(chroma_ptr),
            np.int64(src_frame_stride),
            np.int32(pitch),
            np.int32(coded_width),
            np.int32(coded_height),
            np.uint64(dst_ptr),
            np.int64(dst_frame_stride),
            np.int32(out_width),
            np.int32(out_height),
            np.int32(1 if planar else 0),
            np.int32(1 if out_float else 0),
            np.int32(quarter_turns),
            np.uint64(xs),
            np.uint64(xw),
            np.int32(xt),
            np.uint64(ys),
            np.uint64(yw),
            np.int32(yt),
            *(np.float32(v) for v in scale_offset),
            *mat,
        ]
        with cp.cuda.Device(self._device_index), self._stream(stream_ptr):
            if spec.bit_depth > 8:
                self._r16(grid, RESAMPLE_BLOCK, (*args, np.int32(16 - spec.bit_depth)))
            else:
                self._r8(grid, RESAMPLE_BLOCK, tuple(args))
