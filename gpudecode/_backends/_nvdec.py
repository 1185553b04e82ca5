"""NVDEC backend (filled in by the GPU work; availability checks live here)."""

from __future__ import annotations

from typing import Any

import torch

from gpudecode._color import ColorSpec

__all__ = ["NvdecUnavailable", "create_nvdec_backend"]


class NvdecUnavailable(Exception):
    """NVDEC cannot decode this stream here; the message says why (it becomes ``cpu_fallback``)."""


def create_nvdec_backend(device: torch.device, stream: Any, bit_depth: int, color: ColorSpec) -> Any:
    """Create an NVDEC backend for ``stream`` on ``device``.

    Raises:
        NvdecUnavailable: With the reason NVDEC cannot be used.
    """
    raise NvdecUnavailable("the NVDEC backend is not built yet")
