"""The CPU backend on its own, fed packets from a plain PyAV demux: what it decodes, skips, drains and converts.

Oracles: a plain PyAV decode of the same packets (frames and their pts), the ffmpeg CLI (pixels, via
``oracle.assert_frame_matches``)."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from oracle import assert_frame_matches, oracle

from gpudecode._backends._cpu import CpuBackend
from gpudecode._errors import DecodeError


def _packets(path):
    c = av.open(str(path))
    s = c.streams.video[0]
    return c, s, [p for p in c.demux(s) if p.size]


def _first_frame(path):
    """(container, one-thread backend, the backend's first decoded frame) of ``path``."""
    c, s, packets = _packets(path)
    b = CpuBackend(s, 1)
    return c, b, next(f for p in packets for f in b.decode(p))


def _plain_pts(path) -> list[int]:
    with av.open(str(path)) as c:
        return [f.pts for f in c.decode(video=0)]


@pytest.mark.parametrize(
    ("name", "skips"), [("h264_bframes", True), ("hevc8", True), ("vp9", False), ("av1", False), ("h264_mkv", True)]
)
def test_decodes_every_frame_like_pyav_and_converts_like_the_cli(video, name, skips):
    path = video(name)
    c, s, packets = _packets(path)
    b = CpuBackend(s, 1)
    assert b.name == "cpu" and b.output_device_type == "cpu" and b.skips_unwanted is skips
    frames = [f for p in packets for f in b.decode(p)]
    frames += list(b.flush())
    assert list(b.flush()) == []  # drained once
    assert [f.pts for f in frames] == _plain_pts(path)
    _, pts, _ = oracle(str(path))
    assert len(frames) == len(pts)
    for i, f in enumerate(frames[:5] + frames[-3:]):
        k = i if i < 5 else len(frames) - 8 + i
        t = b.convert(f)
        assert t.dtype == torch.uint8 and t.shape == (f.height, f.width, 3)
        assert_frame_matches(name, str(path), t.numpy(), k)
    b.reset()  # after a reset it decodes from a keyframe again, and drains again
    again = [f for p in packets[:12] for f in b.decode(p)] + list(b.flush())
    assert [f.pts for f in again] == sorted(int(p.pts) for p in packets[:12])
    b.close()
    c.close()


def test_unwanted_packets_are_skipped_only_where_nothing_references_them(video):
    """H.264 with B-frames: with every packet unwanted, non-reference B pictures are not decoded (FFmpeg's
    skip_frame=NONREF), reference pictures are; wanting them again decodes everything."""
    path = video("h264_bframes")
    c, s, packets = _packets(path)
    b = CpuBackend(s, 1)
    skipped = [f.pts for p in packets for f in b.decode(p, wanted=False)] + [f.pts for f in b.flush()]
    everything = _plain_pts(path)
    assert 0 < len(skipped) < len(everything) and set(skipped) < set(everything)
    b.reset()
    assert [f.pts for p in packets for f in b.decode(p, wanted=True)] + [f.pts for f in b.flush()] == everything
    vp9 = CpuBackend(_packets(video("vp9"))[1], 1)
    assert not vp9.skips_unwanted  # VP9 packets may carry hidden frames later packets show: never skipped
    c.close()


def test_a_damaged_packet_raises_decode_error_with_ffmpegs_reason(video):
    path = video("h264_mkv")
    c, s, _ = _packets(path)
    b = CpuBackend(s, 1)
    bad = av.Packet(b"\x00\x00\x00\x01\x65" + bytes(range(256)) * 4)
    bad.pts = 12345
    with pytest.raises(DecodeError, match=r"FFmpeg could not decode a packet \(pts 12345\): Invalid data found"):
        for _ in range(3):
            b.decode(bad)
    c.close()


@pytest.mark.parametrize("threads", [None, 0, 1, 3])
def test_thread_settings(video, threads):
    """None: FFmpeg chooses (0 threads = auto, frame+slice); 1: slice threading only; n: n threads of any kind."""
    c, s, packets = _packets(video("h264_bframes"))
    b = CpuBackend(s, threads)
    cc = b._cc
    assert cc.thread_count == (0 if threads is None else threads)
    assert cc.thread_type == (av.codec.context.ThreadType.SLICE if threads == 1 else av.codec.context.ThreadType.AUTO)
    frames = [f for p in packets for f in b.decode(p)] + list(b.flush())
    assert [f.pts for f in frames] == _plain_pts(video("h264_bframes"))
    c.close()


def test_convert_into_strided_destinations_and_the_fallback(video, monkeypatch):
    path = video("odd_size")
    c, b, frame = _first_frame(path)
    want = b.convert(frame).numpy()
    assert_frame_matches("odd_size", str(path), want, 0)
    canvas = np.full((frame.height + 2, frame.width + 2, 3), 9, np.uint8)
    b.convert_into(frame, canvas[1:-1, 1:-1])
    np.testing.assert_array_equal(canvas[1:-1, 1:-1], want)
    assert (canvas[0] == 9).all() and (canvas[-1] == 9).all() and (canvas[:, 0] == 9).all()
    monkeypatch.setattr(b, "_direct", None)  # a build whose swscale ctypes cannot reach: PyAV's reformatter
    np.testing.assert_array_equal(b.convert(frame).numpy(), want)
    c.close()


@pytest.mark.parametrize("name", ["full_range", "full_range_tag", "rotated90", "odd_size", "bt709"])
def test_without_direct_swscale_every_output_equals_the_cli(video, monkeypatch, tmp_path, name):
    """A PyAV built against a system FFmpeg (no swscale through ctypes) converts with PyAV's reformatter: the same
    frames as the CLI for whole uint8 frames (the full-range tag honoured), float32 (RGB48 / 65535) and transforms.

    8-bit only: on 10-bit input PyAV's reformatter is not the CLI's conversion (up to 61 code values apart on the
    HEVC 10-bit fixture, whatever colorspace arguments it is given), which is why the direct path exists."""
    from oracle import cli_frames

    from gpudecode import VideoDecoder
    from gpudecode._backends import _cpu
    from gpudecode.transforms import CenterCrop, Resize

    if name == "full_range_tag":  # yuv420p tagged full range (VP9; x264 would give yuvj420p): only the tag says so
        from media import Spec, make_video

        opts = {"deadline": "realtime", "cpu-used": "8"}
        spec = Spec(name, codec="libvpx-vp9", container="webm", options=opts, colorspace=1, color_range=2)
        path = str(make_video(spec, tmp_path / "full_tag.webm"))
        with av.open(path) as c:
            f = next(c.decode(video=0))
            assert (f.format.name, f.color_range) == ("yuv420p", 2)
    else:
        path = str(video(name))
    monkeypatch.setattr(_cpu, "direct_converter", lambda: None)
    dec = VideoDecoder(path, dimension_order="NHWC", num_threads=1)
    h, w = dec.metadata.height, dec.metadata.width
    np.testing.assert_array_equal(dec[:].numpy(), cli_frames(path, "", w, h))
    f32 = VideoDecoder(path, dimension_order="NHWC", output_dtype=torch.float32, num_threads=1)
    np.testing.assert_array_equal(f32[:].numpy(), cli_frames(path, "", w, h, rgb48=True))
    tr = VideoDecoder(path, dimension_order="NHWC", transforms=[Resize((30, 40)), CenterCrop((21, 21))])
    np.testing.assert_array_equal(tr[:].numpy(), cli_frames(path, "scale=40:30:flags=bilinear,crop=21:21", 21, 21))
    for d in (dec, f32, tr):
        d.close()  # frees the scalers; there is no direct converter to free


def test_a_frame_the_reformatter_refuses_is_a_decode_error(video, monkeypatch):
    path = video("h264_bframes")
    c, b, frame = _first_frame(path)
    monkeypatch.setattr(b, "_direct", None)

    class Refusing:
        def reformat(self, *args, **kwargs):
            raise ValueError("no path to rgb24")

    monkeypatch.setattr(b, "_reformatter", Refusing())
    with pytest.raises(DecodeError, match=r"^swscale could not convert a yuv420p frame to RGB: no path to rgb24$"):
        b.convert(frame)
    c.close()


def test_rgb48_through_the_fallback_equals_the_direct_path(video, monkeypatch):
    path = video("hevc8")
    c, b, frame = _first_frame(path)
    direct = np.empty((frame.height, frame.width, 3), np.uint16)
    b.convert_into(frame, direct)
    monkeypatch.setattr(b, "_direct", None)
    fallback = np.zeros_like(direct)
    b.convert_into(frame, fallback)
    np.testing.assert_array_equal(fallback, direct)
    assert direct.max() > 255  # 16-bit values, not 8-bit ones
    c.close()


def test_a_failing_drain_is_a_decode_error_with_ffmpegs_reason(video):
    c, s, packets = _packets(video("h264_bframes"))
    b = CpuBackend(s, 1)
    for p in packets[:5]:
        b.decode(p)

    class Failing:
        is_open = True

        def decode(self, packet):
            raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")

    b._cc = Failing()
    with pytest.raises(DecodeError, match=r"^FFmpeg failed while draining the decoder: Invalid data found"):
        b.flush()
    assert b.flush() == ()  # drained once: nothing more, no second error
    c.close()
