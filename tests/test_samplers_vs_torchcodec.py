"""The samplers against torchcodec's, recorded: same arguments, same seed, the same frames or the same exception.

``tests/torchcodec_samplers.json`` holds what torchcodec 0.17's samplers returned for a grid of ~500 argument sets on
three fixtures (``tests/record_torchcodec_samplers.py`` makes it where torchcodec is installed): frame indices per
clip, or the builtin exception class raised. Both libraries draw from torch's global generator in the same way, so
with the same seed the clips must be the same frames.
"""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from record_torchcodec_samplers import relative

from gpudecode import VideoDecoder, samplers

RECORD = json.loads((Path(__file__).resolve().parent / "torchcodec_samplers.json").read_text())


@pytest.mark.parametrize("fixture", sorted(RECORD["frames"]))
def test_same_frames_or_same_error_as_torchcodec(video, fixture):
    dec = VideoDecoder(video(fixture))
    begin = dec.metadata.begin_stream_seconds
    frame_pts = dec.get_frames_in_range(0, len(dec)).pts_seconds.numpy()
    for (fn, kwargs), want in zip(RECORD["cases"], RECORD["frames"][fixture], strict=True):
        torch.manual_seed(RECORD["seed"])
        if isinstance(want, str):
            with pytest.raises(getattr(builtins, want)):
                getattr(samplers, fn)(dec, **relative(kwargs, begin))
            continue
        batch = getattr(samplers, fn)(dec, **relative(kwargs, begin))
        pts = batch.pts_seconds.numpy()
        got = np.abs(pts[..., None] - frame_pts).argmin(axis=-1)
        np.testing.assert_allclose(frame_pts[got], pts, atol=1e-9)
        assert got.tolist() == want, (fn, kwargs)
        assert batch.data.shape[:2] == pts.shape
