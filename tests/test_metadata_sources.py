"""Metadata against facts we encoded, and every kind of source."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from media import SPECS
from oracle import ALL, oracle

from gpudecode import InvalidArgumentError, VideoDecoder, VideoStreamMetadata, sample_video_path

EXPECTED_FRAMES = {n: s.num_frames for n, s in SPECS.items()}
EXPECTED_FRAMES["editlist"] = 37  # three frames with negative pts are cut by the edit list
CODECS = {"libx264": "h264", "libx265": "hevc", "libvpx-vp9": "vp9", "libsvtav1": "av1", "mpeg4": "mpeg4"}


@pytest.mark.parametrize("name", ALL)
def test_metadata_facts(video, name):
    spec = SPECS[name]
    m = VideoDecoder(video(name)).metadata
    assert isinstance(m, VideoStreamMetadata)
    assert m.num_frames == m.num_frames_from_content == EXPECTED_FRAMES[name]
    assert m.codec == CODECS[spec.codec]
    rot = spec.rotation or 0
    w, h = (spec.height, spec.width) if rot % 180 else (spec.width, spec.height)
    assert (m.width, m.height) == (w, h)
    assert (m.coded_width, m.coded_height) == (spec.width, spec.height)
    assert m.rotation == spec.rotation  # None without a display matrix, as in torchcodec
    assert m.bit_depth == (10 if "10" in spec.pix_fmt else 8)
    if spec.pts_list is None:
        start = max(spec.start_pts, 0) / spec.fps
        if name == "mpeg4_avi":
            start = 1 / spec.fps  # AVI packs B-frames: FFmpeg's first frame has pts 1
        assert m.begin_stream_seconds == pytest.approx(start, abs=1e-6)
        assert m.begin_stream_seconds_from_content == pytest.approx(start, abs=1e-6)
        assert m.duration_seconds == pytest.approx(EXPECTED_FRAMES[name] / spec.fps, abs=1e-6)
        assert m.average_fps == pytest.approx(spec.fps, rel=1e-6)
        assert m.end_stream_seconds == pytest.approx(start + EXPECTED_FRAMES[name] / spec.fps, abs=1e-6)
    else:
        assert m.begin_stream_seconds == 0
        last = spec.pts_list[-1] / 1000
        assert last < m.end_stream_seconds <= last + 0.1
    assert m.stream_index == (1 if spec.with_audio else 0)
    assert m.media_type == "video"
    with av.open(str(video(name))) as c:  # header facts straight from PyAV
        s = c.streams.video[0]
        sar = s.sample_aspect_ratio
        assert m.pixel_aspect_ratio == (Fraction(sar.numerator, sar.denominator) if sar else Fraction(0, 1))
        want = float(s.start_time * s.time_base) if s.start_time is not None else None
        assert m.begin_stream_seconds_from_header == (pytest.approx(want) if want is not None else None)


def test_metadata_color_tags(video):
    m = VideoDecoder(video("bt709")).metadata
    assert (m.color_space, m.color_range, m.color_primaries, m.color_transfer_characteristic) == (
        "bt709",
        "tv",
        "bt709",
        "bt709",
    )
    assert VideoDecoder(video("bt601")).metadata.color_space == "smpte170m"
    full = VideoDecoder(video("full_range")).metadata
    assert (full.color_range, full.pixel_format) == ("pc", "yuvj420p")
    assert VideoDecoder(video("hevc10")).metadata.pixel_format == "yuv420p10le"
    # untagged: None, as torchcodec reports unspecified tags (not FFmpeg's name "unknown")
    plain = VideoDecoder(video("h264_bframes")).metadata
    with av.open(str(video("h264_bframes"))) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.colorspace, cc.color_primaries, cc.color_trc) == (2, 2, 2)  # AVCOL_*_UNSPECIFIED
    assert (plain.color_space, plain.color_primaries, plain.color_transfer_characteristic) == (None, None, None)


@pytest.mark.parametrize("name", ALL)
def test_approximate_metadata_comes_from_header(video, name):
    m = VideoDecoder(video(name), seek_mode="approximate").metadata
    spec = SPECS[name]
    assert m.rotation == spec.rotation  # read from tkhd by the header-only walk; None without a matrix
    assert (m.width, m.height) == (
        (spec.height, spec.width) if (spec.rotation or 0) % 180 else (spec.width, spec.height)
    )
    assert m.num_frames_from_content is None
    assert m.begin_stream_seconds_from_content is None
    assert m.end_stream_seconds_from_content is None
    assert m.num_frames > 0
    if SPECS[name].header_exact:
        assert m.num_frames == EXPECTED_FRAMES[name]
        assert m.average_fps == pytest.approx(25)


def test_metadata_repr_one_field_per_line(video):
    text = repr(VideoDecoder(video("h264_bframes")).metadata)
    lines = text.splitlines()
    assert lines[0] == "VideoStreamMetadata:"
    assert "  num_frames: 40" in lines
    assert "  codec: h264" in lines
    assert len(lines) == 1 + len(VideoStreamMetadata.__dataclass_fields__)


def test_len_and_repr(video):
    dec = VideoDecoder(video("h264_bframes"))
    assert len(dec) == 40
    assert "h264 96x64" in repr(dec) and "40 frames" in repr(dec)
    assert dec.decoding_device == "cpu"
    assert not dec.cpu_fallback
    frame, batch = dec.get_frame_at(2), dec.get_frames_at([1, 2])
    assert repr(frame) == (
        f"Frame:\n  data (shape): torch.Size([3, 64, 96])\n  pts_seconds: {frame.pts_seconds}\n"
        f"  duration_seconds: {frame.duration_seconds}\n"
    )  # torchcodec's layout, no pixels
    assert repr(batch).startswith("FrameBatch:\n  data (shape): torch.Size([2, 3, 64, 96])\n  pts_seconds: tensor(")


# -- sources -----------------------------------------------------------------------------------------------
class CountingReader(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._b = io.BytesIO(data)
        self.bytes_read = 0
        self.largest_read = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def read(self, n=-1):
        chunk = self._b.read(n)
        self.bytes_read += len(chunk)
        self.largest_read = max(self.largest_read, len(chunk))
        return chunk

    def readinto(self, b):
        chunk = self.read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)

    def seek(self, off, whence=0):
        return self._b.seek(off, whence)

    def tell(self):
        return self._b.tell()


def _sources(path):
    data = path.read_bytes()
    return {
        "str": str(path),
        "path": path,
        "bytes": data,
        "bytearray": bytearray(data),
        "memoryview": memoryview(data),
        "tensor": torch.frombuffer(bytearray(data), dtype=torch.uint8),
        "bytesio": io.BytesIO(data),
        "file": open(path, "rb"),
        "reader": CountingReader(data),
    }


@pytest.mark.parametrize(
    "kind", ["str", "path", "bytes", "bytearray", "memoryview", "tensor", "bytesio", "file", "reader"]
)
@pytest.mark.parametrize("name", ["h264_bframes", "h264_mkv", "vp9"])
@pytest.mark.parametrize("mode", ["exact", "approximate"])
def test_every_source_kind_gives_the_same_frames(video, kind, name, mode):
    path = video(name)
    ref = VideoDecoder(str(path), seek_mode=mode).get_frames_at([0, 17, 3, 39])
    src = _sources(path)[kind]
    dec = VideoDecoder(src, seek_mode=mode)
    got = dec.get_frames_at([0, 17, 3, 39])
    assert torch.equal(got.data, ref.data)
    assert torch.equal(got.pts_seconds, ref.pts_seconds)
    dec.close()


def test_file_object_is_read_on_demand(media_dir):
    from media import Spec, make_video

    big = make_video(
        Spec("big", width=320, height=240, num_frames=250, options={"g": "25", "preset": "ultrafast", "crf": "10"}),
        media_dir / "big.mkv",
    )
    data = big.read_bytes()
    reader = CountingReader(data)
    dec = VideoDecoder(reader, seek_mode="approximate")
    dec.get_frame_at(len(dec) - 5)
    assert reader.largest_read < len(data) // 4
    assert reader.bytes_read < len(data) // 2, (reader.bytes_read, len(data))


def test_sample_video_ships_with_the_package():
    p = sample_video_path()
    assert p.exists() and p.stat().st_size < 300_000
    dec = VideoDecoder(p)
    assert len(dec) == 100 and dec.metadata.width == 320
    assert dec[50].shape == (3, 180, 320)


@pytest.mark.parametrize("bad", [b"", bytearray()])
def test_empty_buffer(bad):
    with pytest.raises(InvalidArgumentError, match="empty"):
        VideoDecoder(bad)


def test_bad_tensor_sources():
    with pytest.raises(InvalidArgumentError, match=r"1-D with dtype torch.uint8"):
        VideoDecoder(torch.zeros(10, dtype=torch.float32))
    with pytest.raises(InvalidArgumentError, match=r"1-D with dtype torch.uint8"):
        VideoDecoder(torch.zeros((2, 5), dtype=torch.uint8))


def test_non_seekable_and_text_file_objects(video, tmp_path):
    class Pipe(io.RawIOBase):
        def readable(self):
            return True

        def seekable(self):
            return False

    with pytest.raises(InvalidArgumentError, match="not seekable"):
        VideoDecoder(Pipe())
    txt = tmp_path / "t.txt"
    txt.write_text("hello")
    with open(txt) as f, pytest.raises(InvalidArgumentError, match="binary mode"):
        VideoDecoder(f)


def test_unsupported_source_type():
    with pytest.raises(InvalidArgumentError, match="Invalid source type"):
        VideoDecoder(12345)
    with pytest.raises(InvalidArgumentError, match="Invalid source type"):
        VideoDecoder(np.zeros(3))


def test_tag_names_follow_ffmpegs_names_and_say_none_for_unspecified():
    from gpudecode._color import COLORSPACE_NAMES, PRIMARIES_NAMES, RANGE_NAMES, TRANSFER_NAMES, tag_name

    assert tag_name(COLORSPACE_NAMES, 1) == "bt709" and tag_name(COLORSPACE_NAMES, 10) == "bt2020c"
    assert tag_name(RANGE_NAMES, 2) == "pc" and tag_name(RANGE_NAMES, 1) == "tv"
    assert tag_name(PRIMARIES_NAMES, 9) == "bt2020" and tag_name(TRANSFER_NAMES, 16) == "smpte2084"
    for table in (COLORSPACE_NAMES, PRIMARIES_NAMES, TRANSFER_NAMES):
        assert tag_name(table, 2) is None  # AVCOL_*_UNSPECIFIED
    assert tag_name(RANGE_NAMES, 0) is None and tag_name(RANGE_NAMES, None) is None
    assert tag_name(COLORSPACE_NAMES, 3) == "3" and tag_name(TRANSFER_NAMES, 99) == "99"  # no FFmpeg name: the number


@pytest.mark.parametrize(
    ("colorspace", "color_range", "pix_fmt", "want"),
    [
        (1, 1, "yuv420p", ("bt709", False)),
        (9, 2, "yuv420p10le", ("bt2020", True)),
        (10, 1, "yuv420p", ("bt2020", False)),
        (5, 0, "yuvj420p", ("bt601", True)),
        (6, 1, "yuv420p", ("bt601", False)),
        (2, 0, None, ("bt601", False)),
        (0, 1, "yuv420p", ("bt601", False)),
        (8, 1, "yuv420p", ("bt601", False)),
    ],
)
def test_color_spec_picks_swscale_s_matrix_and_range(colorspace, color_range, pix_fmt, want):
    """The GPU kernel's choice, as swscale makes it: BT.709 for 1, BT.2020 for 9 and 10 (CL approximated), BT.601
    for every other tag (unspecified included); full range for 'pc' and for every yuvj format."""
    from gpudecode._color import color_spec

    spec = color_spec(colorspace, color_range, pix_fmt, 10 if pix_fmt and "10" in pix_fmt else 8)
    assert (spec.matrix, spec.full_range) == want


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("mode", ["exact", "approximate"])
def test_header_metadata_equals_pyav_header(video, name, mode):
    """The *_from_header fields, and approximate mode's begin/end/duration/fps/count, are the header's values as
    PyAV reports them (torchcodec's rules: approximate mode trusts the header; end = begin + duration)."""
    m = VideoDecoder(video(name), seek_mode=mode).metadata
    with av.open(str(video(name))) as c:
        s = c.streams.video[0]
        tb = s.time_base
        duration = float(s.duration * tb) if s.duration else (c.duration / 1e6 if c.duration else None)
        rate = s.average_rate or s.guessed_rate
        begin = float(s.start_time * tb) if s.start_time is not None else 0.0
        bit_rate = s.codec_context.bit_rate or c.bit_rate
        frames = s.frames or None
    assert m.duration_seconds_from_header == pytest.approx(duration, abs=1e-9)
    assert m.num_frames_from_header == frames
    assert m.average_fps_from_header == pytest.approx(float(rate), rel=1e-12)
    assert m.bit_rate == (pytest.approx(float(bit_rate)) if bit_rate else None)
    if mode == "approximate":
        assert m.begin_stream_seconds == pytest.approx(begin, abs=1e-9)
        assert m.end_stream_seconds == pytest.approx(begin + duration, abs=1e-9)
        assert m.duration_seconds == pytest.approx(duration, abs=1e-9)
        assert m.average_fps == pytest.approx(float(rate), rel=1e-12)
        assert m.num_frames == (frames if frames else round(duration * float(rate)))
    else:
        _, pts, dur = oracle(str(video(name)))
        assert m.begin_stream_seconds == pytest.approx(pts[0], abs=1e-9)
        assert m.end_stream_seconds == pytest.approx(float(np.max(pts + dur)), abs=1e-9)
        assert m.duration_seconds == pytest.approx(float(np.max(pts + dur)) - pts[0], abs=1e-9)
        assert m.average_fps == pytest.approx(len(pts) / (float(np.max(pts + dur)) - pts[0]), rel=1e-9)
