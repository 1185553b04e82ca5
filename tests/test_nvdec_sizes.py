"""The NVDEC path at real-world frame sizes: the frame-size matrix (``sizes.SIZE_SPECS``) through the NVDEC backend.

Over the fake PyNvVideoCodec (a real FFmpeg decoder behind NVDEC's API, surfaces with a padded pitch) and the colour
kernel run on the host, every frame must be within 1 code value of the nearest-chroma float conversion of the
decoded planes (``oracle.nearest_chroma_reference``, independent of our kernel): YouTube's ladder, portraits,
widths that are not a multiple of 16 or 64, odd sizes, 8/10/12-bit, full range. Sizes below NVDEC's smallest frame
(``fake_nvc.MINIMUM_SIZE``, as an H200 reported it) and MPEG-4 Part 2 stay on the CPU and are left out here;
``tests/test_gpu.py`` runs the same matrix on a real GPU.
"""

from __future__ import annotations

import pytest
from fake_nvc import MINIMUM_SIZE, make_module
from oracle import assert_matches_nearest_chroma
from sizes import SIZE_SPECS
from test_nvdec import nvdec_decoder

FAKE_CODECS = {"libx264": "H264", "libx265": "HEVC", "libvpx-vp9": "VP9", "libvpx": "VP8", "libsvtav1": "AV1"}
FAKE_CODECS["mpeg2video"] = "MPEG2"


def nvdec_sizes() -> list[str]:
    """The matrix's clips NVDEC takes: a codec it decodes, at or above its smallest frame."""
    out = []
    for name, spec in sorted(SIZE_SPECS.items()):
        codec = FAKE_CODECS.get(spec.codec)
        low = MINIMUM_SIZE.get(codec, (48, 16))
        if codec and spec.width >= low[0] and spec.height >= low[1]:
            out.append(name)
    return out


NVDEC_SIZES = nvdec_sizes()


def test_the_matrix_has_real_world_sizes_for_every_nvdec_codec():
    codecs = {SIZE_SPECS[n].codec for n in NVDEC_SIZES}
    assert codecs == set(FAKE_CODECS), codecs
    assert {"h264_854x480", "h264_1366x768", "hevc_10bit_1366x768", "vp9_321x241", "av1_10bit_321x241"} <= set(
        NVDEC_SIZES
    )


@pytest.mark.parametrize("name", NVDEC_SIZES)
def test_every_frame_matches_the_nearest_chroma_reference(video, name):
    path = video(name)
    gpu, _ = nvdec_decoder(path, nvc=make_module(), dimension_order="NHWC")
    assert gpu._session.pipe.backend.name.startswith("nvdec")
    n = len(gpu)
    spec = SIZE_SPECS[name]
    for batch in (gpu.get_frames_in_range(0, n), gpu.get_frames_at([n - 1, 0, n // 2])):
        assert batch.data.shape[1:] == (spec.height, spec.width, 3)
        assert_matches_nearest_chroma(str(path), batch.data.numpy(), batch.pts_seconds.tolist())
