from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from media import SPECS, make_audio_only, make_video
from sizes import SIZE_SPECS


def _cuda_ok() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_runtest_setup(item):
    """``gpu`` tests skip without CUDA, but fail when GPUDECODE_REQUIRE_GPU=1 (a GPU run cannot silently skip)."""
    if "gpu" in item.keywords and not _cuda_ok():
        if os.environ.get("GPUDECODE_REQUIRE_GPU") == "1":
            pytest.fail("GPUDECODE_REQUIRE_GPU=1 but torch sees no CUDA GPU", pytrace=False)
        pytest.skip("needs a CUDA GPU (set GPUDECODE_REQUIRE_GPU=1 to make this a failure)")


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


_made: dict[str, Path] = {}


@pytest.fixture(scope="session")
def video(media_dir):
    """video(name) -> path of the fixture video (media.SPECS or sizes.SIZE_SPECS), generated once per session."""

    def get(name: str) -> Path:
        if name not in _made:
            spec = SPECS[name] if name in SPECS else SIZE_SPECS[name]
            ext = {"matroska": "mkv", "webm": "webm", "avi": "avi"}.get(spec.container, spec.container)
            _made[name] = make_video(spec, media_dir / f"{name}.{ext}")
        return _made[name]

    return get


@pytest.fixture(scope="session")
def audio_only(media_dir) -> Path:
    return make_audio_only(media_dir / "audio_only.mp4")
