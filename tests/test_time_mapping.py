"""The decoder's index and time mapping on its own terms: time bases whose numerator is not 1, both seek modes
against a plain PyAV decode, and the exact words of every time-argument error."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from oracle import assert_frame_matches, oracle, run_ffmpeg

from gpudecode import InvalidArgumentError, VideoDecoder
from gpudecode._errors import TimeOutOfRangeError


@pytest.fixture(scope="module")
def ntsc_avi(tmp_path_factory):
    """MPEG-4 in AVI at 30000/1001 fps: the stream's time base is 1001/30000 (numerator not 1)."""
    path = tmp_path_factory.mktemp("ntsc") / "ntsc.avi"
    run_ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=s=96x64:r=30000/1001:d=1", "-c:v", "mpeg4", "-bf", "0", "-g", "10", str(path)
    )
    return str(path)


@pytest.mark.parametrize("mode", ["exact", "approximate"])
def test_a_time_base_of_1001_30000(ntsc_avi, mode):
    _frames, pts, _dur = oracle(ntsc_avi)
    dec = VideoDecoder(ntsc_avi, seek_mode=mode, dimension_order="NHWC")
    assert dec.index is None or dec.index.time_base.numerator == 1001
    assert len(dec) == len(pts) == 30
    batch = dec.get_frames_at(list(range(29, -1, -1)))
    np.testing.assert_allclose(batch.pts_seconds.numpy(), pts[::-1], atol=1e-9)
    for k, i in enumerate(range(29, -1, -1)):
        assert_frame_matches("ntsc", ntsc_avi, batch.data[k].numpy(), i)
    shown = dec.get_frames_played_at(pts + 0.01)  # inside each frame
    np.testing.assert_allclose(shown.pts_seconds.numpy(), pts, atol=1e-9)
    at_start = dec.get_frames_played_at(pts)  # exactly at each frame's start, as reported
    np.testing.assert_allclose(at_start.pts_seconds.numpy(), pts, atol=1e-9)
    span = dec.get_frames_played_in_range(float(pts[3]), float(pts[9]))
    np.testing.assert_allclose(span.pts_seconds.numpy(), pts[3:9], atol=1e-9)
    assert torch.equal(dec[4:8], batch.data[[25, 24, 23, 22]])


def _message(call) -> str:
    with pytest.raises((InvalidArgumentError, TimeOutOfRangeError)) as e:
        call()
    return str(e.value)


def test_time_argument_errors_name_the_argument(video):
    dec = VideoDecoder(video("h264_bframes"))
    m = dec.metadata
    begin, end = m.begin_stream_seconds, m.end_stream_seconds
    assert _message(lambda: dec.get_frame_played_at(end)) == (
        f"Invalid seconds ({end}). Supported values are in [{begin}, {end}), the times the stream plays."
    )
    assert _message(lambda: dec.get_frames_played_at([0.1, -1.0])) == (
        f"Invalid seconds (-1.0). Supported values are in [{begin}, {end}), the times the stream plays."
    )
    assert _message(lambda: dec.get_frames_played_in_range(end + 1, end + 2)) == (
        f"Invalid start_seconds ({end + 1}). Supported values are in [{begin}, {end}), the times the stream plays."
    )
    assert _message(lambda: dec.get_frames_played_in_range(0.5, 0.2)) == (
        "Invalid range: stop_seconds (0.2) is before start_seconds (0.5). Supported ranges have start_seconds <= "
        "stop_seconds."
    )
    assert _message(lambda: dec.get_frames_played_in_range(0.5, end + 1)) == (
        f"Invalid stop_seconds ({end + 1}). Supported values are in [{begin}, {end}]."
    )
    assert _message(lambda: dec.get_frames_played_in_range(float("nan"), 1.0)) == (
        "Invalid start_seconds (nan). Supported values are: finite numbers of seconds."
    )
    assert _message(lambda: dec.get_frames_played_in_range(0.0, float("inf"))) == (
        "Invalid stop_seconds (inf). Supported values are: finite numbers of seconds."
    )
    _frames, pts, _ = oracle(str(video("h264_bframes")))
    dec._metadata = dataclasses.replace(m, end_stream_seconds=None)
    # An unknown end bounds nothing: a time past the last frame is played by it, one before the start still raises.
    late = dec.get_frames_played_at([begin, float(pts[2]), end + 5.0])
    np.testing.assert_allclose(late.pts_seconds.numpy(), [pts[0], pts[2], pts[-1]], atol=1e-9)
    assert _message(lambda: dec.get_frame_played_at(begin - 1.0)) == (
        f"Invalid seconds ({begin - 1.0}). Supported values are in [{begin}, None), the times the stream plays."
    )
    assert _message(lambda: dec.get_all_frames(fps=5)) == (
        "Invalid get_all_frames(fps=...) on a stream whose end is unknown. Use get_frames_played_in_range() with "
        "explicit times."
    )


@pytest.mark.parametrize("name", ["nonzero_start", "h264_bframes"])
def test_approximate_ranges_by_time_match_exact_mode(video, name):
    """Approximate mode's get_frames_played_in_range on streams whose header is right about the frames it holds
    (one starting at 2.4 s): the same frames as exact mode (which follows a plain PyAV decode), with bounds on frame
    starts, inside frames, at the stream's start, and ranges shorter than a frame."""
    path = video(name)
    exact, approx = VideoDecoder(path), VideoDecoder(path, seek_mode="approximate")
    pts = exact.get_frames_in_range(0, len(exact)).pts_seconds.numpy()
    np.testing.assert_allclose(pts, oracle(str(path))[1], atol=1e-9)
    bounds = [
        (pts[0], pts[4]),
        (pts[5], pts[9]),
        (pts[5] + 0.01, pts[5] + 0.02),
        (pts[0], pts[1]),
        (pts[7] + 0.03, pts[12] + 0.001),
        (pts[20], pts[-1]),
        (pts[-2] + 0.001, pts[-1] + 0.01),
        (pts[5] + 1e-11, pts[5] + 2e-11),
    ]  # far shorter than a frame, just after its start
    for t0, t1 in bounds:
        want = exact.get_frames_played_in_range(float(t0), float(t1)).pts_seconds
        got = approx.get_frames_played_in_range(float(t0), float(t1)).pts_seconds
        assert torch.equal(got, want), (t0, t1)


def test_an_empty_approximate_range_decodes_nothing(video):
    dec = VideoDecoder(video("h264_bframes"), seek_mode="approximate")
    assert dec.get_frames_in_range(5, 5).data.shape[0] == 0 and dec[7:7].shape[0] == 0
    assert dec.stats.seeks == 0 and dec.stats.packets_fed == 0
