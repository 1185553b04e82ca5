"""Output memory for decoded frames.

A batch of decoded frames is large (32 frames of 1080p RGB are 200 MB) and freshly allocated, so the kernel backs it
page by page as the conversion first touches it: hundreds of thousands of 4 KiB page faults per batch. Where Linux
offers transparent huge pages on request (``/sys/kernel/mm/transparent_hugepage/enabled`` = ``madvise``, a common
default), asking for them on the batch's memory before it is written backs it with 2 MiB pages instead. Only where
they are free, though: under the usual defrag settings a page fault in such memory makes the kernel compact memory
until it finds a free huge page, and on a machine whose memory is fragmented (a page cache filled by earlier file I/O)
that stalls the first batch far longer than the faults it saves (measured: 196-488 ms of system time for 200 MB,
against 92-136 ms for the 4 KiB faults). So the batch asks for huge pages only when ``/proc/buddyinfo`` shows enough
free ones, or when the kernel would not stall for them (defrag ``defer`` or ``never``); the pool's buffers are mapped
directly, so that NumPy does not ask for huge pages on them regardless.

Better still is memory already backed: a process-wide :class:`FramePool` keeps the memory of recent large CPU
batches and hands it out again once the caller has let go of every tensor over it (a tensor sent to another
process through ``torch.multiprocessing`` lets go of it too: its storage moves to shared memory). A reused batch's
pages are already mapped, so a sequential read in chunks takes no page faults after its first chunk (measured: about
3% less time at 1080p, within the noise of a shared machine; ``benchmarks/results/sequential.md``). The pool holds
at most ``$GPUDECODE_FRAME_POOL_MB`` MiB (default 512; 0 turns it off); a pooled tensor's storage cannot be resized.
"""

from __future__ import annotations

import ctypes
import math
import mmap
import os
import sys
import threading
import weakref
from pathlib import Path

import numpy as np
import torch

from gpudecode._errors import AllocationError

__all__ = ["FRAME_POOL_ENV", "FramePool", "aligned_empty", "free_huge_pages", "new_frames"]

_THP = Path("/sys/kernel/mm/transparent_hugepage")
_BUDDYINFO = Path("/proc/buddyinfo")
_MADV_HUGEPAGE = 14
FRAME_POOL_ENV = "GPUDECODE_FRAME_POOL_MB"
_NUMPY = {torch.uint8: np.uint8, torch.float32: np.float32}


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


def _thp_setting(name: str, default: str) -> str:
    """The selected value of a transparent-huge-page setting (``always [madvise] never`` gives ``madvise``)."""
    try:
        text = (_THP / name).read_text()
    except OSError:
        return default
    return text[text.index("[") + 1 : text.index("]")] if "[" in text and "]" in text else text.strip() or default


def _huge_page_bytes() -> int:
    try:
        return int((_THP / "hpage_pmd_size").read_text())
    except (OSError, ValueError):
        return 2 << 20


_HUGE_PAGE = _huge_page_bytes()
_MIN_BYTES = 4 * _HUGE_PAGE  # smaller batches gain little and may not span a whole huge page
# Whether a page fault in madvised memory compacts memory on the spot when no huge page is free.
_STALLS = _thp_setting("enabled", "never") != "never" and _thp_setting("defrag", "madvise") in (
    "always",
    "madvise",
    "defer+madvise",
)


def free_huge_pages(buddyinfo: str, huge_page_bytes: int, page_bytes: int) -> int:
    """How many huge pages the kernel could hand out right now without compacting memory.

    Args:
        buddyinfo: The text of ``/proc/buddyinfo``: per memory zone, the count of free blocks of each order (a block
            of order ``k`` is ``2**k`` pages).
        huge_page_bytes: The size of a huge page.
        page_bytes: The size of a base page.

    Returns:
        The free blocks of a huge page's order or above, in huge pages, summed over the zones.
    """
    order = max(0, (huge_page_bytes // page_bytes).bit_length() - 1)
    total = 0
    for line in buddyinfo.splitlines():
        fields = line.split()
        if "zone" not in fields:
            continue
        counts = fields[fields.index("zone") + 2 :]
        total += sum(int(c) << (k - order) for k, c in enumerate(counts) if k >= order and c.isdigit())
    return total


def _huge_pages_ready(nbytes: int) -> bool:
    """Whether asking for huge pages on ``nbytes`` fresh bytes costs no compaction stall.

    True where enough huge pages are free already, or where this kernel does not compact on the spot for them.
    """
    if not _STALLS:
        return True
    try:
        info = _BUDDYINFO.read_text()
    except OSError:
        return True
    return free_huge_pages(info, _HUGE_PAGE, mmap.PAGESIZE) * _HUGE_PAGE >= nbytes


def new_frames(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """An uninitialized tensor (uint8 or float32) for decoded frames: from the frame pool where it has one, else new.

    Raises:
        AllocationError: The CPU cannot allocate that much memory.
    """
    if device.type == "cpu":
        return POOL.take(shape, dtype)
    return _allocate(shape, device, dtype)


def _allocate(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """An uninitialized uint8 tensor for decoded frames; large CPU ones ask for transparent huge pages.

    ``madvise(MADV_HUGEPAGE)`` only changes how the kernel backs the untouched pages (the whole 2 MiB pages inside
    the tensor); it reads and writes nothing, and a refusal (no THP support) is ignored. It is asked only where
    enough huge pages are free (see the module's notes).

    Raises:
        AllocationError: The CPU cannot allocate that much memory.
    """
    try:
        out = torch.empty(shape, dtype=dtype, device=device)
    except RuntimeError as exc:
        if device.type != "cpu":
            raise
        raise _allocation_error(shape, dtype.itemsize) from exc
    if out.device.type == "cpu":
        _advise_huge(out.data_ptr(), out.numel() * out.element_size())
    return out


def _allocation_error(shape: tuple[int, ...], itemsize: int = 1) -> AllocationError:
    n, h, w = shape[0], shape[1], shape[2]
    return AllocationError(
        f"Cannot allocate {math.prod(shape) * itemsize / 1e9:.1f} GB for {n} frames of {w}x{h}. Request fewer "
        "frames at a time (the stream may also claim more frames or a larger size than it has)."
    )


def _advise_huge(start: int, nbytes: int) -> None:
    """Ask for transparent huge pages on the whole huge pages inside ``[start, start + nbytes)``.

    Only where enough are free (:func:`_huge_pages_ready`).
    """
    if _MADVISE is None or nbytes < _MIN_BYTES or not _huge_pages_ready(nbytes):
        return
    lo = (start + _HUGE_PAGE - 1) & ~(_HUGE_PAGE - 1)
    hi = (start + nbytes) & ~(_HUGE_PAGE - 1)
    if hi > lo:
        _MADVISE(lo, hi - lo, _MADV_HUGEPAGE)  # type: ignore[operator]


class FramePool:
    """Memory of recent large CPU frame batches, handed out again once nothing the caller holds refers to it.

    The pool owns each buffer as a NumPy array and issues it as a tensor over an aligned view of it
    (``torch.from_numpy``): the tensor's storage keeps that view alive, and the pool watches the view through a
    weak reference. A buffer is reused only after the view died, that is after the storage died: no tensor, view,
    storage object, NumPy array or DLPack capsule over it remains. A storage moved to shared memory (sent to another
    process) lets go of the buffer at the move: the caller's tensor then no longer uses it. Thread-safe.

    Args:
        limit_bytes: The most bytes kept; a batch larger than this is never pooled. 0 turns the pool off.
        min_bytes: Smaller batches are not pooled (the C allocator recycles those well).
    """

    def __init__(self, limit_bytes: int, min_bytes: int = _MIN_BYTES) -> None:
        self.limit_bytes = limit_bytes
        self.min_bytes = min_bytes
        self._kept: list[tuple[np.ndarray, weakref.ref[np.ndarray]]] = []  # (buffer, issued view), oldest first
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, ...], dtype: torch.dtype = torch.uint8) -> torch.Tensor:
        """An uninitialized CPU tensor of ``shape`` and ``dtype``: a released pooled buffer, else a new (pooled) one.

        A released buffer serves a batch of its size or up to half smaller (the last, shorter chunk of a sequential
        read reuses the full chunks' memory); released buffers that fit nothing are let go of before a new one is
        allocated, so the pool never raises the peak memory of a read above what fresh batches would need.

        Raises:
            AllocationError: The CPU cannot allocate that much memory.
        """
        itemsize = dtype.itemsize
        nbytes = math.prod(shape) * itemsize
        if nbytes < self.min_bytes or nbytes > self.limit_bytes:
            return _allocate(shape, torch.device("cpu"), dtype)
        with self._lock:
            free = [i for i, (_, v) in enumerate(self._kept) if v() is None]
            fits = [i for i in free if nbytes <= self._kept[i][0].size <= 2 * nbytes]
            if fits:
                buf = self._kept.pop(min(fits, key=lambda i: self._kept[i][0].size))[0]
            else:
                self._kept = [k for i, k in enumerate(self._kept) if i not in free]
                buf = _aligned_buffer(shape, itemsize)
                while self._kept and self.kept_bytes + buf.size > self.limit_bytes:
                    self._kept.pop(0)
            # The array torch's storage keeps (its own reference: dies with the storage). A view of a view would not
            # do: NumPy points every view at the owning array, so an intermediate one could die while in use.
            view = buf[:nbytes].view(_NUMPY[dtype])
            self._kept.append((buf, weakref.ref(view)))
            return torch.from_numpy(view).view(shape)

    @property
    def kept_bytes(self) -> int:
        """Bytes of the buffers the pool keeps (some may still be in the caller's hands)."""
        return sum(b.size for b, _ in self._kept)

    def clear(self) -> None:
        """Let go of every kept buffer (the memory returns to the system once the caller drops its tensors)."""
        with self._lock:
            self._kept.clear()

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (another thread of the parent may have held it at the fork)."""
        self._lock = threading.Lock()


def _aligned_buffer(shape: tuple[int, ...], itemsize: int = 1) -> np.ndarray:
    """A page-aligned uint8 buffer of ``prod(shape) * itemsize`` bytes that asks for huge pages where they are free.

    On Linux a private anonymous mapping of its own (NumPy would ask for huge pages on a large array of its own
    whether or not any are free; see the module's notes), elsewhere a 64-byte aligned NumPy array.

    Raises:
        AllocationError: The memory cannot be mapped.
    """
    nbytes = math.prod(shape) * itemsize
    try:
        if _MADVISE is None:
            return aligned_empty(nbytes)
        # The array holds the mapping (through its buffer), which is unmapped when the array and its views die.
        buf = np.frombuffer(mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS), dtype=np.uint8)
    except (MemoryError, OSError, OverflowError) as exc:
        raise _allocation_error(shape, itemsize) from exc
    _advise_huge(buf.ctypes.data, nbytes)
    return buf


def aligned_empty(nbytes: int, align: int = 64) -> np.ndarray:
    """An uninitialized uint8 array of ``nbytes`` bytes starting on an ``align``-byte boundary.

    Raises:
        MemoryError: NumPy cannot allocate it.
    """
    raw = np.empty(nbytes + align, dtype=np.uint8)
    skip = -raw.ctypes.data % align
    return raw[skip : skip + nbytes]


def _pool_limit() -> int:
    try:
        mib = int(os.environ.get(FRAME_POOL_ENV, "512"))
    except ValueError:
        mib = 512
    return max(0, mib) << 20


POOL = FramePool(_pool_limit())
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=POOL.after_fork)
