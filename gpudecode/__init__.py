"""gpudecode: video decoding for PyTorch on NVIDIA's hardware decoder (NVDEC), with an exact CPU fallback.

The API follows torchcodec's: ``VideoDecoder`` for frame access by index or time, ``samplers`` for clips.
"""

from gpudecode import samplers, transforms
from gpudecode._decoder import VideoDecoder
from gpudecode._device import CpuFallbackStatus, FallbackReason, set_nvdec_cache_size
from gpudecode._errors import (
    AllocationError,
    CudaUnavailableError,
    DecodeError,
    FrameIndexError,
    GpudecodeError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidDeviceError,
    MediaError,
    SourceNotFoundError,
    TimeOutOfRangeError,
    TransformSizeError,
    WorkerCrashError,
)
from gpudecode._frame import Frame, FrameBatch
from gpudecode._index import FrameIndex
from gpudecode._metadata import VideoStreamMetadata
from gpudecode._sample import sample_video_path

__version__ = "0.1.0"

__all__ = [
    "AllocationError",
    "CudaUnavailableError",
    "DecodeError",
    "CpuFallbackStatus",
    "FallbackReason",
    "Frame",
    "FrameBatch",
    "FrameIndex",
    "FrameIndexError",
    "GpudecodeError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "InvalidDeviceError",
    "MediaError",
    "SourceNotFoundError",
    "TimeOutOfRangeError",
    "TransformSizeError",
    "VideoDecoder",
    "VideoStreamMetadata",
    "WorkerCrashError",
    "__version__",
    "sample_video_path",
    "samplers",
    "set_nvdec_cache_size",
    "transforms",
]
