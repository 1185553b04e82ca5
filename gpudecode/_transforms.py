"""Decode-time transforms and their resolution into crop and resize operations on the upright frame.

The public classes are re-exported by :mod:`gpudecode.transforms`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from gpudecode._args import as_int
from gpudecode._errors import InvalidArgumentError, TransformSizeError, invalid_choice

__all__ = [
    "CenterCrop",
    "CropOp",
    "DecoderTransform",
    "INTERPOLATIONS",
    "Normalize",
    "NormalizeOp",
    "Op",
    "RandomCrop",
    "Resize",
    "ScaleOp",
    "resolve_transforms",
]


@dataclass(frozen=True)
class ScaleOp:
    """Resize to ``height`` x ``width`` pixels with ``interpolation`` (``"bilinear"`` or ``"bicubic"``)."""

    height: int
    width: int
    interpolation: str = "bilinear"


@dataclass(frozen=True)
class CropOp:
    """Keep ``height`` x ``width`` pixels starting at row ``top``, column ``left``."""

    height: int
    width: int
    top: int
    left: int


@dataclass(frozen=True)
class NormalizeOp:
    """Float output: ``(value - mean[c]) / std[c]`` per channel, on values in ``[0, 1]`` (always last)."""

    height: int
    width: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


Op = ScaleOp | CropOp | NormalizeOp


def _size(size: Any, name: str) -> tuple[int, int]:
    """``(height, width)``, two positive integers."""
    if isinstance(size, (str, bytes)) or not isinstance(size, Sequence) or len(size) != 2:
        raise InvalidArgumentError(
            f"Invalid size ({size!r}). {name} transform must have a (height, width) pair for the size."
        )
    return as_int(size[0], f"{name} height", minimum=1), as_int(size[1], f"{name} width", minimum=1)


class DecoderTransform(ABC):
    """A transform the decoder applies to every frame it returns (torchcodec's ``DecoderTransform``).

    Subclasses are resolved once, when the decoder opens, against the size of the frames they receive.
    """

    size: tuple[int, int]

    @abstractmethod
    def _op(self, height: int, width: int) -> Op:
        """The operation this transform performs on ``height`` x ``width`` frames.

        Raises:
            InvalidArgumentError: The frames are too small for it.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


INTERPOLATIONS = ("bilinear", "bicubic")


class Resize(DecoderTransform):
    """Resize every frame to ``size``; bilinear, as torchcodec's ``Resize`` (antialiased when shrinking).

    On the CPU it is FFmpeg's ``scale`` filter with these flags; on the GPU torch's antialiased ``interpolate``
    weights (bicubic: Keys' a = -0.5, as torch and PIL use for antialiased bicubic).

    Args:
        size: ``(height, width)`` of the output frames.
        interpolation: ``"bilinear"`` (torchcodec's, the default) or ``"bicubic"`` (a gpudecode extension).

    Raises:
        InvalidArgumentError: ``size`` is not two positive integers, or an unknown interpolation.
    """

    def __init__(self, size: Sequence[int], interpolation: str = "bilinear") -> None:
        self.size = _size(size, "Resize")
        if interpolation not in INTERPOLATIONS:
            raise invalid_choice("Resize interpolation", interpolation, INTERPOLATIONS)
        self.interpolation = interpolation

    def _op(self, height: int, width: int) -> Op:
        return ScaleOp(*self.size, self.interpolation)

    def __repr__(self) -> str:
        extra = "" if self.interpolation == "bilinear" else f", interpolation={self.interpolation!r}"
        return f"Resize(size={self.size}{extra})"


def _check_fits(name: str, size: tuple[int, int], height: int, width: int) -> None:
    if size[0] > height or size[1] > width:
        raise TransformSizeError(
            f"Invalid {name} size ({size[0]}, {size[1]}): frames reaching it are only {height}x{width} (height x "
            "width); a crop cannot be larger than its input."
        )


class _Crop(DecoderTransform):
    """A crop of ``size``; subclasses say where (:meth:`_place`)."""

    def __init__(self, size: Sequence[int]) -> None:
        self.size = _size(size, type(self).__name__)

    def _place(self, height: int, width: int) -> tuple[int, int]:
        raise NotImplementedError

    def _op(self, height: int, width: int) -> Op:
        _check_fits(type(self).__name__, self.size, height, width)
        top, left = self._place(height, width)
        return CropOp(*self.size, top, left)


class CenterCrop(_Crop):
    """Crop every frame to ``size`` around its centre, as torchcodec does (FFmpeg's ``crop`` filter).

    The crop starts at ``(round((H - h) / 2), round((W - w) / 2))``, a half pixel rounded to even, as FFmpeg's
    ``crop`` filter (``lrint``) and ``torchvision.transforms.v2.CenterCrop`` both place it.

    Args:
        size: ``(height, width)`` of the output frames.

    Raises:
        InvalidArgumentError: ``size`` is not two positive integers (:class:`TransformSizeError` at the decoder
            where it is larger than the frames).
    """

    def _place(self, height: int, width: int) -> tuple[int, int]:
        return round((height - self.size[0]) / 2), round((width - self.size[1]) / 2)


class RandomCrop(_Crop):
    """Crop every frame to ``size`` at one random place, drawn when the decoder opens (torchcodec's ``RandomCrop``).

    The place is drawn from torch's default generator as ``torchvision.transforms.v2.RandomCrop`` draws it (the top
    row, then the left column, each with ``torch.randint``), so ``torch.manual_seed`` reproduces it, and every frame
    of one decoder is cropped at the same place.

    Args:
        size: ``(height, width)`` of the crops.

    Raises:
        InvalidArgumentError: ``size`` is not two positive integers; at the decoder, a :class:`TransformSizeError`
            where the frames reaching it are smaller.
    """

    def _place(self, height: int, width: int) -> tuple[int, int]:
        top = int(torch.randint(0, height - self.size[0] + 1, size=()).item())
        left = int(torch.randint(0, width - self.size[1] + 1, size=()).item())
        return top, left


def _channels(values: Any, name: str) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise InvalidArgumentError(f"Invalid Normalize {name} ({values!r}). Supported values are: 3 finite numbers.")
    return out  # type: ignore[return-value]


class Normalize(DecoderTransform):
    """Normalize float frames per channel, ``(x - mean) / std`` on RGB in ``[0, 1]`` (a gpudecode extension).

    The last transform, with ``output_dtype=torch.float32``; on the GPU it costs nothing (the fused kernel writes the
    normalized value). ``Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))`` gives ImageNet's normalization.

    Args:
        mean: Three channel means (R, G, B).
        std: Three channel standard deviations, each > 0.

    Raises:
        InvalidArgumentError: Not three finite numbers each, or a standard deviation <= 0 (at the decoder: not the
            last transform, or uint8 output).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = _channels(mean, "mean")
        self.std = _channels(std, "std")
        if min(self.std) <= 0:
            raise InvalidArgumentError(f"Invalid Normalize std ({std!r}). Supported values are: numbers > 0.")
        self.size = (0, 0)

    def _op(self, height: int, width: int) -> Op:
        return NormalizeOp(height, width, self.mean, self.std)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


def _torchvision_v2() -> Any:
    try:
        from torchvision.transforms import v2
    except ImportError:
        return None
    return v2


def _from_torchvision(t: Any, v2: Any) -> DecoderTransform:
    """The DecoderTransform matching a ``torchvision.transforms.v2`` object, with torchcodec's restrictions."""
    name = type(t).__name__
    if isinstance(t, v2.Resize):
        modes = {v2.InterpolationMode.BILINEAR: "bilinear", v2.InterpolationMode.BICUBIC: "bicubic"}
        how = modes.get(t.interpolation, t.interpolation if t.interpolation in INTERPOLATIONS else None)
        if how is None:
            raise InvalidArgumentError("TorchVision Resize transform must use bilinear (or bicubic) interpolation.")
        if t.antialias is False:
            raise InvalidArgumentError("TorchVision Resize transform must have antialias enabled.")
        if t.size is None or len(t.size) != 2:
            raise InvalidArgumentError(
                f"TorchVision Resize transform must have a (height, width) pair for the size, got {t.size}."
            )
        return Resize(t.size, how)
    if isinstance(t, v2.CenterCrop):
        return CenterCrop(t.size)
    if isinstance(t, v2.RandomCrop):
        if t.padding is not None or t.pad_if_needed or t.fill not in (0, None) or t.padding_mode != "constant":
            raise InvalidArgumentError(f"TorchVision RandomCrop transform must not pad ({t!r}).")
        return RandomCrop(t.size)
    raise InvalidArgumentError(
        f"Unsupported transform: {name}. Transforms must be gpudecode (or torchcodec-compatible) "
        "DecoderTransforms, or torchvision v2 Resize, CenterCrop or RandomCrop."
    )


def resolve_transforms(transforms: Sequence[Any] | None, height: int, width: int) -> tuple[Op, ...]:
    """The operations ``transforms`` perform on ``height`` x ``width`` (upright) frames, in order.

    Random crops draw their place here, once.

    Raises:
        InvalidArgumentError: Not a sequence of supported transforms.
        TransformSizeError: A crop larger than the frames reaching it.
    """
    if transforms is None:
        return ()
    if isinstance(transforms, (str, bytes, DecoderTransform)) or not isinstance(transforms, Sequence):
        raise InvalidArgumentError(
            f"Invalid transforms ({transforms!r}). Supported values are: a sequence of decoder transforms."
        )
    ops: list[Op] = []
    for t in transforms:
        if not isinstance(t, DecoderTransform):
            v2 = _torchvision_v2()
            if v2 is None:
                raise InvalidArgumentError(
                    f"Unsupported transform: {t!r}. Transforms must be gpudecode.transforms objects (torchvision "
                    "v2 transforms are accepted too, but torchvision is not installed)."
                )
            t = _from_torchvision(t, v2)
        if ops and isinstance(ops[-1], NormalizeOp):
            raise InvalidArgumentError(f"Invalid transforms: {t!r} follows Normalize, which must be the last one.")
        op = t._op(height, width)
        ops.append(op)
        height, width = op.height, op.width
    return tuple(ops)
