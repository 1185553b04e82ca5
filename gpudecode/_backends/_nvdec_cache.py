"""Idle NVDEC decoders kept for reuse: opening a decoder costs milliseconds, reusing one costs nothing.

Bounded (``$GPUDECODE_NVDEC_CACHE_SIZE`` or :func:`gpudecode.set_nvdec_cache_size`), least recently used first out,
emptied at exit, and never shared with a forked child (which keeps its parent's sessions referenced, unused).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from gpudecode._backends._nvc import NvdecUnavailable, forget_after_fork

__all__ = [
    "NVDEC_CACHE_ENV",
    "SIZE_BUCKETS",
    "DecoderCache",
    "acquire_decoder",
    "decoder_cache",
    "default_cache_size",
    "size_bucket",
]

# Decoders are created for a size bucket so that one can serve many videos (NVDEC reconfigures within it).
SIZE_BUCKETS = ((1920, 1088), (3840, 2176), (8192, 8192))
_DECODER_SIZES: dict[int, tuple[int, int]] = {}  # id(decoder) -> the frame size it was last set up for

logger = logging.getLogger("gpudecode")


class DecoderCache:
    """Idle NVDEC decoders per (gpu, codec, bit depth, size bucket, stream), bounded and LRU-evicted."""

    def __init__(self, max_idle: int = 16, max_per_key: int = 4) -> None:
        self._lock = threading.Lock()
        self._idle: OrderedDict[tuple[Any, ...], list[Any]] = OrderedDict()
        self.max_idle = max_idle
        self.max_per_key = max_per_key
        self.created = 0
        self.reused = 0

    def acquire(self, key: tuple[Any, ...], create: Callable[[], Any]) -> Any:
        """Return an idle decoder for ``key`` or a new one."""
        with self._lock:
            pool = self._idle.get(key)
            if pool:
                self._idle.move_to_end(key)
                self.reused += 1
                return pool.pop()
        dec = create()
        with self._lock:
            self.created += 1
        return dec

    def release(self, key: tuple[Any, ...], decoder: Any) -> None:
        """Give a flushed decoder back for reuse (dropped when the cache is full)."""
        with self._lock:
            pool = self._idle.setdefault(key, [])
            if len(pool) < self.max_per_key:
                pool.append(decoder)
                self._idle.move_to_end(key)
            self._evict()

    def resize(self, max_idle: int) -> None:
        """Hold at most ``max_idle`` idle decoders from now on (the least recently used beyond it are released)."""
        with self._lock:
            self.max_idle = max_idle
            self._evict()

    def _evict(self) -> None:
        while sum(len(p) for p in self._idle.values()) > self.max_idle:
            oldest = next(iter(self._idle))
            self._idle[oldest].pop(0)
            if not self._idle[oldest]:
                del self._idle[oldest]

    def idle_count(self) -> int:
        """Number of idle decoders held."""
        with self._lock:
            return sum(len(p) for p in self._idle.values())

    def clear(self) -> None:
        """Release every idle decoder."""
        with self._lock:
            self._idle.clear()


NVDEC_CACHE_ENV = "GPUDECODE_NVDEC_CACHE_SIZE"
_DEFAULT_CACHE_SIZE = 16


def default_cache_size() -> int:
    """The idle-decoder bound before :func:`gpudecode.set_nvdec_cache_size`: ``$GPUDECODE_NVDEC_CACHE_SIZE``, else 16.

    A value that is not an integer >= 0 is ignored with a warning.
    """
    text = os.environ.get(NVDEC_CACHE_ENV)
    if text is None:
        return _DEFAULT_CACHE_SIZE
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        logger.warning("gpudecode: ignoring %s=%r (not an integer >= 0)", NVDEC_CACHE_ENV, text)
        return _DEFAULT_CACHE_SIZE
    return value


decoder_cache = DecoderCache(max_idle=default_cache_size())
atexit.register(decoder_cache.clear)
_inherited: list[Any] = []


def _forget_after_fork() -> None:
    # A child must never use (or destroy) its parent's NVDEC sessions: keep them referenced, start empty.
    _inherited.append(decoder_cache._idle)
    _inherited.extend(forget_after_fork())
    decoder_cache._idle = OrderedDict()
    decoder_cache._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def size_bucket(width: int, height: int) -> tuple[int, int]:
    """The smallest size bucket holding ``width`` x ``height`` (the size itself beyond the largest)."""
    for bw, bh in SIZE_BUCKETS:
        if width <= bw and height <= bh:
            return bw, bh
    return width, height


def acquire_decoder(nvc: Any, key: tuple[Any, ...], codec_enum: Any, width: int, height: int) -> Any:
    """A cached decoder for ``key`` (``(gpu, codec, bit depth, max width, max height, stream)``), else a new one.

    Raises:
        NvdecUnavailable: Decoder creation failed.
    """
    index, _codec, _depth, max_w, max_h, stream_ptr = key

    def create() -> Any:
        try:
            dec = nvc.CreateDecoder(
                gpuid=index,
                codec=codec_enum,
                cudacontext=0,
                cudastream=stream_ptr,
                usedevicememory=True,
                maxwidth=max_w,
                maxheight=max_h,
                outputColorType=nvc.OutputColorType.NATIVE,
            )
        except Exception as exc:
            raise NvdecUnavailable(f"NVDEC decoder creation failed: {exc}") from exc
        _DECODER_SIZES[id(dec)] = (width, height)
        return dec

    decoder = decoder_cache.acquire(key, create)
    if _DECODER_SIZES.get(id(decoder)) != (width, height):
        # A reused decoder keeps its first video's display area and output size unless told (NVIDIA's
        # decode_reconfigure sample does the same).
        decoder.setReconfigParams(width, height)
        _DECODER_SIZES[id(decoder)] = (width, height)
    return decoder
