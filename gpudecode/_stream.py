"""What a decoder knows of its stream before any container is open: facts, seek mode, colour, metadata.

Built once from the stream facts (``_container.stream_facts``, or an index cache entry's copy) and the exact index
(``None`` in approximate mode). This is where the seek mode is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from gpudecode._color import ColorSpec, color_spec
from gpudecode._container import bit_depth
from gpudecode._errors import MediaError
from gpudecode._index import FrameIndex
from gpudecode._metadata import VideoStreamMetadata, stream_metadata
from gpudecode._mp4 import Mp4Info
from gpudecode._seek_mode import ApproximateMode, ExactMode, Header, SeekMode
from gpudecode._timeline import PacketTimeline

__all__ = ["StreamState", "stream_state"]


@dataclass(frozen=True)
class StreamState:
    """A decoder's view of its stream.

    Attributes:
        facts: The container, stream and codec values (JSON-serializable; saved with index files).
        stream_index: The stream decoded.
        time_base: Its time base.
        quarter_turns: Quarter turns applied to decoded frames (the display matrix's rotation).
        bit_depth: Bits per component of the decoded pixel format.
        color: The colour conversion the stream's tags call for.
        mode: The seek mode (exact index, or the header).
        nominal_duration: The usual frame duration (time-base units), for frames that carry none.
        seek_margin: How far before a target time approximate mode seeks (time-base units).
        timeline: The packet timeline demuxers serve packets from, if any.
        metadata: The stream's metadata.
    """

    facts: dict[str, Any]
    stream_index: int
    time_base: Fraction
    quarter_turns: int
    bit_depth: int
    color: ColorSpec
    mode: SeekMode
    nominal_duration: int
    seek_margin: int
    timeline: PacketTimeline | None
    metadata: VideoStreamMetadata


def stream_state(facts: dict[str, Any], index: FrameIndex | None, mp4: Mp4Info | None) -> StreamState:
    """The stream's state; the seek mode is exact where an index is given, approximate otherwise.

    Raises:
        MediaError: The header cannot place frames (approximate mode), or the stream has no frames.
        KeyError, TypeError, ValueError: ``facts`` lacks a value or holds one of the wrong kind.
    """
    time_base = Fraction(*facts["time_base"])
    track = mp4.track(int(facts["stream_id"])) if mp4 is not None else None
    rotation = track.rotation_degrees if track is not None else 0
    quarter_turns = (round(rotation / 90.0) % 4) if rotation % 90 == 0 else 0
    pix_fmt = facts["pix_fmt"]
    depth = bit_depth(pix_fmt)
    if mp4 is not None:
        mp4.release()  # keep no moov copy (hundreds of kB for long videos) beyond creation
    header = Header.from_facts(facts, time_base)
    mode: SeekMode = ExactMode(index, time_base, header) if index is not None else ApproximateMode(time_base, header)
    shown_rotation = rotation if track is not None and track.display_matrix else None
    nominal = mode.nominal_duration()  # the median of every duration in exact mode: computed once
    metadata = stream_metadata(facts, header, mode.extent, depth, shown_rotation, quarter_turns)
    if metadata.num_frames <= 0:
        raise MediaError("The video stream has no frames the header can account for. Use seek_mode='exact'.")
    return StreamState(
        facts=facts,
        stream_index=int(facts["stream_index"]),
        time_base=time_base,
        quarter_turns=quarter_turns,
        bit_depth=depth,
        color=color_spec(facts["colorspace"], facts["color_range"], pix_fmt, depth),
        mode=mode,
        nominal_duration=nominal,
        seek_margin=nominal * (int(facts["has_b_frames"]) + 3),  # the B-frame reorder delay and a little more
        timeline=mode.timeline(),
        metadata=metadata,
    )
