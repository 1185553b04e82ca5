"""Streams whose timestamps repeat or step back: segments joined with ``ffmpeg -f concat -c copy``.

Oracles: the ffmpeg CLI's frames (``-fps_mode passthrough``) for pixels, and a plain PyAV decode for the frame
order and timestamps (FFmpeg's decoder output order). Frame ``i`` is the ``i``-th frame FFmpeg outputs.
"""

from __future__ import annotations

import itertools
import subprocess

import av
import numpy as np
import pytest
from oracle import cli_rgb_frames, ffmpeg_cli

from gpudecode import VideoDecoder
from gpudecode._timeline import presentation_ranks

CODECS = {"h264": ["-c:v", "libx264", "-bf", "2"], "hevc": ["-c:v", "libx265", "-x265-params", "bframes=2:log-level=0"]}
CASES = [(codec, ext) for codec in CODECS for ext in ("mp4", "mkv")]


@pytest.fixture(scope="module")
def joined(tmp_path_factory):
    """joined(codec, ext): one second of testsrc2 at 25, 10 and 60 fps, concatenated without re-encoding."""
    folder = tmp_path_factory.mktemp("joined")
    exe = ffmpeg_cli()
    assert exe is not None, "no ffmpeg CLI: install the test extra (imageio-ffmpeg)"
    made: dict[tuple[str, str], str] = {}

    def get(codec: str, ext: str) -> str:
        if (codec, ext) not in made:
            parts = []
            for fps in (25, 10, 60):
                part = folder / f"{codec}_{fps}.mp4"
                subprocess.run(
                    [
                        exe,
                        "-v",
                        "error",
                        "-y",
                        "-f",
                        "lavfi",
                        "-i",
                        f"testsrc2=size=160x120:rate={fps}",
                        "-t",
                        "1",
                        *CODECS[codec],
                        "-pix_fmt",
                        "yuv420p",
                        str(part),
                    ],
                    check=True,
                )
                parts.append(f"file '{part}'\n")
            listing = folder / f"{codec}.txt"
            listing.write_text("".join(parts))
            out = folder / f"{codec}_joined.{ext}"
            subprocess.run(
                [exe, "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(out)],
                check=True,
            )
            made[(codec, ext)] = str(out)
        return made[(codec, ext)]

    return get


def _plain_decode(path: str) -> tuple[np.ndarray, np.ndarray]:
    """pts and durations (seconds) of every frame, in the order FFmpeg's decoder outputs them."""
    with av.open(path) as c:
        s = c.streams.video[0]
        frames = [(f.pts, f.duration) for f in c.decode(s)]
        tb = float(s.time_base)
    return np.array([p for p, _ in frames]) * tb, np.array([d for _, d in frames]) * tb


def test_the_fixture_really_steps_back(joined):
    """Guard for the tests below: the joined file's timestamps overlap at a junction (else they prove nothing)."""
    for codec, ext in CASES:
        pts, _ = _plain_decode(joined(codec, ext))
        assert (np.diff(pts) < 0).any(), (codec, ext)


@pytest.mark.parametrize(("codec", "ext"), CASES)
def test_exact_mode_frames_are_ffmpegs_output_order(joined, codec, ext):
    path = joined(codec, ext)
    ref = cli_rgb_frames(path)
    pts, dur = _plain_decode(path)
    dec = VideoDecoder(path, dimension_order="NHWC")
    assert len(dec) == ref.shape[0] == pts.shape[0]
    batch = dec.get_frames_in_range(0, len(dec))
    np.testing.assert_array_equal(batch.data.numpy(), ref)
    np.testing.assert_allclose(batch.pts_seconds.numpy(), pts, atol=1e-9)
    np.testing.assert_allclose(batch.duration_seconds.numpy(), dur, atol=1e-9)
    # random access across the junctions, one frame at a time and as one planned request, two threads
    rng = np.random.default_rng(0)
    order = rng.permutation(len(dec))
    for i in order[:25]:
        np.testing.assert_array_equal(dec[int(i)].numpy(), ref[i], err_msg=f"frame {i}")
    threaded = VideoDecoder(path, dimension_order="NHWC", num_threads=2)
    np.testing.assert_array_equal(threaded.get_frames_at(order).data.numpy(), ref[order])
    np.testing.assert_array_equal(np.stack([f.numpy() for f in dec]), ref)


@pytest.mark.parametrize(("codec", "ext"), CASES)
def test_approximate_mode_ranges_give_each_frame_once(joined, codec, ext):
    path = joined(codec, ext)
    ref = cli_rgb_frames(path)
    dec = VideoDecoder(path, seek_mode="approximate", dimension_order="NHWC")
    n = min(len(dec), ref.shape[0])  # the header's count is an estimate (MKV: from the duration)
    np.testing.assert_array_equal(dec.get_frames_in_range(0, n).data.numpy(), ref[:n])
    np.testing.assert_array_equal(np.stack([f.numpy() for f in dec])[:n], ref[:n])
    np.testing.assert_array_equal(dec[5:n:3].numpy(), ref[5:n:3])


def _reference_played_at(pts: np.ndarray, dur: np.ndarray, t: float) -> int:
    """The documented rule, written over the decoder's output list: segments restart where pts steps back; the
    first segment playing at ``t`` answers with its last frame starting at or before ``t``."""
    starts = [0, *(np.flatnonzero(np.diff(pts) < 0) + 1).tolist(), len(pts)]
    for a, b in itertools.pairwise(starts):
        if pts[a] <= t < max(pts[a:b] + dur[a:b]):
            return a + max(k for k in range(b - a) if pts[a + k] <= t)
    before = [k for k in range(len(pts)) if pts[k] <= t]
    return max(before, key=lambda k: (pts[k], -k)) if before else 0


@pytest.mark.parametrize(("codec", "ext"), CASES)
def test_time_calls_follow_the_documented_rule(joined, codec, ext):
    path = joined(codec, ext)
    pts, dur = _plain_decode(path)
    dec = VideoDecoder(path)
    times = np.unique(np.concatenate([pts, pts + 1e-4, np.linspace(pts.min(), (pts + dur).max() - 1e-3, 301)]))
    got = dec.get_frames_played_at(times).pts_seconds.numpy()
    want = pts[[_reference_played_at(pts, dur, t) for t in times]]
    np.testing.assert_allclose(got, want, atol=1e-9)
    # inside the overlap the earlier segment is still playing (as torchcodec 0.17 answers on this file)
    last = int(np.flatnonzero(np.diff(pts) < 0)[0])  # the first segment's last frame; the next one starts anew
    t = pts[last + 1] + 1e-5
    first_segment = pts[: last + 1]
    assert dec.get_frame_played_at(t).pts_seconds == pytest.approx(first_segment[first_segment <= t].max())
    # a range over the overlap holds the frames of both segments, in frame order
    span = dec.get_frames_played_in_range(t, pts[last] + 1e-3).pts_seconds.numpy()
    from_first = [p for p in first_segment if p > t or p == first_segment[first_segment <= t].max()]
    from_second = [p for p in pts[last + 1 :] if t < p < pts[last] + 1e-3]
    assert from_second, "the range must reach into the second segment"
    np.testing.assert_allclose(span, from_first + from_second, atol=1e-9)


@pytest.mark.parametrize(("codec", "ext"), CASES)
def test_ranges_follow_the_documented_rule(joined, codec, ext):
    """get_frames_played_in_range(t0, t1): the frame shown at t0, then every frame starting after t0 and before t1,
    in frame order; t0 and t1 include frames' own pts (as the decoder reports them) and the junctions."""
    path = joined(codec, ext)
    pts, dur = _plain_decode(path)
    dec = VideoDecoder(path)
    reported = dec.get_frames_in_range(0, len(dec)).pts_seconds.numpy()
    np.testing.assert_allclose(reported, pts, atol=1e-9)
    rng = np.random.default_rng(3)
    end = float((pts + dur).max())
    for _ in range(120):
        t0, t1 = sorted(
            float(x) if rng.random() < 0.6 else float(rng.uniform(pts.min(), end)) for x in rng.choice(reported, 2)
        )
        if not t0 < t1:
            continue
        first = _reference_played_at(reported, dur, t0)  # the reported seconds: t0 may be one of them exactly
        want = sorted({first, *np.flatnonzero((reported > t0) & (reported < t1)).tolist()})
        got = dec.get_frames_played_in_range(t0, t1).pts_seconds.numpy()
        np.testing.assert_allclose(got, pts[want], atol=1e-9, err_msg=f"[{t0}, {t1})")


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_saved_index_keeps_the_decode_timeline(joined, tmp_path, ext):
    path = joined("h264", ext)
    dec = VideoDecoder(path, dimension_order="NHWC")
    dec.save_index(tmp_path / "i.gdidx")
    again = VideoDecoder(path, dimension_order="NHWC", index=tmp_path / "i.gdidx")
    assert again.index is not None and again.index.method == "file" and again.index.plan_pts is not None
    picks = [30, 24, 25, 26]
    np.testing.assert_array_equal(again.get_frames_at(picks).data.numpy(), cli_rgb_frames(path)[picks])


def test_ranks_split_only_at_keyframes_shown_before_earlier_packets():
    # decode order of one stream with B-frames, an open-GOP keyframe (pts 8) whose leading pictures (6, 5, 7)
    # follow it, then a joined segment restarting at pts 2 with a repeated timestamp
    pts = np.array([0, 3, 1, 2, 8, 6, 4, 5, 7, 2, 4, 3, 9])
    key = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0], dtype=bool)
    rank, segment = presentation_ranks(pts, key)
    assert segment.tolist() == [0] * 9 + [1] * 4
    in_order = pts[np.argsort(rank)]
    assert in_order.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 2, 3, 4, 9]
    rank, segment = presentation_ranks(pts[:9], key[:9])
    assert segment.max() == 0 and pts[:9][np.argsort(rank)].tolist() == sorted(pts[:9].tolist())


def test_ordinary_streams_get_no_decode_timeline(video):
    for name in ("h264_bframes", "vfr", "editlist", "hevc8"):
        idx = VideoDecoder(video(name)).index
        assert idx is not None and idx.plan_pts is None and idx.segment_starts is None, name


def test_played_at_rules_written_out():
    """The rule of ``played_at`` on hand-made segments: [0, 10, 20] then [5, 15] (overlapping the first), then
    [40, 50] after a gap; each frame lasts 10."""
    from gpudecode._timeline import played_at, segments_of

    pts = np.array([0, 10, 20, 5, 15, 40, 50], dtype=np.float64)
    end = pts + 10
    segments = segments_of(np.array([0, 3, 5]), 7)
    assert segments == [(0, 3), (3, 5), (5, 7)]
    t = np.array([-3, 0, 4.9, 5, 12, 29.9, 30, 35, 39.9, 40, 45, 60, 75])
    # before everything: the first frame; in the first segment's span (0..30): its frames, even where the second
    # overlaps it; 30..40 is a gap the second segment does not fill (it ends at 25): the last frame starting
    # before (pts 20, frame 2); the third segment from 40; past the end: the last frame
    assert played_at(pts, end, segments, t).tolist() == [0, 0, 0, 0, 1, 2, 2, 2, 2, 5, 5, 6, 6]
    # a time only the second segment plays: [5, 25) minus the first's [0, 30) is empty, so move the first away
    shifted = pts.copy()
    shifted[:3] += 100
    got = played_at(shifted, shifted + 10, segments, np.array([5, 14.9, 15, 24.9]))
    assert got.tolist() == [3, 3, 4, 4]
    # equal timestamps: within a segment the later frame (it replaced the earlier on screen); in a gap, the last of
    # the frames starting at or before t, in frame order
    tie = np.array([0, 10, 10, 0, 10], dtype=np.float64)
    assert played_at(tie, tie + 1, segments_of(np.array([0, 3]), 5), np.array([10.5, 12])).tolist() == [2, 4]
    # one segment: plain "last frame starting at or before t"
    one = segments_of(None, 3)
    assert one == [(0, 3)] and segments_of(np.array([], dtype=np.int64), 3) == [(0, 3)]
    assert played_at(np.array([0.0, 1, 2]), np.array([1.0, 2, 3]), one, np.array([-1, 0, 1.5, 9])).tolist() == [
        0,
        0,
        1,
        2,
    ]
    assert segments_of(np.array([0, 2, 2]), 4) == [(0, 2), (2, 4)]  # an empty segment is dropped


def test_presentation_ranks_edge_cases():
    # two packets, the second a keyframe shown first: two segments (n == 2 takes the general path)
    rank, segment = presentation_ranks(np.array([5, 3]), np.array([True, True]))
    assert segment.tolist() == [0, 1] and rank.tolist() == [0, 1]
    # a keyframe whose pts equals the largest seen so far is not a junction
    rank, segment = presentation_ranks(np.array([0, 4, 4, 8]), np.array([True, False, True, False]))
    assert segment.tolist() == [0, 0, 0, 0] and rank.tolist() == [0, 1, 2, 3]
    # a non-keyframe shown early is a B-frame, not a junction
    rank, segment = presentation_ranks(np.array([0, 8, 2]), np.array([True, False, False]))
    assert segment.tolist() == [0, 0, 0] and rank.tolist() == [0, 2, 1]
    rank, segment = presentation_ranks(np.array([7]), np.array([True]))
    assert rank.tolist() == [0] and segment.tolist() == [0] and rank.dtype == np.int64


def test_played_at_boundaries_between_overlapping_segments():
    from gpudecode._timeline import played_at, segments_of

    # the first segment ends at 30 exactly where the second (25, 35) still plays: at 30 the second answers
    pts = np.array([0, 10, 20, 25, 35], dtype=np.float64)
    segments = segments_of(np.array([0, 3]), 5)
    assert played_at(pts, pts + 10, segments, np.array([29.9, 30, 34.9])).tolist() == [2, 3, 3]
    # equal timestamps after the end: the last of them in frame order (a stable order, not any of them)
    ties = ((np.arange(26) * 7) % 3).astype(np.float64)  # the last 2.0 is frame 23
    assert played_at(ties, ties + 1, segments_of(np.array([0, 13]), 26), np.array([100.0])).tolist() == [23]
