"""The RGB scaler (the CPU resize of decode-time transforms) on its own, against the ffmpeg CLI's ``scale`` filter.

The images are random RGB24 and RGB48 at odd sizes, scaled down and up with both filters torchcodec's transforms use;
the oracle is ``ffmpeg -f rawvideo ... -vf scale=W:H:flags=...`` on the same bytes, compared bit for bit. Then what
the scaler refuses, and the direct converter's answers where swscale cannot convert a frame.
"""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import numpy as np
import pytest

from gpudecode._backends._swscale import SWS_BICUBIC, SWS_BILINEAR, ScratchFrame, direct_converter, rgb_scaler

FILTERS = [(SWS_BILINEAR, "bilinear"), (SWS_BICUBIC, "bicubic")]
DEPTHS = [(np.uint8, "rgb24"), (np.uint16, "rgb48le")]
# (input h, w) -> (output h, w): down, up, from a single pixel, to a non-square odd size
RESIZES = [((57, 101), (130, 224)), ((480, 854), (224, 224)), ((1, 1), (3, 5)), ((360, 640), (17, 31))]


def _cli(img: np.ndarray, height: int, width: int, flags: str, pix_fmt: str) -> np.ndarray:
    ih, iw, _ = img.shape
    cmd = ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{iw}x{ih}", "-i", "-"]
    cmd += ["-vf", f"scale={width}:{height}:flags={flags}", "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"]
    out = subprocess.run(cmd, input=img.tobytes(), capture_output=True, check=True).stdout
    return np.frombuffer(out, img.dtype).reshape(height, width, 3)


def _image(h: int, w: int, dtype: type, seed: int = 0) -> np.ndarray:
    """A random image in an FFmpeg-layout frame (the scaler may read a vector block past a row's end)."""
    img = ScratchFrame().frame(w, h, np.dtype(dtype))
    top = 256 if dtype == np.uint8 else 65536
    img[:] = np.random.default_rng(seed).integers(0, top, img.shape)
    return img


@pytest.mark.parametrize(("dtype", "pix_fmt"), DEPTHS)
@pytest.mark.parametrize(("flags", "name"), FILTERS)
def test_scaling_is_bit_exact_with_the_cli(dtype, pix_fmt, flags, name):
    scaler = rgb_scaler(flags)
    assert scaler is not None, "PyAV's wheel bundles libswscale: the scaler must be reachable"
    for (ih, iw), (h, w) in RESIZES:
        img = _image(ih, iw, dtype)
        got = scaler.scale(img, h, w)
        assert got is not None and got.shape == (h, w, 3) and got.dtype == dtype
        np.testing.assert_array_equal(got, _cli(img, h, w, name, pix_fmt), err_msg=f"{(ih, iw)} -> {(h, w)}")


def test_a_closed_scaler_is_usable_again():
    scaler = rgb_scaler()
    assert scaler is not None
    img = _image(57, 101, np.uint8)
    first = scaler.scale(img, 30, 40).copy()
    scaler.close()
    scaler.close()  # twice: nothing left to free
    again = scaler.scale(img, 30, 40)
    assert again is not None
    np.testing.assert_array_equal(again, first)


def test_what_is_not_packed_rgb_is_refused():
    scaler = rgb_scaler()
    assert scaler is not None
    img = _image(8, 12, np.uint8)
    refused = {
        "two channels": img[:, :, :2],  # strides still (row, 3, 1)
        "float": img.astype(np.float32),
        "rows upside down": img[::-1],
        "one row repeated": np.broadcast_to(img[:1], img.shape),
        "every other column": img[:, ::2],
        "channels first": np.ascontiguousarray(img.transpose(2, 0, 1)).transpose(1, 2, 0),
    }
    for what, src in refused.items():
        with pytest.raises(ValueError, match=r"strides .* is not packed RGB"):
            scaler.scale(src, 4, 6)
            pytest.fail(what)


def _fake_frame(fmt: str, width: int, height: int) -> SimpleNamespace:
    """What the converter reads of a frame: size, format name, tags and (for a known format) planes."""
    return SimpleNamespace(
        width=width, height=height, format=SimpleNamespace(name=fmt), color_range=1, colorspace=1, planes=[]
    )


@pytest.mark.parametrize(
    "frame",
    [_fake_frame("no-such-format", 65, 16), _fake_frame("yuv420p", 0, 0)],
    ids=["unknown pixel format", "no context for a 0x0 frame"],
)
def test_frames_swscale_cannot_convert_give_none_and_false(frame):
    """``convert`` says ``None`` and ``convert_into`` ``False`` (the caller converts another way), never a frame."""
    conv = direct_converter()
    assert conv is not None
    assert conv.convert(frame) is None
    out = np.zeros((frame.height, frame.width, 3), np.uint8)
    assert conv.convert_into(frame, out) is False
