"""The seek modes' own decisions, against values written out by hand and against a plain PyAV demux (issue 11)."""

from __future__ import annotations

import re
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from gpudecode import DecodeError, MediaError, VideoDecoder
from gpudecode._seek_mode import ApproximateMode, Header, approx_key_locator

FACTS = {"stream_duration": None, "container_duration": None, "start_time": None, "frames": None, "rate": [25, 1]}
NTSC = Fraction(30000, 1001)


def approx(duration=None, frames=None, fps=Fraction(25), begin=None, begin_pts=0, tb=Fraction(1, 1000)):
    return ApproximateMode(tb, Header(duration, frames, fps, begin, begin_pts))


def test_the_header_without_durations_or_start():
    h = Header.from_facts(FACTS, Fraction(1, 1000))
    assert (h.duration_seconds, h.num_frames, h.fps, h.begin_seconds, h.begin_pts) == (None, None, 25, None, 0)


def test_the_header_prefers_the_stream_duration_and_reads_the_start():
    tb = Fraction(1, 1000)
    h = Header.from_facts({**FACTS, "stream_duration": 3000, "container_duration": 5_000_000, "start_time": 500}, tb)
    assert (h.duration_seconds, h.begin_seconds, h.begin_pts) == (3.0, 0.5, 500)
    assert Header.from_facts({**FACTS, "container_duration": 5_000_000}, tb).duration_seconds == 5.0


NO_COUNT = (
    "The header gives neither a frame count nor a duration and frame rate, so approximate mode cannot index it. "
    "Use seek_mode='exact' (one scan of the packets; raw H.264/HEVC elementary streams such as .h264/.265 files "
    "open that way)."
)
NO_RATE = "The header gives no frame rate, so approximate mode cannot place frames. Use seek_mode='exact'."


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ({}, NO_COUNT),
        ({"duration": 2.0, "fps": None}, NO_COUNT),  # a duration is no count without a rate
        ({"frames": 10, "fps": None}, NO_RATE),
    ],
)
def test_approximate_mode_refuses_a_header_that_cannot_place_frames(header, message):
    with pytest.raises(MediaError, match=f"^{re.escape(message)}$"):
        approx(**header)


def test_approximate_extent_from_a_duration_and_rate():
    e = approx(duration=2.0, fps=Fraction(25)).extent
    assert (e.num_frames, e.duration_seconds, e.average_fps, e.begin_seconds, e.end_seconds) == (
        50,
        2.0,
        25.0,
        0.0,
        2.0,
    )


def test_approximate_extent_from_a_count_and_a_start():
    e = approx(frames=10, fps=Fraction(25), begin=1.5, begin_pts=1500).extent
    assert (e.num_frames, e.duration_seconds, e.begin_seconds) == (10, None, 1.5)
    assert e.end_seconds == pytest.approx(1.9)  # begin + 10 frames at 25 fps


@pytest.mark.parametrize(
    ("fps", "tb", "want"), [(Fraction(1000), Fraction(1, 1000), 1), (NTSC, Fraction(1, 90000), 3003)]
)
def test_approximate_nominal_duration_is_one_frame_interval(fps, tb, want):
    assert approx(frames=10, fps=fps, tb=tb).nominal_duration() == want


def test_approximate_targets_are_interval_middles_in_integer_units():
    """Frame i at NTSC rate in a 1/90000 time base: middle = (2i + 1) * 1501.5 ticks, floored."""
    r = approx(frames=10, fps=NTSC, tb=Fraction(1, 90000), begin_pts=900).for_indices(np.array([2, 0, 2]))
    assert r.targets.dtype == np.int64 and r.targets.tolist() == [900 + 1501, 900 + 7507]
    assert r.labels.tolist() == [0, 2] and r.count == 3
    assert [p.tolist() for p in r.positions] == [[1], [0, 2]]


def test_approximate_times_are_floored_to_ticks_and_named_by_their_frame():
    r = approx(frames=100, fps=NTSC, tb=Fraction(1, 90000)).for_times(np.array([0.5, 0.1, 0.5]))
    assert r.targets.dtype == np.int64 and r.targets.tolist() == [9000, 45000]
    assert r.labels.tolist() == [2, 14]  # 0.1 s and 0.5 s into frames of 1001/30000 s
    assert [p.tolist() for p in r.positions] == [[1], [0, 2]]


def _keyframes_by_dts(path) -> tuple[list[int], list[int]]:
    """(dts, pts) of every keyframe packet, from a plain PyAV demux."""
    with av.open(str(path)) as c:
        keys = [(p.dts, p.pts) for p in c.demux(video=0) if p.size and p.is_keyframe]
    return [k[0] for k in keys], [k[1] for k in keys]


def test_approx_key_locator_names_and_seeks_to_the_keyframe_at_or_before_a_time(video):
    """MP4: FFmpeg's sample index. For every decode time, ``key_of`` picks the last keyframe at or before it, and
    seeking to ``key_ts`` of that keyframe lands exactly on it (the first packet is that keyframe)."""
    path = video("h264_bframes")
    key_dts, key_pts = _keyframes_by_dts(path)
    dec = VideoDecoder(path, seek_mode="approximate")
    demuxer = dec._session.pipe.demuxer
    key_of, key_ts = approx_key_locator(demuxer, dec._mode.header.begin_pts)
    with av.open(str(path)) as c:
        all_dts = [p.dts for p in c.demux(video=0) if p.size]
    seen = {}
    for t in range(all_dts[0], all_dts[-1] + 1, 7):
        k = key_of(t)
        want = max(i for i, d in enumerate(key_dts) if d <= t) if t >= key_dts[0] else 0
        seen.setdefault(want, k)
        assert seen[want] == k, f"time {t}: keyframes {want} and another share no ordinal"
    assert len(set(seen.values())) == len(key_dts)  # one ordinal per keyframe
    for want, k in seen.items():
        first = next(p for p in demuxer.seek(key_ts(k)))
        assert first.is_keyframe and first.pts == key_pts[want], f"keyframe {want}"


def test_approx_key_locator_without_a_usable_index_names_no_keyframe(video, tmp_path):
    """A container without an index (MPEG-TS): every time maps to the 'no index' ordinal; seeks go to the start."""
    path = tmp_path / "remux.ts"
    with av.open(str(video("h264_bframes"))) as src, av.open(str(path), "w", format="mpegts") as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for p in src.demux(video=0):
            if p.size:
                p.stream = out
                dst.mux(p)
    dec = VideoDecoder(path, seek_mode="approximate")
    assert len(dec._session.pipe.demuxer.stream.index_entries) == 0  # what this test is about
    key_of, key_ts = approx_key_locator(dec._session.pipe.demuxer, 1234)
    assert key_of(10_000) == 1 << 62 and key_ts(0) == 1234


def test_a_jump_to_a_later_gop_decodes_from_its_keyframe(video):
    """Approximate mode with a container index: after frame 5, frame 29 is reached by seeking to its keyframe
    (frame 24: keyframes every 12 frames), not by decoding the 24 frames in between."""
    for name in ("h264_bframes", "h264_mkv"):
        dec = VideoDecoder(video(name), seek_mode="approximate")
        dec.get_frames_at([5])
        dec.get_frames_at([29])
        stats = dec._session.pipe.planner.stats
        assert stats.seeks == 1 and stats.frames_decoded <= 12, (name, vars(stats))


@pytest.mark.parametrize(
    ("mode", "first_lost", "by_index", "by_time"),
    [("exact", 7, "[7, 9]", "[7]"), ("approximate", 0, "[3, 7, 9]", "[0, 7]")],
)
def test_lost_frames_are_named_by_their_index_for_indices_and_times(video, mode, first_lost, by_index, by_time):
    """The error names the frames asked for (by index, or the frame at the time asked for), not timestamps. The
    backend loses every frame from ``first_lost`` on. Approximate mode takes the last frame before a gap as the
    frame shown then, so there only a stream that yields nothing has missing frames."""
    dec = VideoDecoder(video("h264_bframes"), seek_mode=mode, num_threads=1)  # one planner, one patched backend
    ref = VideoDecoder(video("h264_bframes"))
    lost_pts = round(float(ref.get_frame_at(first_lost).pts_seconds) / float(dec._state.time_base))
    backend = dec._session.pipe.backend
    decode, flush = backend.decode, backend.flush
    backend.decode = lambda packet, wanted=True: [f for f in decode(packet, wanted) if f.pts < lost_pts]
    backend.flush = lambda: [f for f in flush() if f.pts < lost_pts]
    backend.set_threads = lambda n: False  # no single-thread retry: it would lose the frames again anyway
    with pytest.raises(DecodeError, match=rf"^Could not decode frame\(s\) {re.escape(by_index)}: "):
        dec.get_frames_at([9, 7, 3, 9])
    t = float(ref.get_frame_at(7).pts_seconds) + 0.001
    with pytest.raises(DecodeError, match=rf"^Could not decode frame\(s\) {re.escape(by_time)}: "):
        dec.get_frames_played_at([t, 0.0])
    if first_lost:
        assert torch.equal(dec.get_frame_at(3).data, ref.get_frame_at(3).data)


def test_exact_mode_reports_the_index_durations_whatever_the_decoder_says(video, tmp_path):
    """Decoders that drop frame durations (FFmpeg after some filters, NVDEC surfaces) must not change what exact
    mode reports: every frame's duration is the packet's, as a plain PyAV demux gives it (the variable-rate
    fixture remuxed to MP4, whose sample tables give each packet its own duration)."""
    path = tmp_path / "vfr.mp4"
    with av.open(str(video("vfr"))) as src, av.open(str(path), "w") as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for p in src.demux(video=0):
            if p.size:
                p.stream = out
                dst.mux(p)
    with av.open(str(path)) as c:
        tb = c.streams.video[0].time_base
        want = dict(sorted((p.pts, p.duration) for p in c.demux(video=0) if p.size))
    dec = VideoDecoder(path, num_threads=1)  # one planner: every frame comes through the patched backend
    backend = dec._session.pipe.backend
    decode, flush = backend.decode, backend.flush

    def without_durations(frames):
        for f in frames:
            f.duration = 0
        return frames

    backend.decode = lambda packet, wanted=True: without_durations(decode(packet, wanted))
    backend.flush = lambda: without_durations(flush())
    got = dec.get_frames_at([8, 0, 21, 8, 9])
    durations = [float(d * tb) for d in (want[p] for p in sorted(want))]
    assert got.duration_seconds.tolist() == pytest.approx([durations[i] for i in (8, 0, 21, 8, 9)], abs=1e-9)
    assert len(set(want.values())) > 1  # variable: no single fallback duration could stand in for them


def test_exact_extent_and_nominal_duration_come_from_the_index():
    """Eight frames of 100 ms from 0.3 s (a stream shorter than a second): 10 frames/s, whatever the header says."""
    from gpudecode._index import _from_packets
    from gpudecode._seek_mode import ExactMode

    pts = 300 + np.arange(8) * 100
    key = np.zeros(8, dtype=bool)
    key[0] = True
    idx = _from_packets(pts, np.full(8, 100), key, np.zeros(8, dtype=bool), pts, Fraction(1, 1000), "", 0, "x")
    mode = ExactMode(idx, Fraction(1, 1000), Header(5.0, 125, Fraction(25), 0.0, 0))
    e = mode.extent
    assert (e.num_frames, e.begin_seconds, e.end_seconds, e.duration_seconds) == (8, 0.3, 1.1, pytest.approx(0.8))
    assert e.average_fps == pytest.approx(10.0)
    assert (e.num_frames_from_content, e.begin_seconds_from_content, e.end_seconds_from_content) == (8, 0.3, 1.1)
    assert mode.nominal_duration() == 100


def test_approx_key_locator_before_the_first_keyframe_names_the_first(video):
    dec = VideoDecoder(video("h264_bframes"), seek_mode="approximate")
    key_of, _ = approx_key_locator(dec._session.pipe.demuxer, dec._mode.header.begin_pts)
    with av.open(str(video("h264_bframes"))) as c:
        first_dts = next(p.dts for p in c.demux(video=0) if p.size)
    assert key_of(first_dts - 10_000) == 0


def test_a_header_without_a_rate_has_no_fps():
    assert Header.from_facts({**FACTS, "rate": None}, Fraction(1, 1000)).fps is None


def test_approximate_times_name_the_frame_of_their_interval_clipped_to_the_stream():
    """Ten 40 ms frames from 0.9 s: 0.0 s is before the first (frame 0), 0.95 s in frame 1 (0.94-0.98), 1.0 s in
    frame 2 (0.98-1.02), 5.0 s past the last (frame 9)."""
    r = approx(frames=10, fps=Fraction(25), begin=0.9, begin_pts=900).for_times(np.array([5.0, 0.95, 0.0, 1.0]))
    assert r.targets.tolist() == [0, 950, 1000, 5000]
    assert r.labels.dtype == np.int64 and r.labels.tolist() == [0, 1, 2, 9]


def test_exact_mode_reports_a_lost_last_frame_instead_of_repeating_the_one_before(video):
    """When only the stream's last frame is lost, the drain still returns the frames before it: exact mode must name
    the lost one, never fill it with the newest frame it has (approximate mode's rule past a header's over-count)."""
    dec = VideoDecoder(video("h264_bframes"), num_threads=1)
    n = len(dec)
    last_pts = round(float(dec.get_frame_at(n - 1).pts_seconds) / float(dec._state.time_base))
    backend = dec._session.pipe.backend
    decode, flush = backend.decode, backend.flush
    backend.decode = lambda packet, wanted=True: [f for f in decode(packet, wanted) if f.pts != last_pts]
    backend.flush = lambda: [f for f in flush() if f.pts != last_pts]
    backend.set_threads = lambda n: False
    with pytest.raises(DecodeError, match=rf"^Could not decode frame\(s\) \[{n - 1}\]: "):
        dec.get_frames_at([n - 3, n - 1])
    with pytest.raises(DecodeError, match=rf"^Could not decode frame\(s\) \[{n - 1}\]: "):
        dec.get_frames_in_range(n - 5, n)
