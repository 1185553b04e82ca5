"""The planner's decisions, with faults injected into the real demuxer.

Demuxers do not always land where asked: FFmpeg's mov demuxer compares a seek time with decode timestamps and can
land one keyframe late; some land early. ``Wayward`` (tests/wayward.py) wraps the decoder's own PyAVDemuxer and,
after each seek, lands ``late`` keyframes after where FFmpeg put it (or restarts from the first packet, ``early``).
Whatever the demuxer does, the frames must be the oracle's (the ffmpeg CLI's pixels, a plain PyAV decode's pts), and
the seek and packet counters must say the planner did only the work needed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import av
import numpy as np
import pytest
import torch
from oracle import oracle
from wayward import check_batch, open_wayward

from gpudecode import VideoDecoder

FIXTURES = ["h264_bframes", "h264_mkv", "hevc8", "vp9", "h264_open_gop"]


def _key_frames(path) -> list[int]:
    """Frame numbers (presentation order) of the keyframes, from a plain PyAV decode."""
    with av.open(str(path)) as c:
        return [i for i, f in enumerate(c.decode(video=0)) if f.key_frame]


# Backwards, then forwards over several GOPs, with repeats: every request needs a seek.
ORDER = [39, 2, 30, 11, 25, 0, 17, 33, 5, 39, 22]


@pytest.mark.parametrize("late", [1, 2])
@pytest.mark.parametrize("name", FIXTURES)
def test_exact_mode_steps_back_when_the_demuxer_lands_late(video, name, late):
    path = video(name)
    dec, w = open_wayward(path, "exact", late=late)
    for i in ORDER:
        check_batch(name, path, dec.get_frames_at([i]), [i])
    assert len(w.seeks) > len(ORDER)  # it did land late, and the planner seeked again from further back
    check_batch(name, path, dec.get_frames_at(ORDER), ORDER)


@pytest.mark.parametrize("name", ["h264_bframes", "hevc8", "vp9", "h264_open_gop"])
def test_exact_mode_with_a_demuxer_landing_early(video, name):
    path = video(name)
    dec, _ = open_wayward(path, "exact", early=True)
    check_batch(name, path, dec.get_frames_at(ORDER), ORDER)
    for i in ORDER[:4]:
        check_batch(name, path, dec.get_frames_at([i]), [i])


@pytest.mark.parametrize(
    ("name", "late"),
    [
        ("h264_bframes", 1),
        ("h264_bframes", 3),
        ("h264_mkv", 1),
        ("h264_mkv", 3),
        ("hevc8", 1),
        ("hevc8", 3),
        ("vp9", 3),  # (its WebM cues name few keyframes: landing one late never passes these targets)
    ],
)
def test_approximate_mode_detects_overshoot_after_a_seek(video, name, late):
    path = video(name)
    dec, w = open_wayward(path, "approximate", late=late)
    plain, honest = open_wayward(path, "approximate")
    for i in ORDER:
        check_batch(name, path, dec.get_frames_at([i]), [i])
        plain.get_frames_at([i])
    assert len(w.seeks) > len(honest.seeks)  # it did overshoot, and the planner seeked again from further back
    times = [float(x) for x in oracle(str(path))[1][ORDER]]
    batch = dec.get_frames_played_at(times)
    check_batch(name, path, batch, ORDER)
    check_batch(name, path, dec.get_frames_in_range(13, 29), list(range(13, 29)))


@pytest.mark.parametrize("name", ["h264_bframes", "hevc8", "vp9", "h264_mkv"])
def test_exact_mode_seeks_only_where_a_keyframe_is_needed(video, name):
    """Forward requests in the same GOP continue decoding; a GOP further on, or any step back, seeks once.

    (``stats`` counts the last call's work.)
    """
    path = video(name)
    keys = _key_frames(path)
    assert len(keys) >= 4
    dec, _ = open_wayward(path, "exact")
    k1, k2, k3 = keys[1:4]

    def seeks(indices: list[int]) -> int:
        check_batch(name, path, dec.get_frames_at(indices), indices)
        return dec.stats.seeks

    assert seeks([k1]) == 1
    assert seeks([k1 + 1]) == 0, "forward inside one GOP must not seek"
    assert seeks([k2 - 1]) == 0, "forward inside one GOP must not seek"
    assert seeks([k3 + 1]) == 1, "a GOP further on starts at its keyframe"
    assert seeks([k3 + 2]) == 0
    assert seeks([k2]) == 1, "a step back seeks"
    assert seeks([k1, k1 + 1, k2 - 1]) == 1
    assert seeks([k2 - 1, k1]) == 1, "one batch, sorted: one seek"
    assert seeks([0, k3 + 1]) == 2
    assert 1 <= seeks(list(range(len(dec)))) <= len(keys)


@pytest.mark.parametrize("name", ["h264_bframes", "vp9", "h264_mkv"])
def test_approximate_mode_continues_forward_and_seeks_back(video, name):
    """Approximate mode seeks a margin before each target (so how far ahead it continues depends on the margin)."""
    path = video(name)
    dec, _ = open_wayward(path, "approximate")
    k1 = _key_frames(path)[1]
    for indices, want in (([k1], 1), ([k1 + 1], 0), ([k1 + 2, k1 + 3], 0), ([k1], 1), ([0], 1), ([1, 2], 0)):
        check_batch(name, path, dec.get_frames_at(indices), indices)
        assert dec.stats.seeks == want, indices


def test_a_seek_landing_late_exactly_on_the_target_frame_is_not_an_overshoot(video):
    """A demuxer one keyframe late, asked for the time a keyframe starts: the first output is that frame (it starts
    at the target, not after it), so it is taken without another seek, by time (``run``) and by range (a sequence).

    (An H.264 MP4, whose sync-sample table names exactly the decoder's keyframes; x265's MP4 lists more sync samples
    and the MKV's cues fewer, so there the seek lands elsewhere.)
    """
    name = "h264_bframes"
    path = video(name)
    dec, w = open_wayward(path, "approximate", late=1)
    k = _key_frames(path)[2]
    t = float(oracle(str(path))[1][k])
    check_batch(name, path, dec.get_frames_played_at([t]), [k])
    assert dec.stats.seeks == 1 and len(w.seeks) == 1
    pl = dec._session.pipe.planner
    pl.invalidate()
    with av.open(str(path)) as c:  # a sequence from the keyframe's own pts (ranges start mid-interval)
        pts = [f.pts for f in c.decode(video=0)]
    got: list[int] = []
    assert pl.run_sequence(pts[k], 2, 1, lambda _j, _f, p, _d: got.append(p)) == 2
    assert got == pts[k : k + 2] and len(w.seeks) == 2


def test_groups_split_targets_where_a_seek_is_needed():
    """``Planner.groups``: independent decode runs (a new one where the next target's start keyframe lies beyond the
    keyframe interval of the previous target) and their cost in frames, worked out by hand."""
    from gpudecode._planner import Planner
    from gpudecode._targets import ExactTargets, TimeTargets

    exact = Planner(demuxer=None, backend=None, targets=ExactTargets(np.array([0, 100, 200, 300])), nominal_duration=10)
    targets = np.array([5, 50, 105, 150, 195, 250, 260, 305])
    start_keys = np.array([0, 0, 1, 1, 1, 2, 2, 3])  # 195: a leading picture of keyframe 200 (starts at 100)
    assert exact.groups(targets, start_keys) == [(0, 2, 6), (2, 5, 10), (5, 7, 7), (7, 8, 1)]
    assert exact.groups(targets[:0], start_keys[:0]) == []
    assert exact.groups(np.array([300]), np.array([3])) == [(0, 1, 1)]
    # a target exactly at a keyframe belongs to that keyframe's interval
    assert exact.groups(np.array([90, 100, 110]), np.array([0, 1, 1])) == [(0, 1, 10), (1, 3, 2)]
    assert exact.groups(targets, None) == [(0, 8, 8)]  # no start keys: nothing to split by
    fine = Planner(demuxer=None, backend=None, targets=ExactTargets(np.array([0, 100])), nominal_duration=1)
    assert fine.groups(np.array([3, 150]), np.array([0, 1])) == [(0, 1, 4), (1, 2, 51)]

    approx = Planner(
        demuxer=None,
        backend=None,
        targets=TimeTargets(key_of=lambda ts: ts // 100, seek_margin=20),
        nominal_duration=10,
    )
    # need = key_of(t - margin), run key = key_of(t): a new run where need > the previous target's key
    assert approx.groups(np.array([5, 50, 110, 130, 250, 330]), None) == [(0, 4, 15), (4, 5, 3), (5, 6, 3)]
    blind = Planner(demuxer=None, backend=None, targets=TimeTargets(), nominal_duration=10)  # no index: one run
    assert blind.groups(np.array([5, 500, 900]), None) == [(0, 3, 3)]


@pytest.mark.parametrize("name", ["h264_bframes", "h264_mkv", "vp9"])
def test_a_demuxer_that_never_delivers_after_a_seek_ends_in_a_restart(video, name):
    """Every seek lands past the end (nothing comes out): after four tries from ever further back the planner reads
    from the first packet, so the frames still come, by index, time, range and iteration."""
    path = video(name)
    for mode in ("approximate", "exact"):
        dec, w = open_wayward(path, mode, late=99)
        for i in (30, 5, 22):
            check_batch(name, path, dec.get_frames_at([i]), [i])
        check_batch(name, path, dec.get_frames_in_range(17, 25), list(range(17, 25)))
        assert len(w.seeks) >= 4


@pytest.mark.parametrize("name", ["h264_bframes", "h264_mkv", "vp9", "hevc8"])
def test_approximate_ranges_take_consecutive_outputs_with_one_seek(video, name):
    """A range in approximate mode: one seek, each frame converted once, pts and durations those of the frames."""
    path = video(name)
    dec, _ = open_wayward(path, "approximate")
    _frames, _, dur = oracle(str(path))
    for lo, hi, step in ((13, 29, 1), (0, 40, 3), (31, 40, 2)):
        batch = dec.get_frames_in_range(lo, hi, step)
        want = list(range(lo, hi, step))
        check_batch(name, path, batch, want)
        np.testing.assert_allclose(batch.duration_seconds.numpy(), dur[want], atol=1e-9)
        assert dec.stats.seeks == 1 and dec.stats.frames_converted == len(want)


def _long_audio(tmp_path, bframes: int = 2):
    """An MKV with 1 s of 25 fps video and 1.5 s of audio: its header gives the longer duration."""
    from oracle import run_ffmpeg

    path = tmp_path / f"long_audio_bf{bframes}.mkv"
    run_ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=96x64:r=25:d=1",
        "-f",
        "lavfi",
        "-i",
        "sine=d=1.5",
        "-c:v",
        "libx264",
        "-bf",
        str(bframes),
        "-g",
        "10",
        "-c:a",
        "flac",
        str(path),
    )
    return path


def test_approximate_mode_past_the_real_end_repeats_the_last_frame(tmp_path):
    """A header that over-counts (here an MKV whose audio outlasts its 1 s of video, so the duration the header gives
    is 1.5 s): in approximate mode the frames past the real end are the last frame, by index, range and iteration.
    Oracle: a plain PyAV decode (25 frames) and the CLI's pixels."""
    path = _long_audio(tmp_path)
    _frames, pts, dur = oracle(str(path))
    assert len(pts) == 25
    dec = VideoDecoder(path, seek_mode="approximate", num_threads=1)
    n = len(dec)
    assert n > 30, "the header must over-count for this test"
    want = [min(i, 24) for i in range(n)]
    check_batch("long_audio", path, dec.get_frames_in_range(0, n), want)
    assert torch.equal(dec[20:n], dec.get_frames_at(list(range(20, n))).data)
    tail = dec.get_frames_at([n - 1, 24, 3])
    check_batch("long_audio", path, tail, [24, 24, 3])
    assert torch.equal(torch.stack(list(dec)), dec[:])  # iteration: a later chunk continues past the end
    check_batch("long_audio", path, dec.get_frames_in_range(30, n), [24] * (n - 30))  # a range wholly past the end
    check_batch("long_audio", path, dec.get_frames_in_range(n - 1, n), [24])
    np.testing.assert_allclose(
        dec.get_frames_in_range(22, n).duration_seconds.numpy(), dur[[min(i, 24) for i in range(22, n)]]
    )


def _long_last_frame(tmp_path) -> Any:
    """20 frames of H.264 in MKV, 40 ms apart, whose last frame lasts 1 s (its block carries the duration), and 3 s
    of audio: the header's 3 s at 25 fps over-counts the frames (75), some targets lie past the last frame's end,
    and its duration is not the usual one."""
    from fractions import Fraction

    path = tmp_path / "long_last.mkv"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25, options={"bf": "0", "g": "10"})
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        a = out.add_stream("pcm_s16le", rate=8000, layout="mono")  # 3 s of silence: the header outlasts the video
        frames = []
        for i in range(20):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 12, np.uint8), format="rgb24").reformat(
                format="yuv420p"
            )
            f.pts, f.time_base = i * 40, Fraction(1, 1000)
            frames.append(f)
        for pkt in [p for f in [*frames, None] for p in s.encode(f)]:
            if pkt.pts == 19 * 40:
                pkt.duration = 1000
            out.mux(pkt)
        for k in range(3):
            af = av.AudioFrame.from_ndarray(np.zeros((1, 8000), np.int16), format="s16", layout="mono")
            af.sample_rate, af.pts = 8000, k * 8000
            out.mux(a.encode(af))
        out.mux(a.encode(None))
    return path


def test_frames_past_the_real_end_keep_the_last_frame_s_own_duration(tmp_path):
    """Past the real end of a stream whose header over-counts, the repeated last frame keeps its own pts and
    duration (1 s here, from its packet), not the stream's nominal 40 ms; by range (a run of decoder outputs) and
    by index (the frame held past the drain). Oracle: a plain PyAV decode."""
    path = _long_last_frame(tmp_path)
    _frames, pts, dur = oracle(str(path))
    assert len(pts) == 20 and dur[-1] == 1.0 and dur[0] == 0.04
    dec = VideoDecoder(path, seek_mode="approximate", num_threads=1)
    n = len(dec)
    assert n > 30, "the header must over-count for this test"
    want = [min(i, 19) for i in range(15, n)]
    by_range = dec.get_frames_in_range(15, n)
    np.testing.assert_allclose(by_range.pts_seconds.numpy(), pts[want], atol=1e-9)
    np.testing.assert_allclose(by_range.duration_seconds.numpy(), dur[want], atol=1e-9)
    by_index = dec.get_frames_at([n - 1, 19, 30, 50])  # 50 and n - 1 lie past the last frame's end (1.76 s)
    np.testing.assert_allclose(by_index.duration_seconds.numpy(), [1.0] * 4, atol=1e-9)
    check_batch("long_last", path, by_index, [19] * 4)


@pytest.mark.parametrize("bframes", [2, 0])
def test_past_the_real_end_on_the_nvdec_path(tmp_path, bframes):
    """The same on the NVDEC path (fake NVDEC, host-run kernel): its surfaces go stale at the next Decode, so a
    frame repeated past the end must be converted while valid, not after the drain (without B-frames the drain
    returns nothing and the frame kept is the last one fed before it)."""
    from test_nvdec import nvdec_decoder

    path = _long_audio(tmp_path, bframes)
    cpu = VideoDecoder(path, seek_mode="approximate", dimension_order="NHWC")
    gpu, _ = nvdec_decoder(path, seek_mode="approximate", dimension_order="NHWC")
    n = len(cpu)
    for a, b in ((cpu[:], gpu[:]), (torch.stack(list(cpu)), torch.stack(list(gpu))), (cpu[30:n], gpu[30:n])):
        assert a.shape == b.shape and (a.int() - b.int()).abs().max() <= 3
    assert (gpu[n - 1].int() - gpu[24].int()).abs().max() == 0


def test_plan_stats_add_sums_every_counter():
    from gpudecode._planner import PlanStats

    s = PlanStats(seeks=1, packets_fed=2, frames_decoded=3, frames_converted=4)
    s.add(PlanStats(seeks=10, packets_fed=20, frames_decoded=30, frames_converted=40))
    assert s == PlanStats(seeks=11, packets_fed=22, frames_decoded=33, frames_converted=44)


@pytest.mark.parametrize("mode", ["exact", "approximate"])
@pytest.mark.parametrize("name", ["h264_bframes", "vp9"])
def test_one_pass_over_the_stream_feeds_each_packet_once(video, name, mode):
    path = video(name)
    with av.open(str(path)) as c:
        n_packets = sum(1 for p in c.demux(video=0) if p.size)
    dec, _ = open_wayward(path, mode)
    check_batch(name, path, dec.get_frames_in_range(0, len(dec)), range(len(dec)))
    assert dec.stats.packets_fed == n_packets
    assert dec.stats.frames_decoded == dec.stats.frames_converted == len(dec) == 40


@pytest.mark.parametrize("late", [1, 99])  # one keyframe late; past the last keyframe (nothing comes out)
@pytest.mark.parametrize("name", ["h264_bframes", "hevc8"])
def test_approximate_retries_end_in_a_restart(video, name, late):
    """With a margin of one tick every retry lands late as well, so the whole schedule the planner states is played
    out: the keyframe the index names, then 4, 16 and 64 margins before the target, then the first packet; by index
    (``run``) and by range (a sequence) alike. An overshooting seek costs only the packets up to its first output."""
    path = video(name)
    dec, w = open_wayward(path, "approximate", late=late)
    pl = dec._session.pipe.planner
    pl.targets = dataclasses.replace(pl.targets, seek_margin=1)
    keys = _key_frames(path)
    i = keys[1] + 2  # a frame 2 after a keyframe with another after it: 64 ticks before it is still after the first
    t = dec._mode.sequence_target(i)
    for call, want in (
        (lambda: dec.get_frames_at([i]), [i]),
        (lambda: dec.get_frames_in_range(i, i + 3), [i, i + 1, i + 2]),
    ):
        pl.invalidate()
        w.seeks.clear()
        w.drawn.clear()
        w.restarts = 0
        check_batch(name, path, call(), want)
        assert w.seeks[1:] == [t - 4, t - 16, t - 64] and w.restarts == 1
        assert dec.stats.seeks == 5
        # each seek landed at keyframe keys[2] (or nowhere) and was given up at its first output, inside that GOP
        assert len(w.drawn) == 4 and all(d < keys[3] - keys[2] for d in w.drawn), w.drawn


@pytest.mark.parametrize("name", ["h264_bframes", "hevc8"])  # MP4: the keyframe index is known up front
def test_approximate_retries_seek_further_back_four_times_as_far_each_time(video, name):
    """After an overshoot the planner seeks again a margin before the target that grows 4x per retry (never before
    the stream's start), by index (run) and by range (a sequence); a sequence continued by its owner seeks no more."""
    path = video(name)
    dec, w = open_wayward(path, "approximate", late=1)
    pl = dec._session.pipe.planner
    i = 35
    t = dec._mode.sequence_target(i)  # frame i's nominal time
    for call, want in (
        (lambda: dec.get_frames_at([i]), [i]),
        (lambda: dec.get_frames_in_range(i, i + 3), [i, i + 1, i + 2]),
    ):
        pl.invalidate()
        w.seeks.clear()
        check_batch(name, path, call(), want)
        retries = w.seeks[1:]
        assert retries, "the late demuxer must have caused a retry"
        margin, begin = pl.targets.seek_margin, pl.targets.begin_pts
        assert retries == [max(t - margin * 4**k, begin) for k in range(1, len(retries) + 1)]
    owner = object()
    pl.invalidate()
    w.seeks.clear()
    check_batch(name, path, dec._frames_in_range(i - 5, i - 2, 1, owner), [i - 5, i - 4, i - 3])
    before = len(w.seeks)
    check_batch(name, path, dec._frames_in_range(i - 2, i + 1, 1, owner), [i - 2, i - 1, i])
    assert len(w.seeks) == before, "the owner's next chunk continues its sequence"


def test_approximate_ranges_on_a_variable_rate_stream(video):
    """Approximate mode on a variable-rate stream (gaps of 40 and 90 ms between 40 ms frames): a range from frame
    ``lo`` starts with the first frame still showing at the middle of ``lo``'s nominal interval (in a gap: the next
    frame), then takes the frames that follow, the last one repeated past the end. Oracle: a plain PyAV decode."""
    path = video("vfr")
    _frames, pts, dur = oracle(str(path))
    dec, _ = open_wayward(path, "approximate")
    begin, fps = dec.metadata.begin_stream_seconds, dec.metadata.average_fps
    in_gaps = 0
    for lo in range(len(dec) - 3):
        t = begin + (lo + 0.5) / fps
        later = np.flatnonzero(pts + dur > t + 1e-9)
        c = int(later[0]) if later.shape[0] else len(pts) - 1
        in_gaps += int(pts[c] > t)
        check_batch("vfr", path, dec.get_frames_in_range(lo, lo + 3), [min(c + k, len(pts) - 1) for k in range(3)])
    assert in_gaps > 0


def test_a_decoder_failing_while_draining_ends_the_run_with_a_warning(caplog):
    from gpudecode._errors import DecodeError
    from gpudecode._planner import Planner
    from gpudecode._targets import TimeTargets

    class Failing:
        def flush(self):
            raise DecodeError("boom at the end")

    with caplog.at_level("WARNING", logger="gpudecode"):
        assert tuple(Planner(demuxer=None, backend=Failing(), targets=TimeTargets())._drain()) == ()
    assert [r.getMessage() for r in caplog.records] == ["gpudecode: decoder failed while draining: boom at the end"]


def test_past_the_real_end_without_reordering_delay(tmp_path):
    """Without B-frames, one thread, the decoder outputs each frame at its packet and the drain returns nothing: the
    frame repeated past the real end must be the last one fed, kept before draining. Oracle: a plain PyAV decode."""
    path = _long_audio(tmp_path, bframes=0)
    dec = VideoDecoder(path, seek_mode="approximate", num_threads=1)
    n = len(dec)
    assert n > 30, "the header must over-count for this test"
    check_batch("long_audio_bf0", path, dec.get_frames_at([3, n - 1, 26]), [3, 24, 24])
    check_batch("long_audio_bf0", path, dec.get_frames_played_at([1.3]), [24])


def test_approximate_mode_reports_each_frames_own_duration(tmp_path):
    """Variable frame rate MP4 (40 and 90 ms frames): every access path reports the duration of the frame it returns,
    not the usual one. Oracle: a plain PyAV decode (the sample table's durations)."""
    from media import X264_B, Spec, make_video

    pts_list = tuple(int(x) for x in np.cumsum([0] + [40 if i % 3 else 90 for i in range(29)]))
    path = make_video(
        Spec("vfr_mp4", container="mp4", options=X264_B, num_frames=30, pts_list=pts_list), tmp_path / "v.mp4"
    )
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        ref = {round(float(f.pts * s.time_base), 6): float(f.duration * s.time_base) for f in c.decode(s)}
    assert sorted({round(v, 3) for v in ref.values()}) == [0.04, 0.09]
    dec = VideoDecoder(path, seek_mode="approximate", num_threads=1)
    n = len(dec)
    t = sorted(ref)
    for batch in (
        dec.get_frames_in_range(0, n),
        dec.get_frames_at(list(range(n - 1, -1, -2))),
        dec.get_frames_played_at([t[4] + 0.001, t[5] - 0.001, t[20] + 0.085]),
    ):
        got = dict(zip(np.round(batch.pts_seconds.numpy(), 6).tolist(), batch.duration_seconds.tolist(), strict=True))
        assert got == {p: ref[p] for p in got}
    # a sequence starting at frame k (found by decoding forward to the frame shown at k's time) starts with the
    # frame that indexing gives for k, though the 90 ms frames cover more than one nominal frame time
    for k in range(n - 1):
        seq = VideoDecoder(path, seek_mode="approximate", num_threads=1).get_frames_in_range(k, k + 2)
        assert seq.pts_seconds[0] == dec.get_frames_at([k]).pts_seconds[0], k
