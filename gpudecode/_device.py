"""Choosing where frames are decoded: NVDEC for CUDA devices when possible, else FFmpeg on the CPU."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from gpudecode._backends._cpu import CpuBackend
from gpudecode._color import ColorSpec
from gpudecode._errors import CudaUnavailableError, InvalidArgumentError

__all__ = ["FallbackReason", "parse_device", "select_backend"]

logger = logging.getLogger("gpudecode")
_warned: set[str] = set()


@dataclass(frozen=True)
class FallbackReason:
    """Why a CUDA decoder decodes on the CPU. Falsy when it does not (or when the device is the CPU).

    Attributes:
        reason: The explanation, or ``None`` when NVDEC is in use or the device is the CPU.
    """

    reason: str | None = None

    def __bool__(self) -> bool:
        return self.reason is not None

    def __str__(self) -> str:
        return self.reason or ""


def parse_device(device: str | torch.device | None) -> torch.device:
    """Normalize ``device`` to a ``torch.device`` of type ``cpu`` or ``cuda``.

    Raises:
        InvalidArgumentError: Any other value.
    """
    if device is None:
        return torch.device("cpu")
    try:
        dev = device if isinstance(device, torch.device) else torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"Invalid device ({device!r}). Supported values are: cpu, cuda, cuda:N, or a torch.device of "
            "those types."
        ) from exc
    if dev.type not in ("cpu", "cuda"):
        raise InvalidArgumentError(
            f"Invalid device ({device!r}). Supported values are: cpu, cuda, cuda:N, or a torch.device of "
            "those types."
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
    """Log a fallback reason at WARNING level, once per distinct reason per process."""
    if reason not in _warned:
        _warned.add(reason)
        logger.warning("gpudecode: decoding on the CPU instead of NVDEC: %s", reason)


def select_backend(
    device: torch.device, stream: Any, num_threads: int | None, bit_depth: int, color: ColorSpec
) -> tuple[Any, FallbackReason]:
    """Return ``(backend, fallback_reason)`` for frames wanted on ``device``.

    Raises:
        CudaUnavailableError: A CUDA device was requested, NVDEC cannot decode, and torch cannot put CPU frames
            on that device either.
    """
    if device.type == "cpu":
        return CpuBackend(stream, num_threads), FallbackReason()
    if _in_bad_fork():
        raise CudaUnavailableError(
            f"Cannot return frames on {device}: this process was forked after its parent initialized CUDA, and "
            "CUDA cannot be used in such a child. Start workers with the 'spawn' multiprocessing context "
            "(DataLoader(multiprocessing_context='spawn')), or decode with device='cpu' in forked workers."
        )
    from gpudecode._backends._nvdec import NvdecUnavailable, create_nvdec_backend

    try:
        backend = create_nvdec_backend(device, stream, bit_depth, color)
        return backend, FallbackReason()
    except NvdecUnavailable as exc:
        reason = str(exc)
    if not _torch_cuda_ok() or device.index is None or device.index >= torch.cuda.device_count():
        raise CudaUnavailableError(
            f"Cannot return frames on {device}: NVDEC is unavailable ({reason}) and torch has no such CUDA "
            "device for CPU-decoded frames. Use device='cpu', or install a CUDA build of torch and the "
            "'gpu' extra on a machine with an NVIDIA GPU."
        )
    warn_once(reason)
    return CpuBackend(stream, num_threads), FallbackReason(reason)
