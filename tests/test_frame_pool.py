"""The CPU frame pool (issue 15): batches reuse released memory, and never memory the caller can still reach."""

from __future__ import annotations

import io
import subprocess
import sys
import weakref
from multiprocessing.reduction import ForkingPickler

import numpy as np
import pytest
import torch
from oracle import oracle

import gpudecode._memory as memory
from gpudecode import VideoDecoder
from gpudecode._memory import FramePool

SHAPE = (2, 64, 96, 3)
NBYTES = int(np.prod(SHAPE))


@pytest.fixture
def pool(monkeypatch) -> FramePool:
    """The process pool replaced by one that pools even small batches (the test videos are 96x64)."""
    p = FramePool(64 * NBYTES, min_bytes=0)
    monkeypatch.setattr(memory, "POOL", p)
    return p


def test_released_memory_is_handed_out_again(pool):
    a = memory.new_frames(SHAPE, torch.device("cpu"))
    ptr = a.data_ptr()
    del a
    b = memory.new_frames(SHAPE, torch.device("cpu"))
    assert b.data_ptr() == ptr and b.shape == SHAPE and b.is_contiguous()
    c = memory.new_frames(SHAPE, torch.device("cpu"))  # b is held: new memory
    assert c.data_ptr() != ptr


@pytest.mark.parametrize(
    "hold",
    [
        lambda t: t,
        lambda t: t[1],  # a view of one frame
        lambda t: t.permute(0, 3, 1, 2),  # the NCHW batch the decoder returns
        lambda t: t.numpy(),
        lambda t: torch.utils.dlpack.to_dlpack(t),
        lambda t: t.untyped_storage(),
    ],
    ids=["tensor", "view", "permuted", "numpy", "dlpack", "storage"],
)
def test_memory_the_caller_can_reach_is_never_reused(pool, hold):
    a = memory.new_frames(SHAPE, torch.device("cpu"))
    ptr = a.data_ptr()
    held = hold(a)
    del a
    b = memory.new_frames(SHAPE, torch.device("cpu"))
    b_ptr = b.data_ptr()
    assert b_ptr != ptr
    del b
    assert memory.new_frames(SHAPE, torch.device("cpu")).data_ptr() == b_ptr  # b's memory, free again
    del held
    c = memory.new_frames(SHAPE, torch.device("cpu"))
    assert memory.new_frames(SHAPE, torch.device("cpu")).data_ptr() in {ptr, b_ptr} - {c.data_ptr()}


def test_memory_sent_to_another_process_is_never_overwritten(pool):
    """torch.multiprocessing moves a sent tensor's storage into shared memory, which the receiver reads: the pool's
    buffer is then free (the tensor no longer uses it), and nothing the pool hands out touches the shared copy."""
    a = memory.new_frames(SHAPE, torch.device("cpu"))
    a.fill_(7)
    ptr = a.data_ptr()
    ForkingPickler(io.BytesIO()).dump(a)
    assert a.is_shared() and a.data_ptr() != ptr
    b = memory.new_frames(SHAPE, torch.device("cpu"))
    assert b.data_ptr() == ptr  # the buffer the tensor left
    b.fill_(9)
    c = memory.new_frames(SHAPE, torch.device("cpu"))
    c.fill_(9)
    assert bool((a == 7).all())


def test_the_pool_is_bounded_and_can_be_turned_off():
    p = FramePool(3 * NBYTES, min_bytes=0)
    held = [p.take(SHAPE) for _ in range(5)]
    assert p.kept_bytes == 3 * NBYTES  # the oldest let go of (still the caller's)
    assert all(torch.equal(t, t) for t in held)
    big = FramePool(3 * NBYTES, min_bytes=0)
    big.take((8, *SHAPE[1:]))  # larger than the bound: never kept
    assert big.kept_bytes == 0
    off = FramePool(0, min_bytes=0)
    off.take(SHAPE)
    assert off.kept_bytes == 0
    small = FramePool(3 * NBYTES, min_bytes=NBYTES + 1)
    small.take(SHAPE)  # below the minimum: left to the C allocator
    assert small.kept_bytes == 0
    p.clear()
    assert p.kept_bytes == 0


def test_a_shorter_batch_reuses_a_released_larger_buffer_and_misfits_are_let_go():
    """The last, shorter chunk of a read takes the full chunks' memory (up to twice its size); a released buffer
    that fits nothing is freed before new memory is allocated, so the pool adds nothing to a read's peak."""
    p = FramePool(64 * NBYTES, min_bytes=0)
    a = p.take((4, *SHAPE[1:]))
    ptr = a.data_ptr()
    (released,) = [weakref.ref(buf) for buf, _ in p._kept]
    del a
    b = p.take((3, *SHAPE[1:]))  # 3/4 of the released buffer
    assert b.data_ptr() == ptr and b.shape == (3, *SHAPE[1:])
    del b
    c = p.take((1, *SHAPE[1:]))  # a quarter: not worth holding 4x its size; the released buffer is let go of
    # The C allocator may hand the freed address straight back, so the address proves nothing: the buffer must be dead.
    assert released() is None and p.kept_bytes == NBYTES // 2 and c.shape == (1, *SHAPE[1:])


def test_the_environment_sets_the_bound():
    code = "import gpudecode._memory as m; print(m.POOL.limit_bytes)"
    for env, want in (("0", 0), ("3", 3 << 20), ("x", 512 << 20)):
        r = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env={"GPUDECODE_FRAME_POOL_MB": env}
        )
        assert r.returncode == 0, r.stderr
        assert int(r.stdout) == want


@pytest.mark.parametrize("keep", [False, True], ids=["dropped", "kept"])
def test_chunked_reads_through_the_pool_equal_the_oracle(pool, video, keep):
    """Reading in chunks reuses a dropped chunk's memory; a kept chunk is never overwritten by the next ones."""
    path = video("h264_mkv")
    frames, _, _ = oracle(path)
    dec = VideoDecoder(path)

    def check(start: int, data: torch.Tensor) -> None:
        for i, got in enumerate(data.permute(0, 2, 3, 1).numpy()):
            assert np.array_equal(got, frames[start + i].rgb), f"frame {start + i} of the chunk at {start}"

    kept, ptrs = [], set()
    for start in range(0, len(dec), 8):
        batch = dec.get_frames_in_range(start, start + 8)
        ptrs.add(batch.data.data_ptr())
        check(start, batch.data)
        if keep:
            kept.append((start, batch))
        del batch
    for start, batch in kept:
        check(start, batch.data)
    assert len(ptrs) == (len(dec) // 8 if keep else 1)
