"""A stand-in for PyNvVideoCodec that behaves like NVDEC where our control flow depends on it.

* ``Decode`` takes raw bitstream bytes (Annex B for H.264/HEVC) from ``PacketData.bsl_data``/``bsl`` and returns
  frames in display order carrying the pts we fed, decoded by a real FFmpeg decoder.
* Draining with an empty ``PacketData`` re-creates that decoder *without extradata*, so like NVDEC after a flush
  it needs the parameter sets in-band again: a planner that forgets to re-send them loses frames.
* Surfaces are NV12 (8-bit) or P016 (high bits) in host memory with a padded pitch; they are poisoned by the
  next ``Decode`` call, so a frame converted too late comes out garbage.
"""

from __future__ import annotations

import ctypes
import enum
import json
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

# The API surface comes from the real PyNvVideoCodec 2.2.4 (``nvc_api_2.2.4.json``, written by ``nvc_api.py`` from
# the compiled module loaded against a stub libcuda; ``test_nvc_conformance`` checks it against the installed one).
REAL_API = json.loads((Path(__file__).parent / "nvc_api_2.2.4.json").read_text())
cudaVideoCodec = enum.Enum("cudaVideoCodec", REAL_API["enums"]["cudaVideoCodec"])
cudaVideoChromaFormat = enum.Enum("cudaVideoChromaFormat", REAL_API["enums"]["cudaVideoChromaFormat"])
OutputColorType = enum.Enum("OutputColorType", REAL_API["enums"]["OutputColorType"])
Pixel_Format = enum.Enum("Pixel_Format", REAL_API["enums"]["Pixel_Format"])
CAPS_KEYS = [k for k, n in REAL_API["binary_strings"].items() if n > 0]


class PyNvVCException(Exception):
    pass


class PyNvVCExceptionUnsupported(Exception):
    pass


FFMPEG_NAMES = {
    "H264": "h264",
    "HEVC": "hevc",
    "VP9": "vp9",
    "AV1": "libdav1d",
    "MPEG4": "mpeg4",
    "MPEG2": "mpeg2video",
    "VP8": "vp8",
    "MPEG1": "mpeg1video",
    "VC1": "vc1",
}


# The smallest frame NVDEC takes, per codec: HEVC and VP9 as an H200 reported them (2026-12-04: "96x64 is below this
# GPU's NVDEC minimum of 144x144 for hevc", "... 128x128 for vp9"); H.264's 48x16 and AV1's 128x128 are NVIDIA's
# documented minimums, not yet read off a GPU (the H200 has no AV1 decoder; the GPU kit's smoke step prints them).
MINIMUM_SIZE = {"HEVC": (144, 144), "VP9": (128, 128), "AV1": (128, 128)}


class PacketData:
    """The real ``PacketData``: only its properties exist, and integer ones refuse non-integers (``TypeError``)."""

    __slots__ = tuple(REAL_API["classes"]["PacketData"])

    def __init__(self) -> None:
        for name in self.__slots__:
            object.__setattr__(self, name, 0)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("pts", "dts", "bsl", "bsl_data", "duration", "pos") and (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not -(2**63) <= value < 2**63
            or (name.startswith("bsl") and value < 0)
        ):
            raise TypeError(f"incompatible type for PacketData.{name}: {value!r}")
        object.__setattr__(self, name, value)


def check_call(function: str, kwargs: dict) -> None:
    """Refuse keywords that no overload of the real ``function`` has (pybind11: ``TypeError``)."""
    if not any(set(kwargs) <= set(overload) for overload in REAL_API["functions"][function]):
        raise TypeError(f"{function}(): incompatible function arguments: {sorted(kwargs)}")


@dataclass
class _View:
    __cuda_array_interface__: dict


class Surface:
    """A NATIVE ``DecodedFrame`` as PyNvVideoCodec 2.2.4 lays it out (``GetCAIMemoryViewAndDLPack``,
    ``GenerateNativeOutput``): tightly packed, pitch = even width x bytes per sample, chroma right after the luma
    rows, one view per plane, 16-bit strides reported in elements, ``format`` NV12 or P016."""

    def __init__(self, pts: int, frame: Any, pitch_pad: int = 0) -> None:
        self.timestamp = pts
        fmt = frame.format.name
        bits = frame.format.components[0].bits
        w, h = frame.width, frame.height
        bps = 1 if bits == 8 else 2
        self._even_w = (w + 1) & ~1
        self.pitch = self._even_w * bps + pitch_pad
        cw, ch = (w + 1) // 2, (h + 1) // 2
        self.buf = np.zeros(self.pitch * (h + ch) + 64, np.uint8)
        self.format = Pixel_Format["NV12" if bps == 1 else "P016"]
        self._bps = bps
        dt = np.uint8 if bps == 1 else np.uint16
        shift = 0 if bps == 1 else 16 - bits

        def plane(i, pw, ph):
            p = frame.planes[i]
            return np.frombuffer(p, dt).reshape(ph, p.line_size // bps)[:, :pw].astype(np.uint16)

        assert fmt.startswith("yuv420") or fmt.startswith("yuvj420"), fmt
        y, u, v = plane(0, w, h), plane(1, cw, ch), plane(2, cw, ch)
        lum = self.buf[: self.pitch * h].view(dt).reshape(h, self.pitch // bps)
        lum[:, :w] = (y << shift).astype(dt)
        chroma = self.buf[self.pitch * h : self.pitch * (h + ch)].view(dt).reshape(ch, self.pitch // bps)
        chroma[:, 0 : 2 * cw : 2] = (u << shift).astype(dt)
        chroma[:, 1 : 2 * cw : 2] = (v << shift).astype(dt)
        self.h = h

    def getPTS(self) -> int:
        return self.timestamp

    def GetPtrToPlane(self, i: int) -> int:
        return self.buf.ctypes.data + (0 if i == 0 else self.pitch * self.h)

    def cuda(self) -> list[_View]:
        w, h, typestr = self._even_w, self.h, "|u1" if self._bps == 1 else "|u2"
        row = self.pitch // self._bps  # in elements, as the real views report it (w with no padding)
        luma = {
            "shape": (h, w, 1),
            "strides": (row, 1, 1),
            "typestr": typestr,
            "version": 3,
            "stream": 0,
            "data": (self.GetPtrToPlane(0), False),
        }
        chroma = {
            "shape": (h // 2, w // 2, 2),
            "strides": (row, 2, 1),
            "typestr": typestr,
            "version": 3,
            "stream": 0,
            "data": (self.GetPtrToPlane(1), False),
        }
        return [_View(luma), _View(chroma)]

    def poison(self) -> None:
        self.buf[:] = 0xA5


@dataclass
class FakeDecoder:
    codec: cudaVideoCodec
    kwargs: dict
    pitch_pad: int = 0  # the real surfaces have none; tests set one to check the backend reads the pitch
    unsupported: str | None = None  # raise PyNvVCExceptionUnsupported at the first Decode, as HandleVideoSequence
    received: list[bytes] = field(default_factory=list)
    drains: int = 0

    def __post_init__(self) -> None:
        self._fresh()
        self._live: list[Surface] = []
        self.size: tuple[int, int] | None = None  # set by the first sequence, or by setReconfigParams
        self.reconfigured = 0

    def setReconfigParams(self, width: int = 0, height: int = 0) -> int:
        self.size = (width, height)
        self.reconfigured += 1
        return 0

    def _fresh(self) -> None:
        self.cc = av.CodecContext.create(FFMPEG_NAMES[self.codec.name], "r")
        self.cc.thread_count = 1
        self._last: Any = None  # the last frame output since the sequence started (None: no sequence yet)

    def _emit(self, frames, concealed_pts: int | None = None) -> list[Surface]:
        for s in self._live:
            s.poison()
        if concealed_pts is not None:
            self._live = [Surface(concealed_pts, frames[0], self.pitch_pad)]
            self._live[0].poison()
            return list(self._live)
        for f in frames:
            if self.size is None:
                self.size = (f.width, f.height)
            # The real decoder, reused for a stream of another size without setReconfigParams, keeps the first
            # stream's display area and output size (NvDecoder::ReconfigureDecoder): wrong frames.
            assert self.size == (f.width, f.height), f"decoder set up for {self.size} fed {f.width}x{f.height}"
        self._live = [Surface(f.pts, f, self.pitch_pad) for f in frames]
        return list(self._live)

    def Decode(self, pd: PacketData) -> list[Surface]:
        if pd.bsl == 0:
            self.drains += 1
            try:
                frames = self.cc.decode(None)
            except av.error.FFmpegError:
                frames = []
            out = self._emit(frames)
            self._fresh()
            return out
        if self.unsupported is not None:
            raise PyNvVCExceptionUnsupported(self.unsupported)
        data = ctypes.string_at(pd.bsl_data, pd.bsl)
        self.received.append(data)
        pkt = av.Packet(data)
        pkt.pts = pd.pts
        try:
            frames = self.cc.decode(pkt)
        except av.error.FFmpegError:
            if self._last is None:
                return self._emit([])  # no sequence header yet: the parser outputs nothing
            # NVDEC conceals a damaged picture and returns it like any other (printing "Decode Error occurred"):
            # a frame of garbage carrying the packet's pts.
            return self._emit([self._last], concealed_pts=pd.pts)
        if frames:
            self._last = frames[-1]
        return self._emit(frames)


def make_module(
    caps: dict | None = None, fail_create: bool = False, unsupported_at_decode: str | None = None, pitch_pad: int = 0
) -> types.SimpleNamespace:
    created: list[FakeDecoder] = []

    def CreateDecoder(**kwargs):
        check_call("CreateDecoder", kwargs)
        if fail_create:
            raise PyNvVCException("PyNvDecoder constructor failed: Failed to open dynamic library: cuvid")
        assert kwargs["usedevicememory"] is True and kwargs["outputColorType"] == OutputColorType.NATIVE
        d = FakeDecoder(kwargs["codec"], kwargs, pitch_pad=pitch_pad, unsupported=unsupported_at_decode)
        created.append(d)
        return d

    caps_calls: list[dict] = []

    def GetDecoderCaps(**kwargs):
        check_call("GetDecoderCaps", kwargs)
        assert isinstance(kwargs.get("chromaformat", cudaVideoChromaFormat["420"]), cudaVideoChromaFormat)
        caps_calls.append(kwargs)
        low = MINIMUM_SIZE.get(kwargs["codec"].name, (48, 16))
        full = {
            "supported": 1,
            "width_max": 8192,
            "height_max": 8192,
            "width_min": low[0],
            "height_min": low[1],
            "mb_num_max": 1 << 20,
            "num_decoder_engines": 4,
        }
        full.update(caps or {})
        unknown = set(full) - set(CAPS_KEYS)
        assert not unknown, f"the real caps dict has no keys {unknown}"
        return full

    return types.SimpleNamespace(
        cudaVideoCodec=cudaVideoCodec,
        cudaVideoChromaFormat=cudaVideoChromaFormat,
        OutputColorType=OutputColorType,
        Pixel_Format=Pixel_Format,
        PacketData=PacketData,
        PyNvVCException=PyNvVCException,
        PyNvVCExceptionUnsupported=PyNvVCExceptionUnsupported,
        CreateDecoder=CreateDecoder,
        GetDecoderCaps=GetDecoderCaps,
        created=created,
        caps_calls=caps_calls,
    )
