"""Opening sources with PyAV and demuxing one video stream."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import av
from av.container import InputContainer
from av.video.stream import VideoStream

from gpudecode._errors import InvalidArgumentError, MediaError, ffmpeg_reason
from gpudecode._source import Source
from gpudecode._timeline import PacketTimeline

__all__ = [
    "PyAVDemuxer",
    "bit_depth",
    "codec_name",
    "demuxed",
    "discard_other_streams",
    "is_raw_stream",
    "open_container",
    "pick_stream",
    "raw_frame_duration",
    "stream_facts",
]

logger = logging.getLogger("gpudecode")


def open_container(source: Source) -> InputContainer:
    """Open ``source`` with PyAV for reading.

    Raises:
        MediaError: The data is not a media file PyAV/FFmpeg can open.
    """
    target = source.open_for_av()
    try:
        return av.open(target, mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError, OSError) as exc:
        if not isinstance(target, str):
            target.close()  # a view of the buffer or file, not the user's object
        raise MediaError(
            f"Could not open {source.description} as media: {ffmpeg_reason(exc)}. Pass a video file FFmpeg can read "
            "(MP4, MOV, MKV, WebM, AVI, MPEG-TS, ...)."
        ) from exc


def pick_stream(container: InputContainer, stream_index: int | None) -> VideoStream:
    """Return the requested video stream, or the best one.

    Raises:
        MediaError: The container has no video stream.
        InvalidArgumentError: ``stream_index`` is not an int, out of range, or not a video stream.
    """
    video = [s for s in container.streams if s.type == "video"]
    if stream_index is None:
        if not video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
            raise MediaError(f"The file has no video stream (streams found: {kinds}). Pass a video file.")
        try:
            best = container.streams.best("video")
        except (av.error.FFmpegError, ValueError):
            best = None
        return _decodable(best if best is not None else video[0])
    if isinstance(stream_index, bool) or not isinstance(stream_index, int):
        raise InvalidArgumentError(
            f"Invalid stream_index ({stream_index!r}). Supported values are: None or an int index of a video stream."
        )
    streams = list(container.streams)
    if not 0 <= stream_index < len(streams):
        raise InvalidArgumentError(
            f"Invalid stream_index ({stream_index}). The file has {len(streams)} streams; video streams are at "
            f"indices: {[s.index for s in video]}."
        )
    stream = streams[stream_index]
    if stream.type != "video":
        raise InvalidArgumentError(
            f"Invalid stream_index ({stream_index}) is a {stream.type} stream. Video streams are at indices: "
            f"{[s.index for s in video]}."
        )
    return _decodable(stream)


# Raw elementary streams (.h264/.265 files): FFmpeg's demuxers give their packets no timestamps at all.
RAW_FORMATS = frozenset({"h264", "hevc"})


def demuxed(
    container: InputContainer, stream: VideoStream, stopped: Callable[[Exception], None] | None = None
) -> Iterator[av.Packet]:
    """``container.demux(stream)``, ending at the end of the data where PyAV would raise ``IndexError``.

    PyAV 18's demux loop, after the last packet, walks every stream FFmpeg has by then, indexing its own stream list,
    which does not know streams FFmpeg added while demuxing (MPEG-TS and MPEG-PS: a PID the PMT never listed). Its
    packets all came before; only PyAV's empty end-of-stream packets are lost.

    ``stopped``: where given, data FFmpeg cannot read past (damaged, an I/O error) ends the packets too, after
    ``stopped(exc)``; otherwise that error is raised.
    """
    packets = container.demux(stream)
    while True:
        try:
            pkt = next(packets)
        except (StopIteration, IndexError):
            return
        except (av.error.FFmpegError, OSError) as exc:
            if stopped is None:
                raise
            stopped(exc)
            return
        yield pkt


def is_raw_stream(container: InputContainer) -> bool:
    """Whether ``container`` is a raw H.264/HEVC elementary stream (packets without timestamps)."""
    return getattr(container.format, "name", "") in RAW_FORMATS


def raw_frame_duration(stream: VideoStream) -> int:
    """One frame's duration in the stream's time base for a raw elementary stream.

    From the frame rate FFmpeg assumes: the stream's own timing information, else its raw demuxers' 25 fps.
    """
    rate = stream.average_rate or stream.guessed_rate or Fraction(25)
    return max(1, round(1 / (Fraction(rate) * Fraction(stream.time_base))))


def codec_name(cc: av.codec.context.CodecContext) -> str:
    """FFmpeg's canonical codec name of a codec context (``av1``, not the decoder's ``libdav1d``)."""
    return getattr(cc.codec, "canonical_name", None) or cc.name


def discard_other_streams(container: InputContainer, keep_index: int) -> None:
    """Tell the demuxer to drop every stream but ``keep_index`` (their packets are never read into Python)."""
    for s in container.streams:
        if s.index != keep_index:
            with contextlib.suppress(AttributeError, ValueError, av.error.FFmpegError):
                s.discard = type(s.discard).all


def _decodable(stream: VideoStream) -> VideoStream:
    """Check that FFmpeg can decode ``stream`` (damaged headers can leave it without a decoder)."""
    cc = stream.codec_context
    if cc is None or not cc.width or not cc.height:
        raise MediaError(
            f"The video stream {stream.index} cannot be decoded: FFmpeg found no decoder or no frame size for it "
            "(unsupported codec, or damaged codec parameters)."
        )
    return stream


class PyAVDemuxer:
    """Reads packets of one stream of a PyAV container, with seeking by presentation timestamp.

    With a ``timeline`` (streams whose timestamps repeat or step back, see ``_timeline``), packets come stamped
    with their decode-timeline value as pts, and :meth:`seek` takes a keyframe's timeline value.

    Its packet iterators never raise: they end, with a warning, where FFmpeg cannot read on (damaged data, an I/O
    error), and ``error`` says why the latest one ended there (``None`` while it runs or where it ran to the end).
    """

    def __init__(
        self,
        source: Source,
        stream_index: int,
        container: InputContainer | None = None,
        timeline: PacketTimeline | None = None,
    ) -> None:
        self._source = source
        self._stream_index = stream_index
        self._timeline = timeline
        self.container = container if container is not None else open_container(source)
        self.stream = self.container.streams[stream_index]
        discard_other_streams(self.container, stream_index)
        self.raw = is_raw_stream(self.container)  # no timestamps to seek by: every seek restarts
        self.error: str | None = None

    def _packets(self) -> Iterator[av.Packet]:
        self.error = None
        packets = (
            pkt
            for pkt in demuxed(self.container, self.stream, self._damaged)
            if pkt.size != 0 and pkt.stream_index == self._stream_index
        )
        return packets if self._timeline is None else self._timeline.stamp(packets)

    def _damaged(self, exc: Exception) -> None:
        self._stopped(f"demuxing stopped at damaged data: {ffmpeg_reason(exc)}")

    def _stopped(self, reason: str) -> None:
        self.error = reason
        logger.warning("gpudecode: %s", reason)

    def seek(self, pts: int) -> Iterator[av.Packet]:
        """Seek to the keyframe at or before ``pts`` (stream time base); return the packets from there.

        A raw elementary stream has no timestamps to seek by: it restarts from its first packet.
        """
        if self.raw:
            return self.restart()
        if self._timeline is not None:
            pts = self._timeline.seek_pts.get(pts, pts)
        try:
            self.container.seek(int(pts), stream=self.stream, backward=True, any_frame=False)
        except (av.error.FFmpegError, OSError) as exc:
            logger.debug("gpudecode: seek to %d failed (%s); restarting from the first packet", pts, exc)
            return self.restart()
        return self._packets()

    def restart(self) -> Iterator[av.Packet]:
        """Return packets from the start of the stream (re-opens the container).

        Where the source cannot be opened again (a file deleted or a disk gone since), no packets come, the
        reason goes to ``error``, and the old container stays for a later try.
        """
        try:
            container = open_container(self._source)
        except MediaError as exc:
            cause = exc.__cause__
            self._stopped(f"could not open the source again: {ffmpeg_reason(cause) if cause else exc}")
            return iter(())
        self.container.close()
        self.container = container
        self.stream = self.container.streams[self._stream_index]
        discard_other_streams(self.container, self._stream_index)
        return self._packets()

    def close(self) -> None:
        """Close the container."""
        self.container.close()


def bit_depth(pix_fmt: str | None) -> int:
    """Bits per component of a pixel format (8 where unknown)."""
    if not pix_fmt:
        return 8
    try:
        return int(av.VideoFormat(pix_fmt).components[0].bits)
    except (ValueError, av.error.FFmpegError, IndexError):
        return 8


def stream_facts(container: InputContainer, stream: VideoStream) -> dict[str, Any]:
    """The container, stream and codec values the decoder derives its state from (JSON-serializable)."""
    cc = stream.codec_context
    rate = stream.average_rate or stream.guessed_rate
    tb = stream.time_base
    return {
        "stream_index": int(stream.index),
        "stream_id": int(stream.id),
        "time_base": [tb.numerator, tb.denominator] if tb else [1, 1],
        "codec": codec_name(cc),
        "pix_fmt": cc.pix_fmt or None,
        "width": int(cc.width),
        "height": int(cc.height),
        "colorspace": int(cc.colorspace),
        "color_range": int(cc.color_range),
        "color_primaries": int(cc.color_primaries),
        "color_trc": int(cc.color_trc),
        "has_b_frames": int(cc.has_b_frames or 0),
        "bit_rate": int(cc.bit_rate or container.bit_rate or 0) or None,
        "stream_duration": int(stream.duration) if stream.duration else None,
        "container_duration": int(container.duration) if container.duration else None,
        "frames": int(stream.frames) if stream.frames else None,
        "rate": [rate.numerator, rate.denominator] if rate else None,
        "start_time": int(stream.start_time) if stream.start_time is not None else None,
        "sample_aspect_ratio": [sar.numerator, sar.denominator] if (sar := stream.sample_aspect_ratio) else [0, 1],
    }
