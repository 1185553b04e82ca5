"""Streams whose first pictures FFmpeg may not output: the probe decode that decides which lead packets are frames.

Each file is a real encode cut without re-encoding (packets copied from a decode position on), so its lead has no
references. Oracles: the ffmpeg CLI's frames (``-fps_mode passthrough``, ``format=rgb24``) and a plain PyAV decode's
frame count and timestamps. ``test_edge_streams.py`` has the plainer cuts (mid-GOP H.264, a cut at an HEVC CRA).
"""

from __future__ import annotations

import contextlib
import random
import re
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from oracle import cli_rgb_frames, run_ffmpeg

from gpudecode import DecodeError, VideoDecoder
from gpudecode._index import _scan_packets, _without_undecodable_lead

W, H = 160, 120


def _encode(out: Path, codec: str, seconds: str, *opts: str) -> Path:
    source = f"testsrc2=size={W}x{H}:rate=25"
    run_ffmpeg("-f", "lavfi", "-i", source, "-t", seconds, "-c:v", codec, *opts, "-pix_fmt", "yuv420p", str(out))
    return out


def _cut(src: Path, out: Path, start: int, garble: int | None = None) -> Path:
    """Copy the non-empty packets from decode position ``start`` on; packet ``garble`` gets random bytes instead."""
    with av.open(str(src)) as c, av.open(str(out), "w") as dst:
        s = c.streams.video[0]
        t = dst.add_stream_from_template(s)
        for i, pkt in enumerate(p for p in c.demux(s) if p.size):
            if i < start:
                continue
            if i == garble:
                noise = av.Packet(random.Random(i).randbytes(pkt.size))
                noise.pts, noise.dts, noise.time_base = pkt.pts, pkt.dts, pkt.time_base
                pkt = noise
            pkt.stream = t
            dst.mux(pkt)
    return out


def _keyframe_positions(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        return [i for i, p in enumerate(p for p in c.demux(video=0) if p.size) if p.is_keyframe]


@pytest.fixture(scope="module")
def lead(tmp_path_factory):
    """lead(name) -> path of one cut file (built once per module)."""
    folder = tmp_path_factory.mktemp("lead")
    made: dict[str, Path] = {}

    def build(name: str) -> Path:
        out = folder / name
        if name == "garbled_lead.mkv":  # H.264 cut mid-GOP whose first packet is noise: decoding it raises
            base = _encode(folder / "h264.mkv", "libx264", "2", "-bf", "2", "-g", "12")
            return _cut(base, out, 3, garble=3)
        if name == "garbled_middle.mkv":  # the same H.264, whole, but packet 20 (mid-GOP) is noise
            return _cut(build("garbled_lead.mkv").parent / "h264.mkv", out, 0, garble=20)
        if name == "mpeg4_long_lead.mkv":  # 57 packets before the first keyframe, all output (concealed) by FFmpeg
            base = _encode(folder / "mpeg4.mkv", "mpeg4", "4", "-g", "60", "-bf", "0")
            return _cut(base, out, 3)
        if name == "cra_short_gop.mkv":  # x265 open GOPs of 5: cut at a CRA whose leading pictures end its GOP
            base = _encode(folder / "hevc5.mkv", "libx265", "2", "-x265-params", "log-level=none:keyint=5")
            return _cut(base, out, _keyframe_positions(base)[3])
        if name == "cra_mid_gop.mkv":  # x265 open GOPs of 12, cut mid-GOP: a lead, then a CRA and its leading
            base = _encode(folder / "hevc12.mkv", "libx265", "2", "-x265-params", "log-level=none:keyint=12")
            return _cut(base, out, 7)  # pictures
        raise KeyError(name)

    def get(name: str) -> Path:
        if name not in made:
            made[name] = build(name)
        return made[name]

    return get


def _plain(path: Path) -> tuple[int, list[float]]:
    """A plain PyAV decode that skips the packets FFmpeg rejects, as the CLI does: the packets and the frames' pts
    in seconds."""
    packets, pts = 0, []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        for pkt in c.demux(s):  # the last, empty packet flushes the decoder
            packets += pkt.size > 0
            with contextlib.suppress(av.error.InvalidDataError):
                pts += [float(f.pts * s.time_base) for f in s.codec_context.decode(pkt)]
    return packets, pts


@pytest.mark.parametrize("name", ["garbled_lead.mkv", "mpeg4_long_lead.mkv", "cra_short_gop.mkv", "cra_mid_gop.mkv"])
def test_a_cut_stream_has_the_frames_ffmpeg_outputs(lead, name):
    """The lead packets FFmpeg outputs nothing for are not frames; those it outputs are, however long the lead or
    however it ends (a CRA's leading pictures at the end of its GOP, after a mid-GOP lead), and a lead packet that
    fails to decode is one it outputs nothing for."""
    path = lead(name)
    packets, pts = _plain(path)
    ref = cli_rgb_frames(str(path))
    assert ref.shape[0] == len(pts)
    if name != "mpeg4_long_lead.mkv":
        assert len(pts) < packets  # the fixture really loses pictures
    dec = VideoDecoder(str(path), dimension_order="NHWC")
    assert len(dec) == len(pts)
    np.testing.assert_array_equal(dec[:].numpy(), ref)
    assert dec.get_frames_in_range(0, len(dec)).pts_seconds.tolist() == pytest.approx(pts)
    for i in (0, len(pts) // 2, len(pts) - 1):  # a fresh decoder each: the seek path
        np.testing.assert_array_equal(VideoDecoder(str(path), dimension_order="NHWC")[i].numpy(), ref[i])


class _CountingContainer:
    """A real PyAV container whose ``demux`` counts the packets it hands out."""

    def __init__(self, container: Any) -> None:
        self.container = container
        self.demuxed = 0

    def demux(self, stream: Any) -> Any:
        for pkt in self.container.demux(stream):
            self.demuxed += 1
            yield pkt


def test_the_lead_probe_stops_soon_after_the_lead(lead):
    """Index building decodes the lead and a few packets more (for the decoder's delay), not the whole stream."""
    path = str(lead("mpeg4_long_lead.mkv"))
    with av.open(path) as c:
        arrays = _scan_packets(c, c.streams.video[0])
    last_lead = _keyframe_positions(Path(path))[0] - 1
    assert last_lead == 56 and arrays[0].shape[0] == 97
    opened: list[_CountingContainer] = []
    containers: list[Any] = []

    def open_stream() -> tuple[Any, Any]:
        c = av.open(path)
        containers.append(c)
        opened.append(_CountingContainer(c))
        return opened[-1], c.streams.video[0]

    try:
        discard = _without_undecodable_lead(open_stream, *arrays)[3]
    finally:
        for c in containers:
            c.close()
    assert not discard.any()  # MPEG-4 part 2 shows every lead picture
    assert len(opened) == 1 and last_lead < opened[0].demuxed <= last_lead + 17


def test_a_packet_the_decoder_rejects_is_skipped_with_its_reason(lead, caplog):
    """A mid-GOP packet of noise is fed and rejected: the decode goes on past it, its frame is reported missing,
    and the debug log says which packet and why, in FFmpeg's words as a plain PyAV decode of that packet gives."""
    path = lead("garbled_middle.mkv")
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        packets = [p for p in c.demux(s) if p.size]
        for p in packets[:20]:
            s.codec_context.decode(p)
        with pytest.raises(av.error.InvalidDataError) as plain:
            s.codec_context.decode(packets[20])
    dec = VideoDecoder(str(path))
    with caplog.at_level("DEBUG", logger="gpudecode"), pytest.raises(DecodeError, match=r"Could not decode frame"):
        dec.get_frames_in_range(0, len(dec))
    said = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    prefix = "gpudecode: skipping a packet the decoder rejected: FFmpeg could not decode a packet "
    assert f"{prefix}(pts {packets[20].pts}): {plain.value.strerror}" in said
    assert all(re.fullmatch(re.escape(prefix) + r"\(pts \d+\): .+", m) for m in said)
