"""The fused shaping kernel (``yuv420_*_resample`` in kernels/yuv420_to_rgb.cu), run on the host, against torch.

Reference, independent of the kernel's tables: the frame converted to RGB in float64 (nearest chroma, the
standard's matrix, clamped to 0..255, not rounded), rotated with ``numpy.rot90``, cropped by slicing and resized with
``torch.nn.functional.interpolate(mode="bilinear" or "bicubic", antialias=True)`` in float64 and clamped to 0..255;
then rounded to uint8, or divided
by 255 (and normalized) for float output. Tolerances: 1 code value for uint8 (float32 accumulation can land the other
side of a rounding boundary), 1e-4 for float32 in [0, 1].
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from kernel_host import resample
from test_kernels import make_surface

from gpudecode._color import ColorSpec, yuv_to_rgb_matrix
from gpudecode._shaping import OutputSpec, resample_plan
from gpudecode._transforms import CropOp, ScaleOp


def float_rgb(yuv, spec: ColorSpec, width: int, height: int) -> np.ndarray:
    """``(H, W, 3)`` float64 RGB of frame 0, nearest chroma, clamped, not rounded."""
    y, u, v = (a[0] for a in yuv)
    uu = u.repeat(2, 0).repeat(2, 1)[:height, :width]
    vv = v.repeat(2, 0).repeat(2, 1)[:height, :width]
    vec = np.stack([y, uu, vv, np.ones_like(y)], -1).astype(np.float64)
    return np.clip(vec @ yuv_to_rgb_matrix(spec).T, 0, 255)


def reference(rgb: np.ndarray, ops, k: int) -> np.ndarray:
    img = torch.from_numpy(np.ascontiguousarray(np.rot90(rgb, k)))
    for op in ops:
        if isinstance(op, CropOp):
            img = img[op.top : op.top + op.height, op.left : op.left + op.width]
        else:
            x = img.permute(2, 0, 1)[None]
            img = F.interpolate(x, size=(op.height, op.width), mode=op.interpolation, antialias=True)
            img = img[0].permute(1, 2, 0).clamp(0, 255)  # RGB stays in range (bicubic overshoots)
    return img.numpy()


def run_fused(buf, pitch, spec, coded_w, coded_h, ops, k, out_float, planar, norm=None, launch=resample):
    """Frame 0 of ``buf`` through ``launch`` (the host runner, or ``Yuv420ToRgb.resample`` over a fake CuPy)."""
    out_h, out_w = (ops[-1].height, ops[-1].width) if ops else ((coded_w, coded_h) if k % 2 else (coded_h, coded_w))
    plan = resample_plan(OutputSpec(tuple(ops), out_h, out_w, out_float, k), coded_h, coded_w)
    assert plan is not None
    tabs = [np.ascontiguousarray(t) for t in (plan.x_start, plan.x_weights, plan.y_start, plan.y_weights)]
    tables = (
        tabs[0].ctypes.data,
        tabs[1].ctypes.data,
        tabs[1].shape[1],
        tabs[2].ctypes.data,
        tabs[3].ctypes.data,
        tabs[3].shape[1],
    )
    if norm is not None:
        mean, std = norm
        so = (*(1 / (255 * s) for s in std), *(-m / s for m, s in zip(mean, std, strict=True)))
    else:
        so = (1 / 255,) * 3 + (0.0,) * 3 if out_float else (1.0,) * 3 + (0.0,) * 3
    out = np.full((3 * out_h * out_w,), 7, np.float32 if out_float else np.uint8)
    luma = buf[0]
    launch(
        luma_ptr=luma.ctypes.data,
        chroma_ptr=luma.ctypes.data + pitch * coded_h,
        pitch=pitch,
        coded_width=coded_w,
        coded_height=coded_h,
        dst_ptr=out.ctypes.data,
        out_width=out_w,
        out_height=out_h,
        planar=planar,
        out_float=out_float,
        quarter_turns=k,
        tables=tables,
        scale_offset=so,
        spec=spec,
        stream_ptr=0,
    )
    return out.reshape(3, out_h, out_w).transpose(1, 2, 0) if planar else out.reshape(out_h, out_w, 3)


CHAINS = {
    "none": [],
    "shrink": [ScaleOp(7, 11)],
    "enlarge": [ScaleOp(40, 57)],
    "crop": [CropOp(5, 6, 2, 3)],
    "crop_resize": [CropOp(9, 10, 1, 2), ScaleOp(13, 4)],
    "resize_crop": [ScaleOp(21, 30), CropOp(8, 9, 5, 7)],
    "crop_resize_crop": [CropOp(12, 14, 3, 1), ScaleOp(17, 5), CropOp(4, 3, 6, 1)],
    "bicubic_shrink": [ScaleOp(6, 13, "bicubic")],
    "bicubic_enlarge": [CropOp(9, 10, 1, 2), ScaleOp(31, 23, "bicubic")],
}
SPECS = [ColorSpec(m, full, bits) for m in ("bt601", "bt709", "bt2020") for full in (False, True) for bits in (8, 10)]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.matrix}-{'full' if s.full_range else 'tv'}-{s.bit_depth}")
@pytest.mark.parametrize("chain", sorted(CHAINS))
@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_fused_kernel_equals_rotate_crop_and_torch_resize(spec, chain, k):
    coded_w, coded_h = 33, 17
    rng = np.random.default_rng(hash((chain, k, spec)) % 2**32)
    buf, pitch, _, yuv = make_surface(rng, coded_w, coded_h, spec.bit_depth, pitch_pad=6)
    ops = CHAINS[chain]
    want = reference(float_rgb(yuv, spec, coded_w, coded_h), ops, k)
    got8 = run_fused(buf, pitch, spec, coded_w, coded_h, ops, k, out_float=False, planar=k % 2 == 1)
    assert got8.shape == want.shape
    assert np.abs(got8.astype(np.float64) - np.clip(np.rint(want), 0, 255)).max() <= 1
    gotf = run_fused(buf, pitch, spec, coded_w, coded_h, ops, k, out_float=True, planar=k == 2)
    assert np.abs(gotf - want / 255).max() <= 1e-4


@pytest.mark.parametrize(("w", "h"), [(1, 1), (2, 3), (64, 32), (70, 9), (161, 90)])
@pytest.mark.parametrize("out", [(1, 1), (3, 200), (224, 224), (9, 70)])
@pytest.mark.parametrize("how", ["bilinear", "bicubic"])
def test_odd_and_extreme_scale_factors(w, h, out, how):
    spec = ColorSpec("bt709", False, 8)
    rng = np.random.default_rng(w * 1000 + h)
    buf, pitch, _, yuv = make_surface(rng, w, h, 8, pitch_pad=w % 2)
    ops = [ScaleOp(*out, how)]
    want = reference(float_rgb(yuv, spec, w, h), ops, 0)
    got = run_fused(buf, pitch, spec, w, h, ops, 0, out_float=True, planar=False)
    assert np.abs(got - want / 255).max() <= 1e-4


def test_normalized_float_output():
    spec = ColorSpec("bt601", True, 10)
    rng = np.random.default_rng(5)
    buf, pitch, _, yuv = make_surface(rng, 40, 30, 10)
    ops = [ScaleOp(11, 13)]
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    want = (reference(float_rgb(yuv, spec, 40, 30), ops, 1) / 255 - np.array(mean)) / np.array(std)
    got = run_fused(buf, pitch, spec, 40, 30, ops, 1, out_float=True, planar=False, norm=(mean, std))
    assert np.abs(got - want).max() <= 5e-4


def test_a_spec_with_two_resizes_is_not_fused():
    spec = OutputSpec((ScaleOp(10, 10), ScaleOp(5, 5)), 5, 5, False, 0)
    assert resample_plan(spec, 20, 20) is None


_GUARDED_CHILD = """
import sys
sys.path.insert(0, {tests!r})
import numpy as np
import guard
from kernel_host import resample
from test_kernels import make_surface
from gpudecode._color import ColorSpec
from gpudecode._shaping import OutputSpec, resample_plan
from gpudecode._transforms import CropOp, ScaleOp

def guarded_copy(a):
    g = guard.guarded_array(a.nbytes).view(a.dtype)
    g[:] = a.reshape(-1)
    return g

for bits in (8, 10):
    spec = ColorSpec("bt709", False, bits)
    bps = 1 if bits == 8 else 2
    for w, h in {sizes!r}:
        pad = 2 * ((w + 1) // 2) * bps - w * bps  # the tightest pitch the layout allows
        buf, pitch, _, _ = make_surface(np.random.default_rng(w + h), w, h, bits, pitch_pad=pad)
        ch = (h + 1) // 2
        luma, chroma = guarded_copy(buf[0, : pitch * h]), guarded_copy(buf[0, pitch * h :])
        for k in range(4):
            uh, uw = (w, h) if k % 2 else (h, w)
            for ops in ([ScaleOp(5, 3, "bicubic")], [ScaleOp(2 * uh + 1, 3 * uw)],
                        [CropOp(uh, 1, 0, uw - 1), ScaleOp(3, 2)], [ScaleOp(uh, uw), CropOp(1, 1, uh - 1, uw - 1)]):
                oh, ow = ops[-1].height, ops[-1].width
                plan = resample_plan(OutputSpec(tuple(ops), oh, ow, True, k), h, w)
                xs, xw, ys, yw = (guarded_copy(t) for t in (plan.x_start, plan.x_weights, plan.y_start, plan.y_weights))
                out = guard.guarded_array(3 * oh * ow * 4).view(np.float32)
                resample(luma_ptr=luma.ctypes.data, chroma_ptr=chroma.ctypes.data, pitch=pitch, coded_width=w,
                         coded_height=h, dst_ptr=out.ctypes.data, out_width=ow, out_height=oh, planar=False,
                         out_float=True, quarter_turns=k,
                         tables=(xs.ctypes.data, xw.ctypes.data, plan.x_weights.shape[1], ys.ctypes.data,
                                 yw.ctypes.data, plan.y_weights.shape[1]),
                         scale_offset=(1.0, 1.0, 1.0, 0.0, 0.0, 0.0), spec=spec)
                guard.check_sentinels()
print("ok")
"""


def test_fused_kernel_reads_and_writes_stay_inside_the_surface_tables_and_output():
    """Surfaces of the tightest pitch, the tables and the output each end at a guard page; every rotation, a crop on
    the last column and row, shrinking and enlarging. Checked by hand: dropping the kernel's skip of zero-weight taps
    (they lie past the frame's edge) or its ``ox >= out_w`` bound makes the child crash."""
    tests = str(Path(__file__).parent)
    sizes = [(1, 1), (3, 1), (1, 3), (5, 7), (33, 17), (64, 2)]
    code = _GUARDED_CHILD.format(tests=tests, sizes=sizes)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-3000:]
