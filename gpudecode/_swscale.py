"""Direct swscale: convert a decoded frame straight into caller memory (no intermediate frame, no copy).

Binds, with ctypes, the very libswscale/libavutil that PyAV loaded (its wheel bundles them in ``av.libs``), so the
conversion is FFmpeg's own: the colorspace and range of the frame select the coefficients exactly as libavfilter's
``scale`` does for ``ffmpeg -vf format=rgb24``, and the CLI's default ``bicubic`` flags are used. When the library
cannot be found (PyAV built against a system FFmpeg), :func:`direct_converter` returns ``None`` and the caller uses
PyAV's reformatter.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from typing import Any

__all__ = ["SWS_BICUBIC", "SWS_POINT", "DirectConverter", "direct_converter"]

SWS_POINT = 0x10
SWS_BICUBIC = 0x4
_RGB24 = 2  # AV_PIX_FMT_RGB24
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
            sws.sws_setColorspaceDetails.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int,
                                                     ctypes.POINTER(ctypes.c_int), ctypes.c_int, ctypes.c_int,
                                                     ctypes.c_int, ctypes.c_int]
            sws.sws_scale.restype = ctypes.c_int
            sws.sws_scale.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int),
                                      ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p),
                                      ctypes.POINTER(ctypes.c_int)]
            sws.sws_freeContext.restype = None
            sws.sws_freeContext.argtypes = [ctypes.c_void_p]
            _libs = (sws, avu)
        except (OSError, AttributeError, ImportError):
            _libs = None
        return _libs  # type: ignore[return-value]


class DirectConverter:
    """Converts frames of one stream to RGB24 into caller buffers; owns one cached ``SwsContext``.

    Not thread-safe: each backend owns its own converter.
    """

    def __init__(self, sws: Any, avu: Any, flags: int) -> None:
        self._sws = sws
        self._avu = avu
        self._flags = flags
        self._ctx: int | None = None
        self._key: tuple[int, ...] | None = None
        self._fmt_cache: dict[str, int] = {}

    def _pix_fmt(self, name: str) -> int:
        fmt = self._fmt_cache.get(name)
        if fmt is None:
            fmt = int(self._avu.av_get_pix_fmt(name.encode()))
            self._fmt_cache[name] = fmt
        return fmt

    def convert_into(self, frame: Any, dst_ptr: int, dst_stride: int) -> bool:
        """Convert ``frame`` into ``dst`` (``height`` rows of ``dst_stride`` bytes). ``False``: unsupported frame."""
        fmt_name = frame.format.name
        fmt = self._pix_fmt(fmt_name)
        if fmt < 0:
            return False
        w, h = frame.width, frame.height
        full = 1 if (frame.color_range == 2 or fmt_name.startswith("yuvj")) else 0
        key = (w, h, fmt, int(frame.colorspace), full)
        if key != self._key:
            ctx = self._sws.sws_getCachedContext(self._ctx, w, h, fmt, w, h, _RGB24, self._flags, None, None, None)
            if not ctx:
                return False
            self._ctx = ctx
            # swscale's coefficient table is indexed like AVColorSpace; unknown values give BT.601, as in vf_scale
            src = self._sws.sws_getCoefficients(int(frame.colorspace))
            dst = self._sws.sws_getCoefficients(1)
            self._sws.sws_setColorspaceDetails(ctx, src, full, dst, 1, 0, 1 << 16, 1 << 16)
            self._key = key
        planes = frame.planes
        n = len(planes)
        src_ptrs = (ctypes.c_void_p * 4)(*[planes[i].buffer_ptr for i in range(n)], *([None] * (4 - n)))
        src_strides = (ctypes.c_int * 4)(*[planes[i].line_size for i in range(n)], *([0] * (4 - n)))
        dst_ptrs = (ctypes.c_void_p * 4)(dst_ptr, None, None, None)
        dst_strides = (ctypes.c_int * 4)(dst_stride, 0, 0, 0)
        return self._sws.sws_scale(self._ctx, src_ptrs, src_strides, 0, h, dst_ptrs, dst_strides) == h

    def close(self) -> None:
        """Free the swscale context."""
        if self._ctx:
            self._sws.sws_freeContext(self._ctx)
            self._ctx = None
            self._key = None

    def __del__(self) -> None:
        self.close()


def direct_converter(bit_depth: int) -> DirectConverter | None:
    """A converter with the flags gpudecode uses for this bit depth, or ``None`` when swscale is not reachable."""
    libs = _load()
    if libs is None:
        return None
    flags = SWS_POINT if bit_depth > 8 else SWS_BICUBIC
    return DirectConverter(libs[0], libs[1], flags)
