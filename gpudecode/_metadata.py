"""Stream metadata, from the header and (in exact mode) from the content."""

from __future__ import annotations

from dataclasses import dataclass, fields
from fractions import Fraction

__all__ = ["VideoStreamMetadata"]


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
        color_space: Matrix coefficients tag (``"bt709"``, ``"unknown"``, ...).
        color_range: ``"tv"`` (limited), ``"pc"`` (full) or ``"unknown"``.
        color_primaries: Primaries tag.
        color_transfer_characteristic: Transfer characteristic tag.
        rotation: Counter-clockwise rotation in degrees from the display matrix; frames are returned upright.
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
    color_space: str
    color_range: str
    color_primaries: str
    color_transfer_characteristic: str
    rotation: int
    coded_width: int
    coded_height: int
    begin_stream_seconds_from_header: float | None = None
    pixel_aspect_ratio: Fraction | None = None
    media_type: str = "video"

    def __repr__(self) -> str:
        """One ``name: value`` per line, like torchcodec's printout."""
        lines = [f"{type(self).__name__}:"]
        lines += [f"  {f.name}: {getattr(self, f.name)}" for f in fields(self)]
        return "\n".join(lines)

    __str__ = __repr__
