from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from media import SPECS, make_audio_only, make_video


def _cuda_ok() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    require = os.environ.get("GPUDECODE_REQUIRE_GPU") == "1"
    if _cuda_ok():
        return
    for item in items:
        if "gpu" in item.keywords:
            if require:
                item.add_marker(pytest.mark.xfail(reason="GPUDECODE_REQUIRE_GPU=1 but no CUDA GPU", strict=True,
                                                  run=False))
                item.fixturenames  # noqa: B018
            else:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


_made: dict[str, Path] = {}


@pytest.fixture(scope="session")
def video(media_dir):
    """video(name) -> path of the fixture video, generated once per session."""

    def get(name: str) -> Path:
        if name not in _made:
            spec = SPECS[name]
            ext = {"matroska": "mkv", "webm": "webm", "avi": "avi"}.get(spec.container, spec.container)
            _made[name] = make_video(spec, media_dir / f"{name}.{ext}")
        return _made[name]

    return get


@pytest.fixture(scope="session")
def audio_only(media_dir) -> Path:
    return make_audio_only(media_dir / "audio_only.mp4")
