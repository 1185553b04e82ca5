"""Approximate mode read in chunks: a call goes on from the previous one where a seek would give the same frames.

Oracles: a fresh decoder for every chunk (each call then seeks, as every call did before chunks went on), and a
plain PyAV decode for the frame order and timestamps of streams whose header is exact.
"""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from test_timeline import CASES, joined  # noqa: F401 (the fixture)

from gpudecode import VideoDecoder

HEADER_EXACT = ["h264_bframes", "h264_mkv", "h264_open_gop", "hevc8", "vp9", "mpeg4_avi"]
# the header over-counts these (a chunk may then start behind what the previous one decoded, and seek)
STREAMS = [*HEADER_EXACT, "vfr", "nonzero_start", "editlist"]


def _approximate(path: str) -> VideoDecoder:
    return VideoDecoder(path, seek_mode="approximate", dimension_order="NHWC")


def _same(a, b, what: str) -> None:
    assert torch.equal(a.data, b.data), f"{what}: frames differ"
    assert torch.equal(a.pts_seconds, b.pts_seconds), f"{what}: pts {a.pts_seconds} vs {b.pts_seconds}"
    assert torch.equal(a.duration_seconds, b.duration_seconds), f"{what}: durations differ"


def _chunks_equal_fresh_seeks(path: str, bounds: list[tuple[int, int]]) -> tuple[int, int]:
    """Read ``bounds`` in order on one decoder; each chunk must equal a fresh decoder's.

    Returns:
        How many of the calls seeked, and the frames decoded in all.
    """
    dec = _approximate(path)
    seeking = decoded = 0
    for lo, hi in bounds:
        got = dec.get_frames_in_range(lo, hi)
        seeking += dec.stats.seeks > 0
        decoded += dec.stats.frames_decoded
        _same(got, _approximate(path).get_frames_in_range(lo, hi), f"frames {lo}-{hi}")
    return seeking, decoded


def _keyframes(path: str) -> int:
    with av.open(path) as c:
        return sum(p.is_keyframe for p in c.demux(c.streams.video[0]) if p.size)


@pytest.mark.parametrize("name", STREAMS)
@pytest.mark.parametrize("chunk", [3, 7])
def test_forward_chunks_equal_fresh_seeks(video, name, chunk):
    path = str(video(name))
    n = len(_approximate(path))
    seeking, decoded = _chunks_equal_fresh_seeks(path, [(s, min(n, s + chunk)) for s in range(0, n, chunk)])
    if name in HEADER_EXACT:  # nominal times match the frames': chunks go on from each other within a GOP
        keys = _keyframes(path)
        # a seek in every call before; now about one per GOP (HEVC in MP4: a seek by decode time that lands after
        # the target is retried from further back, and the next call seeks once more)
        assert seeking <= keys + 1
        assert decoded <= n + keys * (chunk + 4)  # each GOP entered once more at most: a chunk and the reorder delay


@pytest.mark.parametrize("name", ["h264_bframes", "vfr", "h264_open_gop"])
def test_backward_overlapping_and_interleaved_chunks_equal_fresh_seeks(video, name):
    path = str(video(name))
    n = len(_approximate(path))
    backward = [(s, min(n, s + 5)) for s in range(n - 5, -1, -5)]
    overlapping = [(0, 6), (4, 10), (10, 16), (9, 12), (16, 30)]
    _chunks_equal_fresh_seeks(path, backward + overlapping)
    dec = _approximate(path)
    dec.get_frames_in_range(0, 6)
    dec.get_frame_at(20)  # another kind of call decodes in between: the next chunk seeks again
    _same(dec.get_frames_in_range(6, 12), _approximate(path).get_frames_in_range(6, 12), "after get_frame_at")


def test_the_next_chunk_decodes_only_its_own_frames(video):
    """One GOP: the second chunk neither seeks nor decodes the first chunk's frames again."""
    path = str(video("h264_bframes"))  # keyframes every 12 frames
    dec = _approximate(path)
    dec.get_frames_in_range(0, 4)
    dec.get_frames_in_range(4, 8)
    assert dec.stats.seeks == 0 and dec.stats.frames_decoded <= 4 + 3  # + the B-frame reorder delay
    with av.open(path) as c:  # the plain decode's order and timestamps
        s = c.streams.video[0]
        pts = sorted(f.pts for f in c.decode(s))[:12]
        tb = float(s.time_base)
    got = dec.get_frames_in_range(8, 12).pts_seconds.numpy()
    np.testing.assert_allclose(got, np.array(pts[8:12]) * tb, rtol=0, atol=1e-9)
    # two GOPs ahead: a seek to the GOP's keyframe, not a decode through the frames in between
    _same(dec.get_frames_in_range(30, 33), _approximate(path).get_frames_in_range(30, 33), "frames 30-33")
    assert dec.stats.seeks == 1 and dec.stats.frames_decoded <= 30 - 24 + 3 + 3


@pytest.mark.parametrize(("codec", "ext"), CASES)
@pytest.mark.parametrize("chunk", [2, 5, 8])
def test_chunks_of_joined_segments_equal_fresh_seeks(joined, codec, ext, chunk):  # noqa: F811 (the fixture)
    """Where timestamps step back, the last output taken is not the latest shown: a chunk that ends just after a
    junction (chunks of 2 and 5 frames, in MP4) must not go on past frames a seek would return."""
    path = joined(codec, ext)
    n = len(_approximate(path))
    _chunks_equal_fresh_seeks(path, [(s, min(n, s + chunk)) for s in range(0, n, chunk)])
