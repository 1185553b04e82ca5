"""Every access call, both seek modes, every fixture: frame by frame against the sequential PyAV oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from oracle import ALL, HEADER_EXACT, assert_frame_matches, oracle, to_hwc

from gpudecode import Frame, FrameBatch, VideoDecoder

# (fixture, seek_mode) pairs where the decoder must reproduce the oracle exactly: every fixture in exact mode,
# and in approximate mode every fixture whose header is right.
CASES = [(n, "exact") for n in ALL] + [(n, "approximate") for n in HEADER_EXACT]


def _check(name, path, batch_or_frame, indices, order):
    _frames, pts, _dur = oracle(str(path))
    if isinstance(batch_or_frame, torch.Tensor):  # dec[i], dec[a:b], iter(dec): plain tensors, as in torchcodec
        data = to_hwc(batch_or_frame, order)
        data = data[None] if batch_or_frame.dim() == 3 else data
        assert data.shape[0] == len(indices)
        for k, i in enumerate(indices):
            assert_frame_matches(name, str(path), data[k], i)
        return
    if isinstance(batch_or_frame, Frame):
        assert_frame_matches(name, str(path), to_hwc(batch_or_frame.data, order), indices[0])
        assert batch_or_frame.pts_seconds == pytest.approx(pts[indices[0]], abs=1e-9)
        return
    assert isinstance(batch_or_frame, FrameBatch)
    data = to_hwc(batch_or_frame.data, order)
    assert data.shape[0] == len(indices)
    assert batch_or_frame.pts_seconds.dtype == torch.float64
    for k, i in enumerate(indices):
        assert_frame_matches(name, str(path), data[k], i)
    np.testing.assert_allclose(batch_or_frame.pts_seconds.numpy(), pts[list(indices)], atol=1e-9)


@pytest.fixture(params=["NCHW", "NHWC"])
def order(request):
    return request.param


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_getitem_int_and_negative(video, name, mode):
    path = video(name)
    n = len(oracle(str(path))[0])
    with VideoDecoder(path, seek_mode=mode) as dec:
        assert len(dec) == n
        for i in (0, n // 2, n - 1, -1, -n):
            frame = dec[i]
            assert isinstance(frame, torch.Tensor) and frame.dim() == 3
            _check(name, path, frame, [i % n], "NCHW")


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_slices(video, name, mode, order):
    path = video(name)
    n = len(oracle(str(path))[0])
    dec = VideoDecoder(path, seek_mode=mode, dimension_order=order)
    for sl in (slice(None), slice(3, 17, 4), slice(-5, None), slice(None, None, 7)):
        _check(name, path, dec[sl], list(range(n))[sl], order)
    b = dec[5:5]
    assert isinstance(b, torch.Tensor) and b.shape[0] == 0 and b.dtype == torch.uint8


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_get_frame_at(video, name, mode):
    path = video(name)
    n = len(oracle(str(path))[0])
    dec = VideoDecoder(path, seek_mode=mode)
    for i in (n - 1, 0, 7, 7, 3):  # backwards, repeated, forward within a GOP
        f = dec.get_frame_at(i)
        _check(name, path, f, [i], "NCHW")
        assert f.data.shape[0] == 3 and f.data.dtype == torch.uint8


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_get_frames_at_any_order_with_duplicates(video, name, mode, order):
    path = video(name)
    n = len(oracle(str(path))[0])
    rng = np.random.default_rng(len(name))
    idx = [int(x) for x in rng.integers(0, n, 12)] + [n - 1, 0, 5, 5, -2]
    dec = VideoDecoder(path, seek_mode=mode, dimension_order=order)
    batch = dec.get_frames_at(idx)
    _check(name, path, batch, [i % n for i in idx], order)
    # tensors and arrays work as index lists too
    batch2 = dec.get_frames_at(torch.tensor(idx[:4]))
    _check(name, path, batch2, [i % n for i in idx[:4]], order)


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_get_frames_in_range(video, name, mode):
    path = video(name)
    n = len(oracle(str(path))[0])
    dec = VideoDecoder(path, seek_mode=mode)
    for start, stop, step in ((0, n, 1), (2, n - 3, 5), (n - 4, n, 2), (-6, -1, 1)):
        _check(name, path, dec.get_frames_in_range(start, stop, step), list(range(n))[start:stop:step], "NCHW")


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_get_frame_played_at(video, name, mode):
    path = video(name)
    _, pts, dur = oracle(str(path))
    dec = VideoDecoder(path, seek_mode=mode)
    n = len(pts)
    for i in (0, n // 3, n - 1):
        for frac in (0.0, 0.5, 0.99):
            t = pts[i] + frac * dur[i]
            _check(name, path, dec.get_frame_played_at(t), [i], "NCHW")


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_get_frames_played_at(video, name, mode):
    path = video(name)
    _, pts, dur = oracle(str(path))
    rng = np.random.default_rng(3)
    n = len(pts)
    idx = [int(x) for x in rng.integers(0, n, 10)] + [0, n - 1, 4, 4]
    times = [pts[i] + 0.4 * dur[i] for i in idx]
    dec = VideoDecoder(path, seek_mode=mode)
    _check(name, path, dec.get_frames_played_at(times), idx, "NCHW")
    _check(name, path, dec.get_frames_played_at(torch.tensor(times[:3])), idx[:3], "NCHW")


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_get_frames_played_in_range(video, name, mode):
    path = video(name)
    _, pts, dur = oracle(str(path))
    n = len(pts)
    dec = VideoDecoder(path, seek_mode=mode)
    a, b = 3, min(n - 1, 14)
    t0 = pts[a] + 0.5 * dur[a]  # inside frame a: frame a is shown during the range
    t1 = pts[b]  # frame b starts exactly at stop: excluded
    _check(name, path, dec.get_frames_played_in_range(t0, t1), list(range(a, b)), "NCHW")
    assert len(dec.get_frames_played_in_range(t0, t0)) == 0


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_get_all_frames(video, name, mode):
    path = video(name)
    n = len(oracle(str(path))[0])
    _check(name, path, VideoDecoder(path, seek_mode=mode).get_all_frames(), list(range(n)), "NCHW")


@pytest.mark.parametrize(("name", "mode"), CASES)
@pytest.mark.parametrize("fps", [7.3, 25, 61])
def test_resampling_to_fps(video, name, mode, fps):
    """torchcodec's fps=: round((stop - start) * fps) frames, each the one shown at start + k / fps."""
    path = video(name)
    _, pts, dur = oracle(str(path))
    n = len(pts)
    dec = VideoDecoder(path, seek_mode=mode)
    t0 = pts[2] + 0.3 * dur[2]
    t1 = pts[min(n - 1, 20)] + 0.2 * dur[min(n - 1, 20)]
    batch = dec.get_frames_played_in_range(t0, t1, fps=fps)
    count = int(np.floor((t1 - t0) * fps + 0.5))
    times = t0 + np.arange(count) * (1.0 / fps)
    shown = np.searchsorted(pts, times, side="right") - 1  # the oracle's frame playing at each time
    assert len(batch) == count
    np.testing.assert_array_equal(batch.pts_seconds.numpy(), times)
    np.testing.assert_array_equal(batch.duration_seconds.numpy(), np.full(count, 1.0 / fps))
    data = to_hwc(batch.data, "NCHW")
    for k, i in enumerate(shown):
        assert_frame_matches(name, str(path), data[k], int(i))


@pytest.mark.parametrize("mode", ["exact", "approximate"])
def test_get_all_frames_resampled(video, mode):
    dec = VideoDecoder(video("h264_bframes"), seek_mode=mode)
    m = dec.metadata
    every = dec.get_all_frames(fps=10)
    want = dec.get_frames_played_in_range(m.begin_stream_seconds, m.end_stream_seconds, fps=10)
    assert len(every) == round((m.end_stream_seconds - m.begin_stream_seconds) * 10)
    assert torch.equal(every.data, want.data) and torch.equal(every.pts_seconds, want.pts_seconds)
    assert len(dec.get_frames_played_in_range(m.begin_stream_seconds, m.begin_stream_seconds, fps=10)) == 0


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_iteration_matches_sequence(video, name, mode):
    path = video(name)
    n = len(oracle(str(path))[0])
    dec = VideoDecoder(path, seek_mode=mode, dimension_order="NHWC")
    count = 0
    for i, frame in enumerate(dec):
        assert isinstance(frame, torch.Tensor) and frame.shape[-1] == 3  # NHWC, one frame
        _check(name, path, frame, [i], "NHWC")
        count += 1
    assert count == n


@pytest.mark.parametrize("name", [n for n in ALL if n not in HEADER_EXACT])
def test_approximate_mode_returns_real_frames_where_header_is_wrong(video, name):
    """Where the header misleads, approximate mode still returns genuine frames (never garbage or errors)."""
    path = video(name)
    _frames, pts, _ = oracle(str(path))
    dec = VideoDecoder(path, seek_mode="approximate", dimension_order="NHWC")
    batch = dec.get_frames_at(list(range(0, len(dec), 3)))
    for k in range(len(batch)):
        p = batch.pts_seconds[k].item()
        i = int(np.argmin(np.abs(pts - p)))
        assert abs(pts[i] - p) < 1e-6
        assert_frame_matches(name, str(path), batch.data[k].numpy(), i)


@pytest.mark.parametrize("name", ["h264_bframes", "hevc8", "h264_open_gop", "vp9", "editlist"])
def test_exact_batch_is_planned(video, name):
    """Sorted, de-duplicated, each GOP at most once, only requested frames converted."""
    path = video(name)
    dec = VideoDecoder(path)
    n = len(dec)
    idx = [n - 1, 1, 2, 1, n // 2, 0, n - 1, n // 2 + 1]
    dec.get_frames_at(idx)
    s = dec.stats
    assert s.frames_converted == len(set(idx))
    assert s.packets_fed <= n + 3  # every packet at most once (plus discarded leading packets)
    assert s.seeks <= dec.index.num_keyframes
    # A forward request inside the GOP just decoded continues without seeking.
    dec.get_frames_at([0])
    dec.get_frames_at([1])
    assert dec.stats.seeks == 0


def test_sequential_calls_continue_forward(video):
    dec = VideoDecoder(video("h264_mkv"))
    dec[0]
    for i in range(1, 6):
        dec[i]
        assert dec.stats.seeks == 0
    dec[2]  # backwards needs a seek
    assert dec.stats.seeks == 1


@pytest.mark.parametrize("kind", ["shifted", "ntsc_film"])
def test_approximate_mode_targets_the_middle_of_each_nominal_interval(media_dir, kind):
    """Approximate mode asks for the frame shown at the middle of frame i's nominal interval, not at its start: real
    timestamps drift from the nominal grid (here every frame after the first is 12 ms late on a 40 ms grid, which
    puts each nominal start inside the previous frame; or 23.976 fps rounded to milliseconds), the middle stays in
    frame i. Every frame by index (single, batch, range, iteration) == the PyAV decode's frame at that index."""
    from fractions import Fraction

    from media import Spec, make_video

    options = {"g": "10", "bf": "2", "preset": "veryfast"}
    if kind == "shifted":
        spec = Spec(
            kind,
            container="matroska",
            num_frames=30,
            options=options,
            pts_list=tuple([0] + [40 * i + 12 for i in range(1, 30)]),
        )
    else:
        spec = Spec(kind, container="matroska", num_frames=30, fps=Fraction(24000, 1001), options=options)
    path = make_video(spec, media_dir / f"{kind}.mkv")
    _frames, pts, _dur = oracle(str(path))
    dec = VideoDecoder(path, seek_mode="approximate", dimension_order="NHWC")
    assert len(dec) == len(pts) == 30
    singles = [dec.get_frame_at(i) for i in range(len(dec))]
    np.testing.assert_allclose([f.pts_seconds for f in singles], pts, atol=1e-9)
    for i, f in enumerate(singles):
        assert_frame_matches(spec.name, str(path), f.data.numpy(), i)
    batch = dec.get_frames_at(list(range(29, -1, -3)))
    np.testing.assert_allclose(batch.pts_seconds.numpy(), pts[29::-3], atol=1e-9)
    assert torch.equal(dec[3:27], torch.stack([f.data for f in singles[3:27]]))
    assert torch.equal(torch.stack(list(dec)), torch.stack([f.data for f in singles]))
