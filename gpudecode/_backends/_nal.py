"""Which H.264/HEVC access units no other picture references: NVDEC's counterpart of FFmpeg's ``skip_frame=NONREF``.

NVDEC decodes every picture it is fed. When the planner says a packet's frame is unwanted (random access, clip
sampling), the NVDEC backend leaves the packet out if nothing can reference its picture, as FFmpeg's decoder does on
the CPU path. The test is the one FFmpeg applies, read off the Annex B NAL unit headers:

* H.264: every slice NAL unit (types 1-5) has ``nal_ref_idc == 0`` (H.264 7.4.1: such a picture is never used for
  inter prediction; frame_num and picture order counts of later pictures do not depend on it).
* HEVC: every VCL NAL unit (types 0-31) is a sub-layer non-reference type (TRAIL_N, TSA_N, STSA_N, RADL_N, RASL_N,
  RSV_VCL_N10/12/14) in layer 0, in the highest temporal sub-layer (TemporalId equal to the largest
  ``sps_max_sub_layers_minus1`` seen). A "_N" picture of a lower sub-layer may still be referenced by higher ones
  (H.265 3.132), so it is kept; FFmpeg drops it too, but the CPU path only loses what FFmpeg itself loses. Without a
  known SPS nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["NonrefFilter"]

_START = b"\x00\x00\x01"
_HEVC_NONREF = frozenset({0, 2, 4, 6, 8, 10, 12, 14})
_HEVC_SPS = 33
_H264_SLICES = frozenset({1, 2, 3, 4, 5})


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
