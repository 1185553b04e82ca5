"""NVDEC leaves out unwanted pictures nothing references, exactly those FFmpeg's ``skip_frame=NONREF`` leaves out.

Oracle: a plain PyAV decode with ``skip_frame="NONREF"`` (one thread); the pts it does not return are the pictures
FFmpeg judged unreferenced. The filter must pick the same packets, on streams that have such pictures (x264 and
x265 B-frames with and without pyramids, 10-bit HEVC, MKV and MPEG-TS) and on streams that have none.
"""

from __future__ import annotations

import dataclasses

import av
import numpy as np
import pytest
import torch
from fake_nvc import make_module
from media import SPECS, X264_B, Spec, make_video, remux
from test_nvdec import nvdec_decoder

from gpudecode import VideoDecoder
from gpudecode._backends._nal import NonrefFilter
from gpudecode._backends._nvdec import ANNEXB_FILTERS, annexb_parameter_sets

STREAMS = {
    "x264_pyramid": Spec("x264_pyramid", options=X264_B),  # B-pyramid: the middle B of each group is a reference
    "x264_flat": Spec("x264_flat", container="matroska", options={**X264_B, "x264-params": "b-pyramid=none"}),
    "x264_no_b": Spec("x264_no_b", options={"bf": "0", "g": "12", "preset": "veryfast"}),
    "x265": Spec("x265", codec="libx265", options={"x265-params": "keyint=12:bframes=3:log-level=none"}),
    "x265_pyramid": Spec(
        "x265_pyramid", codec="libx265", options={"x265-params": "keyint=12:bframes=4:b-pyramid=1:log-level=none"}
    ),
    "x265_10bit": dataclasses.replace(SPECS["hevc10"], name="x265_10bit"),
}


def _annexb_units(path):
    """(pts, Annex B pieces) per packet, as the NVDEC backend makes them, and the parameter sets."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        codec = s.codec_context.codec.name
        extradata = bytes(s.codec_context.extradata or b"")
        bsf = None
        if extradata and not extradata.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")):
            bsf = av.bitstream.BitStreamFilterContext(ANNEXB_FILTERS[codec], in_stream=s)
        units = []
        for p in c.demux(s):
            if p.size:
                pts = int(p.pts)
                units.append((pts, [bytes(q) for q in (bsf.filter(p) if bsf else [p])]))
        return codec, annexb_parameter_sets(codec, extradata), units


def _ffmpeg_skips(path):
    """The pts FFmpeg's decoder leaves out with skip_frame=NONREF (one thread, so it decides per picture)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type, s.codec_context.thread_count = "NONE", 1
        s.codec_context.skip_frame = "NONREF"
        shown = {int(f.pts) for f in c.decode(s)}
    with av.open(str(path)) as c:
        every = {int(p.pts) for p in c.demux(video=0) if p.size}
    return every - shown


@pytest.fixture(scope="module")
def streams(media_dir):
    out = {}
    for name, spec in STREAMS.items():
        ext = "mkv" if spec.container == "matroska" else spec.container
        out[name] = make_video(spec, media_dir / f"nonref_{name}.{ext}")
    out["x264_ts"] = remux(out["x264_pyramid"], media_dir / "nonref_x264.ts", "mpegts")
    out["x265_ts"] = remux(out["x265"], media_dir / "nonref_x265.ts", "mpegts")
    return out


@pytest.mark.parametrize("name", [*STREAMS, "x264_ts", "x265_ts"])
def test_the_filter_skips_what_ffmpeg_skips(streams, name):
    path = streams[name]
    codec, params, units = _annexb_units(path)
    f = NonrefFilter(codec, params)
    assert f.enabled  # MPEG-TS too: FFmpeg's demuxer gives the in-band parameter sets as extradata
    ours = {pts for pts, pieces in units if f.unreferenced(pieces)}
    want = _ffmpeg_skips(path)
    assert ours == want
    if name != "x264_no_b":
        assert len(want) >= 5, "the stream must have unreferenced pictures, or this test proves nothing"
    else:
        assert not want


def test_hevc_with_several_temporal_sub_layers_is_never_skipped():
    """A '_N' picture of a lower sub-layer may be referenced by a higher one: with sps_max_sub_layers_minus1 > 0
    nothing is skipped, whether the SPS comes from the extradata or in-band."""
    sps_one_layer = b"\x00\x00\x01\x42\x01\x01\x01"  # NAL type 33, VPS id 0, max_sub_layers_minus1 0
    sps_three = b"\x00\x00\x01\x42\x01\x05\x01"  # max_sub_layers_minus1 2
    trail_n = b"\x00\x00\x01\x00\x01\xaf"  # TRAIL_N, layer 0, TemporalId 0
    trail_r = b"\x00\x00\x01\x02\x01\xaf"
    assert NonrefFilter("hevc", sps_one_layer).unreferenced([trail_n])
    assert not NonrefFilter("hevc", sps_one_layer).unreferenced([trail_r])
    assert not NonrefFilter("hevc", sps_one_layer).unreferenced([b"\x00\x00\x01\x00\x09\xaf"])  # layer 1
    assert not NonrefFilter("hevc", sps_three).enabled
    assert not NonrefFilter("hevc", b"").enabled
    f = NonrefFilter("hevc", sps_one_layer)
    assert not f.unreferenced([sps_three + trail_n]) and not f.enabled
    assert not NonrefFilter("vp9", b"").enabled


def test_h264_picture_with_any_reference_slice_is_kept():
    nonref_slice, ref_slice = b"\x00\x00\x01\x01\x88", b"\x00\x00\x01\x21\x88"  # type 1, nal_ref_idc 0 / 1
    f = NonrefFilter("h264", b"")
    assert f.unreferenced([nonref_slice, nonref_slice])
    assert not f.unreferenced([nonref_slice + ref_slice])
    assert not f.unreferenced([b"\x00\x00\x01\x06\x05"])  # SEI only: no picture


@pytest.mark.parametrize("name", ["x264_pyramid", "x265", "x264_ts"])
@pytest.mark.parametrize("mode", ["exact", "approximate"])
def test_random_access_feeds_nvdec_fewer_packets_and_returns_the_same_frames(streams, name, mode):
    path = streams[name]
    cpu = VideoDecoder(path, seek_mode=mode, dimension_order="NHWC")
    nvc = make_module()
    gpu, _ = nvdec_decoder(path, nvc=nvc, seek_mode=mode, dimension_order="NHWC")
    n = len(cpu)
    idx = [int(i) for i in np.random.default_rng(3).integers(0, n, 7)] + [n - 1, 0, 2]
    a, b = cpu.get_frames_at(idx), gpu.get_frames_at(idx)
    assert torch.equal(a.pts_seconds, b.pts_seconds)
    assert (a.data.int() - b.data.int()).abs().max() <= 3
    skipped = _ffmpeg_skips(path)
    fed = sum(len(d.received) for d in nvc.created)
    assert fed < gpu._session.pipe.planner.stats.packets_fed, "unreferenced unwanted pictures must not reach NVDEC"
    assert skipped
