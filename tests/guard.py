"""Guard pages: CPU output tensors that end exactly where an inaccessible page begins.

Installed in a child process (``install()``), it replaces ``torch.empty`` for non-empty uint8 CPU tensors: each such
tensor gets its own mapping whose last byte is followed by a ``PROT_NONE`` page, so a write (or read) even one byte
past the end is a SIGSEGV, and whose start is preceded by sentinel bytes, so a write before the start is caught by
``check_sentinels()``. Where the size allows it (a multiple of 64 bytes) the tensor also starts 64-byte aligned, as
torch's own allocations do, so code that takes a fast path for aligned memory takes it here too.
"""

from __future__ import annotations

import ctypes
import math
import mmap

import numpy as np
import torch

PAGE = mmap.PAGESIZE
SENTINEL = 0xA5
_PROT_NONE = 0
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_leads: list[np.ndarray] = []
_orig_empty = torch.empty
allocations = 0


def guarded_array(nbytes: int) -> np.ndarray:
    """A writable uint8 array of ``nbytes`` whose end abuts a ``PROT_NONE`` page (sentinels before its start)."""
    global allocations
    lead_min = PAGE  # at least one page of sentinels before the data
    data_pages = math.ceil((nbytes + lead_min) / PAGE)
    m = mmap.mmap(-1, (data_pages + 1) * PAGE)
    holder = ctypes.c_char.from_buffer(m)
    base = ctypes.addressof(holder)
    if _libc.mprotect(base + data_pages * PAGE, PAGE, _PROT_NONE) != 0:
        raise OSError(ctypes.get_errno(), "mprotect failed")
    del holder
    start = data_pages * PAGE - nbytes
    lead = np.frombuffer(m, np.uint8, count=start, offset=0)
    lead[:] = SENTINEL
    _leads.append(lead)
    allocations += 1
    return np.frombuffer(m, np.uint8, count=nbytes, offset=start)


def _guarded_empty(*size, dtype=None, device=None, **kwargs):
    shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else size
    cpu = device is None or torch.device(device).type == "cpu"
    n = math.prod(int(s) for s in shape)
    if dtype == torch.uint8 and cpu and n > 0 and not kwargs:
        return torch.from_numpy(guarded_array(n).reshape(shape))
    return _orig_empty(*size, dtype=dtype, device=device, **kwargs)


def install() -> None:
    """Route ``torch.empty`` for uint8 CPU tensors through :func:`guarded_array` (in this process)."""
    torch.empty = _guarded_empty


def check_sentinels() -> None:
    """Raise if any byte before a guarded buffer was written; forget the buffers checked."""
    for lead in _leads:
        if not np.all(lead == SENTINEL):
            bad = np.nonzero(lead != SENTINEL)[0]
            raise AssertionError(f"{len(bad)} bytes written before a buffer's start (up to {len(lead) - bad[0]})")
    _leads.clear()
