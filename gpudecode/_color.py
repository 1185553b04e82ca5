"""Which YUV→RGB conversion a stream gets. The CPU path (swscale) and the CUDA kernels choose identically."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "COLORSPACE_NAMES",
    "PRIMARIES_NAMES",
    "RANGE_NAMES",
    "TRANSFER_NAMES",
    "ColorSpec",
    "color_spec",
    "tag_name",
    "yuv_to_rgb_matrix",
]

# AVColorSpace values -> names (libavutil/pixfmt.h).
COLORSPACE_NAMES = {
    0: "rgb",
    1: "bt709",
    2: "unknown",
    4: "fcc",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "ycgco",
    9: "bt2020nc",
    10: "bt2020c",
    11: "smpte2085",
    12: "chroma-derived-nc",
    13: "chroma-derived-c",
    14: "ictcp",
}
RANGE_NAMES = {0: "unknown", 1: "tv", 2: "pc"}
PRIMARIES_NAMES = {
    1: "bt709",
    2: "unknown",
    4: "bt470m",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "film",
    9: "bt2020",
    10: "smpte428",
    11: "smpte431",
    12: "smpte432",
    22: "ebu3213",
}
TRANSFER_NAMES = {
    1: "bt709",
    2: "unknown",
    4: "gamma22",
    5: "gamma28",
    6: "smpte170m",
    7: "smpte240m",
    8: "linear",
    9: "log100",
    10: "log316",
    11: "iec61966-2-4",
    12: "bt1361e",
    13: "iec61966-2-1",
    14: "bt2020-10",
    15: "bt2020-12",
    16: "smpte2084",
    17: "smpte428",
    18: "arib-std-b67",
}


def tag_name(names: dict[int, str], value: int | None) -> str | None:
    """FFmpeg's name of a colour tag, or ``None`` when the file leaves it unspecified (as torchcodec reports it).

    Args:
        names: One of the ``*_NAMES`` tables.
        value: The tag's value (``AVColorSpace``, ``AVColorRange``, ...).

    Returns:
        The name (the number as a string for a value FFmpeg has no name for), or ``None`` for "unspecified".
    """
    if value is None:
        return None
    name = names.get(int(value), str(int(value)))
    return None if name == "unknown" else name


# Luma coefficients (Kr, Kb) per matrix.
_KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}


@dataclass(frozen=True)
class ColorSpec:
    """The YUV→RGB conversion for a stream.

    Attributes:
        matrix: ``"bt601"``, ``"bt709"`` or ``"bt2020"`` (non-constant luminance). Unspecified and every other
            tag maps to ``"bt601"``, as swscale does.
        full_range: ``True`` for full (``pc``/JPEG) range, ``False`` for limited (``tv``; also unspecified).
        bit_depth: Bits per sample of the decoded YUV (8, 10 or 12).
    """

    matrix: str
    full_range: bool
    bit_depth: int


def color_spec(colorspace: int, color_range: int, pix_fmt: str | None, bit_depth: int) -> ColorSpec:
    """Choose the conversion from the stream's (or frame's) tags.

    Args:
        colorspace: ``AVColorSpace`` value.
        color_range: ``AVColorRange`` value.
        pix_fmt: Pixel format name; ``yuvj*`` formats are full range whatever the range tag says.
        bit_depth: Bits per sample.

    Returns:
        The :class:`ColorSpec`.
    """
    if colorspace == 1:
        matrix = "bt709"
    elif colorspace in (9, 10):
        matrix = "bt2020"
    else:
        matrix = "bt601"
    full = color_range == 2 or bool(pix_fmt and pix_fmt.startswith("yuvj"))
    return ColorSpec(matrix=matrix, full_range=full, bit_depth=bit_depth)


def yuv_to_rgb_matrix(spec: ColorSpec) -> np.ndarray:
    """Return the 3x4 float64 matrix taking ``(Y, U, V, 1)`` in code values to RGB scaled to 0..255.

    Code values are those of ``spec.bit_depth`` (for example 64..940 for 10-bit limited luma).
    """
    kr, kb = _KR_KB[spec.matrix]
    kg = 1.0 - kr - kb
    scale = float(1 << (spec.bit_depth - 8))
    if spec.full_range:
        ys, y0 = 255.0 / float((1 << spec.bit_depth) - 1), 0.0
        cs = ys
    else:
        ys, y0 = 255.0 / (219.0 * scale), 16.0 * scale
        cs = 255.0 / (224.0 * scale)
    c0 = 128.0 * scale
    # RGB = A @ (y', u', v') with y' = ys*(Y-y0), u' = cs*(U-c0), v' = cs*(V-c0)
    a = np.array(
        [
            [1.0, 0.0, 2.0 * (1.0 - kr)],
            [1.0, -2.0 * kb * (1.0 - kb) / kg, -2.0 * kr * (1.0 - kr) / kg],
            [1.0, 2.0 * (1.0 - kb), 0.0],
        ]
    )
    m = np.zeros((3, 4))
    m[:, 0] = a[:, 0] * ys
    m[:, 1] = a[:, 1] * cs
    m[:, 2] = a[:, 2] * cs
    m[:, 3] = -(m[:, 0] * y0 + m[:, 1] * c0 + m[:, 2] * c0)
    return m
