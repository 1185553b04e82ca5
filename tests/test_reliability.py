"""Reliability: fuzz findings, concurrency, resources, and decoders that cross a fork."""

from __future__ import annotations

import gc
import os
import random
import threading

import numpy as np
import pytest
import torch
from fuzz import exercise, fuzz, mutate, run_case

import gpudecode
from gpudecode import GpudecodeError, MediaError, VideoDecoder


# -- fuzzing ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("focus", "cases", "backend"), [("file", 120, "cpu"), ("moov", 60, "cpu"), ("file", 120, "nvdec")]
)
def test_short_fuzz_run_finds_nothing(media_dir, focus, cases, backend):
    """Mutation fuzzing (under a minute each), every case in a child process (crash- and hang-safe); the NVDEC
    backend over the fake PyNvVideoCodec too (its first run found a damaged packet leaking av.error.InvalidDataError
    from the Annex B filter)."""
    corpus = media_dir / "fuzz"
    corpus.mkdir(exist_ok=True)
    seed = int(os.environ.get("GPUDECODE_FUZZ_SEED", "1"))
    report = fuzz(corpus, cases=cases, seed=seed, jobs=2, deadline_s=60, focus=focus, backend=backend)
    assert report["cases_run"] >= 20
    assert report["findings"] == [], report["findings"][:3]


def test_harness_tells_answers_crashes_and_hangs_apart():
    """A large answer once read as a "hang" (the child waits at exit for its queue to drain); keep them apart."""
    import fuzz

    kind, detail = run_case(b"", target=fuzz._answer_huge)
    assert kind == "leak" and len(detail) == 500_000
    kind, detail = run_case(b"", target=fuzz._die)
    assert (kind, detail) == ("crash", "exit code -11")
    kind, _ = run_case(b"", timeout_s=1.0, target=fuzz._stall)
    assert kind == "hang"


def test_regression_stream_without_decoder_parameters(video):
    """Fuzz finding: damaged codec parameters left FFmpeg without a decoder; an AttributeError leaked."""
    data = bytearray(video("h264_bframes").read_bytes())
    avcc = data.find(b"avcC")
    assert avcc > 0
    data[avcc + 4 : avcc + 40] = bytes(36)  # wipe the decoder configuration record
    kind, detail = run_case(bytes(data))
    assert kind == "ok", detail


@pytest.mark.parametrize("name", ["h264_bframes", "hevc8", "with_audio"])
def test_regression_mp4_tables_that_disagree_with_the_demuxer(video, name, monkeypatch):
    """Fuzz finding (seed 11, hevc8.mp4, random bytes at 4899): when the MP4 tables disagree with the demuxed
    packets, the index falls back to a packet scan on a fresh container, which read an attribute the decoder had
    not set yet (AttributeError). The fallback must work and give the oracle's frames."""
    from oracle import assert_frame_matches, oracle, to_hwc

    import gpudecode._index

    path = video(name)
    monkeypatch.setattr(gpudecode._index, "_check_against_demux", lambda *a, **k: False)
    dec = VideoDecoder(path)
    assert dec.index is not None and dec.index.method == "packet-scan"
    frames = dec.get_frames_at([0, len(dec) - 1, 5])
    for k, i in enumerate([0, len(dec) - 1, 5]):
        assert_frame_matches(name, str(path), to_hwc(frames.data[k], "NCHW"), i)
    assert len(oracle(str(path))[0]) == len(dec)


@pytest.mark.parametrize("seed", range(6))
def test_mutations_never_leak_foreign_errors_in_process(video, seed):
    """In-process variant over a few mutations (the child-process harness guards against crashes)."""
    rng = random.Random(seed)
    original = video(["h264_bframes", "h264_mkv", "vp9"][seed % 3]).read_bytes()
    data, _ = mutate(original, rng)
    assert data != original
    outcome = exercise(data)  # anything that is not a GpudecodeError propagates and fails the test
    known = {
        cls.__name__
        for cls in vars(gpudecode).values()
        if isinstance(cls, type) and issubclass(cls, gpudecode.GpudecodeError)
    }
    assert outcome == "ok" or outcome in known, outcome


def test_empty_and_tiny_inputs():
    for data in (b"\x00", b"\x00\x00\x00\x18ftypmp42", b"\x1aE\xdf\xa3" + bytes(40)):
        with pytest.raises(MediaError, match=r"Could not open|no video stream|cannot be decoded"):
            VideoDecoder(data)


# -- concurrency --------------------------------------------------------------------------------------------------
def _in_threads(work, count: int) -> list[BaseException]:
    """Run ``work(i)`` in ``count`` threads; return what they raised."""
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_threads_with_their_own_decoders_agree(video):
    path = video("hevc8")
    ref = VideoDecoder(path, num_threads=1)[:].data
    results: dict[int, torch.Tensor] = {}

    def work(i: int) -> None:
        dec = VideoDecoder(path, num_threads=1, seek_mode="exact" if i % 2 else "approximate")
        order = np.random.default_rng(i).permutation(len(dec))
        batch = dec.get_frames_at(order.tolist())
        out = torch.empty_like(batch.data)
        out[torch.from_numpy(order)] = batch.data
        results[i] = out

    errors = _in_threads(work, 6)
    assert not errors, errors
    assert len(results) == 6
    for out in results.values():
        assert torch.equal(out, ref)


def test_one_decoder_shared_by_threads_is_guarded(video):
    dec = VideoDecoder(video("h264_mkv"))
    ref = VideoDecoder(video("h264_mkv"))[:].data

    def work(i: int) -> None:
        rng = np.random.default_rng(i)
        for _ in range(20):
            k = int(rng.integers(0, len(dec)))
            assert torch.equal(dec[k], ref[k])

    errors = _in_threads(work, 4)
    assert not errors, errors


# -- resources ----------------------------------------------------------------------------------------------------
def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_10000_random_requests_keep_rss_flat(video):
    dec = VideoDecoder(video("h264_bframes"), num_threads=1)
    rng = np.random.default_rng(0)
    for _ in range(500):  # warm up allocator pools
        dec.get_frame_at(int(rng.integers(0, len(dec))))
    gc.collect()
    before = _rss_mb()
    for _ in range(10_000):
        dec.get_frame_at(int(rng.integers(0, len(dec))))
    gc.collect()
    growth = _rss_mb() - before
    assert growth < 16, f"RSS grew by {growth:.1f} MB over 10,000 requests"


@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="needs /proc")
def test_1000_open_close_cycles_leave_no_fds_or_memory(video):
    path = video("h264_mkv")
    for _ in range(50):
        with VideoDecoder(path) as d:
            d[3]
    gc.collect()
    fds, rss = _fds(), _rss_mb()
    for i in range(1000):
        with VideoDecoder(path, seek_mode="approximate" if i % 2 else "exact") as d:
            d[i % len(d)]
    gc.collect()
    assert _fds() == fds
    assert _rss_mb() - rss < 16


def test_close_releases_file_and_workers(video):
    dec = VideoDecoder(video("h264_bframes"))
    dec.get_frames_at([0, 20, 39, 10])
    fds = _fds()
    dec.close()
    assert _fds() <= fds
    with pytest.raises(GpudecodeError, match="closed"):
        dec[0]


# -- fork -----------------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_decoder_crossing_a_fork_reopens_its_file(video):
    path = video("hevc8")
    dec = VideoDecoder(path)
    ref = dec[:]
    dec[5]
    pid = os.fork()
    if pid == 0:  # child: same frames, through its own file offset and decoder
        try:
            # like a DataLoader worker: libgomp's thread pool does not survive fork, so no parallel torch ops here
            torch.set_num_threads(1)
            got = dec.get_frames_at([30, 2, 17]).data.numpy()
            ok = np.array_equal(got, ref.numpy()[[30, 2, 17]])
            os._exit(0 if ok and dec._session.pid == os.getpid() else 3)
        except BaseException:
            os._exit(4)
    # the parent keeps decoding at the same time
    assert torch.equal(dec.get_frames_at([39, 0]).data, ref[[39, 0]])
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_dataloader_fork_workers_share_nothing(video):
    path = video("h264_mkv")
    ref = VideoDecoder(path)[:].data
    dec = VideoDecoder(path)  # created in the parent, used by forked workers

    class Frames(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(dec)

        def __getitem__(self, i: int) -> torch.Tensor:
            return dec[i]

    loader = torch.utils.data.DataLoader(
        Frames(), batch_size=5, num_workers=2, multiprocessing_context="fork", shuffle=False
    )
    got = torch.cat(list(loader))
    assert torch.equal(got, ref)


def test_default_threads_follow_the_affinity_mask(video):
    """A process pinned to one CPU (a pinned DataLoader worker) decodes with one thread, not the machine's count."""
    import subprocess
    import sys

    code = (
        "import os, sys; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
        "from gpudecode import VideoDecoder; from gpudecode._session import usable_cpus; "
        f"d = VideoDecoder({str(video('h264_bframes'))!r}); "
        "print(usable_cpus(), d._session.num_threads, len(d.get_frames_at([0, 39, 20])))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1", "3"]
