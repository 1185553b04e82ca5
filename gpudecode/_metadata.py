"""Stream metadata, from the header and (in exact mode) from the content."""

from __future__ import annotations

from dataclasses import dataclass, fields
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from gpudecode._color import COLORSPACE_NAMES, PRIMARIES_NAMES, RANGE_NAMES, TRANSFER_NAMES, tag_name

if TYPE_CHECKING:
    from gpudecode._seek_mode import Extent, Header

__all__ = ["VideoStreamMetadata", "stream_metadata"]

# The order torchcodec 0.17 prints its VideoStreamMetadata in.
_TORCHCODEC_ORDER = (
    "duration_seconds_from_header",
    "begin_stream_seconds_from_header",
    "bit_rate",
    "codec",
    "stream_index",
    "media_type",
    "width",
    "height",
    "num_frames_from_header",
    "average_fps_from_header",
    "pixel_aspect_ratio",
    "rotation",
    "color_primaries",
    "color_space",
    "color_transfer_characteristic",
    "pixel_format",
    "begin_stream_seconds_from_content",
    "end_stream_seconds_from_content",
    "num_frames_from_content",
    "duration_seconds",
    "begin_stream_seconds",
    "end_stream_seconds",
    "num_frames",
    "average_fps",
)


@dataclass(frozen=True)
class VideoStreamMetadata:
    """Facts about the decoded video stream.

    Fields named ``*_from_header`` come from the container header and may be missing or wrong; fields named
    ``*_from_content`` come from the exact index (``seek_mode="exact"``) and are ``None`` in approximate mode.
    Unsuffixed fields prefer the content value and fall back to the header.

    Attributes:
        num_frames: Number of frames the decoder returns (``len(decoder)``).
        duration_seconds: Duration of the stream, in seconds.
        average_fps: Average frames per second.
        duration_seconds_from_header: Duration written in the header, or ``None``.
        bit_rate: Bit rate in bits per second, or ``None``.
        num_frames_from_header: Frame count written in the header, or ``None``.
        num_frames_from_content: Frames found by the exact index, or ``None``.
        begin_stream_seconds_from_content: Presentation time of the first frame (exact index), or ``None``.
        end_stream_seconds_from_content: End of the last frame, ``pts + duration`` (exact index), or ``None``.
        codec: Codec name, for example ``"h264"``.
        width: Width of the returned frames in pixels (after rotation).
        height: Height of the returned frames in pixels (after rotation).
        average_fps_from_header: Frame rate written in the header, or ``None``.
        stream_index: Index of the stream in the container.
        begin_stream_seconds: Presentation time of the first frame.
        end_stream_seconds: End of the last frame.
        pixel_format: Decoded pixel format, for example ``"yuv420p"``.
        bit_depth: Bits per luma sample.
        color_space: Matrix coefficients tag (``"bt709"``, ``"smpte170m"``, ...), ``None`` when unspecified.
        color_range: ``"tv"`` (limited) or ``"pc"`` (full), ``None`` when unspecified.
        color_primaries: Primaries tag, ``None`` when unspecified.
        color_transfer_characteristic: Transfer characteristic tag, ``None`` when unspecified.
        rotation: Counter-clockwise rotation in degrees from the display matrix, ``None`` when the file has none
            (as in torchcodec); frames are returned upright.
        coded_width: Width of the stored frames, before rotation.
        coded_height: Height of the stored frames, before rotation.
        begin_stream_seconds_from_header: The stream's start time written in the header, or ``None``.
        pixel_aspect_ratio: Sample (pixel) aspect ratio; ``Fraction(0, 1)`` when the file does not say (as in
            torchcodec), ``None`` when read from an index cached by an older gpudecode.
        media_type: Always ``"video"``.
    """

    num_frames: int
    duration_seconds: float | None
    average_fps: float | None
    duration_seconds_from_header: float | None
    bit_rate: float | None
    num_frames_from_header: int | None
    num_frames_from_content: int | None
    begin_stream_seconds_from_content: float | None
    end_stream_seconds_from_content: float | None
    codec: str
    width: int
    height: int
    average_fps_from_header: float | None
    stream_index: int
    begin_stream_seconds: float
    end_stream_seconds: float | None
    pixel_format: str | None
    bit_depth: int
    color_space: str | None
    color_range: str | None
    color_primaries: str | None
    color_transfer_characteristic: str | None
    rotation: int | None
    coded_width: int
    coded_height: int
    begin_stream_seconds_from_header: float | None = None
    pixel_aspect_ratio: Fraction | None = None
    media_type: str = "video"

    def __repr__(self) -> str:
        """One ``name: value`` per line: torchcodec's fields in torchcodec's order, then gpudecode's own."""
        names = [*_TORCHCODEC_ORDER, *(f.name for f in fields(self) if f.name not in _TORCHCODEC_ORDER)]
        lines = [f"{type(self).__name__}:"]
        lines += [f"  {name}: {getattr(self, name)}" for name in names]
        return "\n".join(lines)

    __str__ = __repr__


def stream_metadata(
    facts: dict[str, Any],
    header: Header,
    extent: Extent,
    bit_depth: int,
    rotation: int | None,
    quarter_turns: int,
) -> VideoStreamMetadata:
    """The metadata of a stream: its facts (``_container.stream_facts``), header timing and the seek mode's extent.

    Args:
        facts: The container, stream and codec values.
        header: The header's timing.
        extent: The frames the decoder serves and the times they span (from the seek mode).
        bit_depth: Bits per component of the decoded pixel format.
        rotation: The display matrix's rotation in degrees, or ``None`` without a display matrix.
        quarter_turns: Quarter turns applied to the frames (odd: width and height swap).
    """
    cw, ch = facts["width"], facts["height"]
    w, h = (ch, cw) if quarter_turns % 2 == 1 else (cw, ch)
    sar = facts.get("sample_aspect_ratio")
    return VideoStreamMetadata(
        num_frames=int(extent.num_frames),
        duration_seconds=extent.duration_seconds,
        average_fps=extent.average_fps,
        duration_seconds_from_header=header.duration_seconds,
        bit_rate=float(facts["bit_rate"]) if facts["bit_rate"] else None,
        num_frames_from_header=header.num_frames,
        num_frames_from_content=extent.num_frames_from_content,
        begin_stream_seconds_from_content=extent.begin_seconds_from_content,
        end_stream_seconds_from_content=extent.end_seconds_from_content,
        codec=facts["codec"],
        width=w,
        height=h,
        average_fps_from_header=float(header.fps) if header.fps else None,
        stream_index=int(facts["stream_index"]),
        begin_stream_seconds=extent.begin_seconds,
        end_stream_seconds=extent.end_seconds,
        pixel_format=facts["pix_fmt"],
        bit_depth=bit_depth,
        color_space=tag_name(COLORSPACE_NAMES, facts["colorspace"]),
        color_range=tag_name(RANGE_NAMES, facts["color_range"]),
        color_primaries=tag_name(PRIMARIES_NAMES, facts["color_primaries"]),
        color_transfer_characteristic=tag_name(TRANSFER_NAMES, facts["color_trc"]),
        rotation=rotation,
        coded_width=cw,
        coded_height=ch,
        begin_stream_seconds_from_header=header.begin_seconds,
        pixel_aspect_ratio=Fraction(*sar) if sar else None,
    )
