"""Direct swscale: convert a decoded frame into caller memory with FFmpeg's own RGB conversion.

Binds, with ctypes, the very libswscale/libavutil that PyAV loaded (its wheel bundles them in ``av.libs``), so the
conversion is FFmpeg's own: the colorspace and range of the frame select the coefficients exactly as libavfilter's
``scale`` does for ``ffmpeg -vf format=rgb24``, and the CLI's default ``bicubic`` flags are used at every bit depth.
When the library cannot be found (PyAV built against a system FFmpeg), :func:`direct_converter` returns ``None`` and
the caller uses PyAV's reformatter.

Memory safety: swscale's SIMD code writes whole vector blocks, so it needs the destination layout FFmpeg's own
frames have (``av_frame_get_buffer``): a row stride of the width rounded up to 64 pixels, and padding after the last
row. A tightly packed ``(H, W, 3)`` tensor is such a buffer only when the width is a multiple of 64 (then its rows
are exactly FFmpeg's rows and no block crosses a row's end); every other destination is converted into an aligned,
padded scratch frame owned by the converter and copied out row by row.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from typing import Any

import numpy as np

from gpudecode._memory import aligned_empty

__all__ = [
    "SWS_BICUBIC",
    "SWS_BILINEAR",
    "DirectConverter",
    "RgbScaler",
    "ScratchFrame",
    "direct_converter",
    "ffmpeg_linesize",
    "rgb_scaler",
]

SWS_BILINEAR = 0x2  # torchcodec's Resize (``scale=W:H:flags=bilinear``)
SWS_BICUBIC = 0x4  # the ffmpeg CLI's default sws_flags
# av_frame_get_buffer on an AVX-512 build: linesizes aligned to 64 bytes (for RGB24 that means the width rounded up
# to 64 pixels), the height padded to 32 rows, and 64 more bytes after each plane.
_ALIGN = 64
_PAD_ROWS = 32
_PAD_BYTES = 64
_RGB_FORMATS = {1: "rgb24", 2: "rgb48le"}  # RGB destination by bytes per sample: uint8, native (little-endian) uint16
# Formats swscale takes as full range when the frame does not say (its handle_jpeg()): gray and gray+alpha (and
# yuvj*, the old spelling of full-range YUV, which is full whatever the tag). vf_scale keeps that default for untagged
# frames: an untagged 10-bit gray stream converted as limited range was off by up to 18.
_FULL_BY_DEFAULT = ("gray", "ya8", "ya16")
_lock = threading.Lock()
_libs: tuple[Any, Any] | bool | None = False


def _load() -> tuple[Any, Any] | None:
    global _libs
    with _lock:
        if _libs is not False:
            return _libs  # type: ignore[return-value]
        _libs = None
        try:
            import av

            libdir = os.path.join(os.path.dirname(av.__file__), os.pardir, "av.libs")
            sws_path = sorted(glob.glob(os.path.join(libdir, "libswscale-*.so*")))
            avu_path = sorted(glob.glob(os.path.join(libdir, "libavutil-*.so*")))
            if not sws_path or not avu_path:
                return None
            sws = ctypes.CDLL(sws_path[0])
            avu = ctypes.CDLL(avu_path[0])
            avu.av_get_pix_fmt.restype = ctypes.c_int
            avu.av_get_pix_fmt.argtypes = [ctypes.c_char_p]
            sws.sws_getCachedContext.restype = ctypes.c_void_p
            sws.sws_getCachedContext.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 7 + [ctypes.c_void_p] * 3
            sws.sws_getCoefficients.restype = ctypes.POINTER(ctypes.c_int)
            sws.sws_getCoefficients.argtypes = [ctypes.c_int]
            sws.sws_setColorspaceDetails.restype = ctypes.c_int
            sws.sws_setColorspaceDetails.argtypes = [
                ctypes.c_void_p,
                ctypes.POINTER(ctypes.c_int),
                ctypes.c_int,
                ctypes.POINTER(ctypes.c_int),
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_int,
            ]
            sws.sws_scale.restype = ctypes.c_int
            sws.sws_scale.argtypes = [
                ctypes.c_void_p,
                ctypes.POINTER(ctypes.c_void_p),
                ctypes.POINTER(ctypes.c_int),
                ctypes.c_int,
                ctypes.c_int,
                ctypes.POINTER(ctypes.c_void_p),
                ctypes.POINTER(ctypes.c_int),
            ]
            sws.sws_freeContext.restype = None
            sws.sws_freeContext.argtypes = [ctypes.c_void_p]
            _libs = (sws, avu)
        except (OSError, AttributeError, ImportError):
            _libs = None
        return _libs  # type: ignore[return-value]


def ffmpeg_linesize(width: int, itemsize: int = 1) -> int:
    """Bytes per RGB row in a frame laid out by ``av_frame_get_buffer``: the width rounded up to 64 pixels.

    For RGB24 (``itemsize`` 1) that is FFmpeg's own linesize; for RGB48 (``itemsize`` 2) FFmpeg rounds the width up
    only to 32 pixels, so these rows are as long or longer: more room, the same alignment.
    """
    return -(-width // _ALIGN) * _ALIGN * 3 * itemsize


class ScratchFrame:
    """One 64-byte aligned RGB frame laid out as ``av_frame_get_buffer`` lays it out.

    Row padding, 32-row height padding and 64 more bytes: swscale's vector code may write (and read) whole blocks past
    a row's end within it.
    """

    def __init__(self) -> None:
        self.buf: np.ndarray | None = None
        self._key: tuple[int, int, int] = (0, 0, 0)

    def rows(self, width: int, height: int, itemsize: int = 1) -> np.ndarray:
        """An ``(H, linesize)`` uint8 view of the frame (reallocated when the size or sample size changes)."""
        linesize = ffmpeg_linesize(width, itemsize)
        if self.buf is None or self._key != (width, height, itemsize):
            rows = -(-height // _PAD_ROWS) * _PAD_ROWS
            self.buf = aligned_empty(linesize * rows + _PAD_BYTES, _ALIGN)
            self._key = (width, height, itemsize)
        return self.buf[: linesize * height].reshape(height, linesize)

    def frame(self, width: int, height: int, dtype: np.dtype) -> np.ndarray:
        """The frame as an ``(H, W, 3)`` array of ``dtype`` (uint8 or uint16) over :meth:`rows`."""
        itemsize = np.dtype(dtype).itemsize
        return self.rows(width, height, itemsize)[:, : width * 3 * itemsize].view(dtype).reshape(height, width, 3)


def _ptrs(ptr: int, stride: int) -> tuple[Any, Any]:
    return (ctypes.c_void_p * 4)(ptr, None, None, None), (ctypes.c_int * 4)(stride, 0, 0, 0)


class DirectConverter:
    """Converts frames of one stream to RGB24 (or RGB48) into caller buffers; owns one cached ``SwsContext``.

    Not thread-safe: each backend owns its own converter (and its scratch frame).
    """

    def __init__(self, sws: Any, avu: Any, flags: int) -> None:
        self._sws = sws
        self._avu = avu
        self._flags = flags
        self._ctx: int | None = None
        self._key: tuple[int, ...] | None = None
        self._fmt_cache: dict[str, int] = {}
        self._frame = ScratchFrame()

    @property
    def _scratch(self) -> np.ndarray | None:
        """The scratch frame's memory (``None`` until a conversion needed it)."""
        return self._frame.buf

    def _pix_fmt(self, name: str) -> int:
        fmt = self._fmt_cache.get(name)
        if fmt is None:
            fmt = int(self._avu.av_get_pix_fmt(name.encode()))
            self._fmt_cache[name] = fmt
        return fmt

    def _context(self, frame: Any, fmt: int, dst_fmt: int) -> int | None:
        """The swscale context for this frame's size, format, matrix and range (rebuilt when one changes)."""
        w, h = frame.width, frame.height
        tag, name = frame.color_range, frame.format.name
        full = int(tag == 2 or name.startswith("yuvj") or (tag == 0 and name.startswith(_FULL_BY_DEFAULT)))
        key = (w, h, fmt, int(frame.colorspace), full, dst_fmt)
        if key != self._key:
            ctx = self._sws.sws_getCachedContext(self._ctx, w, h, fmt, w, h, dst_fmt, self._flags, None, None, None)
            if not ctx:
                return None
            self._ctx = ctx
            # swscale's coefficient table is indexed like AVColorSpace; unknown values give BT.601, as in vf_scale
            # The output matrix is the input's (vf_scale's out_color_matrix=auto): unused for YUV input, but an
            # RGB input of more than 8 bits goes through YUV inside swscale, and a different matrix out than in
            # would tint it.
            table = self._sws.sws_getCoefficients(int(frame.colorspace))
            self._sws.sws_setColorspaceDetails(ctx, table, full, table, 1, 0, 1 << 16, 1 << 16)
            self._key = key
        return self._ctx

    def _scale(self, frame: Any, dst_ptr: int, dst_stride: int, itemsize: int) -> bool:
        fmt = self._pix_fmt(frame.format.name)
        if fmt < 0:
            return False
        ctx = self._context(frame, fmt, self._pix_fmt(_RGB_FORMATS[itemsize]))
        if ctx is None:
            return False
        planes = frame.planes
        n = len(planes)
        src_ptrs = (ctypes.c_void_p * 4)(*[planes[i].buffer_ptr for i in range(n)], *([None] * (4 - n)))
        src_strides = (ctypes.c_int * 4)(*[planes[i].line_size for i in range(n)], *([0] * (4 - n)))
        dst_ptrs, dst_strides = _ptrs(dst_ptr, dst_stride)
        return self._sws.sws_scale(ctx, src_ptrs, src_strides, 0, frame.height, dst_ptrs, dst_strides) == frame.height

    def convert(self, frame: Any, dtype: type = np.uint8) -> np.ndarray | None:
        """Convert ``frame`` into the scratch frame: RGB24 for ``np.uint8``, RGB48 (native endian) for ``np.uint16``.

        Returns:
            An ``(H, W, 3)`` view of the scratch frame, valid until this converter's next call; ``None`` when
            swscale cannot convert this frame.
        """
        w, h, itemsize = frame.width, frame.height, np.dtype(dtype).itemsize
        rows = self._frame.rows(w, h, itemsize)
        if not self._scale(frame, rows.ctypes.data, rows.strides[0], itemsize):
            return None
        return self._frame.frame(w, h, dtype)

    def convert_into(self, frame: Any, out: np.ndarray) -> bool:
        """Convert ``frame`` into ``out``, an ``(H, W, 3)`` uint8 (RGB24) or uint16 (RGB48) array of any strides.

        swscale writes straight into ``out`` only where ``out``'s rows are FFmpeg's rows (RGB24, C-contiguous, width
        a multiple of 64, 64-byte aligned); otherwise it writes into the aligned scratch frame, which is then copied
        into ``out``. Either way nothing outside ``out`` is written.

        Returns:
            ``False`` when swscale cannot convert this frame (an unknown pixel format, or swscale failed); ``out``'s
            contents are then unspecified and the caller converts another way.

        Raises:
            ValueError: ``out`` does not have the frame's shape or is neither uint8 nor uint16.
        """
        w, h = frame.width, frame.height
        if out.shape != (h, w, 3) or out.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"destination {out.shape} {out.dtype} does not hold a {w}x{h} RGB24/RGB48 frame")
        item = out.dtype.itemsize
        # straight into ``out`` only for RGB24, the layout the guard-page tests prove safe at these widths
        if item == 1 and w % _ALIGN == 0 and out.strides == (w * 3, 3, 1) and out.ctypes.data % _ALIGN == 0:
            return self._scale(frame, out.ctypes.data, w * 3 * item, item)
        rgb = self.convert(frame, out.dtype.type)
        if rgb is None:
            return False
        np.copyto(out, rgb)
        return True

    def close(self) -> None:
        """Free the swscale context and the scratch frame."""
        if self._ctx:
            self._sws.sws_freeContext(self._ctx)
            self._ctx = None
            self._key = None
        self._frame = ScratchFrame()

    def __del__(self) -> None:
        self.close()


class RgbScaler:
    """Resizes RGB24 or RGB48 images with swscale, bilinear (torchcodec's ``Resize``) or bicubic.

    The same as ``scale=W:H:flags=bilinear`` (or ``bicubic``) on an RGB frame. Owns one cached ``SwsContext`` and
    the scratch frame it writes into. Not thread-safe.
    """

    def __init__(self, sws: Any, avu: Any, flags: int = SWS_BILINEAR) -> None:
        self._sws = sws
        self._flags = flags
        self._fmts = {k: int(avu.av_get_pix_fmt(v.encode())) for k, v in _RGB_FORMATS.items()}
        self._ctx: int | None = None
        self._frame = ScratchFrame()

    def scale(self, src: np.ndarray, height: int, width: int) -> np.ndarray | None:
        """Resize ``src`` to ``height`` x ``width``.

        Args:
            src: ``(h, w, 3)`` uint8 or uint16 whose pixels are packed (strides ``(row, 3 * item, item)``, row > 0),
                inside memory that may be read a vector block past its last row's end (an FFmpeg-layout frame or
                a view into one).
            height: Output rows.
            width: Output columns.

        Returns:
            An ``(height, width, 3)`` view of the scaler's scratch frame, valid until its next call; ``None`` when
            swscale fails.

        Raises:
            ValueError: ``src`` is not packed RGB.
        """
        h, w, c = src.shape
        item = src.dtype.itemsize
        if c != 3 or item not in self._fmts or src.strides[1:] != (3 * item, item) or src.strides[0] <= 0:
            raise ValueError(f"source {src.shape} {src.dtype} strides {src.strides} is not packed RGB")
        fmt = self._fmts[item]
        ctx = self._sws.sws_getCachedContext(self._ctx, w, h, fmt, width, height, fmt, self._flags, None, None, None)
        if not ctx:
            return None
        self._ctx = ctx
        rows = self._frame.rows(width, height, item)
        src_ptrs, src_strides = _ptrs(src.ctypes.data, src.strides[0])
        dst_ptrs, dst_strides = _ptrs(rows.ctypes.data, rows.strides[0])
        if self._sws.sws_scale(ctx, src_ptrs, src_strides, 0, h, dst_ptrs, dst_strides) != height:
            return None
        return self._frame.frame(width, height, src.dtype)

    def close(self) -> None:
        """Free the swscale context and the scratch frame."""
        if self._ctx:
            self._sws.sws_freeContext(self._ctx)
            self._ctx = None
        self._frame = ScratchFrame()

    def __del__(self) -> None:
        self.close()


def direct_converter() -> DirectConverter | None:
    """A converter with the ffmpeg CLI's flags (``bicubic``), or ``None`` when swscale is not reachable."""
    libs = _load()
    if libs is None:
        return None
    return DirectConverter(libs[0], libs[1], SWS_BICUBIC)


def rgb_scaler(flags: int = SWS_BILINEAR) -> RgbScaler | None:
    """An RGB scaler (``SWS_BILINEAR`` or ``SWS_BICUBIC``), or ``None`` when swscale is not reachable."""
    libs = _load()
    if libs is None:
        return None
    return RgbScaler(libs[0], libs[1], flags)
