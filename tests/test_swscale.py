"""The direct swscale converter on its own, against two oracles independent of it: PyAV's reformatter (the same
FFmpeg, driven by PyAV's code) for pixels, and libavutil's own ``av_frame_get_buffer`` for the destination layout.

Frames are synthetic (random planes) so every pixel format, matrix, range and size can be built; bit-exactness with
the ffmpeg CLI on real streams is ``test_frame_sizes``'s job."""

from __future__ import annotations

import ctypes
import glob
import os
from fractions import Fraction

import av
import numpy as np
import pytest
from av.video.reformatter import Interpolation

from gpudecode._backends._swscale import DirectConverter, direct_converter, ffmpeg_linesize

FORMATS = [
    "yuv420p",
    "yuvj420p",
    "yuv422p",
    "yuvj422p",
    "yuv444p",
    "yuvj444p",
    "nv12",
    "yuv420p10le",
    "gray",
    "gray10le",
    "gbrp",
    "gbrp10le",
    "gbrp12le",
    "rgb24",
    "bgr0",
    "p010le",
    "yuv444p12le",
]
# (AVColorSpace, AVColorRange): BT.709 tv, BT.470BG pc, BT.2020 NCL tv, BT.2020 CL tv, unspecified/unspecified,
# SMPTE 170M pc, FCC tv
TAGS = [(1, 1), (5, 2), (9, 1), (10, 1), (2, 0), (6, 2), (4, 1)]
SIZES = [(64, 16), (65, 17), (200, 30), (2, 2), (426, 8), (128, 3)]


def _frame(fmt: str, w: int, h: int, colorspace: int, color_range: int, seed: int = 0) -> av.VideoFrame:
    rng = np.random.default_rng(seed)
    f = av.VideoFrame(w, h, fmt)
    depth = 12 if "12" in fmt else 10 if "10" in fmt else 8
    for p in f.planes:
        data = rng.integers(0, 256, p.buffer_size, dtype=np.uint8)
        if depth > 8:  # valid samples only: 10/12 bits in 16 (p010 keeps them in the high bits)
            words = data.view("<u2")
            words[:] = (words >> (16 - depth)) << (16 - depth) if fmt.startswith("p0") else words >> (16 - depth)
        p.update(data.tobytes())
    f.colorspace = colorspace
    f.color_range = color_range
    return f


def _oracle(f: av.VideoFrame) -> np.ndarray:
    """PyAV's reformatter, as the CPU backend calls it when the direct path is unavailable.

    PyAV (like the ffmpeg CLI) refuses BT.2020 constant luminance; swscale's coefficient table gives it the BT.2020
    matrix, so its oracle is the same picture tagged BT.2020 NCL (see test_edge_streams)."""
    cs = f.colorspace
    if cs == 10:
        f.colorspace = 9
    try:
        return f.reformat(
            format="rgb24", src_color_range=f.color_range, interpolation=Interpolation.BICUBIC
        ).to_ndarray()
    finally:
        f.colorspace = cs


@pytest.fixture(scope="module")
def conv() -> DirectConverter:
    c = direct_converter()
    assert c is not None, "PyAV's wheel bundles libswscale: the direct path must be reachable"
    return c


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_matrix_range_and_size_matches_pyavs_reformatter(conv, fmt):
    rgb = av.VideoFormat(fmt).is_rgb
    # RGB streams are tagged as such (AVCOL_SPC_RGB, full range; see the FFV1 test below against the CLI)
    for colorspace, color_range in [(0, 2), (0, 0), (2, 2)] if rgb else TAGS:
        for w, h in SIZES:
            if fmt in ("nv12", "p010le") and (w % 2 or h % 2):
                continue
            if fmt.startswith("gray") and color_range == 1:
                # PyAV leaves swscale's default (full) for gray tagged limited; vf_scale, like us, applies the tag.
                # No encoder here writes such a stream (gray streams come out tagged pc), so no CLI oracle either.
                continue
            f = _frame(fmt, w, h, colorspace, color_range, seed=w * h + colorspace)
            out = np.empty((h, w, 3), np.uint8)
            assert conv.convert_into(f, out)
            np.testing.assert_array_equal(out, _oracle(f), err_msg=f"{fmt} {w}x{h} cs={colorspace} r={color_range}")


def test_yuvj_formats_are_full_range_even_untagged(conv):
    """yuvj* is FFmpeg's old spelling of full range: an untagged yuvj420p frame converts as tagged full range."""
    j = _frame("yuvj420p", 96, 32, 1, 0)
    p = _frame("yuv420p", 96, 32, 1, 2)
    limited = _frame("yuv420p", 96, 32, 1, 1)
    outs = [np.empty((32, 96, 3), np.uint8) for _ in range(3)]
    for f, o in zip((j, p, limited), outs, strict=True):
        assert conv.convert_into(f, o)
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[1], outs[2])


def test_a_change_of_matrix_range_format_or_size_rebuilds_the_context(conv):
    """One converter over frames whose tags, format and size change from frame to frame (a stream whose in-band
    parameters change): each frame == a fresh conversion."""
    seq = [
        ("yuv420p", 64, 16, 1, 1),
        ("yuv420p", 64, 16, 5, 1),
        ("yuv420p", 64, 16, 5, 2),
        ("yuv420p", 64, 16, 9, 2),
        ("yuv422p", 64, 16, 9, 2),
        ("yuv420p", 66, 16, 9, 2),
        ("yuv420p", 66, 18, 9, 2),
        ("yuv420p", 64, 16, 1, 1),
        ("yuvj420p", 64, 16, 1, 1),
        ("yuv420p", 64, 16, 1, 1),
    ]
    for k, (fmt, w, h, cs, r) in enumerate(seq):
        f = _frame(fmt, w, h, cs, r, seed=k)
        out = np.empty((h, w, 3), np.uint8)
        assert conv.convert_into(f, out)
        np.testing.assert_array_equal(out, _oracle(f), err_msg=str(seq[k]))


def _libavutil() -> ctypes.CDLL:
    libdir = os.path.join(os.path.dirname(av.__file__), os.pardir, "av.libs")
    return ctypes.CDLL(sorted(glob.glob(os.path.join(libdir, "libavutil-*.so*")))[0])


@pytest.mark.parametrize(
    "width", [1, 2, 3, 21, 63, 64, 65, 127, 128, 129, 200, 256, 360, 426, 640, 854, 1280, 1920, 2560, 3840]
)
def test_linesize_is_av_frame_get_buffers(width):
    """The scratch frame's rows are laid out as FFmpeg lays out its own RGB24 frames (linesize from the real
    av_frame_get_buffer: AVFrame's linesize[0] follows its 8 data pointers)."""
    avu = _libavutil()
    avu.av_frame_alloc.restype = ctypes.c_void_p
    avu.av_frame_get_buffer.argtypes = [ctypes.c_void_p, ctypes.c_int]
    avu.av_frame_free.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
    fr = ctypes.c_void_p(avu.av_frame_alloc())
    try:
        base = fr.value
        data_end = base + 8 * ctypes.sizeof(ctypes.c_void_p)
        # AVFrame: uint8_t *data[8]; int linesize[8]; uint8_t **extended_data; int width, height, nb_samples, format
        ints = (ctypes.c_int * 8).from_address(data_end)
        tail = (ctypes.c_int * 4).from_address(data_end + 8 * 4 + ctypes.sizeof(ctypes.c_void_p))
        tail[0], tail[1], tail[3] = width, 5, 2  # width, height, AV_PIX_FMT_RGB24
        assert avu.av_frame_get_buffer(fr, 0) == 0
        assert ffmpeg_linesize(width) == ints[0]
    finally:
        avu.av_frame_free(ctypes.byref(fr))


def test_scratch_layout_and_direct_path(conv):
    """Widths that are multiples of 64 convert straight into a C-contiguous aligned destination (no scratch); other
    destinations go through a scratch frame padded as FFmpeg pads its frames; nothing outside ``out`` changes."""
    c = direct_converter()
    assert c is not None
    f = _frame("yuv420p", 128, 10, 1, 1)
    raw = np.zeros(128 * 10 * 3 + 64, np.uint8)
    skip = -raw.ctypes.data % 64
    out = raw[skip : skip + 128 * 10 * 3].reshape(10, 128, 3)
    assert c.convert_into(f, out) and c._scratch is None  # direct
    np.testing.assert_array_equal(out, _oracle(f))
    rows = c._frame.rows(100, 10)
    assert rows.shape == (10, ffmpeg_linesize(100)) and rows.ctypes.data % 64 == 0
    assert c._scratch is not None and c._scratch.shape[0] >= ffmpeg_linesize(100) * 32 + 64  # 32-row padding
    assert c._scratch.ctypes.data % 64 == 0
    again = c._frame.rows(100, 10)
    assert again.ctypes.data == rows.ctypes.data  # reused for the same size
    assert (
        c._frame.rows(100, 40).shape == (40, ffmpeg_linesize(100))
        and c._scratch.shape[0] >= ffmpeg_linesize(100) * 64 + 64
    )
    # a strided destination inside a canvas of sentinels
    for w, h in ((128, 10), (100, 7), (65, 3)):
        f = _frame("yuv420p", w, h, 1, 1, seed=w)
        canvas = np.full((h + 2, w + 3, 4), 7, np.uint8)
        view = canvas[1:-1, 1:-2, :3]
        assert c.convert_into(f, view)
        np.testing.assert_array_equal(view, _oracle(f))
        mask = np.ones(canvas.shape, bool)
        mask[1:-1, 1:-2, :3] = False
        assert (canvas[mask] == 7).all(), f"{w}x{h}: bytes outside the destination changed"
    c.close()
    assert c._ctx is None and c._scratch is None
    c.close()  # twice is fine
    f = _frame("yuv420p", 64, 4, 1, 1)
    out = np.empty((4, 64, 3), np.uint8)
    assert c.convert_into(f, out)  # usable again after close: the context is rebuilt
    np.testing.assert_array_equal(out, _oracle(f))


def test_bad_destinations_and_unknown_formats(conv):
    f = _frame("yuv420p", 64, 16, 1, 1)
    with pytest.raises(ValueError, match="does not hold a 64x16 RGB24/RGB48 frame"):
        conv.convert_into(f, np.empty((16, 63, 3), np.uint8))
    with pytest.raises(ValueError, match="does not hold"):
        conv.convert_into(f, np.empty((16, 64, 3), np.int16))
    with pytest.raises(ValueError, match="does not hold"):
        conv.convert_into(f, np.empty((16, 64, 3), np.float32))
    with pytest.raises(ValueError, match="does not hold"):
        conv.convert_into(f, np.empty((16, 64, 4), np.uint8))
    assert conv._pix_fmt("no-such-format") < 0
    assert conv._pix_fmt("yuv420p") == 0 and conv._pix_fmt("rgb24") == 2  # AVPixelFormat values


@pytest.mark.parametrize(
    ("pix_fmt", "codec", "ext"),
    [
        ("gbrp10le", "ffv1", "mkv"),
        ("gbrp12le", "ffv1", "mkv"),
        ("gbrp", "ffv1", "mkv"),
        ("gray10le", "ffv1", "mkv"),
        ("gray12le", "ffv1", "mkv"),
        ("yuv444p10le", "ffv1", "mkv"),
        ("gray10le", "rawvideo", "nut"),
        ("gray", "rawvideo", "nut"),
        ("yuv420p", "rawvideo", "nut"),  # untagged range
    ],
)
def test_rgb_and_gray_streams_are_bit_exact_with_the_cli(tmp_path, pix_fmt, codec, ext):
    """Planar RGB and gray at 8-12 bits (what lossless archives hold), tagged (FFV1) and untagged (raw video in NUT):
    == ``ffmpeg -vf format=rgb24``. Two bugs these caught: a 10/12-bit RGB input goes through YUV inside swscale,
    and an output matrix other than the input's put its colours off by up to 31; an untagged 10-bit gray stream is
    full range to swscale (and the CLI), and converting it as limited put it off by up to 18."""
    from oracle import cli_rgb_frames, run_ffmpeg

    from gpudecode import VideoDecoder

    path = tmp_path / f"{pix_fmt}.{ext}"
    vf = f"format={pix_fmt}" + (",setparams=range=unknown" if codec == "rawvideo" else "")
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=s=98x34:d=0.12", "-vf", vf, "-c:v", codec, str(path))
    cli = cli_rgb_frames(str(path))
    assert cli.shape == (3, 34, 98, 3)
    dec = VideoDecoder(path, dimension_order="NHWC")
    assert dec.metadata.pixel_format == {"gbrp": "bgr0"}.get(pix_fmt, pix_fmt)  # FFV1 stores 8-bit RGB as bgr0
    if codec == "rawvideo":
        assert dec.metadata.color_range is None
    np.testing.assert_array_equal(dec[:].numpy(), cli)


@pytest.mark.parametrize("missing", ["libswscale", "libavutil", "both"])
def test_without_ffmpegs_libraries_in_pyavs_wheel_there_is_no_direct_converter(monkeypatch, missing):
    """PyAV built against a system FFmpeg has no ``av.libs``: the direct path is unavailable (``None``, every time
    it is asked), and nothing crashes."""
    import gpudecode._backends._swscale as sws

    real_glob = glob.glob

    def without(pattern: str) -> list[str]:
        gone = ("libswscale", "libavutil") if missing == "both" else (missing,)
        return [] if any(f"{name}-" in pattern for name in gone) else real_glob(pattern)

    monkeypatch.setattr(sws, "_libs", False)  # not loaded yet
    monkeypatch.setattr(sws.glob, "glob", without)
    assert direct_converter() is None
    assert direct_converter() is None  # the verdict is kept, not half-loaded libraries


def test_libraries_that_fail_to_load_give_no_direct_converter(monkeypatch):
    import gpudecode._backends._swscale as sws

    def refuse(path: str) -> None:
        raise OSError(f"{path}: cannot open shared object file")

    monkeypatch.setattr(sws, "_libs", False)
    monkeypatch.setattr(sws.ctypes, "CDLL", refuse)
    assert direct_converter() is None
    assert direct_converter() is None


def test_rgb48_conversion_matches_libavfilter_and_never_writes_straight_into_the_destination(conv):
    """RGB48 (float output's source) equals libavfilter's ``format=rgb48le``; even at a width that is a multiple of
    64 it goes through the padded scratch frame (only RGB24 writes straight into caller memory)."""
    for fmt, w, h in (("yuv420p", 128, 10), ("yuv420p10le", 65, 9), ("yuv444p", 64, 3)):
        f = _frame(fmt, w, h, 1, 1, seed=w)
        graph = av.filter.Graph()
        src = graph.add_buffer(width=w, height=h, format=fmt, time_base=Fraction(1, 25))
        fmt_f = graph.add("format", "rgb48le")
        sink = graph.add("buffersink")
        src.link_to(fmt_f)
        fmt_f.link_to(sink)
        graph.configure()
        graph.push(f)
        want = sink.pull().to_ndarray()
        raw = np.zeros(w * h * 3 * 2 + 64, np.uint8)
        skip = -raw.ctypes.data % 64
        out = raw[skip : skip + w * h * 6].view(np.uint16).reshape(h, w, 3)
        conv.close()
        assert conv.convert_into(f, out)
        np.testing.assert_array_equal(out, want)
        assert conv._scratch is not None  # went through the scratch frame
