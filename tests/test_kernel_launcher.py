"""The CuPy launcher of the colour kernels (``gpudecode._backends._kernels.Yuv420ToRgb``) without a GPU.

The launcher packs each kernel's arguments, grid and block, and picks the device and stream. Here it runs over
tests/fake_cupy.py, which compiles the real kernel source for the host and calls each kernel the way
``cuLaunchKernel`` does, refusing arguments whose types do not match the kernel's parameters. Results are held to the
NumPy reference of tests/test_kernels.py and, for the fused kernel, to the hand-written host runner
(tests/kernel_host_runner.cpp), which tests/test_resample_kernel.py holds to torch.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
from fake_cupy import FakeCupy
from test_kernels import make_surface, reference
from test_resample_kernel import CHAINS, run_fused

from gpudecode._backends import _kernels
from gpudecode._backends._kernels import BLOCK, Yuv420ToRgb, kernel_source
from gpudecode._color import ColorSpec

MATRICES = ("bt601", "bt709", "bt2020")
# 9-bit: H.264's High 10 profile allows it, and NVDEC returns it as P016 like 10 and 12 bits
SPECS = [ColorSpec(m, full, bits) for m in MATRICES for full in (False, True) for bits in (8, 9, 10, 12)]


@pytest.fixture(autouse=True)
def _fresh_modules(monkeypatch):
    monkeypatch.setattr(_kernels, "_MODULES", {})  # compiled modules are cached per device, whatever the CuPy


def test_the_fake_imitates_the_real_cupy_api():
    """What the launcher and the fake rely on, read off the installed CuPy (no GPU needed)."""
    cupy = pytest.importorskip("cupy")
    assert callable(cupy.RawModule) and callable(cupy.RawModule.get_function) and callable(cupy.cuda.Device)
    doc = inspect.getdoc(cupy.RawKernel.__call__)
    assert doc.index("grid (tuple)") < doc.index("block (tuple)") < doc.index("args (tuple)")
    assert list(inspect.signature(cupy.cuda.ExternalStream).parameters)[:2] == ["ptr", "device_id"]
    if hasattr(cupy.cuda.Stream, "from_external"):  # CuPy 14: the launcher's stream, through the stream protocol
        assert cupy.cuda.Stream.from_external(_kernels._StreamHandle(0x1234)).ptr == 0x1234


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.matrix}-{'full' if s.full_range else 'tv'}-{s.bit_depth}")
@pytest.mark.parametrize("planar", [False, True])
@pytest.mark.parametrize(("width", "height"), [(70, 17), (64, 8), (65, 9)])
def test_the_launcher_converts_like_the_numpy_reference(spec, planar, width, height):
    frames = 2
    rng = np.random.default_rng(spec.bit_depth * 10 + planar)
    buf, pitch, frame_bytes, yuv = make_surface(rng, width, height, spec.bit_depth, pitch_pad=10, frames=frames)
    out = np.full((frames, 3 * width * height), 7, np.uint8)  # poisoned: every byte must be written
    cp = FakeCupy()
    launcher = Yuv420ToRgb(cp, 1)
    launcher(
        luma_ptr=buf.ctypes.data,
        chroma_ptr=buf.ctypes.data + pitch * height,
        pitch=pitch,
        width=width,
        height=height,
        dst_ptr=out.ctypes.data,
        planar=planar,
        spec=spec,
        stream_ptr=0x5000,
        frames=frames,
        src_frame_stride=frame_bytes,
        dst_frame_stride=3 * width * height,
    )
    shape = (frames, 3, height, width) if planar else (frames, height, width, 3)
    got = out.reshape(shape).transpose(0, 2, 3, 1) if planar else out.reshape(shape)
    diff = np.abs(got.astype(int) - reference(yuv, spec, width, height).astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.002  # float32 vs float64: only .5 ties may round apart
    (launch,) = cp.launches
    assert launch.kernel == ("yuv420_8_to_rgb" if spec.bit_depth == 8 else "yuv420_16_to_rgb")
    assert (launch.device, launch.stream, launch.block) == (1, 0x5000, BLOCK)
    assert launch.grid == (-(-width // 32), -(-height // 8), frames)  # just covers the frame with 32x8 blocks


@pytest.mark.parametrize(
    ("spec", "chain", "k", "out_float", "planar"),
    [
        (ColorSpec("bt709", False, 8), "crop_resize", 0, False, False),
        (ColorSpec("bt601", True, 8), "bicubic_enlarge", 1, True, True),
        (ColorSpec("bt2020", False, 10), "resize_crop", 3, False, True),
        (ColorSpec("bt2020", True, 10), "none", 2, True, False),
        (ColorSpec("bt709", False, 12), "crop_resize_crop", 1, True, False),
        (ColorSpec("bt601", False, 9), "shrink", 0, False, False),
        (ColorSpec("bt709", True, 8), "none", 1, False, True),  # 17 wide: one column past a 16-wide block
    ],
)
def test_the_fused_launcher_equals_the_host_runner(spec, chain, k, out_float, planar):
    coded_w, coded_h = 32, 17
    rng = np.random.default_rng(k + 4 * spec.bit_depth)
    buf, pitch, _, _ = make_surface(rng, coded_w, coded_h, spec.bit_depth, pitch_pad=6)
    args = (buf, pitch, spec, coded_w, coded_h, CHAINS[chain], k, out_float, planar)
    cp = FakeCupy()
    got = run_fused(*args, launch=Yuv420ToRgb(cp, 1).resample)
    want = run_fused(*args)
    assert got.dtype == want.dtype and np.array_equal(got, want)
    (launch,) = cp.launches
    assert launch.kernel == ("yuv420_8_resample" if spec.bit_depth == 8 else "yuv420_16_resample")
    assert (launch.device, launch.stream) == (1, 0)
    bx, by, _ = launch.block
    assert launch.grid == (-(-got.shape[1] // bx), -(-got.shape[0] // by), 1)  # just covers the output


def test_the_source_is_compiled_once_per_device_and_loaded_there():
    cp = FakeCupy()
    Yuv420ToRgb(cp, 2)
    Yuv420ToRgb(cp, 2)
    assert cp.compiled == [(kernel_source("yuv420_to_rgb.cu"), ("--std=c++14",))]
    assert cp.made_on == [("module", 2)] + [("kernel", 2)] * 8  # four kernels per launcher
    Yuv420ToRgb(cp, 1)
    assert len(cp.compiled) == 2 and cp.made_on[-5:] == [("module", 1)] + [("kernel", 1)] * 4


def test_the_colour_matrix_is_computed_once_per_spec(monkeypatch):
    calls = []
    real = _kernels.matrix_arg
    monkeypatch.setattr(_kernels, "matrix_arg", lambda spec: calls.append(spec) or real(spec))
    launcher = Yuv420ToRgb(FakeCupy(), 0)
    a, b = ColorSpec("bt709", False, 8), ColorSpec("bt601", True, 8)
    got = [launcher._matrix(s) for s in (a, a, b, a)]
    assert got[0] == got[3] == tuple(real(a)) and got[2] == tuple(real(b))
    assert calls == [a, b]


def test_a_kernel_source_is_found_in_the_wheel_first_then_in_the_checkout(tmp_path, monkeypatch):
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "k.cu").write_text("// packaged")
    monkeypatch.setattr(_kernels.resources, "files", lambda package: tmp_path)
    assert _kernels.kernel_path("k.cu") == tmp_path / "kernels" / "k.cu"
    checkout = _kernels.kernel_path("yuv420_to_rgb.cu")  # not in the fake wheel: the checkout's
    assert checkout == Path(__file__).resolve().parent.parent / "kernels" / "yuv420_to_rgb.cu"
    with pytest.raises(FileNotFoundError, match=r"gpudecode kernel source 'nope\.cu' is missing from the installation"):
        _kernels.kernel_path("nope.cu")


@pytest.mark.parametrize("from_external", [True, False], ids=["cupy14", "cupy13"])
def test_every_launch_runs_on_the_launchers_device_and_the_given_stream(from_external):
    spec = ColorSpec("bt709", False, 8)
    buf, pitch, _, _ = make_surface(np.random.default_rng(0), 8, 4, 8)
    out = np.zeros(3 * 8 * 4, np.uint8)
    cp = FakeCupy(from_external=from_external)
    launcher = Yuv420ToRgb(cp, 3)
    for stream in (0xA0, 0xB0, 0xA0):
        launcher(
            luma_ptr=buf.ctypes.data,
            chroma_ptr=buf.ctypes.data + pitch * 4,
            pitch=pitch,
            width=8,
            height=4,
            dst_ptr=out.ctypes.data,
            planar=False,
            spec=spec,
            stream_ptr=stream,
        )
    assert [(x.device, x.stream) for x in cp.launches] == [(3, 0xA0), (3, 0xB0), (3, 0xA0)]
    assert [x.grid[2] for x in cp.launches] == [1, 1, 1]  # one frame unless told
    # one CuPy stream per handle, made on the launcher's device
    assert [x for x in cp.made_on if x[0] == "stream"] == [("stream", 3), ("stream", 3)]
    assert cp.devices == [] and cp.streams == []  # every context left


def test_the_fake_refuses_what_a_gpu_would_get_wrong():
    """The fake's own checks fail a launch whose arguments do not match the kernel's parameters."""
    kernel = FakeCupy().RawModule(code=kernel_source("yuv420_to_rgb.cu")).get_function("yuv420_8_to_rgb")
    assert [k for k, _ in kernel.signature] == ["p", "p", "i", "i", "i", "i", "p", "i", "i", *["f"] * 12]
    good = [np.uint64(0), np.uint64(0), np.int64(0), np.int32(0), np.int32(0), np.int32(0), np.uint64(0)]
    good += [np.int64(0), np.int32(0), *[np.float32(0)] * 12]
    kernel((1,), (1,), tuple(good))  # a 0x0 frame: launched, nothing read or written
    wrong = list(good)
    wrong[3] = np.int64(0)  # pitch as 8 bytes: the kernel takes an int
    with pytest.raises(TypeError, match="argument 3 is int64 but the kernel takes a 4-byte i"):
        kernel((1,), (1,), tuple(wrong))
    wrong[3] = 0
    with pytest.raises(TypeError, match="argument 3: pass NumPy scalars, not int"):
        kernel((1,), (1,), tuple(wrong))
    with pytest.raises(TypeError, match="takes 21 arguments, got 20"):
        kernel((1,), (1,), tuple(good[:-1]))
    with pytest.raises(ValueError, match=r"CUDA refuses grid \(1, 1, 1\) with block \(64, 32, 1\)"):
        kernel((1,), (64, 32), tuple(good))
