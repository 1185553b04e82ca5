"""The NVDEC backend's control flow without hardware: real planner, real kernel source (host build), fake NVDEC."""

from __future__ import annotations

import gc
import logging

import av
import numpy as np
import pytest
import torch
from fake_nvc import FakeDecoder, make_module
from kernel_host import run as run_kernel
from oracle import assert_matches_nearest_chroma

from gpudecode import DecodeError, VideoDecoder, samplers
from gpudecode._backends import _nvc, _nvdec
from gpudecode._backends._kernels import matrix_arg
from gpudecode._backends._nal import annexb_parameter_sets
from gpudecode._backends._nvdec import Modules, NvdecUnavailable, create_nvdec_backend


def host_convert(
    *,
    luma_ptr,
    chroma_ptr,
    pitch,
    width,
    height,
    dst_ptr,
    planar,
    spec,
    stream_ptr,
    frames=1,
    src_frame_stride=0,
    dst_frame_stride=0,
):
    run_kernel(
        spec.bit_depth,
        luma_ptr,
        chroma_ptr,
        pitch,
        width,
        height,
        dst_ptr,
        planar,
        matrix_arg(spec),
        frames,
        src_frame_stride,
        dst_frame_stride,
    )


@pytest.fixture(autouse=True)
def _empty_cache(monkeypatch):
    monkeypatch.setattr(_nvc, "_LOAD_FAILURES", {})
    _nvdec.decoder_cache.clear()
    yield
    _nvdec.decoder_cache.clear()


def nvdec_decoder(path, nvc=None, fused=True, modules=None, **kwargs):
    """A VideoDecoder whose backend is the NVDEC backend over the fake module, with CPU output (host-run kernels;
    ``fused=False``: without the fused shaping kernel, so transforms are applied with torch after conversion;
    ``modules``: these instead, over their own fake module)."""
    from kernel_host import resample

    dec = VideoDecoder(path, **kwargs)
    nvc = nvc or make_module()
    mods = modules or Modules(nvc=nvc, convert=host_convert, cuda_ok=False, resample=resample if fused else None)
    backend = create_nvdec_backend(
        torch.device("cpu"), dec._session.pipe.demuxer.stream, dec.metadata.bit_depth, dec._state.color, modules=mods
    )
    dec._session.pipe.use_backend(backend)
    return dec, nvc


NAMES_8BIT = [
    "h264_bframes",
    "h264_mkv",
    "h264_open_gop",
    "hevc8@256x144",  # NVDEC's smallest HEVC frame is 144x144, VP9's 128x128 (fake_nvc.MINIMUM_SIZE)
    "vp9@256x144",
    "editlist",
    "rotated90",
    "bt709",
    "full_range",
    "nonzero_start",
    "vfr",
]


@pytest.mark.parametrize("name", NAMES_8BIT)
@pytest.mark.parametrize("mode", ["exact", "approximate"])
def test_nvdec_path_matches_cpu_path(video, name, mode):
    path = video(name)
    cpu = VideoDecoder(path, seek_mode=mode, dimension_order="NHWC")
    gpu, _ = nvdec_decoder(path, seek_mode=mode, dimension_order="NHWC")
    n = len(cpu)
    rng = np.random.default_rng(1)
    for idx in ([*range(n)], [int(i) for i in rng.integers(0, n, 9)] + [n - 1, 0, 3, 3]):
        a, b = cpu.get_frames_at(idx), gpu.get_frames_at(idx)
        assert torch.equal(a.pts_seconds, b.pts_seconds)
        diff = (a.data.int() - b.data.int()).abs()
        assert diff.max() <= 3, f"max abs diff {diff.max()} (bar: 3 on 8-bit content)"
    t = [cpu.metadata.begin_stream_seconds + 0.3, cpu.metadata.begin_stream_seconds + 0.05]
    assert torch.equal(cpu.get_frames_played_at(t).pts_seconds, gpu.get_frames_played_at(t).pts_seconds)


def test_nvdec_path_10bit_matches_nearest_chroma_reference(video):
    """10-bit: the kernel is exact against nearest-chroma conversion; the CPU path (FFmpeg: bicubic chroma and
    dithering, bit-exact with the CLI) is not the reference here, since the two differ on sharp chroma edges."""
    path = video("hevc10@256x144")
    gpu, _ = nvdec_decoder(path, dimension_order="NHWC")
    batch = gpu.get_frames_in_range(0, len(gpu))
    assert_matches_nearest_chroma(str(path), batch.data.numpy(), batch.pts_seconds.tolist())


def test_odd_sizes_through_nvdec_path(video):
    """Odd sizes: the kernel is exact against nearest-chroma conversion (crop of the rounded-up chroma planes).

    Known limitation: at odd sizes swscale leaves its fast path and interpolates chroma bicubically, as the ffmpeg CLI
    that the CPU path must match bit for bit does; the GPU path keeps nearest chroma, so on sharp chroma edges the
    two paths differ by more than the 3-code-value bar that holds for even sizes.
    """
    from media import yuv_frames_float_rgb

    path = video("odd_size@161x129")  # VP9: NVDEC takes 128x128 and up
    gpu, _ = nvdec_decoder(path, dimension_order="NHWC")
    got = gpu[:].numpy().astype(np.float64)
    assert got.shape == (40, 129, 161, 3)
    ref = np.stack([np.round(np.clip(r, 0, 255)) for _, r in yuv_frames_float_rgb(path)])
    assert np.abs(got - ref).max() <= 1


def test_parameter_sets_are_resent_after_every_seek(video):
    path = video("h264_open_gop")
    gpu, nvc = nvdec_decoder(path)
    n = len(gpu)
    gpu.get_frames_at([n - 2, 1, n // 2])  # backwards and forwards: several seeks
    dec = nvc.created[0]
    ps = annexb_parameter_sets("h264", bytes(gpu._session.pipe.demuxer.stream.codec_context.extradata))
    assert ps and dec.drains >= 2
    starts = [i for i, data in enumerate(dec.received) if data.startswith(ps)]
    assert len(starts) >= gpu.stats.seeks


def test_without_parameter_sets_frames_are_lost(video, monkeypatch):
    """Shows the fake is strict: skipping the re-send after a seek really loses frames."""
    path = video("h264_open_gop")
    gpu, _ = nvdec_decoder(path)
    gpu._session.pipe.backend._annexb.param_sets = b""
    from gpudecode import DecodeError

    with pytest.raises(DecodeError, match="damaged or missing"):
        gpu.get_frames_at([len(gpu) - 3])


def test_discarded_packets_are_fed_but_not_returned(video):
    """Edit list: the three packets cut by it are fed (later frames reference them) but their frames are not
    returned. Oracles: a plain PyAV decode for the frames' pts (FFmpeg drops the discarded ones) and the CPU path's
    pixels; the fake's own outputs show the backend, not the planner, dropped them."""
    path = video("editlist")
    gpu, nvc = nvdec_decoder(path, dimension_order="NHWC")
    outputs = []
    real_wrap = gpu._session.pipe.backend._wrap

    def counting_wrap(surfaces):
        outputs.extend(int(s.getPTS()) for s in surfaces)
        return real_wrap(surfaces)

    gpu._session.pipe.backend._wrap = counting_wrap
    batch = gpu.get_frames_in_range(0, len(gpu))
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        want = [float(f.pts * s.time_base) for f in c.decode(s)]
    assert batch.pts_seconds.tolist() == pytest.approx(want) and len(want) == 37
    cpu = VideoDecoder(path, dimension_order="NHWC").get_frames_in_range(0, 37)
    assert (cpu.data.int() - batch.data.int()).abs().max() <= 3
    assert len(nvc.created[0].received) == 40  # every packet fed, the three discarded ones included
    assert len(outputs) == 40 and min(outputs) < 0  # NVDEC output them all; the backend dropped the cut ones


def test_surfaces_are_converted_before_the_next_decode(video):
    # The fake poisons surfaces at the next Decode; frames equal to the CPU path prove the order is right.
    path = video("hevc8@256x144")
    cpu = VideoDecoder(path, dimension_order="NHWC")
    gpu, _ = nvdec_decoder(path, dimension_order="NHWC")
    assert (cpu[:].int() - gpu[:].int()).abs().max() <= 3


def test_samplers_on_the_nvdec_path(video):
    path = video("h264_bframes")
    cpu = VideoDecoder(path)
    gpu, _ = nvdec_decoder(path)
    a = samplers.clips_at_regular_indices(cpu, num_clips=4, num_frames_per_clip=3)
    b = samplers.clips_at_regular_indices(gpu, num_clips=4, num_frames_per_clip=3)
    assert a.data.shape == b.data.shape and torch.equal(a.pts_seconds, b.pts_seconds)
    assert (a.data.int() - b.data.int()).abs().max() <= 3


def test_decoder_cache_reuses_and_is_bounded(video):
    path = video("h264_bframes")
    nvc = make_module()
    gc.collect()  # a backend an earlier test left to the collector gives its decoder back now, not mid-test
    _nvdec.decoder_cache.clear()
    reused = _nvdec.decoder_cache.reused  # the counter is process-wide: count this test's reuses only
    for _ in range(5):
        dec, _ = nvdec_decoder(path, nvc=nvc)
        dec[3]
        dec.close()
    assert len(nvc.created) == 1
    assert _nvdec.decoder_cache.reused - reused == 4
    cache = _nvdec.DecoderCache(max_idle=3, max_per_key=2)
    for i in range(6):
        cache.release(("k", i % 4), object())
    assert cache.idle_count() == 3
    cache.clear()
    assert cache.idle_count() == 0


def test_decoder_cache_size_is_an_argument_with_the_environment_as_default(video, monkeypatch, caplog):
    import gpudecode

    path = video("h264_bframes")
    nvc = make_module()
    try:
        gpudecode.set_nvdec_cache_size(0)  # keep none: every decoder creates its own session
        for _ in range(3):
            dec, _ = nvdec_decoder(path, nvc=nvc)
            dec[3]
            dec.close()
        assert len(nvc.created) == 3 and _nvdec.decoder_cache.idle_count() == 0
        gpudecode.set_nvdec_cache_size(np.int64(2))
        dec, _ = nvdec_decoder(path, nvc=nvc)
        dec[3]
        dec.close()
        assert _nvdec.decoder_cache.idle_count() == 1
        with pytest.raises(gpudecode.InvalidArgumentError, match=r"Invalid max_idle \(-1\)"):
            gpudecode.set_nvdec_cache_size(-1)
    finally:
        gpudecode.set_nvdec_cache_size(_nvdec.default_cache_size())
    cache = _nvdec.DecoderCache(max_idle=4)
    for i in range(4):
        cache.release(("k", i), object())
    cache.resize(1)  # lowering the bound releases the least recently used at once
    assert cache.idle_count() == 1 and list(cache._idle) == [("k", 3)]
    for text, want in (("3", 3), ("0", 0), ("many", 16), ("-2", 16)):
        monkeypatch.setenv("GPUDECODE_NVDEC_CACHE_SIZE", text)
        assert _nvdec.default_cache_size() == want
    monkeypatch.delenv("GPUDECODE_NVDEC_CACHE_SIZE")
    assert _nvdec.default_cache_size() == 16
    assert "ignoring GPUDECODE_NVDEC_CACHE_SIZE='many'" in caplog.text


def test_annexb_parameter_sets_from_avcc_and_hvcc(video):
    import av

    for name, codec in (("h264_bframes", "h264"), ("hevc8", "hevc")):
        c = av.open(str(video(name)))
        ps = annexb_parameter_sets(codec, bytes(c.streams.video[0].codec_context.extradata))
        c.close()
        assert ps.startswith(b"\x00\x00\x00\x01")
        nal_types = [
            (ps[i + 4] & 0x1F) if codec == "h264" else ((ps[i + 4] >> 1) & 0x3F)
            for i in range(len(ps) - 4)
            if ps[i : i + 4] == b"\x00\x00\x00\x01"
        ]
        # SPS, PPS for H.264; VPS, SPS, PPS (then possibly SEI) for HEVC
        assert nal_types[:3] == ([7, 8] if codec == "h264" else [32, 33, 34])
    assert annexb_parameter_sets("h264", b"\x00\x00\x00\x01\x67") == b"\x00\x00\x00\x01\x67"
    assert annexb_parameter_sets("h264", b"\x01\x02") == b""
    assert annexb_parameter_sets("hevc", None) == b""


# -- fallback reasons --------------------------------------------------------------------------------------------
def _stream(path):
    import av

    c = av.open(str(path))
    return c, c.streams.video[0]


def _fallback_reason(path, **kw):
    from gpudecode._color import ColorSpec

    c, s = _stream(path)
    try:
        create_nvdec_backend(torch.device("cuda", 0), s, 8, ColorSpec("bt601", False, 8), **kw)
    except NvdecUnavailable as exc:
        return str(exc)
    finally:
        c.close()
    return None


def test_fallback_without_cuda_torch(video):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert "torch reports no CUDA device" in _fallback_reason(video("h264_bframes"))


def test_fallback_when_caps_say_no(video):
    mods = Modules(nvc=make_module(caps={"supported": False}), convert=host_convert, cuda_ok=False)
    assert "cannot decode h264" in _fallback_reason(video("h264_bframes"), modules=mods)
    mods = Modules(
        nvc=make_module(caps={"supported": True, "width_max": 64, "height_max": 64}),
        convert=host_convert,
        cuda_ok=False,
    )
    assert "exceeds this GPU's NVDEC limit of 64x64" in _fallback_reason(video("h264_bframes"), modules=mods)


def test_fallback_when_decoder_creation_fails(video):
    mods = Modules(nvc=make_module(fail_create=True), convert=host_convert, cuda_ok=False)
    reason = _fallback_reason(video("h264_bframes"), modules=mods)
    assert "decoder creation failed: PyNvDecoder constructor failed" in reason


def test_fallback_for_unsupported_codec_and_chroma(media_dir):
    from media import Spec, make_video

    p444 = make_video(Spec("h264_444", pix_fmt="yuv444p", options={"preset": "ultrafast"}), media_dir / "444.mp4")
    mods = Modules(nvc=make_module(), convert=host_convert, cuda_ok=False)
    assert "4:2:0 content only (stream is yuv444p)" in _fallback_reason(p444, modules=mods)
    ffv1 = make_video(Spec("ffv1", codec="ffv1", container="matroska"), media_dir / "ffv1.mkv")
    assert "no decoder for codec 'ffv1'" in _fallback_reason(ffv1, modules=mods)


def test_fallback_when_pynvvideocodec_cannot_load(video, monkeypatch):
    """The real import path: a driverless machine makes PyNvVideoCodec's import raise RuntimeError."""
    import builtins
    import sys

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "cupy", object())
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "PyNvVideoCodec":
            raise RuntimeError("libnvidia-encode.so.1: cannot open shared object file")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    assert "could not load the NVIDIA video driver" in _fallback_reason(video("h264_bframes"))


def test_real_pynvvideocodec_import_fails_cleanly_without_a_driver(monkeypatch):
    """CI installs the gpu extra: the real PyNvVideoCodec import on a driverless machine becomes a reason."""
    pytest.importorskip("cupy")
    import importlib.util

    if importlib.util.find_spec("PyNvVideoCodec") is None:
        pytest.skip("PyNvVideoCodec is not installed")
    if torch.cuda.is_available():
        pytest.skip("this machine has a driver")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(_nvc, "_LOAD_FAILURES", {})
    with pytest.raises(NvdecUnavailable, match="could not load the NVIDIA video driver"):
        _nvc.load_modules(0)
    # the reason is cached: a second decoder does not retry the import
    with pytest.raises(NvdecUnavailable, match="could not load the NVIDIA video driver"):
        _nvc.load_modules(0)


def test_fallback_is_logged_once_and_reported(video, monkeypatch, caplog):
    """With torch CUDA 'available' but NVDEC not, frames are CPU-decoded and the reason is kept."""
    from gpudecode import _device

    monkeypatch.setattr(_device, "_torch_cuda_ok", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(_nvdec, "load_modules", lambda i: (_ for _ in ()).throw(NvdecUnavailable("no NVDEC here")))
    monkeypatch.setattr(_nvc, "_LOAD_FAILURES", {})
    _device._warned.clear()
    copies = []
    real_empty = torch.empty

    def cpu_empty(*a, device=None, **kw):  # let the 'cuda' output batch live on the CPU for this test
        copies.append(device)
        return real_empty(*a, **kw)

    monkeypatch.setattr(torch, "empty", cpu_empty)
    with caplog.at_level(logging.WARNING, logger="gpudecode"):
        d1 = VideoDecoder(video("h264_bframes"), device="cuda:0")
        d2 = VideoDecoder(video("h264_bframes"), device="cuda:0")
    assert d1.cpu_fallback and "no NVDEC here" in str(d1.cpu_fallback)
    assert d2.decoding_device == "cpu"
    assert sum("no NVDEC here" in r.message for r in caplog.records) == 1
    assert not VideoDecoder(video("h264_bframes")).cpu_fallback  # device='cpu' never falls back
    frame = d1.get_frame_at(3)
    assert frame.data.shape == (3, 64, 96)


def test_a_reused_decoder_is_reconfigured_for_another_size(video):
    """NVIDIA's reconfigure sample: a cached decoder fed a stream of another size needs setReconfigParams, else it
    keeps the first stream's output size (the fake, like the real decoder, refuses such reuse)."""
    nvc = make_module()
    for name in ("h264_426x240", "h264_640x360", "h264_426x240"):
        path = video(name)
        cpu = VideoDecoder(path, dimension_order="NHWC")
        gpu, _ = nvdec_decoder(path, nvc=nvc, dimension_order="NHWC")
        a, b = cpu.get_frames_in_range(0, 6), gpu.get_frames_in_range(0, 6)
        assert (a.data.int() - b.data.int()).abs().max() <= 3, name
        gpu.close()
    assert len(nvc.created) == 1 and nvc.created[0].reconfigured == 2


def test_caps_are_read_with_the_real_names_once_and_bound_the_size_bucket(video):
    nvc = make_module(caps={"width_max": 1024, "height_max": 1024})
    for _ in range(3):
        dec, _ = nvdec_decoder(video("h264_bframes"), nvc=nvc)
        dec.close()
    assert len(nvc.caps_calls) == 1
    assert nvc.caps_calls[0]["chromaformat"] is nvc.cudaVideoChromaFormat["420"]
    kwargs = nvc.created[0].kwargs
    assert (kwargs["maxwidth"], kwargs["maxheight"]) == (1024, 1024)  # the 1920x1088 bucket, clamped to caps
    small = Modules(nvc=make_module(caps={"width_min": 128, "height_min": 128}), convert=host_convert, cuda_ok=False)
    assert "below this GPU's NVDEC minimum of 128x128" in _fallback_reason(video("h264_bframes"), modules=small)


def test_hevc_and_vp9_below_nvdecs_smallest_frame_fall_back_as_on_the_h200(video):
    """The H200 refused the 96x64 HEVC and VP9 fixtures with these reasons (GPU kit, 2026-12-04); 144p passes."""
    mods = Modules(nvc=make_module(), convert=host_convert, cuda_ok=False)
    want = {"hevc8": "96x64 is below this GPU's NVDEC minimum of 144x144 for hevc", "vp9": "minimum of 128x128 for vp9"}
    for name, reason in want.items():
        assert reason in _fallback_reason(video(name), modules=mods)
        assert _fallback_reason(video(f"{name}@256x144"), modules=mods) is None


def test_size_fallbacks_are_logged_once_per_codec_not_per_frame_size(monkeypatch, caplog):
    from gpudecode import _device

    monkeypatch.setattr(_device, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="gpudecode"):
        for w in (96, 100, 120):
            _device.warn_once(f"{w}x64 is below this GPU's NVDEC minimum of 144x144 for hevc")
        _device.warn_once("96x64 is below this GPU's NVDEC minimum of 128x128 for vp9")
        _device.warn_once("9000x9000 exceeds this GPU's NVDEC limit of 8192x8192 for hevc")
        _device.warn_once("9000x8000 exceeds this GPU's NVDEC limit of 8192x8192 for hevc")
        _device.warn_once("no NVDEC here")
        _device.warn_once("no NVDEC here")
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 4, said
    assert "96x64 is below this GPU's NVDEC minimum of 144x144 for hevc" in said[0]  # the first one, size and all


def test_mpeg4_part2_is_left_to_the_cpu_with_a_reason(video):
    mods = Modules(nvc=make_module(), convert=host_convert, cuda_ok=False)
    assert "no decoder for codec 'mpeg4'" in _fallback_reason(video("mpeg4_avi"), modules=mods)


@pytest.mark.parametrize("mode", ["exact", "approximate"])
def test_unsupported_at_first_decode_falls_back_to_the_cpu_losing_no_frame(video, mode):
    """NVDEC reports an unsupported profile/size/depth only at the first Decode (PyNvVCExceptionUnsupported from
    HandleVideoSequence): the decoder switches to the CPU, says why, and never caches the refused decoder."""
    path = video("h264_bframes")
    nvc = make_module(unsupported_at_decode="Resolution not supported on this GPU")
    gpu, _ = nvdec_decoder(path, nvc=nvc, seek_mode=mode, dimension_order="NHWC")
    cpu = VideoDecoder(path, seek_mode=mode, dimension_order="NHWC")
    idx = [5, 0, 17, len(cpu) - 1]
    got = gpu.get_frames_at(idx)
    assert torch.equal(got.data, cpu.get_frames_at(idx).data)
    assert gpu.cpu_fallback and "NVDEC cannot decode this stream (Resolution not supported" in str(gpu.cpu_fallback)
    assert gpu.decoding_device == "cpu"
    assert torch.equal(gpu.get_frames_in_range(0, len(cpu)).data, cpu.get_frames_in_range(0, len(cpu)).data)
    gpu.close()
    assert _nvdec.decoder_cache.idle_count() == 0


def test_odd_frame_sizes_match_the_nearest_chroma_reference(video):
    """161x129 (VP9; NVDEC takes 128x128 and up): NVDEC's surfaces round the width up to even; the kernel reads the
    real width. The CPU path (bicubic chroma) is not the reference at odd sizes, nearest-chroma conversion is."""
    path = video("odd_size@161x129")
    gpu, _ = nvdec_decoder(path, dimension_order="NHWC")
    batch = gpu.get_frames_in_range(0, len(gpu))
    assert batch.data.shape[1:3] == (129, 161)
    assert_matches_nearest_chroma(str(path), batch.data.numpy(), batch.pts_seconds.tolist())


def test_the_pitch_is_read_from_the_surface_not_assumed(video):
    """Real 2.2.4 surfaces are tightly packed; a padded pitch (other releases, other output modes) still works."""
    path = video("h264_bframes")
    cpu = VideoDecoder(path, dimension_order="NHWC")
    gpu, _ = nvdec_decoder(path, nvc=make_module(pitch_pad=40), dimension_order="NHWC")
    assert (cpu[:].int() - gpu[:].int()).abs().max() <= 3


def test_a_surface_of_the_wrong_pixel_format_is_refused(video, monkeypatch):
    """A P016 surface read as NV12 (or the reverse) would convert garbage silently: the format is checked."""
    gpu, nvc = nvdec_decoder(video("h264_bframes"))
    real_decode = FakeDecoder.Decode

    def as_p016(self, pd):
        out = real_decode(self, pd)
        for s in out:
            s.format = nvc.Pixel_Format["P016"]
        return out

    monkeypatch.setattr(FakeDecoder, "Decode", as_p016)
    with pytest.raises(DecodeError, match="NVDEC returned a P016 surface for an 8-bit stream"):
        gpu[0]


class RecordingStreams:
    """Stands in for torch's streams: records the ordering operations the backend asks for."""

    def __init__(self) -> None:
        self.log: list[tuple] = []

    def decode(self, index):
        return "decode"

    def current(self, device):
        return "current"

    def handle(self, stream):
        return 0xD0 if stream == "decode" else 0

    def wait(self, waiter, producer):
        self.log.append(("wait", waiter, producer))


def test_decoder_and_kernel_share_the_decode_stream_and_the_caller_waits_on_it(video):
    """One non-default stream per device for CreateDecoder and the kernel; per frame, the decode stream waits for
    the caller's (the output was allocated there) and the caller waits for the kernel: events, no host
    synchronization, and no ``record_stream`` (RecordingStreams has no ``record``: a call would fail here)."""
    streams = RecordingStreams()

    def convert(**kw):
        streams.log.append(("kernel", kw["stream_ptr"]))
        host_convert(**kw)

    nvc = make_module()
    dec, _ = nvdec_decoder(
        video("h264_bframes"), modules=Modules(nvc=nvc, convert=convert, cuda_ok=False, streams=streams)
    )
    dec.get_frames_at([0, 7, 3])
    assert nvc.created[0].kwargs["cudastream"] == 0xD0
    per_frame = [("wait", "decode", "current"), ("kernel", 0xD0), ("wait", "current", "decode")]
    assert streams.log == per_frame * 3


def test_the_caller_waits_on_the_decode_stream_even_when_a_launch_fails(video):
    """The caller's stream must be ordered after whatever reached the decode stream, also when a launch raises (the
    output's memory goes back to the caching allocator in the caller's stream order)."""
    streams = RecordingStreams()

    def failing(**kw):
        streams.log.append(("kernel", kw["stream_ptr"]))
        raise RuntimeError("launch failed")

    dec, _ = nvdec_decoder(
        video("h264_bframes"), modules=Modules(nvc=make_module(), convert=failing, cuda_ok=False, streams=streams)
    )
    with pytest.raises(RuntimeError, match="launch failed"):
        dec.get_frame_at(0)
    assert streams.log == [("wait", "decode", "current"), ("kernel", 0xD0), ("wait", "current", "decode")]


def test_a_failing_nvdec_call_is_a_decode_error_with_pynvvideocodecs_reason(video):
    """PyNvVideoCodec raises its own exception when NVDEC fails on a packet or while draining: the backend raises a
    DecodeError that names what it was doing (the packet's pts) and keeps NVDEC's words, with the cause chained."""
    from fake_nvc import PyNvVCException

    path = video("h264_bframes")
    dec, nvc = nvdec_decoder(path)
    backend = dec._session.pipe.backend
    with av.open(str(path)) as c:
        packets = [p for p in c.demux(video=0) if p.size]
        for p in packets[:3]:
            backend.decode(p)
        fake = nvc.created[-1]

        def failing(pd):
            raise PyNvVCException("cuvidDecodePicture failed: CUDA_ERROR_UNKNOWN")

        fake.Decode = failing  # undone below: the decoder goes back to the NVDEC cache when the backend closes
        with pytest.raises(
            DecodeError, match=rf"^NVDEC rejected a packet \(pts {packets[3].pts}\): cuvidDecodePicture"
        ) as e:
            backend.decode(packets[3])
        assert isinstance(e.value.__cause__, PyNvVCException)
    with pytest.raises(DecodeError, match=r"^NVDEC failed while draining: cuvidDecodePicture failed: CUDA_ERROR_UNK"):
        backend.flush()
    del fake.Decode
    dec.close()  # now, while this test's cache fixture can still drop the decoder


def test_nvdec_is_drained_once_per_run_of_packets(video):
    """A drain (Decode of an empty packet) waits for every picture in flight: the backend drains at the end of the
    stream and at a seek that follows decoding, but a seek right after a drain does not drain again."""
    dec, nvc = nvdec_decoder(video("h264_bframes"))
    n = len(dec)
    dec.get_frames_in_range(0, n)  # to the end: one drain
    fake = nvc.created[-1]
    assert fake.drains == 1
    dec.get_frame_at(0)  # a seek back after the drain: nothing in flight, no second drain
    assert fake.drains == 1
    dec.get_frame_at(n - 1)  # a seek after decoding (drain), then the end of the stream (drain)
    assert fake.drains == 3


def test_the_fused_kernel_runs_on_the_decode_stream_and_the_caller_waits_for_it(video):
    """With transforms, the shaping kernel takes the conversion kernel's place on the decode stream: per frame the
    decode stream waits for the caller's, the kernel is launched on it, and the caller's stream waits for it."""
    from kernel_host import resample

    from gpudecode.transforms import Resize

    streams = RecordingStreams()

    def recording_resample(**kw):
        streams.log.append(("kernel", kw["stream_ptr"]))
        resample(**kw)

    mods = Modules(nvc=make_module(), convert=host_convert, cuda_ok=False, streams=streams, resample=recording_resample)
    dec, _ = nvdec_decoder(video("h264_bframes"), modules=mods, transforms=[Resize((32, 48))], dimension_order="NHWC")
    assert dec.get_frames_at([0, 7, 3]).data.shape == (3, 32, 48, 3)
    per_frame = [("wait", "decode", "current"), ("kernel", 0xD0), ("wait", "current", "decode")]
    assert streams.log == per_frame * 3


def test_a_packet_the_annexb_filter_refuses_is_a_damaged_frame_as_on_the_cpu(video, tmp_path):
    """A damaged NAL unit length makes FFmpeg's h264_mp4toannexb refuse the packet: the NVDEC path then reports that
    frame as damaged, like the CPU path, and decodes the others (before: av.error.InvalidDataError leaked)."""
    from gpudecode import DecodeError

    src = video("h264_bframes")
    with av.open(str(src)) as c:
        target = bytes([p for p in c.demux(video=0) if p.size][5])
    data = bytearray(src.read_bytes())
    at = data.find(target)
    data[at : at + 4] = b"\xff\xff\xff\xff"  # the first NAL unit's length: far past the packet's end
    bad = tmp_path / "bad_length.mp4"
    bad.write_bytes(bytes(data))
    cpu = VideoDecoder(bad, dimension_order="NHWC")
    gpu, _ = nvdec_decoder(bad, dimension_order="NHWC")
    for dec in (cpu, gpu):
        with pytest.raises(DecodeError, match=r"frame\(s\) \[5\]: the data is damaged"):
            dec.get_frames_in_range(0, len(dec))
    idx = [0, 4, 6, 20, len(cpu) - 1]
    a, b = cpu.get_frames_at(idx), gpu.get_frames_at(idx)
    assert torch.equal(a.pts_seconds, b.pts_seconds) and (a.data.int() - b.data.int()).abs().max() <= 3


def test_a_header_the_annexb_filter_refuses_falls_back_to_the_cpu_which_copes(video, tmp_path):
    """hvcC claiming 255 parameter-set arrays: FFmpeg's CPU decoder still decodes every frame (the parameter sets
    are also in-band), but hevc_mp4toannexb refuses the header, so NVDEC could read no packet: the backend is not
    created and the reason says why (before: av.error.InvalidDataError leaked from the decoder's creation; found by
    ``tests/fuzz.py --backend nvdec``)."""
    src = video("hevc8@256x144")
    data = bytearray(src.read_bytes())
    at = data.find(b"hvcC") + 4 + 22  # numOfArrays
    data[at] = 0xFF
    bad = tmp_path / "bad_hvcc.mp4"
    bad.write_bytes(bytes(data))
    assert len(VideoDecoder(bad)[:]) == 40
    mods = Modules(nvc=make_module(), convert=host_convert, cuda_ok=False)
    assert "hevc_mp4toannexb filter refused the stream's header (Invalid data" in _fallback_reason(bad, modules=mods)
