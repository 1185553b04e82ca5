"""The frame-size matrix: real-world and awkward sizes across every codec PyAV's wheel can encode.

YouTube's ladder (256x144 ... 1280x720), phone portrait sizes, laptop panels (1366x768), widths that are not a
multiple of 16 or 64 (swscale's vector blocks), odd sizes, and the smallest size each encoder accepts; 8-bit,
full range, 10- and 12-bit. Clips are short (6 frames, a keyframe every 3, B-frames where the codec has them) so
the whole matrix stays inside CI's time.
"""

from __future__ import annotations

from media import Spec

_N = 6
_X264 = {"bf": "2", "g": "3", "preset": "veryfast"}
_X265 = {"x265-params": "keyint=3:min-keyint=3:bframes=2:log-level=none"}
_VPX = {"g": "3", "deadline": "realtime", "cpu-used": "8"}
_SVT = {"g": "3", "preset": "12"}
_MPEG = {"g": "3", "bf": "1"}


def _case(
    codec: str,
    container: str,
    options: dict[str, str],
    size: str,
    pix_fmt: str = "yuv420p",
    color_range: int | None = None,
    tag: str = "",
) -> Spec:
    w, h = (int(x) for x in size.split("x"))
    short = {
        "libx264": "h264",
        "libx265": "hevc",
        "libvpx-vp9": "vp9",
        "libvpx": "vp8",
        "libsvtav1": "av1",
        "mpeg4": "mpeg4",
        "mpeg2video": "mpeg2",
    }[codec]
    name = f"{short}{tag}_{size}"
    return Spec(
        name,
        codec=codec,
        container=container,
        width=w,
        height=h,
        num_frames=_N,
        pix_fmt=pix_fmt,
        options=options,
        color_range=color_range,
    )


def _h264(size: str, **kw) -> Spec:
    return _case("libx264", "mp4", _X264, size, **kw)


def _hevc(size: str, **kw) -> Spec:
    return _case("libx265", "matroska", _X265, size, **kw)


def _vp9(size: str, **kw) -> Spec:
    return _case("libvpx-vp9", "webm", _VPX, size, **kw)


def _vp8(size: str) -> Spec:
    return _case("libvpx", "webm", _VPX, size)


def _av1(size: str, **kw) -> Spec:
    return _case("libsvtav1", "matroska", _SVT, size, **kw)


def _mpeg4(size: str) -> Spec:
    return _case("mpeg4", "matroska", _MPEG, size)


def _mpeg2(size: str) -> Spec:
    return _case("mpeg2video", "matroska", _MPEG, size)


SIZE_SPECS = {
    s.name: s
    for s in [
        # H.264 (4:2:0 needs even sizes): the whole ladder, portraits, swscale-hostile widths, the smallest
        *[
            _h264(s)
            for s in (
                "256x144",
                "426x240",
                "640x360",
                "854x480",
                "1280x720",
                "1366x768",
                "360x640",
                "1080x1920",
                "200x112",
                "646x364",
                "652x368",
                "2x2",
            )
        ],
        _h264("854x480", pix_fmt="yuvj420p", tag="_fullrange"),
        _h264("426x240", color_range=2, tag="_pcrange"),
        # HEVC, 8/10/12-bit (x265: even sizes, at least 16x16)
        *[_hevc(s) for s in ("426x240", "854x480", "200x112", "360x640", "16x16")],
        *[_hevc(s, pix_fmt="yuv420p10le", tag="_10bit") for s in ("854x480", "200x112", "1366x768", "256x144")],
        *[_hevc(s, pix_fmt="yuv420p12le", tag="_12bit") for s in ("426x240", "200x112", "16x16", "640x360")],
        # VP9 and VP8 (odd sizes allowed, down to 1x1; PyAV's libvpx is 8-bit only)
        *[_vp9(s) for s in ("321x241", "333x250", "121x80", "854x480", "1366x768", "320x241", "1x1")],
        _vp9("321x241", color_range=2, tag="_pcrange"),
        _vp9("320x241", color_range=2, tag="_pcrange"),  # width a multiple of 64: swscale writes into the output
        *[_vp8(s) for s in ("321x241", "200x112", "854x480", "1x1")],
        # AV1 (SVT-AV1: odd sizes, at least 4x4), 8 and 10-bit
        *[_av1(s) for s in ("426x240", "854x480", "121x80", "321x241", "4x4")],
        *[_av1(s, pix_fmt="yuv420p10le", tag="_10bit") for s in ("321x241", "854x480", "320x241")],
        # MPEG-4 Part 2 and MPEG-2 (odd sizes, down to 1x1)
        *[_mpeg4(s) for s in ("426x240", "854x480", "333x250", "200x112", "1x1")],
        *[_mpeg2(s) for s in ("121x80", "854x480", "333x250", "1x1")],
    ]
}
