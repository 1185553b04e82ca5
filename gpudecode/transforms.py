"""Decode-time transforms, as torchcodec's ``torchcodec.transforms``: ``VideoDecoder(..., transforms=[...])``.

The decoder applies them, in order, to every frame it returns: after the colour conversion and the rotation the
container asks for (so sizes are those of the upright frame, :attr:`VideoStreamMetadata.height` and ``.width``),
before the output dtype. On the CPU they are FFmpeg's own: a frame equals ``ffmpeg -i X -vf
format=rgb24,scale=W:H:flags=bilinear,crop=w:h:x:y`` (``format=rgb48le`` and / 65535 for
``output_dtype=torch.float32``), bit for bit, which is also what torchcodec computes.

The matching ``torchvision.transforms.v2`` objects are accepted where torchcodec accepts them: ``Resize`` (bilinear,
antialiased, an explicit ``(height, width)``), ``CenterCrop`` and ``RandomCrop`` (no padding). ``Normalize``
(per-channel mean and std on float output, last) is gpudecode's own.
"""

from gpudecode._transforms import CenterCrop, DecoderTransform, Normalize, RandomCrop, Resize

__all__ = ["CenterCrop", "DecoderTransform", "Normalize", "RandomCrop", "Resize"]
