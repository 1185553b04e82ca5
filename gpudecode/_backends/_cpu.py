"""CPU backend: FFmpeg's decoders through PyAV, RGB through swscale."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import av
import numpy as np
import torch
from av.video.reformatter import Interpolation, VideoReformatter

from gpudecode._backends._swscale import direct_converter
from gpudecode._container import codec_name
from gpudecode._errors import DecodeError, ffmpeg_reason
from gpudecode._shaping import CpuShaper, OutputSpec

__all__ = ["CpuBackend"]

logger = logging.getLogger("gpudecode")


class CpuBackend:
    """Decodes with the stream's PyAV codec context; converts with swscale.

    Color conversion is bit-exact with ``ffmpeg -i X -vf format=rgb24`` run by the same FFmpeg build, at every
    frame size and bit depth: swscale reads the frame's matrix and range tags (an explicit range is passed, so
    ``yuv420p`` tagged full range is honored) and uses the CLI's default ``bicubic`` flags (they matter for odd
    sizes and for 10/12-bit input, where swscale interpolates chroma and dithers to 8 bits). swscale writes only
    into destinations laid out as FFmpeg lays out its frames (see :mod:`gpudecode._backends._swscale`).
    """

    name = "cpu"
    output_device_type = "cpu"  # convert_into writes into host arrays

    def __init__(self, stream: av.video.stream.VideoStream, num_threads: int | None) -> None:
        self._stream = stream
        cc = stream.codec_context
        # None: let FFmpeg choose (cores + 1 frame threads), which keeps the cores busy while this thread converts
        # (measured on 640x360 H.264, 2 cores: ~1,330 frames/s vs ~1,150 with 2 threads).
        self._threads = 0 if num_threads is None else int(num_threads)
        self._configure(cc)
        self._cc = cc
        # H.264/HEVC parameter sets sent in-band (say, a joined segment's, with another range) replace the header's
        # for good: flushing does not restore them, so a seek back would decode earlier pictures with the later
        # segment's. Frames whose format tags change mark the decoder for a fresh context at the next reset.
        self._watch_params = codec_name(cc) in ("h264", "hevc")
        self._header_tags = (cc.pix_fmt, int(cc.color_range), int(cc.colorspace))
        self._params_changed = False
        self._drained = False
        self._reformatter = VideoReformatter()  # caches its swscale context across frames
        self._direct = direct_converter()  # the same swscale, writing into the output (or via scratch)
        self._shaper: CpuShaper | None = None  # transforms / float output: made on first use
        self._skip = "DEFAULT"
        # Skipping unreferenced frames is safe where one packet is one picture (not VP9/AV1, whose packets may
        # carry hidden frames that later packets only display).
        self.skips_unwanted = codec_name(cc) in ("h264", "hevc")

    def _configure(self, cc: av.video.codeccontext.VideoCodecContext) -> None:
        cc.thread_count = max(0, self._threads)
        cc.thread_type = "AUTO" if self._threads != 1 else "SLICE"

    def reset(self) -> None:
        """Drop all decoder state (a fresh decoder when in-band parameter sets changed the stream's format)."""
        if self._params_changed:
            cc = av.CodecContext.create(self._cc.codec.name, "r")
            cc.extradata = self._stream.codec_context.extradata
            self._configure(cc)
            self._cc, self._skip = cc, "DEFAULT"
            self._params_changed = False
        elif self._cc.is_open:
            self._cc.flush_buffers()
        self._drained = False

    def set_threads(self, num_threads: int | None) -> bool:
        """Decode with ``num_threads`` threads (``None``: FFmpeg chooses) from the next reset; whether that changes.

        The decoder retries a run that lost frames with one thread: with frame threads, the error of a damaged
        packet surfaces at a later call (often the final drain), and PyAV then drops the frames still in flight.
        """
        threads = 0 if num_threads is None else int(num_threads)
        if threads == self._threads:
            return False
        self._threads = threads
        self._params_changed = True  # a fresh codec context at the next reset, configured with these threads
        return True

    def _check_tags(self, frames: Sequence[av.VideoFrame]) -> None:
        """Note a decoded frame whose format tags differ from the header's (H.264/HEVC; once is enough)."""
        if not self._watch_params or self._params_changed:
            return
        header = self._header_tags
        for f in frames:
            if (f.format.name, int(f.color_range), int(f.colorspace)) != header:
                self._params_changed = True

    def decode(self, packet: av.Packet, wanted: bool = True) -> Sequence[av.VideoFrame]:
        """Decode one packet; packets nobody asked for are decoded only if other frames reference them."""
        skip = "DEFAULT" if wanted or not self.skips_unwanted else "NONREF"
        if skip != self._skip:
            self._cc.skip_frame = skip
            self._skip = skip
        try:
            frames = self._cc.decode(packet)
        except av.error.EOFError:
            return ()
        except (av.error.FFmpegError, ValueError) as exc:
            raise DecodeError(f"FFmpeg could not decode a packet (pts {packet.pts}): {ffmpeg_reason(exc)}") from exc
        self._check_tags(frames)
        return frames

    def flush(self) -> Sequence[av.VideoFrame]:
        """Drain the decoder."""
        if self._drained or not self._cc.is_open:
            return ()
        self._drained = True
        try:
            frames = self._cc.decode(None)
        except av.error.EOFError:
            return ()
        except (av.error.FFmpegError, ValueError) as exc:
            raise DecodeError(f"FFmpeg failed while draining the decoder: {ffmpeg_reason(exc)}") from exc
        self._check_tags(frames)
        return frames

    def convert_into(self, frame: av.VideoFrame, out: np.ndarray) -> None:
        """Convert the frame into ``out`` (``(H, W, 3)`` uint8, any strides); nothing outside ``out`` is written.

        Raises:
            DecodeError: swscale cannot convert the frame.
        """
        if self._direct is not None and self._direct.convert_into(frame, out):
            return
        np.copyto(out, self._reformat(frame, "rgb24" if out.dtype == np.uint8 else "rgb48le"))

    def convert_shaped(self, frame: av.VideoFrame, spec: OutputSpec, out: np.ndarray) -> None:
        """Convert the frame (RGB48 for float output), rotate and transform it as ``spec`` says, into ``out``.

        Raises:
            DecodeError: swscale cannot convert the frame.
        """
        dtype = np.uint16 if spec.float32 else np.uint8
        rgb = self._direct.convert(frame, dtype) if self._direct is not None else None
        if rgb is None:
            rgb = self._reformat(frame, "rgb48le" if spec.float32 else "rgb24")
        if self._shaper is None:
            self._shaper = CpuShaper()
        self._shaper.write(rgb, spec, out)

    def close(self) -> None:
        """Free the swscale contexts."""
        if self._direct is not None:
            self._direct.close()
        if self._shaper is not None:
            self._shaper.close()

    def convert(self, frame: av.VideoFrame) -> torch.Tensor:
        """Return the frame as a new ``(H, W, 3)`` uint8 CPU tensor.

        Raises:
            DecodeError: swscale cannot convert the frame.
        """
        out = torch.empty((frame.height, frame.width, 3), dtype=torch.uint8)
        self.convert_into(frame, out.numpy())
        return out

    def _reformat(self, frame: av.VideoFrame, fmt: str) -> np.ndarray:
        """PyAV's reformatter (its own FFmpeg-allocated frame): for builds whose swscale ctypes cannot reach.

        Equal to the CLI's conversion on 8-bit input only: on 10/12-bit input it differs (up to 61 code values on a
        test pattern), so such builds are not bit-exact there.
        """
        try:
            rgb = self._reformatter.reformat(
                frame, format=fmt, src_color_range=frame.color_range, interpolation=Interpolation.BICUBIC
            )
            return rgb.to_ndarray()
        except (av.error.FFmpegError, ValueError) as exc:
            raise DecodeError(
                f"swscale could not convert a {frame.format.name} frame to RGB: {ffmpeg_reason(exc)}"
            ) from exc
