"""Loading NVIDIA's PyNvVideoCodec and CuPy for the NVDEC backend, once per process and device.

Nothing here decodes: it imports the GPU dependencies (or says why they cannot be used) and, before the first
decoder of a process, lets a child process create one, since PyNvVideoCodec ends the whole process with ``exit(1)``
when the driver fails inside ``CreateDecoder``.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "Modules",
    "NvdecUnavailable",
    "TorchStreams",
    "forget_after_fork",
    "load_modules",
    "probe_decoder_creation",
]

logger = logging.getLogger("gpudecode")


class NvdecUnavailable(Exception):
    """NVDEC cannot decode this stream here; the message says why (it becomes ``cpu_fallback``)."""


@dataclass
class Modules:
    """The GPU dependencies, resolved lazily (tests inject fakes).

    Attributes:
        nvc: The ``PyNvVideoCodec`` module.
        convert: Callable launching the color kernel (``gpudecode._backends._kernels.Yuv420ToRgb`` or a fake).
        resample: Callable launching the fused shaping kernel (``Yuv420ToRgb.resample`` or a fake); ``None``: frames
            with transforms or float output are shaped with torch after ``convert``.
        cuda_ok: Whether torch can allocate on the device (``False`` lets tests run on the CPU).
    """

    nvc: Any
    convert: Callable[..., None]
    cuda_ok: bool = True
    resample: Callable[..., None] | None = None
    streams: Any = None  # stream operations (TorchStreams when None and cuda_ok; tests inject a recorder)


class TorchStreams:
    """The CUDA stream operations the backend needs, over torch (one shared decode stream per device)."""

    def decode(self, index: int) -> Any:
        """The non-default stream NVDEC and the kernels of device ``index`` work on."""
        return _decode_stream(index)

    def current(self, device: torch.device) -> Any:
        """The caller's current stream on ``device``."""
        return torch.cuda.current_stream(device)

    def handle(self, stream: Any) -> int:
        """The raw ``CUstream`` handle of ``stream``."""
        return int(stream.cuda_stream)

    def wait(self, waiter: Any, producer: Any) -> None:
        """Make ``waiter`` wait for the work queued on ``producer`` so far (an event; no host synchronization)."""
        waiter.wait_stream(producer)


_LOAD_FAILURES: dict[int, str] = {}  # per device: why the GPU dependencies cannot load (not retried)


def load_modules(device_index: int) -> Modules:
    if device_index in _LOAD_FAILURES:
        raise NvdecUnavailable(_LOAD_FAILURES[device_index])
    try:
        return _import_modules(device_index)
    except NvdecUnavailable as exc:
        _LOAD_FAILURES[device_index] = str(exc)
        raise


def _import_modules(device_index: int) -> Modules:
    if not torch.cuda.is_available():
        raise NvdecUnavailable("torch reports no CUDA device (CPU-only torch build, or no NVIDIA driver)")
    try:
        import cupy
    except ImportError as exc:
        raise NvdecUnavailable(f"CuPy is not installed ({exc}); install gpudecode[gpu]") from exc
    nvc_logger = logging.getLogger("PyNvVideoCodec")
    disabled = nvc_logger.disabled
    # Its import sets its own level to INFO and logs pages of troubleshooting; we report one line.
    nvc_logger.disabled = True
    try:
        import PyNvVideoCodec as nvc
    except ImportError as exc:
        raise NvdecUnavailable(f"PyNvVideoCodec is not installed ({exc}); install gpudecode[gpu]") from exc
    except (RuntimeError, OSError) as exc:  # no driver: it fails to load libnvidia-encode.so.1
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NvdecUnavailable(
            f"PyNvVideoCodec could not load the NVIDIA video driver ({first}); in containers "
            "set NVIDIA_DRIVER_CAPABILITIES=compute,utility,video"
        ) from exc
    finally:
        nvc_logger.disabled = disabled
    probe_decoder_creation(device_index)
    try:
        from gpudecode._backends._kernels import Yuv420ToRgb

        convert = Yuv420ToRgb(cupy, device_index)
    except Exception as exc:
        raise NvdecUnavailable(f"the CUDA color kernel could not be compiled: {exc}") from exc
    return Modules(nvc=nvc, convert=convert, resample=convert.resample)


_PROBE_CODE = (
    "import PyNvVideoCodec as n; n.CreateDecoder(gpuid={index}, codec=n.cudaVideoCodec.H264, "
    "usedevicememory=True, maxwidth=64, maxheight=64); print('gpudecode-probe-ok')"
)


def probe_decoder_creation(device_index: int, code: str | None = None, env: dict[str, str] | None = None) -> None:
    """Create one NVDEC decoder in a child process first (once per process and device).

    PyNvVideoCodec wraps the CUDA driver calls of ``CreateDecoder`` in a check that prints ``[FATAL]`` and calls
    ``exit(1)`` on failure; in the user's process that would end it without an exception. The child takes that
    fall instead, and its last line becomes the fallback reason.

    Args:
        device_index: The CUDA device.
        code: Python source the child runs (tests); it must print ``gpudecode-probe-ok`` on success.
        env: Environment of the child (tests); ``None`` inherits this process's.

    Raises:
        NvdecUnavailable: The child failed, with its exit status and last output line.
    """
    if code is None and device_index in _PROBED:
        return
    try:
        done = subprocess.run(
            [sys.executable, "-c", code or _PROBE_CODE.format(index=int(device_index))],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NvdecUnavailable(f"the NVDEC probe process could not run ({exc})") from exc
    if "gpudecode-probe-ok" not in done.stdout:
        lines = [ln.strip() for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        last = lines[-1] if lines else "no output"
        raise NvdecUnavailable(
            f"creating an NVDEC decoder failed in a probe process (exit status {done.returncode}): {last[:300]}"
        )
    if code is None:
        _PROBED.add(device_index)


_PROBED: set[int] = set()  # devices where a probe process created a decoder


# -- Annex B -------------------------------------------------------------------------------------------------


_DECODE_STREAMS: dict[int, Any] = {}


def _decode_stream(index: int) -> Any:
    """One non-default CUDA stream per device for NVDEC copies and our kernels (shared, so decoders are reused).

    Never the legacy default stream: PyNvVideoCodec may not accept handle 0, and a decoder working on a stream
    of its own would race our kernels for its surfaces.
    """
    stream = _DECODE_STREAMS.get(index)
    if stream is None:
        stream = torch.cuda.Stream(device=index)
        _DECODE_STREAMS[index] = stream
    return stream


def forget_after_fork() -> list[Any]:
    """In a forked child: forget the parent's CUDA streams and load failures; return what to keep referenced."""
    inherited: list[Any] = [dict(_DECODE_STREAMS)]
    _DECODE_STREAMS.clear()
    _LOAD_FAILURES.clear()
    return inherited
