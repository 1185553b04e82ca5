"""NAL units for NVDEC: H.264/HEVC packets in Annex B form, and which pictures no other picture references.

NVDEC's parser reads Annex B byte streams (start codes), while MP4 and MKV store length-prefixed NAL units with the
parameter sets in the extradata: :class:`AnnexB` converts each packet with FFmpeg's ``*_mp4toannexb`` filter and
gives the parameter sets to send after every seek.

NVDEC decodes every picture it is fed. When the planner says a packet's frame is unwanted (random access, clip
sampling), the NVDEC backend leaves the packet out if nothing can reference its picture (:class:`NonrefFilter`), as
FFmpeg's decoder does on the CPU path with ``skip_frame=NONREF``. The test is FFmpeg's, read off the Annex B NAL
unit headers:

* H.264: every slice NAL unit (types 1-5) has ``nal_ref_idc == 0`` (H.264 7.4.1: such a picture is never used for
  inter prediction; frame_num and picture order counts of later pictures do not depend on it).
* HEVC: every VCL NAL unit (types 0-31) is a sub-layer non-reference type (TRAIL_N, TSA_N, STSA_N, RADL_N, RASL_N,
  RSV_VCL_N10/12/14) in layer 0, in the highest temporal sub-layer (TemporalId equal to the largest
  ``sps_max_sub_layers_minus1`` seen). A "_N" picture of a lower sub-layer may still be referenced by higher ones
  (H.265 3.132), so it is kept here, although FFmpeg's rule (and so the CPU path) drops it. Without a known SPS
  nothing is skipped.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import Any

import av
from av.error import FFmpegError

from gpudecode._backends._nvc import NvdecUnavailable
from gpudecode._errors import DecodeError, ffmpeg_reason

__all__ = ["ANNEXB_FILTERS", "AnnexB", "NonrefFilter", "annexb_parameter_sets"]

_START = b"\x00\x00\x01"
_START4 = b"\x00\x00\x00\x01"
ANNEXB_FILTERS = {"h264": "h264_mp4toannexb", "hevc": "hevc_mp4toannexb"}
_HEVC_NONREF = frozenset({0, 2, 4, 6, 8, 10, 12, 14})
_HEVC_SPS = 33
_H264_SLICES = frozenset({1, 2, 3, 4, 5})


def annexb_parameter_sets(codec: str, extradata: bytes | None) -> bytes:
    """Annex-B parameter sets (SPS/PPS, or VPS/SPS/PPS) from a stream's ``avcC``/``hvcC`` extradata.

    Extradata that is already Annex B is returned as is; anything unparsable gives ``b""``.
    """
    if not extradata:
        return b""
    if extradata.startswith((_START, _START4)):
        return bytes(extradata)
    out: list[bytes] = []
    try:
        if codec == "h264" and extradata[0] == 1:
            pos = 5
            n_sps = extradata[pos] & 0x1F
            pos += 1
            for _ in range(n_sps):
                (size,) = struct.unpack_from(">H", extradata, pos)
                out.append(_START4 + extradata[pos + 2 : pos + 2 + size])
                pos += 2 + size
            n_pps = extradata[pos]
            pos += 1
            for _ in range(n_pps):
                (size,) = struct.unpack_from(">H", extradata, pos)
                out.append(_START4 + extradata[pos + 2 : pos + 2 + size])
                pos += 2 + size
        elif codec == "hevc" and len(extradata) > 23:
            pos = 22
            n_arrays = extradata[pos]
            pos += 1
            for _ in range(n_arrays):
                (count,) = struct.unpack_from(">H", extradata, pos + 1)
                pos += 3
                for _ in range(count):
                    (size,) = struct.unpack_from(">H", extradata, pos)
                    out.append(_START4 + extradata[pos + 2 : pos + 2 + size])
                    pos += 2 + size
    except (IndexError, struct.error):
        return b""
    return b"".join(out)


class AnnexB:
    """One stream's packets as NVDEC's parser reads them: Annex B, with the parameter sets to send after a seek.

    Attributes:
        param_sets: The stream's parameter sets in Annex B form (from ``avcC``/``hvcC`` extradata, or the extradata
            itself when it is Annex B already); ``b""`` for other codecs or unparsable extradata.
    """

    def __init__(self, codec: str, stream: Any) -> None:
        """Set up for PyAV ``stream`` of FFmpeg codec ``codec``.

        Raises:
            NvdecUnavailable: FFmpeg's filter refuses the stream's extradata (damaged ``avcC``/``hvcC``): NVDEC's
                parser could read none of its packets, so the decoder falls back to the CPU, which may cope.
        """
        extradata = bytes(stream.codec_context.extradata or b"")
        self._bsf = None
        self.param_sets = annexb_parameter_sets(codec, extradata) if codec in ANNEXB_FILTERS else b""
        if codec in ANNEXB_FILTERS and extradata and not extradata.startswith((_START, _START4)):
            name = ANNEXB_FILTERS[codec]
            try:
                self._bsf = av.bitstream.BitStreamFilterContext(name, in_stream=stream)
            except (FFmpegError, ValueError) as exc:
                reason = f"FFmpeg's {name} filter refused the stream's header ({ffmpeg_reason(exc)})"
                raise NvdecUnavailable(reason) from exc

    def pieces(self, packet: Any, pts: int) -> Sequence[Any]:
        """``packet`` in Annex B form: one or more packets (none while the filter waits for more input).

        Raises:
            DecodeError: The filter refused the packet (a damaged NAL unit length, say); the planner skips it.
        """
        if self._bsf is None:
            return [packet]
        try:
            return self._bsf.filter(packet)
        except (FFmpegError, ValueError) as exc:
            raise DecodeError(f"NVDEC input: FFmpeg could not read packet (pts {pts}): {ffmpeg_reason(exc)}") from exc

    def flush(self) -> None:
        """Forget buffered input (after a seek)."""
        if self._bsf is not None:
            self._bsf.flush()


def _nal_units(data: bytes) -> Iterator[int]:
    """Offsets of the NAL unit headers in Annex B ``data`` (the byte after each 00 00 01 start code)."""
    i = data.find(_START)
    while i >= 0:
        head = i + 3
        if head < len(data):
            yield head
        i = data.find(_START, head)


class NonrefFilter:
    """Says whether an Annex B access unit is a picture nothing references, for one H.264 or HEVC stream.

    Attributes:
        enabled: Whether this stream's unreferenced pictures can be told apart at all (H.264 always; HEVC once an SPS
            is known, from the parameter sets or in-band). Off, :meth:`unreferenced` is always ``False``.
    """

    def __init__(self, codec: str, param_sets: bytes) -> None:
        """Set up for ``codec`` (``"h264"``, ``"hevc"``; any other codec disables the filter).

        Args:
            codec: FFmpeg's codec name.
            param_sets: The stream's parameter sets in Annex B form (from the container's extradata), possibly empty.
        """
        self._codec = codec
        self._top_tid = self._sps_top_tid(param_sets, None) if codec == "hevc" else None
        self.enabled = codec == "h264" or self._top_tid is not None

    @staticmethod
    def _sps_top_tid(data: bytes, top: int | None) -> int | None:
        """The largest ``sps_max_sub_layers_minus1`` of ``top`` and every HEVC SPS in ``data`` (``None``: none yet)."""
        for h in _nal_units(data):
            if h + 2 < len(data) and (data[h] >> 1) & 0x3F == _HEVC_SPS:
                tid = (data[h + 2] >> 1) & 0x07  # after the 4-bit VPS id
                top = tid if top is None else max(top, tid)
        return top

    def unreferenced(self, pieces: Sequence[Any]) -> bool:
        """Whether the access unit in ``pieces`` (Annex B packets, in order) is a picture nothing references."""
        if not self.enabled:
            return False
        data = b"".join(bytes(p) for p in pieces)
        if self._codec == "h264":
            return self._h264(data)
        self._top_tid = self._sps_top_tid(data, self._top_tid)  # an in-band SPS may add sub-layers
        return self._hevc(data, self._top_tid)

    @staticmethod
    def _h264(data: bytes) -> bool:
        slices = 0
        for h in _nal_units(data):
            b = data[h]
            if b & 0x1F in _H264_SLICES:
                if b & 0x60:  # nal_ref_idc != 0: a reference picture
                    return False
                slices += 1
        return slices > 0

    @staticmethod
    def _hevc(data: bytes, top_tid: int | None) -> bool:
        vcl = 0
        for h in _nal_units(data):
            if h + 1 >= len(data):
                continue
            kind, layer = (data[h] >> 1) & 0x3F, ((data[h] & 1) << 5) | (data[h + 1] >> 3)
            if kind < 32:
                if kind not in _HEVC_NONREF or layer != 0 or (data[h + 1] & 0x07) - 1 != top_tid:
                    return False
                vcl += 1
        return vcl > 0
