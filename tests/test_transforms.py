"""Decode-time transforms and float output (issue 16), against the ffmpeg CLI.

The oracle is the CLI running the filter chain torchcodec's transforms mean (measured against torchcodec 0.17 on
FFmpeg 5: identical frames): RGB first (``format=rgb24``, or ``rgb48le`` for float output), the container's rotation
(the CLI's autorotation), then each transform as FFmpeg's own filter: ``scale=W:H:flags=bilinear``, ``crop=w:h`` (the
CLI centres it) or ``crop=w:h:x:y`` (a random crop's place, drawn here with torch's generator as torchvision draws
it). Float output is the RGB48 value / 65535.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch
from oracle import cli_frames

from gpudecode import InvalidArgumentError, TransformSizeError, VideoDecoder, samplers
from gpudecode.transforms import CenterCrop, DecoderTransform, RandomCrop, Resize


def _upright(path: str) -> tuple[int, int]:
    m = VideoDecoder(path).metadata
    return m.height, m.width


def _random_place(seed: int, size: tuple[int, int], height: int, width: int) -> tuple[int, int]:
    """torchvision.transforms.v2.RandomCrop's draw: the top row, then the left column, from torch's generator."""
    torch.manual_seed(seed)
    top = int(torch.randint(0, height - size[0] + 1, size=()).item())
    left = int(torch.randint(0, width - size[1] + 1, size=()).item())
    return top, left


# name -> (transforms, CLI chain, output (h, w)); sizes chosen to be odd, to shrink and to enlarge
CHAINS = {
    "shrink": ([Resize((37, 53))], "scale=53:37:flags=bilinear", (37, 53)),
    "bicubic": ([Resize((41, 131), "bicubic")], "scale=131:41:flags=bicubic", (41, 131)),
    "enlarge": ([Resize((151, 201))], "scale=201:151:flags=bilinear", (151, 201)),
    "center_crop": ([CenterCrop((31, 45))], "crop=45:31", (31, 45)),
    "resize_then_crop": ([Resize((71, 99)), CenterCrop((33, 47))], "scale=99:71:flags=bilinear,crop=47:33", (33, 47)),
    "crop_then_resize": ([CenterCrop((41, 43)), Resize((64, 64))], "crop=43:41,scale=64:64:flags=bilinear", (64, 64)),
}
FILES = ["h264_bframes", "odd_size", "hevc10", "rotated90", "av1"]


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_transforms_equal_ffmpegs_filters(video, name, chain):
    path = str(video(name))
    transforms, vf, (h, w) = CHAINS[chain]
    dec = VideoDecoder(path, transforms=transforms, dimension_order="NHWC")
    got = dec.get_frames_in_range(0, len(dec)).data
    want = cli_frames(path, vf, w, h)
    assert got.shape == want.shape and got.dtype == torch.uint8
    np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("name", FILES)
def test_random_crop_is_torchs_draw_and_ffmpegs_crop(video, name):
    path = str(video(name))
    height, width = _upright(path)
    size = (height // 2 + 1, width // 3 + 2)
    top, left = _random_place(7, size, height, width)
    torch.manual_seed(7)
    dec = VideoDecoder(path, transforms=[RandomCrop(size)], dimension_order="NHWC")
    want = cli_frames(path, f"crop={size[1]}:{size[0]}:{left}:{top}", size[1], size[0])
    np.testing.assert_array_equal(dec.get_frames_in_range(0, len(dec)).data.numpy(), want)
    torch.manual_seed(7)
    again = VideoDecoder(path, transforms=[RandomCrop(size)], dimension_order="NHWC")
    assert torch.equal(again[3], dec[3])  # the seed reproduces the place


@pytest.mark.parametrize("name", ["h264_bframes", "hevc10", "rotated270", "odd_size"])
@pytest.mark.parametrize("chain", ["none", "shrink", "resize_then_crop"])
def test_float32_is_rgb48_over_65535(video, name, chain):
    path = str(video(name))
    transforms, vf, (h, w) = CHAINS[chain] if chain != "none" else (None, "", _upright(path))
    dec = VideoDecoder(path, transforms=transforms, output_dtype=torch.float32, dimension_order="NHWC")
    got = dec.get_frames_in_range(0, len(dec)).data
    assert got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), cli_frames(path, vf, w, h, rgb48=True))


def test_float32_keeps_ten_bits_and_auto_follows_the_bit_depth(video):
    ten, eight = str(video("hevc10")), str(video("h264_bframes"))
    f = VideoDecoder(ten, output_dtype=torch.float32)[0].double() * 65535
    # 10-bit samples scaled to 16 bits are not all multiples of 257 (what 8-bit values become)
    assert (f.round() % 257 != 0).float().mean() > 0.5
    assert VideoDecoder(ten, output_dtype="auto")[0].dtype == torch.float32
    assert torch.equal(VideoDecoder(ten, output_dtype="auto")[0], VideoDecoder(ten, output_dtype=torch.float32)[0])
    assert VideoDecoder(eight, output_dtype="auto")[0].dtype == torch.uint8
    assert torch.equal(VideoDecoder(eight, output_dtype="auto")[0], VideoDecoder(eight)[0])


def _every_access(dec: VideoDecoder) -> dict[str, tuple[torch.Tensor, list[int]]]:
    """Frames by each access path, with the frame indices they should hold."""
    n = len(dec)
    t = dec.get_frames_in_range(0, n).pts_seconds.tolist()
    return {
        "get_frame_at": (dec.get_frame_at(5).data[None], [5]),
        "getitem": (dec[7][None], [7]),
        "slice": (dec[2:9:3], [2, 5, 8]),
        "get_frames_at": (dec.get_frames_at([9, 1, 9, 0]).data, [9, 1, 9, 0]),
        "iteration": (torch.stack(list(dec)), list(range(n))),
        "played_at": (dec.get_frames_played_at([t[4], t[12]]).data, [4, 12]),
        "played_in_range": (dec.get_frames_played_in_range(t[3], t[6]).data, [3, 4, 5]),
        "get_all_frames": (dec.get_all_frames().data, list(range(n))),
    }


@pytest.mark.parametrize("mode", ["exact", "approximate"])
@pytest.mark.parametrize("threads", [1, 2])
def test_every_access_path_and_sampler_returns_transformed_frames(video, mode, threads):
    path = str(video("h264_bframes"))
    transforms, vf, (h, w) = CHAINS["resize_then_crop"]
    want = torch.from_numpy(cli_frames(path, vf, w, h).copy()).permute(0, 3, 1, 2)
    dec = VideoDecoder(path, transforms=transforms, seek_mode=mode, num_threads=threads)
    for what, (got, idx) in _every_access(dec).items():
        assert got.shape == (len(idx), 3, h, w), what
        assert torch.equal(got, want[idx]), what
    clips = samplers.clips_at_regular_indices(dec, num_clips=3, num_frames_per_clip=2)
    assert clips.data.shape == (3, 2, 3, h, w)
    for c in range(3):
        first = round(float(clips.pts_seconds[c, 0]) * 25)
        assert torch.equal(clips.data[c], want[first : first + 2])
    empty = dec.get_frames_at([])
    assert empty.data.shape == (0, 3, h, w) and empty.data.dtype == torch.uint8
    m = dec.metadata
    assert (m.height, m.width) == (64, 96)  # metadata keeps describing the stream


def test_float_output_of_every_access_path(video):
    path = str(video("hevc10"))
    dec = VideoDecoder(path, output_dtype=torch.float32, transforms=[Resize((20, 30))])
    want = torch.from_numpy(cli_frames(path, "scale=30:20:flags=bilinear", 30, 20, rgb48=True)).permute(0, 3, 1, 2)
    for what, (got, idx) in _every_access(dec).items():
        assert got.dtype == torch.float32, what
        assert torch.equal(got, want[idx]), what
    assert dec.get_frames_at([]).data.dtype == torch.float32


def test_float_output_uses_the_frame_pool_safely(video):
    """Float batches large enough for the pool (10 frames of 320x240 float32: 9 MiB) come back intact while earlier
    ones are still held, and a released one is reused."""
    from gpudecode._memory import POOL

    path = str(video("h264_bframes"))
    dec = VideoDecoder(path, transforms=[Resize((240, 320))], output_dtype=torch.float32, dimension_order="NHWC")
    want = cli_frames(path, "scale=320:240:flags=bilinear", 320, 240, rgb48=True)[:10]
    POOL.clear()
    held = [dec.get_frames_in_range(0, 10).data for _ in range(3)]
    assert POOL.kept_bytes >= 3 * want.nbytes  # pooled, one buffer per held batch
    for batch in held:
        np.testing.assert_array_equal(batch.numpy(), want)
    ptr = held[0].data_ptr()
    del held[0]
    again = dec.get_frames_in_range(0, 10).data
    assert again.data_ptr() == ptr  # the released buffer
    np.testing.assert_array_equal(again.numpy(), want)


def test_torchvision_transforms_are_accepted_where_torchcodec_accepts_them(video):
    """Runs where torchvision is installed: not in CI, whose CPU torch 2.13 no torchvision wheel here matches; passed
    by hand with torchvision 0.29.1 on torch 2.14 (and those objects give torchcodec 0.17's frames there too)."""
    v2 = pytest.importorskip("torchvision.transforms.v2")
    path = str(video("h264_bframes"))
    ours = VideoDecoder(path, transforms=[Resize((40, 50)), CenterCrop((20, 30))])[3]
    theirs = VideoDecoder(path, transforms=[v2.Resize((40, 50)), v2.CenterCrop((20, 30))])[3]
    assert torch.equal(ours, theirs)
    torch.manual_seed(3)
    a = VideoDecoder(path, transforms=[v2.RandomCrop((20, 30))])[3]
    torch.manual_seed(3)
    assert torch.equal(a, VideoDecoder(path, transforms=[RandomCrop((20, 30))])[3])
    with pytest.raises(InvalidArgumentError, match=r"bilinear \(or bicubic\) interpolation"):
        VideoDecoder(path, transforms=[v2.Resize((40, 50), interpolation=v2.InterpolationMode.NEAREST)])
    with pytest.raises(InvalidArgumentError, match="antialias"):
        VideoDecoder(path, transforms=[v2.Resize((40, 50), antialias=False)])
    with pytest.raises(InvalidArgumentError, match="must not pad"):
        VideoDecoder(path, transforms=[v2.RandomCrop((20, 30), padding=2)])
    with pytest.raises(InvalidArgumentError, match="Unsupported transform: RandomHorizontalFlip"):
        VideoDecoder(path, transforms=[v2.RandomHorizontalFlip()])


def test_bad_transforms_and_dtypes_are_clear_errors(video):
    path = str(video("h264_bframes"))
    with pytest.raises(
        InvalidArgumentError, match=r"Invalid Resize interpolation \('nearest'\). Supported values are: bil"
    ):
        Resize((4, 4), "nearest")
    assert repr(Resize((4, 4), "bicubic")) == "Resize(size=(4, 4), interpolation='bicubic')"
    for size in [(10,), (1, 2, 3), 5, "ab", None]:
        with pytest.raises(InvalidArgumentError, match=r"\(height, width\) pair"):
            Resize(size)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Invalid CenterCrop width \(0\)"):
        CenterCrop((4, 0))
    with pytest.raises(TypeError, match="Invalid Resize height"):
        Resize((2.5, 4))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match=r"Invalid CenterCrop size \(65, 10\): frames reaching it are only"):
        VideoDecoder(path, transforms=[CenterCrop((65, 10))])  # torchcodec raises RuntimeError there
    with pytest.raises(TransformSizeError, match=r"Invalid CenterCrop size \(64, 97\)"):
        VideoDecoder(path, transforms=[CenterCrop((64, 97))])
    with pytest.raises(ValueError, match=r"Invalid RandomCrop size \(20, 30\): frames reaching it are only 10x20"):
        VideoDecoder(path, transforms=[Resize((10, 20)), RandomCrop((20, 30))])
    with pytest.raises(InvalidArgumentError, match="Supported values are: a sequence of decoder transforms"):
        VideoDecoder(path, transforms=Resize((10, 20)))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="Unsupported transform: 'resize'"):
        VideoDecoder(path, transforms=["resize"])
    for dtype in (torch.float16, "float32", np.float32, torch.int32):
        with pytest.raises(InvalidArgumentError, match=r"Invalid output_dtype .*torch\.uint8, torch\.float32, 'auto'"):
            VideoDecoder(path, output_dtype=dtype)
    assert isinstance(Resize((1, 2)), DecoderTransform) and repr(Resize((1, 2))) == "Resize(size=(1, 2))"
    assert len(VideoDecoder(path, transforms=[])[0].shape) == 3  # an empty list is no transform


def test_center_crop_rounds_a_half_pixel_to_even_as_ffmpeg_and_torchvision(video):
    path = str(video("h264_bframes"))  # 64x96: margins 1, 3, 5 and 7 put the centre at 0.5, 1.5, 2.5, 3.5
    for m in (1, 3, 5, 7):
        dec = VideoDecoder(path, transforms=[CenterCrop((64 - m, 96 - m))], dimension_order="NHWC")
        np.testing.assert_array_equal(dec[0].numpy(), cli_frames(path, f"crop={96 - m}:{64 - m}", 96 - m, 64 - m)[0])


def test_frames_held_past_the_real_end_are_shaped_by_ffmpeg(tmp_path):
    """Approximate mode repeats the last frame past a header's over-count; that held frame is converted at the output
    precision and resized by FFmpeg like every other (not from an 8-bit copy by torch)."""
    from test_planner import _long_audio

    path = str(_long_audio(tmp_path))
    want = cli_frames(path, "scale=30:20:flags=bilinear", 30, 20, rgb48=True)
    assert len(want) == 25
    dec = VideoDecoder(
        path, seek_mode="approximate", num_threads=1, transforms=[Resize((20, 30))], output_dtype=torch.float32
    )
    n = len(dec)
    assert n > 30, "the header must over-count for this test"
    idx = list(range(20, n))
    expect = want[[min(i, 24) for i in idx]]
    np.testing.assert_array_equal(dec.get_frames_in_range(20, n).data.permute(0, 2, 3, 1).numpy(), expect)
    np.testing.assert_array_equal(dec.get_frames_at(idx).data.permute(0, 2, 3, 1).numpy(), expect)


@pytest.mark.parametrize("name", ["h264_bframes", "rotated90", "vp9@256x144"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("how", ["bilinear", "bicubic"])
def test_nvdec_path_shapes_its_frames_in_the_fused_kernel(video, name, dtype, how):
    """The NVDEC path (fake NVDEC, host-run kernels) converts, rotates, crops and resizes each surface in one kernel;
    without that kernel (or for two resizes) it converts, then shapes with torch (``shape_tensor``), exactly.

    Tolerances, measured on these 96x64 test patterns: the fused kernel filters unrounded RGB, so it is within 1.5
    code values of the torch path, which rounds to uint8 first; both differ from the CPU's FFmpeg frames by the
    kernel's nearest chroma (up to 3) and torch's antialiased bilinear against swscale's (up to ~15 at sharp edges
    when shrinking)."""
    from test_nvdec import nvdec_decoder

    from gpudecode._shaping import output_spec, shape_tensor

    path = str(video(name))
    transforms = [CenterCrop((31, 45)), Resize((37, 53), how)]
    fused, _ = nvdec_decoder(path, transforms=transforms, output_dtype=dtype, dimension_order="NHWC")
    torch_path, _ = nvdec_decoder(path, fused=False, transforms=transforms, output_dtype=dtype, dimension_order="NHWC")
    got, slow = fused[:], torch_path[:]
    assert [p is not None for p in fused._session.pipe.backend._plans._plans.values()] == [True]  # the fused kernel ran
    plain, _ = nvdec_decoder(path, dimension_order="NHWC")  # the kernel's whole frames, upright
    k, m = plain._state.quarter_turns, plain.metadata
    spec = output_spec(transforms, dtype, m.height, m.width, 8, k)
    coded = torch.rot90(plain[:], -k, dims=(1, 2))
    assert torch.equal(slow, torch.stack([shape_tensor(f, spec) for f in coded]))
    scale = 255.0 if dtype == torch.float32 else 1.0
    assert got.dtype == dtype and got.shape == slow.shape
    # rounding the input to uint8 moves the torch path by up to 0.5 times the filter's absolute weight sum (1 for
    # bilinear, about 1.2 for bicubic), and its output rounding by 0.5 more for float output
    assert float((got.double() - slow.double()).abs().max()) * scale <= 1.5
    cpu = VideoDecoder(path, transforms=transforms, output_dtype=dtype, dimension_order="NHWC")[:]
    d = (cpu.double() - got.double()).abs() * scale
    assert d.max() <= 16 and d.mean() <= 2, (float(d.max()), float(d.mean()))
    two, _ = nvdec_decoder(path, transforms=[Resize((40, 50)), Resize((20, 30))], dimension_order="NHWC")
    assert two[:].shape == (len(cpu), 20, 30, 3)  # not fused: converted, then shaped with torch


def test_scaling_stays_inside_guard_paged_scratch_frames(video):
    """swscale's resize reads and writes only inside FFmpeg-layout scratch frames, whatever the sizes (a child whose
    scratch frames end at a guard page); laid out tightly instead, the same child crashes, so the check can fail."""
    import sys
    from pathlib import Path

    child = Path(__file__).parent / "guarded_scale.py"
    paths = [str(video(n)) for n in ("odd_size", "hevc10", "rotated90")]
    ok = subprocess.run([sys.executable, str(child), *paths], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and ok.stdout.startswith("ok"), ok.stderr[-2000:]
    bad = subprocess.run([sys.executable, str(child), "--unpadded"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "ok" not in bad.stdout


def test_normalize_is_the_last_step_of_float_output(video):
    from test_nvdec import nvdec_decoder

    from gpudecode.transforms import Normalize

    path = str(video("hevc10@256x144"))
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    tr = [Resize((20, 30)), Normalize(mean, std)]
    dec = VideoDecoder(path, transforms=tr, output_dtype=torch.float32, dimension_order="NHWC")
    want = cli_frames(path, "scale=30:20:flags=bilinear", 30, 20, rgb48=True)
    want = (want - np.array(mean, np.float32)) / np.array(std, np.float32)
    np.testing.assert_allclose(dec.get_frames_in_range(0, len(dec)).data.numpy(), want, rtol=0, atol=1e-6)
    gpu, _ = nvdec_decoder(path, transforms=tr, output_dtype=torch.float32, dimension_order="NHWC")
    # in uint8 steps: nearest chroma and torch's filter against FFmpeg's bicubic chroma and swscale's filter on 10-bit
    # (measured 20.3 at most, 0.6 on average, at 256x144; 16.5 at 96x64, which NVDEC does not take for HEVC)
    d = (gpu[:].double() - torch.from_numpy(want).double()).abs() * 255 * torch.tensor(std, dtype=torch.float64)
    assert d.max() <= 24 and d.mean() <= 2, (float(d.max()), float(d.mean()))
    slow, _ = nvdec_decoder(path, fused=False, transforms=tr, output_dtype=torch.float32, dimension_order="NHWC")
    steps = (slow[:].double() - gpu[:].double()).abs() * 255 * torch.tensor(std, dtype=torch.float64)
    assert steps.max() <= 1.5  # torch's path after the kernel normalizes the same way (see the fused-kernel test)
    with pytest.raises(InvalidArgumentError, match=r"Invalid output_dtype .* with Normalize"):
        VideoDecoder(path, transforms=tr)
    with pytest.raises(InvalidArgumentError, match="follows Normalize, which must be the last one"):
        VideoDecoder(path, transforms=[Normalize(mean, std), Resize((4, 4))], output_dtype=torch.float32)
    with pytest.raises(InvalidArgumentError, match=r"Invalid Normalize std .*numbers > 0"):
        Normalize(mean, (1, 0, 1))
    with pytest.raises(InvalidArgumentError, match=r"Invalid Normalize mean .*3 finite numbers"):
        Normalize((1, 2), std)


def test_without_direct_swscale_pyavs_reformatter_resizes_identically(video, monkeypatch):
    """Where swscale cannot be reached through ctypes (PyAV built against a system FFmpeg), PyAV's reformatter does
    the same resize: identical frames; and a resize swscale refuses is a DecodeError, not PyAV's exception."""
    import av

    from gpudecode import DecodeError, _shaping

    path = str(video("odd_size"))
    tr = [CenterCrop((31, 45)), Resize((40, 50), "bicubic")]
    want = VideoDecoder(path, transforms=tr, output_dtype=torch.float32)[:]
    monkeypatch.setattr(_shaping, "rgb_scaler", lambda flags: None)
    assert torch.equal(VideoDecoder(path, transforms=tr, output_dtype=torch.float32)[:], want)

    def refuse(*args, **kwargs):
        raise ValueError("no such conversion")

    monkeypatch.setattr(av.VideoFrame, "reformat", refuse)
    with pytest.raises(DecodeError, match=r"swscale could not resize a 45x31 frame to 50x40: no such conversion"):
        VideoDecoder(path, transforms=tr)[0]


@pytest.mark.parametrize(
    "sampler",
    [
        "clips_at_random_indices",
        "clips_at_regular_indices",
        "clips_at_random_timestamps",
        "clips_at_regular_timestamps",
    ],
)
def test_every_sampler_returns_transformed_clips(video, sampler):
    """Each clip frame is the transformed frame the decoder gives for that frame's time (itself checked against the
    CLI above), in the output dtype and shape."""
    path = str(video("rotated90"))
    tr = [Resize((30, 21)), CenterCrop((20, 20))]
    dec = VideoDecoder(path, transforms=tr, output_dtype=torch.float32)
    torch.manual_seed(1)
    how = {"seconds_between_clip_starts": 0.5} if sampler == "clips_at_regular_timestamps" else {"num_clips": 3}
    clips = getattr(samplers, sampler)(dec, num_frames_per_clip=2, **how)
    assert clips.data.shape[1:] == (2, 3, 20, 20) and len(clips.data) >= 3 and clips.data.dtype == torch.float32
    ref = VideoDecoder(path, transforms=tr, output_dtype=torch.float32)
    for c in range(len(clips.data)):
        want = ref.get_frames_played_at(clips.pts_seconds[c].tolist())
        assert torch.equal(clips.data[c], want.data), c
