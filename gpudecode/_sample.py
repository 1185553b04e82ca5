"""The sample video shipped inside the package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["sample_video_path"]


def sample_video_path() -> Path:
    """Return the path of the bundled sample video (H.264 in MP4, 320x180, 25 fps, 4 s, made by gpudecode).

    Returns:
        A path usable as a ``VideoDecoder`` source.
    """
    return Path(str(resources.files("gpudecode") / "assets" / "sample.mp4"))
