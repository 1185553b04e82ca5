from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from media import SPECS, Spec, make_audio_only, make_video
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
    """video(name) -> path of the fixture video (media.SPECS or sizes.SIZE_SPECS), generated once per session.

    ``name@WxH`` is that fixture at another frame size (NVDEC takes HEVC from 144x144 and VP9 from 128x128 only).
    """

    def get(name: str) -> Path:
        if name not in _made:
            _made[name] = make_video(*_spec_and_path(name, media_dir))
        return _made[name]

    return get


def _spec_and_path(name: str, media_dir: Path) -> tuple[Spec, Path]:
    """The spec and file of fixture ``name`` (``base@WxH``: base resized)."""
    base, _, size = name.partition("@")
    spec = SPECS[base] if base in SPECS else SIZE_SPECS[base]
    if size:
        w, h = (int(v) for v in size.split("x"))
        spec = dataclasses.replace(spec, width=w, height=h)
    ext = {"matroska": "mkv", "webm": "webm", "avi": "avi"}.get(spec.container, spec.container)
    return spec, media_dir / f"{base}{'_' + size if size else ''}.{ext}"


@pytest.fixture(scope="session")
def audio_only(media_dir) -> Path:
    return make_audio_only(media_dir / "audio_only.mp4")
