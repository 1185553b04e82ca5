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
import types
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np


class cudaVideoCodec(enum.Enum):
    H264 = 4
    HEVC = 8
    VP9 = 10
    AV1 = 11
    MPEG4 = 3
    MPEG2 = 1
    MPEG1 = 0
    VP8 = 9
    VC1 = 2


class cudaVideoChromaFormat(enum.Enum):
    YUV420 = 1


class OutputColorType(enum.Enum):
    NATIVE = 0
    RGB = 1


FFMPEG_NAMES = {"H264": "h264", "HEVC": "hevc", "VP9": "vp9", "AV1": "libdav1d", "MPEG4": "mpeg4",
                "MPEG2": "mpeg2video", "VP8": "vp8"}


class PacketData:
    def __init__(self) -> None:
        self.bsl_data = 0
        self.bsl = 0
        self.pts = 0


@dataclass
class _View:
    __cuda_array_interface__: dict


class Surface:
    def __init__(self, pts: int, frame: Any, pitch_pad: int) -> None:
        self.timestamp = pts
        fmt = frame.format.name
        bits = frame.format.components[0].bits
        w, h = frame.width, frame.height
        bps = 1 if bits == 8 else 2
        self.pitch = w * bps + pitch_pad
        cw, ch = (w + 1) // 2, (h + 1) // 2
        self.buf = np.zeros(self.pitch * (h + ch) + 64, np.uint8)
        dt = np.uint8 if bps == 1 else np.uint16
        shift = 0 if bps == 1 else 16 - bits

        def plane(i, pw, ph):
            p = frame.planes[i]
            return np.frombuffer(p, dt).reshape(ph, p.line_size // bps)[:, :pw].astype(np.uint16)

        assert fmt.startswith("yuv420") or fmt.startswith("yuvj420"), fmt
        y, u, v = plane(0, w, h), plane(1, cw, ch), plane(2, cw, ch)
        lum = self.buf[: self.pitch * h].view(dt).reshape(h, self.pitch // bps)
        lum[:, :w] = (y << shift).astype(dt)
        chroma = self.buf[self.pitch * h: self.pitch * (h + ch)].view(dt).reshape(ch, self.pitch // bps)
        chroma[:, 0: 2 * cw: 2] = (u << shift).astype(dt)
        chroma[:, 1: 2 * cw: 2] = (v << shift).astype(dt)
        self.h = h

    def getPTS(self) -> int:
        return self.timestamp

    def GetPtrToPlane(self, i: int) -> int:
        return self.buf.ctypes.data + (0 if i == 0 else self.pitch * self.h)

    def cuda(self) -> list[_View]:
        return [_View({"shape": (self.h, self.pitch), "strides": (self.pitch, 1), "data": (self.GetPtrToPlane(0),
                                                                                          False)})]

    def poison(self) -> None:
        self.buf[:] = 0xA5


@dataclass
class FakeDecoder:
    codec: cudaVideoCodec
    kwargs: dict
    pitch_pad: int = 40
    received: list[bytes] = field(default_factory=list)
    drains: int = 0

    def __post_init__(self) -> None:
        self._fresh()
        self._live: list[Surface] = []

    def _fresh(self) -> None:
        self.cc = av.CodecContext.create(FFMPEG_NAMES[self.codec.name], "r")
        self.cc.thread_count = 1

    def _emit(self, frames) -> list[Surface]:
        for s in self._live:
            s.poison()
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
        data = ctypes.string_at(pd.bsl_data, pd.bsl)
        self.received.append(data)
        pkt = av.Packet(data)
        pkt.pts = pd.pts
        try:
            frames = self.cc.decode(pkt)
        except av.error.FFmpegError:
            frames = []
        return self._emit(frames)


def make_module(caps: dict | None = None, fail_create: bool = False) -> types.SimpleNamespace:
    created: list[FakeDecoder] = []

    def CreateDecoder(**kwargs):
        if fail_create:
            raise RuntimeError("CUDA_ERROR_NO_DEVICE")
        assert kwargs["usedevicememory"] is True and kwargs["outputColorType"] == OutputColorType.NATIVE
        d = FakeDecoder(kwargs["codec"], kwargs)
        created.append(d)
        return d

    def GetDecoderCaps(**kwargs):
        return dict(caps if caps is not None else {"supported": True, "max_width": 8192, "max_height": 8192})

    return types.SimpleNamespace(cudaVideoCodec=cudaVideoCodec, cudaVideoChromaFormat=cudaVideoChromaFormat,
                                 OutputColorType=OutputColorType, PacketData=PacketData, CreateDecoder=CreateDecoder,
                                 GetDecoderCaps=GetDecoderCaps, created=created)
