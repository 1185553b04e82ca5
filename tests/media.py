"""Test and benchmark videos, generated with PyAV's encoders, plus the independent oracle decoder."""

from __future__ import annotations

import fractions
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np


@dataclass(frozen=True)
class Spec:
    """How to make one fixture video."""

    name: str
    codec: str = "libx264"
    container: str = "mp4"
    width: int = 96
    height: int = 64
    num_frames: int = 40
    fps: int = 25
    pix_fmt: str = "yuv420p"
    options: dict[str, str] = field(default_factory=dict)
    start_pts: int = 0  # in frames
    pts_list: tuple[int, ...] | None = None  # explicit pts (time base 1/1000), for VFR
    rotation: int | None = None
    colorspace: int | None = None
    color_range: int | None = None
    with_audio: bool = False
    header_exact: bool = True  # approximate mode is exact on this file


X264 = {"bf": "3", "g": "12", "preset": "ultrafast", "tune": "zerolatency"}
X264_B = {"bf": "3", "g": "12", "preset": "veryfast"}

SPECS = {
    s.name: s
    for s in [
        Spec("h264_bframes", options=X264_B),
        Spec("h264_mkv", container="matroska", options=X264_B),
        # open GOP with leading pictures: B-frames coded after each I-frame but shown before it (b-adapt=0 keeps them)
        Spec(
            "h264_open_gop",
            container="matroska",
            options={**X264_B, "x264-params": "open-gop=1:keyint=10:min-keyint=10:scenecut=0:b-adapt=0"},
        ),
        Spec("hevc8", codec="libx265", options={"x265-params": "keyint=10:bframes=3:log-level=none"}),
        Spec(
            "hevc10",
            codec="libx265",
            container="matroska",
            pix_fmt="yuv420p10le",
            options={"x265-params": "keyint=10:bframes=2:log-level=none"},
        ),
        Spec("vp9", codec="libvpx-vp9", container="webm", options={"g": "10", "deadline": "realtime", "cpu-used": "8"}),
        Spec(
            "av1",
            codec="libsvtav1",
            container="matroska",
            width=128,
            height=72,
            num_frames=24,
            options={"g": "10", "preset": "12"},
        ),
        Spec("mpeg4_avi", codec="mpeg4", container="avi", options={"g": "10", "bf": "1"}, header_exact=False),
        Spec(
            "odd_size",
            codec="libvpx-vp9",
            container="webm",
            width=65,
            height=49,
            options={"g": "10", "deadline": "realtime", "cpu-used": "8"},
        ),
        Spec("nonzero_start", container="matroska", options=X264_B, start_pts=60, header_exact=False),
        Spec(
            "vfr",
            container="matroska",
            options=X264_B,
            num_frames=30,
            pts_list=tuple(int(x) for x in np.cumsum([0] + [40 if i % 3 else 90 for i in range(29)])),
            header_exact=False,
        ),
        Spec("rotated90", options=X264_B, rotation=90),
        Spec("rotated270", options=X264_B, rotation=-90),
        Spec("rotated180", options=X264_B, rotation=180),
        Spec("editlist", options={"bf": "2", "g": "10", "preset": "veryfast"}, start_pts=-3, header_exact=False),
        Spec("full_range", pix_fmt="yuvj420p", options=X264_B),
        Spec("bt709", options=X264_B, colorspace=1, color_range=1),
        Spec("bt601", container="matroska", options=X264_B, colorspace=6, color_range=1),
        Spec("with_audio", options=X264_B, with_audio=True),
    ]
}


def _frame_image(i: int, w: int, h: int) -> np.ndarray:
    """A frame whose content identifies its number and varies in every channel and direction."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = (x * 255 // max(1, w - 1) + i * 9) % 256
    img[..., 1] = (y * 255 // max(1, h - 1) + i * 5) % 256
    img[..., 2] = ((x // 8 + y // 8) % 2) * 160 + (i * 13) % 90
    # a moving block and a fixed corner marker (shows orientation)
    bx = (i * 3) % max(1, w - 8)
    img[h // 3 : h // 3 + 8, bx : bx + 8] = (250, 250, 20)
    img[:6, :10] = (255, 0, 0)
    return img


def make_video(spec: Spec, path: Path) -> Path:
    """Encode ``spec`` into ``path``."""
    container = av.open(str(path), "w", format=spec.container)
    if spec.with_audio:
        audio = container.add_stream("aac", rate=16000)
        audio.layout = "mono"
    stream = container.add_stream(spec.codec, rate=spec.fps)
    stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, spec.pix_fmt
    tb = fractions.Fraction(1, 1000) if spec.pts_list is not None else fractions.Fraction(1, spec.fps)
    stream.codec_context.time_base = tb
    if spec.container in ("mp4", "mov"):
        stream.time_base = fractions.Fraction(1, spec.fps * 512)
    if spec.options:
        stream.options = dict(spec.options)
    if spec.rotation is not None:
        stream.set_display_rotation(spec.rotation)
    cc = stream.codec_context
    # One encoder thread: libvpx's threaded VP8 encoder busy-waits, and with two xdist workers encoding at once on
    # two cores a 40-frame clip took minutes (7 s alone for 854x480; 0.18 s with one thread).
    cc.thread_count = 1
    if spec.colorspace is not None:
        cc.colorspace = spec.colorspace
        cc.color_primaries = spec.colorspace
        cc.color_trc = spec.colorspace
    if spec.color_range is not None:
        cc.color_range = spec.color_range
    src_fmt = "rgb24"
    for i in range(spec.num_frames):
        img = _frame_image(i, spec.width, spec.height)
        frame = av.VideoFrame.from_ndarray(img, src_fmt)
        frame = frame.reformat(format=spec.pix_fmt, dst_colorspace=spec.colorspace, dst_color_range=spec.color_range)
        frame.pts = spec.pts_list[i] if spec.pts_list is not None else i + spec.start_pts
        frame.time_base = tb
        for pkt in stream.encode(frame):
            container.mux(pkt)
        if spec.with_audio and i % 5 == 0:
            samples = np.zeros((1, 3200), np.float32)
            af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            af.sample_rate = 16000
            af.pts = i * 640
            for pkt in audio.encode(af):
                container.mux(pkt)
    for pkt in stream.encode():
        container.mux(pkt)
    if spec.with_audio:
        for pkt in audio.encode():
            container.mux(pkt)
    container.close()
    return path


def make_audio_only(path: Path) -> Path:
    """A file with one AAC stream and no video."""
    container = av.open(str(path), "w", format="mp4")
    audio = container.add_stream("aac", rate=16000)
    audio.layout = "mono"
    for i in range(5):
        af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        af.sample_rate = 16000
        af.pts = i * 1024
        for pkt in audio.encode(af):
            container.mux(pkt)
    for pkt in audio.encode():
        container.mux(pkt)
    container.close()
    return path


# -- oracle -------------------------------------------------------------------------------------------------
def _autorotate_filters(rotation: int) -> list[tuple[str, str]]:
    """The filters FFmpeg's CLI inserts for a display matrix (fftools: theta = -rotation)."""
    theta = (-rotation) % 360
    if theta == 90:
        return [("transpose", "clock")]
    if theta == 180:
        return [("hflip", ""), ("vflip", "")]
    if theta == 270:
        return [("transpose", "cclock")]
    return []


@dataclass
class OracleFrame:
    """A frame from the reference decode."""

    pts: int
    duration: int
    rgb: np.ndarray  # HWC uint8, upright


def oracle_frames(path: Path | str, stream_index: int | None = None) -> tuple[list[OracleFrame], Any]:
    """Decode every frame sequentially with PyAV and convert with libavfilter (``format=rgb24``), the pipeline
    ``ffmpeg -i X -vf format=rgb24`` runs (with its autorotation). Returns frames and the stream's time base."""
    container = av.open(str(path))
    stream = container.streams.video[0] if stream_index is None else container.streams[stream_index]
    out: list[OracleFrame] = []
    graph = None
    sink = None
    for frame in container.decode(stream):
        if graph is None:
            graph = av.filter.Graph()
            src = graph.add_buffer(template=stream)
            last = src
            for name, arg in _autorotate_filters(frame.rotation):
                f = graph.add(name, arg) if arg else graph.add(name)
                last.link_to(f)
                last = f
            fmt = graph.add("format", "rgb24")
            last.link_to(fmt)
            sink = graph.add("buffersink")
            fmt.link_to(sink)
            graph.configure()
        graph.push(frame)
        rgb = sink.pull().to_ndarray()
        out.append(OracleFrame(pts=frame.pts, duration=frame.duration or 0, rgb=rgb))
    tb = stream.time_base
    container.close()
    return out, tb


def yuv_frames_float_rgb(path: Path | str) -> list[tuple[int, np.ndarray]]:
    """Exact float RGB (nearest chroma) of every frame, computed in NumPy from the decoded YUV planes."""
    from gpudecode._color import color_spec, yuv_to_rgb_matrix

    container = av.open(str(path))
    stream = container.streams.video[0]
    res = []
    for f in container.decode(stream):
        depth = f.format.components[0].bits
        spec = color_spec(f.colorspace, f.color_range, f.format.name, depth)
        m = yuv_to_rgb_matrix(spec)
        dt = np.uint16 if depth > 8 else np.uint8
        w, h = f.width, f.height
        planes = []
        for k, (pw, ph) in enumerate([(w, h), ((w + 1) // 2, (h + 1) // 2), ((w + 1) // 2, (h + 1) // 2)]):
            p = f.planes[k]
            arr = np.frombuffer(p, dt).reshape(ph, p.line_size // np.dtype(dt).itemsize)[:, :pw]
            planes.append(arr.astype(np.float64))
        u = planes[1].repeat(2, 0).repeat(2, 1)[:h, :w]
        v = planes[2].repeat(2, 0).repeat(2, 1)[:h, :w]
        yuv1 = np.stack([planes[0], u, v, np.ones_like(u)], -1)
        res.append((f.pts, yuv1 @ m.T))
    container.close()
    return res


def patch_bytes(data: bytes, offset: int, new: bytes) -> bytes:
    """Return ``data`` with ``new`` written at ``offset``."""
    return data[:offset] + new + data[offset + len(new) :]


def find_box(data: bytes, kind: bytes) -> int:
    """Offset of the first box of type ``kind`` (naive search; for tests only)."""
    pos = data.find(kind)
    return pos - 4 if pos >= 4 else -1


def u32(x: int) -> bytes:
    """Big-endian 32-bit."""
    return struct.pack(">I", x)


FASTSTART = {"movflags": "+faststart"}  # muxer options: the MP4 moov box before the media data


def remux(src: Path, dst: Path, fmt: str | None = None, options: dict[str, str] | None = None) -> Path:
    """``src``'s video stream copied, packets unchanged, into ``dst`` (container ``fmt``, muxer ``options``)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format=fmt, options=options or {}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for pkt in inp.demux(video=0):
            if pkt.size:
                pkt.stream = stream
                out.mux(pkt)
    return dst
