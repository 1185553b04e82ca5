"""Choosing where frames are decoded: NVDEC for CUDA devices when possible, else FFmpeg on the CPU."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import torch
from av.video.stream import VideoStream

from gpudecode._args import as_int
from gpudecode._backends._base import Backend
from gpudecode._backends._cpu import CpuBackend
from gpudecode._backends._sequenced import SequencedFrames
from gpudecode._color import ColorSpec
from gpudecode._errors import CudaUnavailableError, InvalidDeviceError

__all__ = [
    "CpuFallbackStatus",
    "FallbackReason",
    "cpu_backend",
    "cpu_backend_instead",
    "parse_device",
    "select_backend",
    "select_raw_stream_backend",
    "set_nvdec_cache_size",
]

logger = logging.getLogger("gpudecode")
_warned: set[str] = set()
_FRAME_SIZE = re.compile(r"^\d+x\d+ (?=is below|exceeds)")


@dataclass(frozen=True)
class CpuFallbackStatus:
    """Whether, and why, frames for a CUDA device are decoded on the CPU; behaves like torchcodec's object.

    Truthy only when a fallback happened; ``str()`` reads like torchcodec's
    (``[CUDA] Fallback status: Falling back due to: ...``, ``[CPU] Fallback status: No fallback required``) and keeps
    gpudecode's reason.

    Attributes:
        reason: Why NVDEC is not used, or ``None`` when it is (or when the device is the CPU).
        backend: ``"CUDA"`` for a CUDA device, ``"CPU"`` for the CPU (the label torchcodec prints).
        status_known: Always ``True``: gpudecode decides when the decoder opens.
    """

    reason: str | None = None
    backend: str = "CPU"
    status_known: bool = True

    def __bool__(self) -> bool:
        return self.status_known and self.reason is not None

    def __str__(self) -> str:
        if self.reason is None:
            return f"[{self.backend}] Fallback status: No fallback required"
        return f"[{self.backend}] Fallback status: Falling back due to: {self.reason}"


FallbackReason = CpuFallbackStatus  # the name gpudecode 0.1 used


def parse_device(device: str | torch.device | None) -> torch.device:
    """Normalize ``device`` to a ``torch.device`` of type ``cpu`` or ``cuda``.

    Raises:
        InvalidDeviceError: Any other value (also a ``RuntimeError``, as in torchcodec).
    """
    if device is None:
        return torch.device("cpu")
    try:
        dev = device if isinstance(device, torch.device) else torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InvalidDeviceError(
            f"Invalid device ({device!r}). Supported values are: cpu, cuda, cuda:N, or a torch.device of those types."
        ) from exc
    if dev.type not in ("cpu", "cuda"):
        raise InvalidDeviceError(
            f"Invalid device ({device!r}). Supported values are: cpu, cuda, cuda:N, or a torch.device of those types."
        )
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device() if _torch_cuda_ok() and not _in_bad_fork() else 0)
    return dev


def _torch_cuda_ok() -> bool:
    try:
        return bool(torch.cuda.is_available())
    except Exception:
        return False


def _in_bad_fork() -> bool:
    """True in a child forked after the parent initialized CUDA: no CUDA call can work here."""
    probe = getattr(torch.cuda, "_is_in_bad_fork", None)
    try:
        return bool(probe()) if probe is not None else False
    except Exception:
        return False


def warn_once(reason: str) -> None:
    """Log a fallback reason at WARNING level, once per distinct reason per process.

    Reasons that differ only in the stream's frame size ("96x64 is below this GPU's NVDEC minimum ...") count as one,
    so a dataset of small videos of many sizes is said once per codec, not once per size (``cpu_fallback`` keeps the
    size).
    """
    key = _FRAME_SIZE.sub("<size> ", reason)
    if key not in _warned:
        _warned.add(key)
        logger.warning("gpudecode: decoding on the CPU instead of NVDEC: %s", reason)


def cpu_backend(stream: VideoStream, num_threads: int | None) -> Backend:
    """FFmpeg's decoder for ``stream`` on the CPU (``num_threads``: ``None`` lets FFmpeg choose)."""
    return CpuBackend(stream, num_threads)


def set_nvdec_cache_size(max_idle: int) -> None:
    """Bound the idle NVDEC decoders kept for reuse across ``VideoDecoder`` objects (process-wide).

    A closed decoder's NVDEC session is kept idle and handed to the next decoder of a stream with the same codec,
    bit depth and size class, which saves the session's creation (milliseconds) for servers decoding many short
    videos; each idle session holds GPU memory. The default is ``$GPUDECODE_NVDEC_CACHE_SIZE``, else 16; 0 keeps
    none. Lowering the bound releases the least recently used sessions at once.

    Args:
        max_idle: Most idle decoders kept (an integer >= 0).

    Raises:
        InvalidArgumentError: ``max_idle`` is not an integer >= 0.
    """
    size = as_int(max_idle, "max_idle", minimum=0)
    from gpudecode._backends._nvdec import decoder_cache

    decoder_cache.resize(size)


def select_backend(
    device: torch.device, stream: VideoStream, num_threads: int | None, bit_depth: int, color: ColorSpec
) -> tuple[Backend, CpuFallbackStatus]:
    """Return ``(backend, fallback_reason)`` for frames wanted on ``device``.

    Raises:
        CudaUnavailableError: A CUDA device was requested, NVDEC cannot decode, and torch cannot put CPU frames
            on that device either.
    """
    if device.type == "cpu":
        return cpu_backend(stream, num_threads), CpuFallbackStatus()
    if _in_bad_fork():
        raise CudaUnavailableError(
            f"Cannot return frames on {device}: this process was forked after its parent initialized CUDA, and "
            "CUDA cannot be used in such a child. Start workers with the 'spawn' multiprocessing context "
            "(DataLoader(multiprocessing_context='spawn')), or decode with device='cpu' in forked workers."
        )
    from gpudecode._backends._nvdec import NvdecUnavailable, create_nvdec_backend

    try:
        backend = create_nvdec_backend(device, stream, bit_depth, color)
        return backend, CpuFallbackStatus(backend="CUDA")
    except NvdecUnavailable as exc:
        reason = str(exc)
    return _cpu_for_cuda(device, cpu_backend(stream, num_threads), reason)


def _cpu_for_cuda(device: torch.device, backend: Backend, reason: str) -> tuple[Backend, CpuFallbackStatus]:
    """Frames for ``device`` decoded by ``backend`` on the CPU (then moved), with the reason; said once.

    Raises:
        CudaUnavailableError: torch cannot put CPU frames on ``device`` either.
    """
    if not _torch_cuda_ok() or device.index is None or device.index >= torch.cuda.device_count():
        raise CudaUnavailableError(
            f"Cannot return frames on {device}: NVDEC is unavailable ({reason}) and torch has no such CUDA "
            "device for CPU-decoded frames. Use device='cpu', or install a CUDA build of torch and the "
            "'gpu' extra on a machine with an NVIDIA GPU."
        )
    warn_once(reason)
    return backend, CpuFallbackStatus(reason, backend="CUDA")


def cpu_backend_instead(
    device: torch.device, stream: VideoStream, num_threads: int | None, reason: str
) -> tuple[Backend, CpuFallbackStatus]:
    """The CPU backend that takes over when NVDEC refuses a stream mid-decode, with the reason (said once).

    Raises:
        CudaUnavailableError: torch cannot put CPU frames on ``device``.
    """
    backend = cpu_backend(stream, num_threads)
    if device.type == "cpu":  # NVDEC on a CPU device only happens with injected test modules
        warn_once(reason)
        return backend, CpuFallbackStatus(reason, backend="CUDA")
    return _cpu_for_cuda(device, backend, reason)


def select_raw_stream_backend(
    device: torch.device, stream: VideoStream, num_threads: int | None, frame_duration: int
) -> tuple[Backend, CpuFallbackStatus]:
    """The backend for a raw H.264/HEVC elementary stream: FFmpeg on the CPU, numbering the frames it outputs.

    Raises:
        CudaUnavailableError: A CUDA device was requested and torch cannot put frames there.
    """
    backend = SequencedFrames(cpu_backend(stream, num_threads), frame_duration)
    if device.type == "cpu":
        return backend, CpuFallbackStatus()
    return _cpu_for_cuda(
        device,
        backend,
        "a raw H.264/HEVC elementary stream has no timestamps for NVDEC's "
        "decoder to carry; FFmpeg decodes it on the CPU",
    )
