"""Output memory for decoded frames.

A batch of decoded frames is large (32 frames of 1080p RGB are 200 MB) and freshly allocated, so the kernel backs it
page by page as the conversion first touches it: hundreds of thousands of 4 KiB page faults per batch. Where Linux
offers transparent huge pages on request (``/sys/kernel/mm/transparent_hugepage/enabled`` = ``madvise``, a common
default), asking for them on the batch's memory before it is written backs it with 2 MiB pages instead.
"""

from __future__ import annotations

import ctypes
import math
import sys

import torch

from gpudecode._errors import AllocationError

__all__ = ["new_frames"]

_HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE = 14
_MIN_BYTES = 4 * _HUGE_PAGE  # smaller batches gain little and may not span a whole huge page


def _madvise() -> object | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None).madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_MADVISE = _madvise()


def new_frames(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """An uninitialized uint8 tensor for decoded frames; large CPU ones ask for transparent huge pages.

    ``madvise(MADV_HUGEPAGE)`` only changes how the kernel backs the untouched pages (the whole 2 MiB pages inside
    the tensor); it reads and writes nothing, and a refusal (no THP support) is ignored.

    Raises:
        AllocationError: The CPU cannot allocate that much memory.
    """
    try:
        out = torch.empty(shape, dtype=torch.uint8, device=device)
    except RuntimeError as exc:
        if device.type != "cpu":
            raise
        n, h, w = shape[0], shape[1], shape[2]
        raise AllocationError(
            f"Cannot allocate {math.prod(shape) / 1e9:.1f} GB for {n} frames of {w}x{h}. Request fewer frames at "
            "a time (the stream may also claim more frames or a larger size than it has)."
        ) from exc
    nbytes = out.numel()
    if _MADVISE is not None and out.device.type == "cpu" and nbytes >= _MIN_BYTES:
        start = out.data_ptr()
        lo = (start + _HUGE_PAGE - 1) & ~(_HUGE_PAGE - 1)
        hi = (start + nbytes) & ~(_HUGE_PAGE - 1)
        if hi > lo:
            _MADVISE(lo, hi - lo, _MADV_HUGEPAGE)  # type: ignore[operator]
    return out
