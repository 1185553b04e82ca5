"""NVDEC backend: PyNvVideoCodec's low-level decoder fed with PyAV packets; RGB by gpudecode's CUDA kernel.

The planner (``gpudecode._planner``) decides what to feed and what to keep; this backend only turns packets into
NVDEC surfaces and converts kept surfaces to RGB. Facts it relies on (``shared/DESIGN.md`` §3): ``Decode``
returns 0..n frames in display order carrying the pts we fed; the next ``Decode`` may overwrite them, so the
planner converts every kept frame before feeding again, and the conversion runs on the decoder's CUDA stream;
an empty ``PacketData`` drains the decoder; H.264/HEVC from MP4/MKV must be converted to Annex B, and after a
flush the parameter sets must be sent again before the first packet.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gpudecode._backends._base import BackendUnsupported
from gpudecode._backends._nal import AnnexB, NonrefFilter
from gpudecode._backends._nvc import Modules, NvdecUnavailable, TorchStreams, load_modules
from gpudecode._backends._nvdec_cache import (
    DecoderCache,
    acquire_decoder,
    decoder_cache,
    default_cache_size,
    size_bucket,
)
from gpudecode._color import ColorSpec
from gpudecode._container import codec_name
from gpudecode._errors import DecodeError
from gpudecode._shaping import DevicePlans, OutputSpec, shape_tensor

__all__ = [
    "DecoderCache",
    "Modules",
    "NvdecBackend",
    "NvdecUnavailable",
    "create_nvdec_backend",
    "decoder_cache",
    "default_cache_size",
]

logger = logging.getLogger("gpudecode")

# FFmpeg codec name -> PyNvVideoCodec cudaVideoCodec member.
# MPEG-4 Part 2 is left to the CPU: from MP4/MKV its VOL header lives only in extradata, which NVDEC's parser
# never receives through the low-level decoder (PyNvVideoCodec's own demuxer prepends it), so nothing would decode.
NVDEC_CODECS = {
    "h264": "H264",
    "hevc": "HEVC",
    "vp9": "VP9",
    "av1": "AV1",
    "mpeg2video": "MPEG2",
    "mpeg1video": "MPEG1",
    "vp8": "VP8",
    "vc1": "VC1",
}
# Names in the real PyNvVideoCodec 2.2.4 (checked by tests/test_nvc_conformance.py against the compiled module).
CHROMA_420 = "420"  # cudaVideoChromaFormat member; there is no "YUV420"
CAPS_SUPPORTED, CAPS_WIDTH_MAX, CAPS_HEIGHT_MAX = "supported", "width_max", "height_max"
CAPS_WIDTH_MIN, CAPS_HEIGHT_MIN = "width_min", "height_min"
YUV420 = {"yuv420p", "yuvj420p", "nv12", "yuv420p10le", "yuv420p12le", "p010le", "p016le"}


# -- backend ----------------------------------------------------------------------------------------------------
@dataclass
class NvFrame:
    """A decoded NVDEC surface, valid until the next ``Decode`` call.

    Attributes:
        pts: Presentation timestamp we fed with the packet.
        duration: Duration of the packet that carried it (``None`` when unknown).
        surface: PyNvVideoCodec's ``DecodedFrame``.
    """

    pts: int | None
    duration: int | None
    surface: Any


class NvdecBackend:
    """Decodes with NVDEC through PyNvVideoCodec; converts kept surfaces with gpudecode's kernel."""

    output_device_type = "cuda"  # convert_into writes into CUDA tensors

    def __init__(
        self,
        *,
        modules: Modules,
        device: torch.device,
        stream: Any,
        bit_depth: int,
        color: ColorSpec,
        decoder: Any,
        cache_key: tuple[Any, ...],
        streams: Any,
        decode_stream: Any,
    ) -> None:
        self._m = modules
        self._nvc = modules.nvc
        self._device = device
        self.name = f"nvdec:{device.index if device.index is not None else 0}"
        cc = stream.codec_context
        self._codec = codec_name(cc)
        self._width, self._height = int(cc.width), int(cc.height)
        self._bytes = 2 if bit_depth > 8 else 1
        self._color = color
        self._dec = decoder
        self._key = cache_key
        self._streams = streams
        self._decode_stream = decode_stream
        self._stream_ptr = streams.handle(decode_stream) if streams is not None else 0
        self._pitch: int | None = None  # bytes per surface row: fixed for a decoder's configuration
        self._annexb = AnnexB(self._codec, stream)
        self._nonref = NonrefFilter(self._codec, self._annexb.param_sets)
        self._need_params = True
        self._dirty = False
        self._durations: dict[int, int] = {}
        self._discarded: set[int] = set()
        self._keep: list[Any] = []  # host buffers that must outlive the Decode call
        self._broken = False  # the decoder refused the stream (BackendUnsupported): never cached again
        self._expected_format = getattr(self._nvc.Pixel_Format, "P016" if self._bytes == 2 else "NV12")
        self._plans = DevicePlans(device)  # fused-kernel tables per output spec, on the device

    @property
    def skips_unwanted(self) -> bool:
        """NVDEC decodes every packet it is fed, so unwanted pictures nothing references are not fed (H.264, HEVC)."""
        return self._nonref.enabled

    # -- feeding ------------------------------------------------------------------------------------------------
    def _packet_data(self, data_ptr: int, size: int, pts: int) -> Any:
        pd = self._nvc.PacketData()
        pd.bsl_data = data_ptr
        pd.bsl = size
        pd.pts = pts
        return pd

    def _bitstream(self, pieces: Sequence[Any]) -> tuple[int, int]:
        """Pointer and size of the bytes to feed for a packet's Annex B ``pieces`` (parameter sets prepended if due)."""
        prefix = self._annexb.param_sets if self._need_params else b""
        self._need_params = False
        if len(pieces) == 1 and not prefix:
            self._keep = [pieces[0]]
            return int(pieces[0].buffer_ptr), int(pieces[0].buffer_size)
        buf = np.frombuffer(prefix + b"".join(bytes(p) for p in pieces), dtype=np.uint8)
        self._keep = [buf, *pieces]
        return int(buf.ctypes.data), int(buf.nbytes)

    def _wrap(self, surfaces: Sequence[Any]) -> list[NvFrame]:
        out = []
        for s in surfaces:
            pts = int(s.getPTS())
            if pts in self._discarded:
                self._discarded.discard(pts)
                self._durations.pop(pts, None)
                continue  # fed because the decoder needs it, but an edit list cuts it: not a frame
            out.append(NvFrame(pts=pts, duration=self._durations.pop(pts, None), surface=s))
        return out

    def decode(self, packet: Any, wanted: bool = True) -> list[NvFrame]:
        """Feed one PyAV packet; return the surfaces that became ready.

        An unwanted packet whose picture nothing references is not fed (its frame never comes out).
        """
        # read every field first: the bitstream filter may take the packet's contents
        pts = packet.pts if packet.pts is not None else (packet.dts if packet.dts is not None else 0)
        discard, duration = packet.is_discard, packet.duration
        pieces = self._annexb.pieces(packet, pts)
        if not pieces:
            return []
        if not wanted and self.skips_unwanted and self._nonref.unreferenced(pieces):
            return []  # nobody asked for it and nothing references it: left out, as FFmpeg's NONREF skip does
        span = self._bitstream(pieces)
        if discard:
            self._discarded.add(pts)
        elif duration:
            self._durations[pts] = int(duration)
        if len(self._durations) > 4096:
            self._durations.clear()
        self._dirty = True
        try:
            surfaces = self._dec.Decode(self._packet_data(span[0], span[1], pts))
        except Exception as exc:
            unsupported = getattr(self._nvc, "PyNvVCExceptionUnsupported", None)
            if unsupported is not None and isinstance(exc, unsupported):
                self._broken = True
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise BackendUnsupported(f"NVDEC cannot decode this stream ({first})") from exc
            raise DecodeError(f"NVDEC rejected a packet (pts {pts}): {exc}") from exc
        return self._wrap(surfaces)

    def flush(self) -> list[NvFrame]:
        """Drain the decoder (end of stream)."""
        try:
            surfaces = self._dec.Decode(self._nvc.PacketData())
        except Exception as exc:
            raise DecodeError(f"NVDEC failed while draining: {exc}") from exc
        self._dirty = False
        return self._wrap(surfaces)

    def set_threads(self, num_threads: int | None) -> bool:
        """NVDEC has no decoding threads to set: nothing changes."""
        return False

    def reset(self) -> None:
        """Forget the stream position: drain and drop pending surfaces, re-send parameter sets next."""
        if self._dirty:
            try:
                self._dec.Decode(self._nvc.PacketData())
            except Exception as exc:
                logger.debug("gpudecode: NVDEC drain before seek failed: %s", exc)
            self._dirty = False
        self._annexb.flush()
        self._need_params = True
        self._durations.clear()
        self._discarded.clear()

    # -- conversion ---------------------------------------------------------------------------------------------
    def _planes(self, surface: Any) -> tuple[int, int, int]:
        """Luma pointer, chroma pointer and pitch (bytes) of a NATIVE surface, checked for consistency."""
        fmt = getattr(surface, "format", None)
        if fmt is not None and fmt != self._expected_format:
            name = getattr(fmt, "name", fmt)
            depth = "an 8" if self._bytes == 1 else "a 10/12"
            raise DecodeError(
                f"NVDEC returned a {name} surface for {depth}-bit stream (expected "
                f"{self._expected_format.name}); please report this with your GPU and driver."
            )
        luma = int(surface.GetPtrToPlane(0))
        pitch = self._pitch if self._pitch is not None else self._surface_pitch(surface)
        try:
            chroma = int(surface.GetPtrToPlane(1))
        except Exception:
            chroma = 0
        if not chroma:
            chroma = luma + pitch * self._height
        if pitch < self._width * self._bytes or chroma - luma < pitch * self._height:
            raise DecodeError(
                f"NVDEC surface layout is inconsistent (pitch {pitch}, planes {luma:#x}/{chroma:#x} "
                f"for {self._width}x{self._height}); please report this with your GPU and driver."
            )
        self._pitch = pitch
        return luma, chroma, pitch

    def _surface_pitch(self, surface: Any) -> int:
        """Row pitch in bytes from the surface's luma view (its strides; 16-bit ones are in elements in 2.2.4)."""
        pitch = self._width * self._bytes
        try:
            cai = surface.cuda()[0].__cuda_array_interface__
            if cai.get("strides"):
                pitch = int(cai["strides"][0])
        except Exception:
            pass
        if pitch < self._width * self._bytes <= pitch * self._bytes:
            pitch *= self._bytes  # strides in elements, not bytes
        return pitch

    def convert(self, frame: NvFrame) -> torch.Tensor:
        """Convert a surface to a new ``(H, W, 3)`` uint8 tensor on the device (see :meth:`convert_into`)."""
        out = torch.empty((self._height, self._width, 3), dtype=torch.uint8, device=self._device)
        self.convert_into(frame, out)
        return out

    def convert_shaped(self, frame: NvFrame, spec: OutputSpec, out: torch.Tensor) -> None:
        """Convert a surface straight into its shaped form: colour, rotation, crops, resize and dtype in one kernel.

        A spec the kernel cannot do in one pass (two resizes), or modules without the fused kernel, is shaped with
        torch after the plain conversion.

        Raises:
            DecodeError: The slot is not ``spec``'s frame shape, or the surface is not as expected.
        """
        plan = self._plans.get(spec, self._height, self._width) if self._m.resample is not None else None
        if plan is None:
            out.copy_(shape_tensor(self.convert(frame), spec))
            return
        if tuple(out.shape) != (spec.height, spec.width, 3) or not out.is_contiguous() or out.dtype != spec.dtype:
            raise DecodeError(f"The output slot {tuple(out.shape)} {out.dtype} does not hold a shaped frame.")
        luma, chroma, pitch = self._planes(frame.surface)
        with self._on_decode_stream():
            self._m.resample(
                luma_ptr=luma,
                chroma_ptr=chroma,
                pitch=pitch,
                coded_width=self._width,
                coded_height=self._height,
                dst_ptr=out.data_ptr(),
                out_width=spec.width,
                out_height=spec.height,
                planar=False,
                out_float=spec.float32,
                quarter_turns=spec.quarter_turns,
                tables=plan.pointers,
                scale_offset=plan.scale_offset,
                spec=self._color,
                stream_ptr=self._stream_ptr,
            )

    @contextlib.contextmanager
    def _on_decode_stream(self) -> Iterator[None]:
        """Run a kernel on the decode stream after the caller's queued work; the caller's stream then waits on it.

        The output was allocated on the caller's stream, and that stream waits for the kernel before anything else
        queued on it (a launch that raises included), so the caching allocator can only hand the memory out again in
        that stream's order, after the kernel: no ``record_stream``. (With it, a DataLoader worker that exits while
        its CUDA frames are still shared with the main process aborted: freeing a recorded block records events on
        a driver that is shutting down. Seen on an H200.)
        """
        streams, decode_stream = self._streams, self._decode_stream
        if streams is None:
            yield
            return
        current = streams.current(self._device)
        streams.wait(decode_stream, current)
        try:
            yield
        finally:
            streams.wait(current, decode_stream)

    def convert_into(self, frame: NvFrame, out: torch.Tensor) -> None:
        """Convert a surface into ``out``, a C-contiguous ``(H, W, 3)`` uint8 slot (of a batch) on the device.

        The kernel runs on the decode stream, after the work the caller's current stream had queued (``out`` was
        allocated there) and before the next ``Decode`` can overwrite the surface; the caller's stream then waits
        on it. Both waits are events: no host synchronization.

        Raises:
            DecodeError: The slot's shape is not the stream's frame size, or the surface is not as expected.
        """
        if tuple(out.shape) != (self._height, self._width, 3) or not out.is_contiguous():
            raise DecodeError(
                f"A decoded frame is {self._width}x{self._height}, but the output slot is "
                f"{tuple(out.shape)}; resolution changes are not supported."
            )
        luma, chroma, pitch = self._planes(frame.surface)
        with self._on_decode_stream():
            self._m.convert(
                luma_ptr=luma,
                chroma_ptr=chroma,
                pitch=pitch,
                width=self._width,
                height=self._height,
                dst_ptr=out.data_ptr(),
                planar=False,
                spec=self._color,
                stream_ptr=self._stream_ptr,
            )

    def close(self) -> None:
        """Drain the decoder and give it back to the cache (a decoder that refused the stream is dropped)."""
        if self._dec is None:
            return
        try:
            if not self._broken:
                self.reset()
                decoder_cache.release(self._key, self._dec)
        finally:
            self._dec = None


def _check_stream(codec: str, pix_fmt: str, bit_depth: int) -> None:
    """Refuse what gpudecode's NVDEC path cannot decode before touching the GPU.

    Raises:
        NvdecUnavailable: The codec, chroma format or bit depth is not NVDEC's (or not this path's).
    """
    if codec not in NVDEC_CODECS:
        raise NvdecUnavailable(f"NVDEC has no decoder for codec {codec!r}")
    if pix_fmt not in YUV420:
        raise NvdecUnavailable(f"gpudecode's NVDEC path handles 4:2:0 content only (stream is {pix_fmt or 'unknown'})")
    if bit_depth > 12:
        raise NvdecUnavailable(f"NVDEC decodes at most 12 bits per sample (stream has {bit_depth})")


def create_nvdec_backend(
    device: torch.device, stream: Any, bit_depth: int, color: ColorSpec, modules: Modules | None = None
) -> NvdecBackend:
    """Create an NVDEC backend for ``stream`` on ``device``.

    Args:
        device: The CUDA device.
        stream: The PyAV video stream.
        bit_depth: Bits per sample of the stream.
        color: The color conversion the CPU path would use.
        modules: Injected dependencies (tests); ``None`` imports the real ones.

    Raises:
        NvdecUnavailable: With the reason NVDEC cannot be used (missing package, no driver, codec, size...).
    """
    index = device.index if device.index is not None else 0
    cc = stream.codec_context
    codec = codec_name(cc)
    _check_stream(codec, cc.pix_fmt or "", bit_depth)
    if modules is None:
        modules = load_modules(index)
    nvc = modules.nvc
    codec_enum = getattr(nvc.cudaVideoCodec, NVDEC_CODECS[codec], None)
    if codec_enum is None:
        raise NvdecUnavailable(f"this PyNvVideoCodec has no {NVDEC_CODECS[codec]} decoder")
    width, height = int(cc.width), int(cc.height)
    limit_w, limit_h = _check_caps(nvc, codec, codec_enum, bit_depth, width, height)
    bucket_w, bucket_h = size_bucket(width, height)
    max_w, max_h = min(bucket_w, limit_w), min(bucket_h, limit_h)  # a bucket above the GPU's limit fails to decode
    # Decoder and kernels share one non-default stream per device: the legacy default stream would cost a host
    # synchronization per frame inside PyNvVideoCodec, and would not be ordered against torch's side streams.
    streams = modules.streams if modules.streams is not None else (TorchStreams() if modules.cuda_ok else None)
    decode_stream = streams.decode(index) if streams is not None else None
    stream_ptr = streams.handle(decode_stream) if streams is not None else 0
    key = (index, codec, bit_depth, max_w, max_h, stream_ptr)
    decoder = acquire_decoder(nvc, key, codec_enum, width, height)
    return NvdecBackend(
        modules=modules,
        device=device,
        stream=stream,
        bit_depth=bit_depth,
        color=color,
        decoder=decoder,
        cache_key=key,
        streams=streams,
        decode_stream=decode_stream,
    )


# (module id, codec, bit depth) -> (module, caps): queried once per process and module (the module is kept so its
# id stays unique)
_CAPS: dict[tuple[int, str, int], tuple[Any, dict[str, Any] | None]] = {}


def _caps(nvc: Any, codec: str, codec_enum: Any, bit_depth: int) -> dict[str, Any] | None:
    """NVDEC's capabilities for 4:2:0 ``codec`` at ``bit_depth``, cached (``None`` when they cannot be read).

    PyNvVideoCodec 2.2.4's ``GetDecoderCaps`` always queries device 0 and creates a CUDA context per call, so it
    is asked once per process; machines mixing GPU models may therefore see another GPU's limits.
    """
    key = (id(nvc), codec, bit_depth)
    if key not in _CAPS:
        try:
            caps = nvc.GetDecoderCaps(
                gpuid=0,
                codec=codec_enum,
                chromaformat=getattr(nvc.cudaVideoChromaFormat, CHROMA_420),
                bitdepth=bit_depth,
            )
        except Exception as exc:  # PyNvVCException, RuntimeError: no caps, try to create the decoder anyway
            logger.debug("gpudecode: GetDecoderCaps failed (%s); trying to create the decoder anyway", exc)
            caps = None
        _CAPS[key] = (nvc, dict(caps) if isinstance(caps, dict) else None)
    return _CAPS[key][1]


def _check_caps(nvc: Any, codec: str, codec_enum: Any, bit_depth: int, width: int, height: int) -> tuple[int, int]:
    """Refuse what this GPU's NVDEC cannot decode; return its largest frame size (unbounded when unknown).

    Raises:
        NvdecUnavailable: The codec/bit depth is unsupported or the frame size is outside the limits.
    """
    caps = _caps(nvc, codec, codec_enum, bit_depth)
    if caps is None:
        return 1 << 30, 1 << 30
    if not caps.get(CAPS_SUPPORTED, 1):
        raise NvdecUnavailable(f"this GPU's NVDEC cannot decode {codec} {bit_depth}-bit 4:2:0")
    max_w, max_h = int(caps.get(CAPS_WIDTH_MAX) or 1 << 30), int(caps.get(CAPS_HEIGHT_MAX) or 1 << 30)
    min_w, min_h = int(caps.get(CAPS_WIDTH_MIN) or 0), int(caps.get(CAPS_HEIGHT_MIN) or 0)
    if width > max_w or height > max_h:
        raise NvdecUnavailable(f"{width}x{height} exceeds this GPU's NVDEC limit of {max_w}x{max_h} for {codec}")
    if width < min_w or height < min_h:
        raise NvdecUnavailable(f"{width}x{height} is below this GPU's NVDEC minimum of {min_w}x{min_h} for {codec}")
    return max_w, max_h
