"""Streams that exercise the index's and the colour path's rarer decisions, each against an independent oracle.

Fixtures are made with the ffmpeg CLI (``-c copy`` remuxes and bitstream filters, so the coded pictures are the
same and only the container or tags change). Oracles: the CLI's frames (``-fps_mode passthrough``, ``format=rgb24``)
for pixels and a plain PyAV decode for the frames' order and timestamps.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from oracle import cli_rgb_frames, run_ffmpeg

from gpudecode import VideoDecoder
from gpudecode._index import _from_packets, _scan_packets

W, H = 160, 120


def _encode(out: Path, *extra: str, seconds: str = "2", pix_fmt: str = "yuv420p", codec: str = "libx264") -> Path:
    opts = ["-bf", "2", "-g", "12"] if codec == "libx264" else ["-x265-params", "log-level=none:keyint=12"]
    run_ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={W}x{H}:rate=25",
        "-t",
        seconds,
        "-c:v",
        codec,
        *opts,
        "-pix_fmt",
        pix_fmt,
        *extra,
        str(out),
    )
    return out


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """made(name) -> path of one edge-case file (built once per module)."""
    folder = tmp_path_factory.mktemp("edge")
    cache: dict[str, Path] = {}

    def build(name: str) -> Path:
        base = folder / "base.mkv"
        if not base.exists():
            _encode(base)
        if name in ("not_on_keyframe.mkv", "not_on_keyframe_mpeg4.mkv"):  # a cut without re-encoding: starts
            out = folder / name  # three packets into a GOP
            if "mpeg4" in name:  # FFmpeg's MPEG-4 part 2 decoder outputs the pictures before the first keyframe
                base = folder / "base_mpeg4.mkv"
                run_ffmpeg(
                    "-f",
                    "lavfi",
                    "-i",
                    f"testsrc2=size={W}x{H}:rate=25",
                    "-t",
                    "2",
                    "-c:v",
                    "mpeg4",
                    "-g",
                    "12",
                    "-bf",
                    "0",
                    str(base),
                )
            with av.open(str(base)) as src, av.open(str(out), "w") as dst:
                s = src.streams.video[0]
                t = dst.add_stream_from_template(s)
                for i, pkt in enumerate(p for p in src.demux(s) if p.size):
                    if i >= 3:
                        pkt.stream = t
                        dst.mux(pkt)
            return out
        if name == "cra_cut.mkv":  # HEVC open GOPs (x265's default), cut at the second keyframe: a CRA
            base = _encode(folder / "open_gop_hevc.mkv", codec="libx265")  # whose leading pictures are lost
            with av.open(str(base)) as src, av.open(str(folder / name), "w") as dst:
                s = src.streams.video[0]
                t = dst.add_stream_from_template(s)
                keys = 0
                for pkt in (p for p in src.demux(s) if p.size):
                    keys += pkt.is_keyframe
                    if keys >= 2:
                        pkt.stream = t
                        dst.mux(pkt)
            return folder / name
        if name == "cra_cut.mp4":
            run_ffmpeg("-i", str(build("cra_cut.mkv")), "-c", "copy", str(folder / name))
        elif name == "not_on_keyframe.mp4":
            run_ffmpeg("-i", str(build("not_on_keyframe.mkv")), "-c", "copy", "-copyinkf", str(folder / name))
        elif name == "ctts_v1.mp4":  # negative composition offsets (ctts version 1), no edit list shift
            run_ffmpeg("-i", str(base), "-c", "copy", "-movflags", "+negative_cts_offsets", str(folder / name))
        elif name == "faststart.mp4":
            run_ffmpeg("-i", str(base), "-c", "copy", "-movflags", "+faststart", str(folder / name))
        elif name == "range_change.mp4":  # limited-range segment, then a full-range one, joined without re-encoding
            a = _encode(folder / "limited.mp4", "-color_range", "tv", seconds="1")
            b = _encode(folder / "full.mp4", "-color_range", "pc", seconds="1", pix_fmt="yuvj420p")
            listing = folder / "range.txt"
            listing.write_text(f"file '{a}'\nfile '{b}'\n")
            run_ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(folder / name))
        elif name == "bt2020nc.mkv":
            _encode(
                folder / name,
                "-colorspace",
                "bt2020nc",
                "-color_primaries",
                "bt2020",
                "-color_trc",
                "bt2020-10",
                seconds="1",
                pix_fmt="yuv420p10le",
                codec="libx265",
            )
        elif name == "bt2020c.mkv":  # the same pictures, only the VUI's matrix changed to BT.2020 CL (10)
            run_ffmpeg(
                "-i",
                str(build("bt2020nc.mkv")),
                "-c",
                "copy",
                "-bsf:v",
                "hevc_metadata=matrix_coefficients=10",
                str(folder / name),
            )
        return folder / name

    def get(name: str) -> str:
        if name not in cache:
            cache[name] = build(name)
        return str(cache[name])

    return get


def _plain_pts(path: str) -> list[float]:
    with av.open(path) as c:
        s = c.streams.video[0]
        return [float(f.pts * s.time_base) for f in c.decode(s)]


@pytest.mark.parametrize("name", ["not_on_keyframe.mkv", "not_on_keyframe.mp4", "not_on_keyframe_mpeg4.mkv"])
def test_a_stream_cut_mid_gop_has_the_frames_ffmpeg_outputs(made, name, caplog):
    """The pictures before the first keyframe have no references: FFmpeg's H.264 decoder outputs none of them, so
    they are not frames (they used to be counted, and then reported 'damaged or missing'); its MPEG-4 part 2 decoder
    outputs them all (concealed), so there they are frames."""
    path = made(name)
    with av.open(path) as c:
        assert not next(p for p in c.demux(video=0) if p.size).is_keyframe  # the fixture really starts mid-GOP
    ref = cli_rgb_frames(path)
    with caplog.at_level("DEBUG", logger="gpudecode"):
        dec = VideoDecoder(path, dimension_order="NHWC")
    assert len(dec) == ref.shape[0] == len(_plain_pts(path))
    with av.open(path) as c:
        keys = [p.is_keyframe for p in c.demux(video=0) if p.size]
    lead = keys.index(True)
    assert lead > 0
    assert len(dec) == (len(keys) if "mpeg4" in name else len(keys) - lead)  # all lead pictures shown, or none
    said = [r.getMessage() for r in caplog.records if "before the first keyframe" in r.getMessage()]
    want = f"gpudecode: {lead} packets before the first keyframe and 0 of its leading pictures decode to nothing"
    assert said == ([] if "mpeg4" in name else [want])
    np.testing.assert_array_equal(dec[:].numpy(), ref)
    assert dec.get_frames_in_range(0, len(dec)).pts_seconds.tolist() == pytest.approx(_plain_pts(path))
    np.testing.assert_array_equal(VideoDecoder(path, dimension_order="NHWC")[len(dec) // 2].numpy(), ref[len(dec) // 2])


@pytest.mark.parametrize("name", ["cra_cut.mkv", "cra_cut.mp4"])
def test_a_cut_at_an_open_gop_keyframe_has_the_frames_ffmpeg_outputs(made, name, caplog):
    """A stream cut at an HEVC CRA starts with a keyframe, but the pictures after it in decode order and before it
    in presentation order (RASL) reference the GOP that was cut away: FFmpeg outputs none of them, so they are not
    frames (they used to be counted: every whole-stream call raised 'Could not decode frame(s) [0, 1]'). Oracles: the
    ffmpeg CLI's frames and a plain PyAV decode's pts."""
    path = made(name)
    with av.open(path) as c:
        packets = [p for p in c.demux(video=0) if p.size]
    assert packets[0].is_keyframe and any(p.pts < packets[0].pts for p in packets[1:8])  # really leading pictures
    ref = cli_rgb_frames(path)
    with caplog.at_level("DEBUG", logger="gpudecode"):
        dec = VideoDecoder(path, dimension_order="NHWC")
    lost = len(packets) - ref.shape[0]
    assert lost > 0 and len(dec) == ref.shape[0] == len(_plain_pts(path))
    said = [r.getMessage() for r in caplog.records if "leading pictures" in r.getMessage()]
    assert said == [
        f"gpudecode: 0 packets before the first keyframe and {lost} of its leading pictures decode to nothing"
    ]
    np.testing.assert_array_equal(dec[:].numpy(), ref)
    assert dec.get_frames_in_range(0, len(dec)).pts_seconds.tolist() == pytest.approx(_plain_pts(path))
    for i in (0, len(dec) // 2, len(dec) - 1):  # a fresh decoder for each: the seek path
        np.testing.assert_array_equal(VideoDecoder(path, dimension_order="NHWC")[i].numpy(), ref[i])


def test_negative_composition_offsets(made):
    """MP4 ``ctts`` version 1 (negative offsets, no edit-list shift): both index paths agree with the demuxer."""
    path = made("ctts_v1.mp4")
    dec = VideoDecoder(path, dimension_order="NHWC")
    assert dec.index.method == "mp4-tables"
    with av.open(path) as c:
        s = c.streams.video[0]
        scan = _from_packets(*_scan_packets(c, s), s.time_base, "", s.index, "packet-scan")
    np.testing.assert_array_equal(dec.index.pts, scan.pts)
    np.testing.assert_array_equal(dec.index.start_key, scan.start_key)
    assert dec[:].shape[0] == len(_plain_pts(path))
    assert dec.get_frames_in_range(0, len(dec)).pts_seconds.tolist() == pytest.approx(_plain_pts(path))
    np.testing.assert_array_equal(dec[:].numpy(), cli_rgb_frames(path))


def test_a_file_cut_at_a_sample_boundary_keeps_every_whole_sample(made, tmp_path):
    """Truncated exactly at the end of a sample (``moov`` first): the samples after the cut are gone, every one
    before it decodes, as a plain PyAV decode of the cut file shows."""
    path = made("faststart.mp4")
    with av.open(path) as c:
        entries = list(c.streams.video[0].index_entries)
    cut_entry = entries[len(entries) // 2]
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(Path(path).read_bytes()[: cut_entry.pos + cut_entry.size])
    want = _plain_pts(str(cut))
    dec = VideoDecoder(str(cut), dimension_order="NHWC")
    assert len(dec) == len(want) and 0 < len(want) < len(entries)
    assert dec.get_frames_in_range(0, len(dec)).pts_seconds.tolist() == pytest.approx(want)
    np.testing.assert_array_equal(dec[:].numpy(), cli_rgb_frames(str(cut)))


def test_a_range_change_mid_stream_is_followed_frame_by_frame(made):
    path = made("range_change.mp4")
    with av.open(path) as c:
        ranges = {f.color_range for f in c.decode(video=0)}
    assert len(ranges) == 2  # the fixture really changes range
    ref = cli_rgb_frames(path)
    for threads in (1, 2):
        dec = VideoDecoder(path, dimension_order="NHWC", num_threads=threads)
        np.testing.assert_array_equal(dec[:].numpy(), ref)
        picks = [30, 3, 27, 24, 25]
        np.testing.assert_array_equal(dec.get_frames_at(picks).data.numpy(), ref[picks])
        # every frame on its own, last first: each seek may cross back over the junction (the decoder then holds
        # the later segment's in-band parameter sets, which a flush keeps)
        for i in range(ref.shape[0] - 1, -1, -7):
            np.testing.assert_array_equal(dec[i].numpy(), ref[i], err_msg=f"frame {i}")


def test_bt2020_non_constant_luminance_matches_the_cli(made):
    path = made("bt2020nc.mkv")
    dec = VideoDecoder(path, dimension_order="NHWC")
    np.testing.assert_array_equal(dec[:].numpy(), cli_rgb_frames(path))


def test_bt2020_constant_luminance_uses_the_bt2020_matrix(made):
    """FFmpeg 9's CLI refuses BT.2020 CL outright; swscale's coefficient table gives it the BT.2020 matrix, and so
    do we (an approximation: the CL transform is not linear). Oracle: the CLI on the same pictures tagged NCL."""
    cl, ncl = made("bt2020c.mkv"), made("bt2020nc.mkv")
    with av.open(cl) as c:
        assert int(next(c.decode(video=0)).colorspace) == 10  # the pictures say BT.2020 CL
    dec = VideoDecoder(cl, dimension_order="NHWC")
    np.testing.assert_array_equal(dec[:].numpy(), cli_rgb_frames(ncl))


def test_approximate_mode_on_a_stream_that_does_not_start_at_zero(video):
    """The header's start time (2.4 s) is honoured: frame i is the CLI's frame i, and time calls agree with exact
    mode (the header over-counts frames here, so only the real ones are compared)."""
    path = str(video("nonzero_start"))
    ref = cli_rgb_frames(path)
    approx = VideoDecoder(path, seek_mode="approximate", dimension_order="NHWC")
    exact = VideoDecoder(path, dimension_order="NHWC")
    assert approx.metadata.begin_stream_seconds == pytest.approx(2.4)
    n = ref.shape[0]
    np.testing.assert_array_equal(approx.get_frames_in_range(0, n).data.numpy(), ref)
    picks = [5, 0, n - 1, 17]
    np.testing.assert_array_equal(approx.get_frames_at(picks).data.numpy(), ref[picks])
    times = [2.4, 2.5, 3.0, 3.9, 2.4 + (n - 1) * 0.04]
    got, want = approx.get_frames_played_at(times), exact.get_frames_played_at(times)
    assert got.pts_seconds.tolist() == want.pts_seconds.tolist()


def _faststart_mp4(folder: Path) -> Path:
    """1.6 s of H.264 with B-frames in an MP4 whose moov comes first (``-movflags +faststart``)."""
    whole = folder / "whole.mp4"
    run_ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=96x64:d=1.6",
        "-c:v",
        "libx264",
        "-bf",
        "2",
        "-g",
        "10",
        "-movflags",
        "+faststart",
        str(whole),
    )
    return whole


def _decodable_pts(path: Path) -> list[int]:
    """What a plain single-threaded PyAV decode outputs, packet by packet, skipping packets it rejects."""
    decoded: list[int] = []
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        for pkt in c.demux(video=0):
            with contextlib.suppress(av.error.FFmpegError):
                decoded += [f.pts for f in cc.decode(pkt)]
    return decoded


@pytest.mark.parametrize("fraction", [0.5, 0.9, "second sample"])
def test_faststart_mp4_cut_mid_sample(tmp_path, fraction):
    """An MP4 with its moov first (``-movflags +faststart``, as streamed uploads are) cut in the middle of a sample:
    the sample tables still list every sample; the index keeps those wholly inside the file (the partial one does not
    decode). Oracles: a plain PyAV decode of the cut file (which frames come out), the intact file (their pixels)."""
    whole = _faststart_mp4(tmp_path)
    data = whole.read_bytes()
    mdat = data.find(b"mdat")
    assert 0 < data.find(b"moov") < mdat  # faststart: the tables come first
    cut = tmp_path / "cut.mp4"
    if fraction == "second sample":  # only the first sample is whole
        with av.open(str(whole)) as c:
            e = c.streams.video[0].index_entries[1]
            size = e.pos + e.size // 2
    else:
        size = int(mdat + (len(data) - mdat) * fraction)
    cut.write_bytes(data[:size])
    decoded = _decodable_pts(cut)
    dec = VideoDecoder(cut, dimension_order="NHWC")
    assert dec.index.method == "mp4-tables"
    assert dec.index.pts.tolist() == sorted(decoded)
    ref = VideoDecoder(whole, dimension_order="NHWC")
    at = {int(p): i for i, p in enumerate(ref.index.pts)}
    want = ref.get_frames_at([at[int(p)] for p in dec.index.pts]).data
    assert torch.equal(dec[:], want)


@pytest.mark.parametrize("num_threads", [None, 1, 2, 4])
def test_frames_in_flight_at_damage_are_not_lost_to_frame_threads(tmp_path, num_threads):
    """A file whose last packet is cut short: its error surfaces only at the final drain when frames are decoded by
    several threads, and the frames still in flight were lost. Every frame a plain single-threaded PyAV decode gets
    must come out, whatever the thread count (the decoder retries such a run with one thread)."""
    whole = _faststart_mp4(tmp_path)
    with av.open(str(whole)) as c:
        entries = c.streams.video[0].index_entries
        cut_at = [entries[k].pos + entries[k].size // 2 for k in (1, 17)]
    for size in cut_at:
        cut = tmp_path / f"cut{size}.mp4"
        cut.write_bytes(whole.read_bytes()[:size])
        decoded = _decodable_pts(cut)
        dec = VideoDecoder(cut, num_threads=num_threads)
        assert dec.index.pts.tolist() == sorted(decoded)
        batch = dec.get_frames_in_range(0, len(dec))
        assert batch.pts_seconds.tolist() == pytest.approx([p * float(dec.index.time_base) for p in sorted(decoded)])
        again = dec.get_frames_at(list(range(len(dec))))  # the retry left the configured threads in place
        assert torch.equal(again.data, batch.data)
        assert dec._session.pipe.backend._threads == (0 if num_threads is None else num_threads)
