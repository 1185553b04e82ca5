"""What a returned frame is made of: the decode-time transforms and the output dtype, decided once per decoder.

A plain decoder (no transforms, uint8) writes each frame at its coded size and rotates the whole batch at the end
(:mod:`gpudecode._output`). A shaped one makes each frame whole before writing it: RGB at the stream's coded size
(RGB24, or RGB48 for float32 output, which keeps 10/12-bit precision), the container's rotation, the transforms in
order, then the dtype (float32: RGB48 / 65535, torchcodec's float output).

CPU frames are shaped by FFmpeg (:class:`CpuShaper`: swscale's bilinear or bicubic resize on RGB, crops as views),
bit for bit as ``ffmpeg -vf format=rgb24,scale=W:H:flags=bilinear,crop=...`` (``rgb48le`` for float32). NVDEC
surfaces are shaped by the fused kernel from the tables of :func:`resample_plan` (torch's antialiased ``interpolate``
weights); frames already converted on a device, and specs with two resizes, by torch (:func:`shape_tensor`). Both
are close to the CPU's frames within the tolerance the tests state, not equal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gpudecode._backends._swscale import SWS_BICUBIC, SWS_BILINEAR, RgbScaler, ScratchFrame, rgb_scaler
from gpudecode._errors import DecodeError, InvalidArgumentError, ffmpeg_reason
from gpudecode._transforms import CropOp, NormalizeOp, Op, ScaleOp, resolve_transforms

__all__ = [
    "CpuShaper",
    "DevicePlan",
    "DevicePlans",
    "OutputSpec",
    "ResamplePlan",
    "aa_taps",
    "output_spec",
    "resample_plan",
    "shape_tensor",
]

_FLOAT_SCALE = np.float32(65535)  # RGB48 full scale: torchcodec's float32 output is RGB48 / 65535


@dataclass(frozen=True)
class OutputSpec:
    """The frames a decoder returns.

    Attributes:
        ops: Crops and resizes applied to the upright RGB frame, in order (empty: none).
        height: Returned frame height (after rotation and ``ops``).
        width: Returned frame width.
        float32: Float32 RGB in ``[0, 1]`` computed from RGB48 (``True``), or uint8 RGB24.
        quarter_turns: The container's rotation, applied before ``ops``.
        normalize: Per-channel mean and std applied to float32 output last (``None``: values stay in ``[0, 1]``).
    """

    ops: tuple[Op, ...]
    height: int
    width: int
    float32: bool
    quarter_turns: int
    normalize: NormalizeOp | None = None

    def scale_offset(self) -> tuple[float, float, float, float, float, float]:
        """Per channel, the factors taking a 0..255 value to the output value: ``v * scale + offset``."""
        if not self.float32:
            return (1.0, 1.0, 1.0, 0.0, 0.0, 0.0)
        if self.normalize is None:
            return (1 / 255, 1 / 255, 1 / 255, 0.0, 0.0, 0.0)
        n = self.normalize
        scale = tuple(1 / (255 * s) for s in n.std)
        offset = tuple(-m / s for m, s in zip(n.mean, n.std, strict=True))
        return (*scale, *offset)  # type: ignore[return-value]

    @property
    def dtype(self) -> torch.dtype:
        """The returned frames' dtype."""
        return torch.float32 if self.float32 else torch.uint8

    @property
    def plain(self) -> bool:
        """Whole uint8 frames: the batch is written at the coded size and rotated at the end."""
        return not self.ops and not self.float32


def output_spec(
    transforms: Sequence[Any] | None, output_dtype: Any, height: int, width: int, bit_depth: int, quarter_turns: int
) -> OutputSpec:
    """Resolve ``transforms`` and ``output_dtype`` for a stream of upright ``height`` x ``width`` frames.

    ``output_dtype`` is ``torch.uint8``, ``torch.float32`` or ``"auto"`` (float32 where the stream has more than
    8 bits per sample, as torchcodec decides), as :func:`gpudecode._args.decoder_arguments` checked it.

    Raises:
        InvalidArgumentError: An unsupported transform, or Normalize without float32 output.
        TransformSizeError: A crop larger than the frames reaching it.
    """
    float32 = output_dtype is torch.float32 or (isinstance(output_dtype, str) and bit_depth > 8)  # str: "auto"
    ops = resolve_transforms(transforms, height, width)
    normalize = None
    if ops and isinstance(ops[-1], NormalizeOp):
        if not float32:
            raise InvalidArgumentError(
                f"Invalid output_dtype ({output_dtype!r}) with Normalize. Supported values are: torch.float32."
            )
        normalize, ops = ops[-1], ops[:-1]
    if ops:
        height, width = ops[-1].height, ops[-1].width
    return OutputSpec(
        ops=ops, height=height, width=width, float32=float32, quarter_turns=quarter_turns, normalize=normalize
    )


class CpuShaper:
    """Shapes RGB frames on the CPU with FFmpeg's swscale (PyAV's reformatter where swscale is out of reach).

    Owns a scaler per resize and the frames they write into; one per backend (not thread-safe).
    """

    def __init__(self) -> None:
        self._scalers: dict[int, RgbScaler | None] = {}  # by the resize's position in the spec's ops
        self._upright = ScratchFrame()

    def write(self, rgb: np.ndarray, spec: OutputSpec, out: np.ndarray) -> None:
        """Rotate ``rgb`` (``(H, W, 3)`` uint8 or uint16 at the coded size), apply ``spec.ops``, write into ``out``.

        Raises:
            ValueError: ``out`` is not ``spec``'s frame shape.
        """
        img = np.rot90(rgb, spec.quarter_turns) if spec.quarter_turns else rgb
        for k, op in enumerate(spec.ops):
            if isinstance(op, CropOp):
                img = img[op.top : op.top + op.height, op.left : op.left + op.width]
            else:
                img = self._scale(k, img, op)
        if out.shape != img.shape:
            raise ValueError(f"destination {out.shape} does not hold a shaped frame {img.shape}")
        if spec.float32:
            np.divide(img, _FLOAT_SCALE, out=out, dtype=np.float32)
            if spec.normalize is not None:
                out -= np.asarray(spec.normalize.mean, np.float32)
                out /= np.asarray(spec.normalize.std, np.float32)
        else:
            np.copyto(out, img)

    def _scale(self, k: int, img: np.ndarray, op: ScaleOp) -> np.ndarray:
        item = img.dtype.itemsize
        if img.strides[1:] != (3 * item, item) or img.strides[0] <= 0:  # a rotated view: make its rows packed
            packed = self._upright.frame(img.shape[1], img.shape[0], img.dtype)
            np.copyto(packed, img)
            img = packed
        if k not in self._scalers:
            self._scalers[k] = rgb_scaler(SWS_BICUBIC if _bicubic(op) else SWS_BILINEAR)
        scaler = self._scalers[k]
        res = scaler.scale(img, op.height, op.width) if scaler is not None else None
        return res if res is not None else _reformat_scale(img, op)

    def close(self) -> None:
        """Free the scalers' swscale contexts."""
        for s in self._scalers.values():
            if s is not None:
                s.close()
        self._scalers = {}


def _reformat_scale(img: np.ndarray, op: ScaleOp) -> np.ndarray:
    """PyAV's reformatter (the same swscale resize, through FFmpeg-allocated frames).

    Raises:
        DecodeError: swscale cannot resize the frame.
    """
    import av
    from av.video.reformatter import Interpolation

    fmt = "rgb24" if img.dtype == np.uint8 else "rgb48le"
    how = Interpolation.BICUBIC if _bicubic(op) else Interpolation.BILINEAR
    try:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format=fmt)
        return frame.reformat(op.width, op.height, fmt, interpolation=how).to_ndarray()
    except (av.error.FFmpegError, ValueError) as exc:
        raise DecodeError(
            f"swscale could not resize a {img.shape[1]}x{img.shape[0]} frame to {op.width}x{op.height}: "
            f"{ffmpeg_reason(exc)}"
        ) from exc


def _bicubic(op: ScaleOp) -> bool:
    """Whether a resize is bicubic (else bilinear)."""
    return op.interpolation == "bicubic"


def shape_tensor(rgb: torch.Tensor, spec: OutputSpec) -> torch.Tensor:
    """Shape an ``(H, W, 3)`` uint8 RGB frame already on a device (NVDEC's): rotate, crop, resize, convert.

    Resizes are torch's antialiased bilinear ``interpolate`` (what ``torchvision.transforms.v2.Resize`` computes);
    float32 output is the uint8 frame (8 bits: the NVDEC kernel's output precision) taken through
    :meth:`OutputSpec.scale_offset`, the mapping the fused kernel applies too.
    """
    img = torch.rot90(rgb, spec.quarter_turns, dims=(0, 1)) if spec.quarter_turns else rgb
    for op in spec.ops:
        if isinstance(op, CropOp):
            img = img[op.top : op.top + op.height, op.left : op.left + op.width]
        else:
            x = img.permute(2, 0, 1)[None].float()
            x = F.interpolate(x, size=(op.height, op.width), mode=op.interpolation, antialias=True, align_corners=False)
            img = x[0].permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8)
    if not spec.float32:
        return img
    so = spec.scale_offset()
    return img.float().mul_(torch.tensor(so[:3], device=img.device)).add_(torch.tensor(so[3:], device=img.device))


def _triangle(x: np.ndarray) -> np.ndarray:
    return np.maximum(0.0, 1.0 - np.abs(x))


def _keys_cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


_FILTERS = {"bilinear": (_triangle, 1.0), "bicubic": (_keys_cubic, 2.0)}  # filter, half-width at scale 1


def aa_taps(in_size: int, out_size: int, interpolation: str = "bilinear") -> tuple[np.ndarray, np.ndarray]:
    """Antialiased resampling of one axis, weighed as torch's ``interpolate(mode=..., antialias=True)``.

    For each output position: its first input position and its weights (bicubic: Keys' a = -0.5, torch's choice
    for antialiased bicubic).

    Returns:
        ``starts`` (``(out_size,)`` int32) and ``weights`` (``(out_size, taps)`` float32, each row summing to 1,
        zero past a position's support).
    """
    fn, half = _FILTERS[interpolation]
    scale = in_size / out_size
    support = half * scale if scale >= 1.0 else half
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    taps = math.ceil(support) * 2 + 1
    starts = np.zeros(out_size, np.int32)
    weights = np.zeros((out_size, taps), np.float64)
    for i in range(out_size):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        n = min(int(center + support + 0.5), in_size) - lo
        w = fn((np.arange(n) + lo - center + 0.5) * invscale)
        total = w.sum()
        weights[i, :n] = w / total if total else w
        starts[i] = lo
    return starts, weights.astype(np.float32)


@dataclass(frozen=True)
class ResamplePlan:
    """An output spec as the fused GPU kernel performs it: per output column and row, where to read and how much.

    Attributes:
        x_start: ``(width,)`` int32: the first upright column each output column reads (crops folded in).
        x_weights: ``(width, taps)`` float32 weights of the columns that follow it.
        y_start: ``(height,)`` int32, rows likewise.
        y_weights: ``(height, taps)`` float32.
        quarter_turns: Rotation from the coded frame to the upright one (``numpy.rot90``'s ``k``).
    """

    x_start: np.ndarray
    x_weights: np.ndarray
    y_start: np.ndarray
    y_weights: np.ndarray
    quarter_turns: int


def _axis(ops: Sequence[Op], size: int, horizontal: bool) -> tuple[np.ndarray, np.ndarray]:
    """One axis of :func:`resample_plan`: crops before the resize shift the start, crops after it pick rows."""
    offset, length = 0, size  # in the upright frame, before the resize
    table: tuple[np.ndarray, np.ndarray] | None = None
    win_off, win_len = 0, size  # in the resized frame
    for op in ops:
        n = op.width if horizontal else op.height
        if isinstance(op, CropOp):
            start = op.left if horizontal else op.top
            if table is None:
                offset, length = offset + start, n
            else:
                win_off, win_len = win_off + start, n
        else:
            table = aa_taps(length, n, op.interpolation)
            win_off, win_len = 0, n
    if table is None:
        return np.arange(offset, offset + length, dtype=np.int32), np.ones((length, 1), np.float32)
    starts, weights = table
    sel = slice(win_off, win_off + win_len)
    return (starts[sel] + offset).astype(np.int32), np.ascontiguousarray(weights[sel])


def resample_plan(spec: OutputSpec, coded_height: int, coded_width: int) -> ResamplePlan | None:
    """``spec`` as one pass of the fused kernel, or ``None`` when it has more than one resize (then torch shapes)."""
    if sum(isinstance(op, ScaleOp) for op in spec.ops) > 1:
        return None
    k = spec.quarter_turns
    height, width = (coded_width, coded_height) if k % 2 else (coded_height, coded_width)
    xs, xw = _axis(spec.ops, width, True)
    ys, yw = _axis(spec.ops, height, False)
    return ResamplePlan(x_start=xs, x_weights=xw, y_start=ys, y_weights=yw, quarter_turns=k)


@dataclass(frozen=True)
class DevicePlan:
    """A :class:`ResamplePlan`'s tables on the device, as the fused kernel takes them.

    Attributes:
        tensors: The four tables (x starts, x weights, y starts, y weights); they keep the pointers valid.
        pointers: ``(x_start, x_weights, x_taps, y_start, y_weights, y_taps)``: device pointers and tap counts.
        scale_offset: Per-channel scale, then offset, applied to the filtered 0..255 value (``1/255, 0`` for
            float32 output).
    """

    tensors: tuple[torch.Tensor, ...]
    pointers: tuple[int, int, int, int, int, int]
    scale_offset: tuple[float, float, float, float, float, float]


class DevicePlans:
    """Fused-kernel plans of one backend, per output spec, uploaded once to ``device``."""

    def __init__(self, device: torch.device) -> None:
        self._device = device
        self._plans: dict[OutputSpec, DevicePlan | None] = {}

    def get(self, spec: OutputSpec, coded_height: int, coded_width: int) -> DevicePlan | None:
        """The plan for ``spec`` on this backend's frames, or ``None`` when the kernel cannot do it in one pass."""
        if spec in self._plans:
            return self._plans[spec]
        plan = resample_plan(spec, coded_height, coded_width)
        dev = None
        if plan is not None:
            tabs = tuple(
                torch.from_numpy(np.ascontiguousarray(t)).to(self._device)
                for t in (plan.x_start, plan.x_weights, plan.y_start, plan.y_weights)
            )
            xt, yt = plan.x_weights.shape[1], plan.y_weights.shape[1]
            ptrs = (tabs[0].data_ptr(), tabs[1].data_ptr(), xt, tabs[2].data_ptr(), tabs[3].data_ptr(), yt)
            dev = DevicePlan(tensors=tabs, pointers=ptrs, scale_offset=spec.scale_offset())
        self._plans[spec] = dev
        return dev
