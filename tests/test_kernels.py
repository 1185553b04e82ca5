"""The real CUDA kernel source: arithmetic and indexing on the host against NumPy, and compilation for GPUs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from kernel_host import ROOT, run

from gpudecode._backends._kernels import KERNEL_FILES, kernel_path, kernel_source, matrix_arg
from gpudecode._color import ColorSpec, yuv_to_rgb_matrix

SPECS = [
    ColorSpec(m, full, bits) for m in ("bt601", "bt709", "bt2020") for full in (False, True) for bits in (8, 10, 12)
]


def make_surface(rng, width, height, bits, pitch_pad=0, frames=1):
    """Random NV12/P016 frames, packed one after another: luma rows then interleaved chroma rows."""
    bps = 1 if bits == 8 else 2
    pitch = width * bps + pitch_pad
    cw, ch = (width + 1) // 2, (height + 1) // 2
    luma_rows, frame_bytes = height, pitch * (height + ch)
    hi = (1 << bits) - 1
    y = rng.integers(0, hi + 1, (frames, height, width))
    u = rng.integers(0, hi + 1, (frames, ch, cw))
    v = rng.integers(0, hi + 1, (frames, ch, cw))
    buf = np.zeros((frames, frame_bytes), np.uint8)
    for f in range(frames):
        if bps == 1:
            lum = buf[f, : pitch * luma_rows].reshape(luma_rows, pitch)
            lum[:, :width] = y[f]
            chr_ = buf[f, pitch * luma_rows :].reshape(ch, pitch)
            chr_[:, 0 : 2 * cw : 2] = u[f]
            chr_[:, 1 : 2 * cw : 2] = v[f]
        else:
            shift = 16 - bits
            lum = buf[f, : pitch * luma_rows].view(np.uint16).reshape(luma_rows, pitch // 2)
            lum[:, :width] = y[f] << shift
            chr_ = buf[f, pitch * luma_rows :].view(np.uint16).reshape(ch, pitch // 2)
            chr_[:, 0 : 2 * cw : 2] = u[f] << shift
            chr_[:, 1 : 2 * cw : 2] = v[f] << shift
    return buf, pitch, frame_bytes, (y, u, v)


def reference(yuv, spec, width, height):
    """NumPy float64 reference: nearest chroma, same matrix, round half to even, clamp."""
    y, u, v = yuv
    uu = u.repeat(2, 1).repeat(2, 2)[:, :height, :width]
    vv = v.repeat(2, 1).repeat(2, 2)[:, :height, :width]
    m = yuv_to_rgb_matrix(spec)
    vec = np.stack([y, uu, vv, np.ones_like(y)], -1).astype(np.float64)
    return np.clip(np.rint(vec @ m.T), 0, 255).astype(np.uint8)  # (F, H, W, 3)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.matrix}-{'full' if s.full_range else 'tv'}-{s.bit_depth}")
@pytest.mark.parametrize(("width", "height"), [(64, 32), (33, 17), (1, 1), (70, 9)])
@pytest.mark.parametrize("planar", [False, True])
def test_kernel_matches_numpy(spec, width, height, planar):
    rng = np.random.default_rng(width * 100 + height + spec.bit_depth)
    frames = 3
    buf, pitch, frame_bytes, yuv = make_surface(rng, width, height, spec.bit_depth, pitch_pad=24, frames=frames)
    out = np.full((frames, 3 * width * height), 7, np.uint8)  # poisoned: every byte must be written
    run(
        spec.bit_depth,
        buf.ctypes.data,
        buf.ctypes.data + pitch * height,
        pitch,
        width,
        height,
        out.ctypes.data,
        planar,
        matrix_arg(spec),
        frames=frames,
        src_frame_stride=frame_bytes,
        dst_frame_stride=3 * width * height,
    )
    ref = reference(yuv, spec, width, height)
    got = (
        out.reshape(frames, 3, height, width).transpose(0, 2, 3, 1) if planar else out.reshape(frames, height, width, 3)
    )
    diff = np.abs(got.astype(int) - ref.astype(int))
    # float32 on the device vs float64 here: only exact .5 ties can round differently
    assert diff.max() <= 1
    assert (diff > 0).mean() < 0.002


def test_kernel_writes_nothing_outside_the_frame():
    spec = ColorSpec("bt709", False, 8)
    rng = np.random.default_rng(0)
    buf, pitch, _, _ = make_surface(rng, 30, 10, 8, pitch_pad=8)
    out = np.full(3 * 30 * 10 + 64, 7, np.uint8)
    run(8, buf.ctypes.data, buf.ctypes.data + pitch * 10, pitch, 30, 10, out.ctypes.data, False, matrix_arg(spec))
    assert (out[3 * 30 * 10 :] == 7).all()


def test_matrix_gives_known_colors():
    # limited-range BT.601: Y=16 black, Y=235 white, neutral chroma
    m = yuv_to_rgb_matrix(ColorSpec("bt601", False, 8))
    np.testing.assert_allclose(m @ [16, 128, 128, 1], [0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(m @ [235, 128, 128, 1], [255, 255, 255], atol=1e-9)
    m10 = yuv_to_rgb_matrix(ColorSpec("bt709", False, 10))
    np.testing.assert_allclose(m10 @ [940, 512, 512, 1], [255, 255, 255], atol=1e-9)
    full = yuv_to_rgb_matrix(ColorSpec("bt2020", True, 8))
    np.testing.assert_allclose(full @ [255, 128, 128, 1], [255, 255, 255], atol=1e-9)


def test_kernel_sources_ship_with_the_package():
    for name in KERNEL_FILES:
        assert kernel_path(name).is_file()
        assert 'extern "C" __global__' in kernel_source(name)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("name", [p.name for p in (ROOT / "kernels").glob("*.cu")])
def test_kernels_compile_with_nvcc(tmp_path, arch, name):
    nvcc = shutil.which("nvcc") or (
        Path("/usr/local/cuda/bin/nvcc") if Path("/usr/local/cuda/bin/nvcc").exists() else None
    )
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    res = subprocess.run(
        [
            str(nvcc),
            f"-arch={arch}",
            "-Werror",
            "all-warnings",
            "-c",
            str(ROOT / "kernels" / name),
            "-o",
            str(tmp_path / "k.o"),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("name", [p.name for p in (ROOT / "kernels").glob("*.cu")])
def test_kernels_compile_with_nvrtc(name):
    """NVRTC is the compiler CuPy's RawModule uses; it compiles to PTX without a driver."""
    nvrtc = pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-bindings is not installed")
    src = (ROOT / "kernels" / name).read_bytes()
    err, prog = nvrtc.nvrtcCreateProgram(src, name.encode(), 0, [], [])
    assert err == nvrtc.nvrtcResult.NVRTC_SUCCESS
    opts = [b"--gpu-architecture=compute_80", b"--std=c++14"]
    (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        _, size = nvrtc.nvrtcGetProgramLogSize(prog)
        log = b" " * size
        nvrtc.nvrtcGetProgramLog(prog, log)
        pytest.fail(log.decode(errors="replace"))
    err, size = nvrtc.nvrtcGetPTXSize(prog)
    assert err == nvrtc.nvrtcResult.NVRTC_SUCCESS and size > 100


_GUARDED_KERNEL_CHILD = """
import sys
sys.path.insert(0, {tests!r})
import numpy as np
import guard
from kernel_host import run
from test_kernels import make_surface, reference
from gpudecode._color import ColorSpec
from gpudecode._backends._kernels import matrix_arg

for bits in (8, 10):
    spec = ColorSpec("bt709", False, bits)
    bps = 1 if bits == 8 else 2
    for width, height in {sizes!r}:
        for planar in (False, True):
            rng = np.random.default_rng(width + height)
            # the tightest surface the layout allows: pitch holds the rounded-up chroma pairs, nothing more
            pad = 2 * ((width + 1) // 2) * bps - width * bps
            buf, pitch, _, yuv = make_surface(rng, width, height, bits, pitch_pad=pad)
            ch = (height + 1) // 2
            luma = guard.guarded_array(pitch * height)
            luma[:] = buf[0, : pitch * height]
            chroma = guard.guarded_array(pitch * ch)
            chroma[:] = buf[0, pitch * height:]
            out = guard.guarded_array(3 * width * height)
            run(bits, luma.ctypes.data, chroma.ctypes.data, pitch, width, height, out.ctypes.data, planar,
                matrix_arg(spec))
            guard.check_sentinels()
            got = out.reshape(3, height, width).transpose(1, 2, 0) if planar else out.reshape(height, width, 3)
            assert np.abs(got.astype(int) - reference(yuv, spec, width, height)[0].astype(int)).max() <= 1
print("ok")
"""


def test_kernel_reads_and_writes_stay_inside_the_surface_and_output():
    """Odd and tiny sizes, NV12 and P016, HWC and CHW: every source plane and the output end at a guard page.

    The kernel reads the luma plane, the rounded-up chroma plane (``ceil(W/2)`` pairs, ``ceil(H/2)`` rows) and writes
    exactly ``3*W*H`` bytes; any access past those ends is a SIGSEGV in the child (checked: dropping the kernel's
    ``y >= height`` bound makes this test fail).
    """
    tests = str(Path(__file__).resolve().parent)
    sizes = [(1, 1), (3, 3), (121, 80), (321, 241), (333, 250), (854, 480), (65, 49)]
    code = _GUARDED_KERNEL_CHILD.format(tests=tests, sizes=sizes)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", f"child exited {r.returncode}: {r.stderr[-2000:]}"


# Coefficients written out from the standards (8-bit code values; RGB 0..255), not derived from gpudecode's code:
# R = a*(Y-16) + b*(V-128); G = a*(Y-16) - c*(U-128) - d*(V-128); B = a*(Y-16) + e*(U-128) for limited range
# (a = 255/219), and the JFIF/BT.601 full-range set with a = 1 and no Y offset.
STANDARD_COEFFICIENTS = {
    ("bt601", False): (1.164383, 1.596027, 0.391762, 0.812968, 2.017232),
    ("bt709", False): (1.164383, 1.792741, 0.213249, 0.532909, 2.112402),
    ("bt2020", False): (1.164383, 1.678674, 0.187326, 0.650424, 2.141772),
    ("bt601", True): (1.0, 1.402, 0.344136, 0.714136, 1.772),
}

# 100% colour bars in 8-bit limited-range code values (ITU-R BT.601 and BT.709 tables): (Y, Cb, Cr) -> RGB
BARS = {
    "bt601": {
        (210, 16, 146): (255, 255, 0),
        (170, 166, 16): (0, 255, 255),
        (145, 54, 34): (0, 255, 0),
        (106, 202, 222): (255, 0, 255),
        (81, 90, 240): (255, 0, 0),
        (41, 240, 110): (0, 0, 255),
    },
    "bt709": {
        (219, 16, 138): (255, 255, 0),
        (188, 154, 16): (0, 255, 255),
        (173, 42, 26): (0, 255, 0),
        (78, 214, 230): (255, 0, 255),
        (63, 102, 240): (255, 0, 0),
        (32, 240, 118): (0, 0, 255),
    },
}


@pytest.mark.parametrize(("matrix", "full"), sorted(STANDARD_COEFFICIENTS))
def test_matrix_equals_the_standards_coefficients(matrix, full):
    a, b, c, d, e = STANDARD_COEFFICIENTS[(matrix, full)]
    y0 = 0.0 if full else 16.0
    want = np.array(
        [[a, 0.0, b, -(a * y0 + b * 128)], [a, -c, -d, -(a * y0 - (c + d) * 128)], [a, e, 0.0, -(a * y0 + e * 128)]]
    )
    got = yuv_to_rgb_matrix(ColorSpec(matrix, full, 8))
    np.testing.assert_allclose(got, want, atol=2e-4)


@pytest.mark.parametrize("matrix", sorted(BARS))
def test_saturated_colour_bars(matrix):
    m = yuv_to_rgb_matrix(ColorSpec(matrix, False, 8))
    for (y, u, v), rgb in BARS[matrix].items():
        got = np.clip(m @ [y, u, v, 1], 0, 255)
        assert np.abs(got - rgb).max() <= 3, ((y, u, v), got, rgb)  # the tables' code values are rounded
