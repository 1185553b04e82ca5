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
from gpudecode._backends._nal import AnnexB, NonrefFilter

X265_B = "keyint=12:bframes=3:log-level=none"


def _x265(name: str, params: str) -> Spec:
    """An x265 fixture at 256x144: NVDEC's smallest HEVC frame is 144x144 (fake_nvc.MINIMUM_SIZE)."""
    return Spec(name, codec="libx265", width=256, height=144, options={"x265-params": params})


STREAMS = {
    "x264_pyramid": Spec("x264_pyramid", options=X264_B),  # B-pyramid: the middle B of each group is a reference
    "x264_flat": Spec("x264_flat", container="matroska", options={**X264_B, "x264-params": "b-pyramid=none"}),
    "x264_no_b": Spec("x264_no_b", options={"bf": "0", "g": "12", "preset": "veryfast"}),
    "x265": _x265("x265", X265_B),
    "x265_pyramid": _x265("x265_pyramid", "keyint=12:bframes=4:b-pyramid=1:log-level=none"),
    "x265_10bit": dataclasses.replace(SPECS["hevc10"], name="x265_10bit", width=256, height=144),
    # three temporal sub-layers: TRAIL_R (0), TSA_R (1), TSA_N/RASL_N (2); only the top layer's '_N' can go
    "x265_temporal": _x265("x265_temporal", "keyint=12:bframes=4:temporal-layers=3:log-level=none"),
}


def _annexb_units(path):
    """(pts, Annex B pieces) per packet, as the NVDEC backend makes them (``AnnexB``), and the parameter sets."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        codec = s.codec_context.codec.name
        annexb = AnnexB(codec, s)
        units = []
        for p in c.demux(s):
            if p.size:
                pts = int(p.pts)
                units.append((pts, [bytes(q) for q in annexb.pieces(p, pts)]))
        return codec, annexb.param_sets, units


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
    if name == "x265_temporal":
        # FFmpeg also drops the '_N' pictures of sub-layer 1, which sub-layer 2 may reference (H.265 3.132): we keep
        # them, and skip only the top sub-layer's
        assert ours < want and len(ours) >= 5
        return
    assert ours == want
    if name != "x264_no_b":
        assert len(want) >= 5, "the stream must have unreferenced pictures, or this test proves nothing"
    else:
        assert not want


def test_hevc_skips_only_the_highest_temporal_sub_layer():
    """A '_N' picture of a lower sub-layer may be referenced by a higher one (H.265 3.132): only '_N' pictures whose
    TemporalId is the largest sps_max_sub_layers_minus1 seen (from the extradata or in-band) are skipped."""
    sps_one_layer = b"\x00\x00\x01\x42\x01\x01\x01"  # NAL type 33, VPS id 0, max_sub_layers_minus1 0
    sps_three = b"\x00\x00\x01\x42\x01\x05\x01"  # max_sub_layers_minus1 2
    trail_n = b"\x00\x00\x01\x00\x01\xaf"  # TRAIL_N, layer 0, TemporalId 0
    trail_r = b"\x00\x00\x01\x02\x01\xaf"
    tsa_n_top = b"\x00\x00\x01\x04\x03\xaf"  # TSA_N, TemporalId 2
    assert NonrefFilter("hevc", sps_one_layer).unreferenced([trail_n])
    assert not NonrefFilter("hevc", sps_one_layer).unreferenced([trail_r])
    assert not NonrefFilter("hevc", sps_one_layer).unreferenced([b"\x00\x00\x01\x00\x09\xaf"])  # layer 1
    three = NonrefFilter("hevc", sps_three)
    assert three.enabled and not three.unreferenced([trail_n]) and three.unreferenced([tsa_n_top])
    assert not three.unreferenced([trail_n + tsa_n_top])  # every VCL NAL unit must qualify
    assert not NonrefFilter("hevc", b"").enabled
    f = NonrefFilter("hevc", sps_one_layer)
    assert not f.unreferenced([sps_three + trail_n])  # an in-band SPS adds sub-layers: TemporalId 0 is no longer top
    assert not f.unreferenced([trail_n]) and f.unreferenced([tsa_n_top])
    # an SPS with fewer sub-layers (another SPS id, say) does not lower the bar: the largest seen counts
    assert not NonrefFilter("hevc", sps_three).unreferenced([sps_one_layer + trail_n])
    assert not NonrefFilter("vp9", b"").enabled


def test_h264_picture_with_any_reference_slice_is_kept():
    nonref_slice, ref_slice = b"\x00\x00\x01\x01\x88", b"\x00\x00\x01\x21\x88"  # type 1, nal_ref_idc 0 / 1
    f = NonrefFilter("h264", b"")
    assert f.unreferenced([nonref_slice, nonref_slice])
    assert not f.unreferenced([nonref_slice + ref_slice])
    assert not f.unreferenced([b"\x00\x00\x01\x06\x05"])  # SEI only: no picture


@pytest.mark.parametrize("name", ["x264_pyramid", "x265", "x264_ts", "x265_temporal"])
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


def test_cut_off_nal_units_are_no_pictures_and_raise_nothing():
    """Damaged packets reach the filter too: a start code or header cut off at the end is no picture, no error."""
    assert not NonrefFilter("hevc", b"\x00\x00\x01\x42\x01").enabled  # an SPS cut before its sub-layer count
    f = NonrefFilter("hevc", b"\x00\x00\x01\x42\x01\x01\x01")
    assert not f.unreferenced([b"\x00\x00\x01"]) and not f.unreferenced([b"\x00\x00\x01\x00"])
    assert not f.unreferenced([b"\x00\x00\x01\x42\x01"]) and f.enabled  # a cut in-band SPS changes nothing
    assert not NonrefFilter("h264", b"").unreferenced([b"\x00\x00\x01"])
    assert not NonrefFilter("h264", b"").unreferenced([b""])
