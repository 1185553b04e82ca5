"""Clip samplers for training pipelines, following ``torchcodec.samplers``.

Every sampler decodes all frames of all clips in one planned batch (sorted, de-duplicated, each keyframe
interval decoded at most once) and returns one :class:`~gpudecode.FrameBatch` whose data is
``(num_clips, num_frames_per_clip, 3, H, W)`` (or ``(..., H, W, 3)`` for an NHWC decoder).

Random draws use torch's global RNG (``torch.manual_seed`` reproduces them) unless a ``generator`` is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from gpudecode._args import IntLike, SecondsLike, as_int, as_seconds
from gpudecode._decoder import VideoDecoder
from gpudecode._errors import InvalidArgumentError, InvalidArgumentTypeError, invalid_choice
from gpudecode._frame import FrameBatch

__all__ = [
    "clips_at_random_indices",
    "clips_at_random_timestamps",
    "clips_at_regular_indices",
    "clips_at_regular_timestamps",
]

POLICIES = ("repeat_last", "wrap", "error")


def _pad(values: list[Any], wanted: int, policy: str, clip: int, describe: Callable[[], str]) -> list[Any]:
    if len(values) >= wanted:
        return values
    if policy == "repeat_last":
        return values + [values[-1]] * (wanted - len(values))
    if policy == "wrap":
        return (values * (wanted // len(values) + 1))[:wanted]
    raise InvalidArgumentError(
        f"Invalid clip {clip}: with policy='error', {describe()} Supported clips end inside the video; leave "
        "sampling_range_end at its default, or use policy='repeat_last' or 'wrap'."
    )


def _to_clips(batch: FrameBatch, num_clips: int, per_clip: int) -> FrameBatch:
    tail = batch.data.shape[1:]
    return FrameBatch(
        data=batch.data.reshape(num_clips, per_clip, *tail),
        pts_seconds=batch.pts_seconds.reshape(num_clips, per_clip),
        duration_seconds=batch.duration_seconds.reshape(num_clips, per_clip),
    )


def _common(decoder: object, num_frames_per_clip: IntLike, policy: str) -> int:
    """Check the arguments every sampler has; return ``num_frames_per_clip`` as an ``int``."""
    if not isinstance(decoder, VideoDecoder):
        raise InvalidArgumentTypeError(
            f"Invalid decoder ({type(decoder).__name__}). Supported values are: a gpudecode.VideoDecoder."
        )
    per_clip = as_int(num_frames_per_clip, "num_frames_per_clip", 1)
    if policy not in POLICIES:
        raise invalid_choice("policy", policy, POLICIES)
    return per_clip


# -- index based -------------------------------------------------------------------------------------------
def _index_range(n: int, span: int, start: IntLike, end: IntLike | None) -> tuple[int, int]:
    start = as_int(start, "sampling_range_start")
    s = start + n if start < 0 else start
    if not 0 <= s < n:
        raise InvalidArgumentError(
            f"Invalid sampling_range_start ({start}). Supported values are -{n}..{n - 1} for a video of {n} frames."
        )
    if end is None:
        e = max(n - span + 1, 1)
        if s >= e:
            raise InvalidArgumentError(
                f"Invalid sampling range: clips of span {span} frames starting at or after "
                f"sampling_range_start ({s}) cannot fit in the video's {n} frames (the default "
                f"sampling_range_end is {e}). Pass a smaller sampling_range_start or an explicit "
                "sampling_range_end with a policy."
            )
        return s, e
    end = as_int(end, "sampling_range_end")
    e = min(end + n if end < 0 else end, n)  # past the end: clamped, as torchcodec does
    if e < 0:
        raise InvalidArgumentError(
            f"Invalid sampling_range_end ({end}). Supported values are >= -{n} for a video of {n} frames."
        )
    if s >= e:
        raise InvalidArgumentError(
            f"Invalid sampling range [{s}, {e}): it is empty. Supported ranges have "
            "sampling_range_start < sampling_range_end."
        )
    return s, e


def _index_sampler(
    kind: str,
    decoder: VideoDecoder,
    num_clips: IntLike,
    num_frames_per_clip: IntLike,
    num_indices_between_frames: IntLike,
    sampling_range_start: IntLike,
    sampling_range_end: IntLike | None,
    policy: str,
    generator: torch.Generator | None,
) -> FrameBatch:
    num_frames_per_clip = _common(decoder, num_frames_per_clip, policy)
    num_clips = as_int(num_clips, "num_clips", 1)
    num_indices_between_frames = as_int(num_indices_between_frames, "num_indices_between_frames", 1)
    n = len(decoder)
    span = num_indices_between_frames * (num_frames_per_clip - 1) + 1
    s, e = _index_range(n, span, sampling_range_start, sampling_range_end)
    if kind == "random":
        starts = torch.randint(s, e, (num_clips,), generator=generator).tolist()
    else:
        starts = torch.linspace(s, e - 1, steps=num_clips, dtype=torch.float64).floor().long().tolist()
    indices: list[int] = []
    for c, start in enumerate(starts):
        clip = list(range(start, min(start + span, n), num_indices_between_frames))
        indices += _pad(
            clip,
            num_frames_per_clip,
            policy,
            c,
            lambda c=clip, st=start: (
                f"it starts at frame {st} and needs {num_frames_per_clip} frames {num_indices_between_frames} apart, "
                f"but only {len(c)} fit before the end of the video ({n} frames)."
            ),
        )
    return _to_clips(decoder.get_frames_at(indices), num_clips, num_frames_per_clip)


def clips_at_random_indices(
    decoder: VideoDecoder,
    *,
    num_clips: int = 1,
    num_frames_per_clip: int = 1,
    num_indices_between_frames: int = 1,
    sampling_range_start: int = 0,
    sampling_range_end: int | None = None,
    policy: str = "repeat_last",
    generator: torch.Generator | None = None,
) -> FrameBatch:
    """Sample clips whose first frames are drawn uniformly at random.

    Args:
        decoder: The decoder to sample from.
        num_clips: Number of clips (>= 1).
        num_frames_per_clip: Frames per clip (>= 1).
        num_indices_between_frames: Index step between consecutive frames of a clip (1 = contiguous).
        sampling_range_start: First index a clip may start at (negative counts from the end).
        sampling_range_end: Clips start before this index (exclusive; negative counts from the end). ``None``:
            the last start at which a whole clip fits.
        policy: What fills clips that run past the end: ``"repeat_last"``, ``"wrap"``, or ``"error"``.
        generator: Optional ``torch.Generator`` for the draw (default: torch's global RNG).

    Returns:
        A :class:`FrameBatch` with data ``(num_clips, num_frames_per_clip, 3, H, W)`` (or NHWC) and pts/duration
        tensors ``(num_clips, num_frames_per_clip)``.

    Raises:
        InvalidArgumentError: Invalid counts, an empty or out-of-video range, or a clip that does not fit under
            policy ``"error"``.
    """
    return _index_sampler(
        "random",
        decoder,
        num_clips,
        num_frames_per_clip,
        num_indices_between_frames,
        sampling_range_start,
        sampling_range_end,
        policy,
        generator,
    )


def clips_at_regular_indices(
    decoder: VideoDecoder,
    *,
    num_clips: int = 1,
    num_frames_per_clip: int = 1,
    num_indices_between_frames: int = 1,
    sampling_range_start: int = 0,
    sampling_range_end: int | None = None,
    policy: str = "repeat_last",
) -> FrameBatch:
    """Sample clips whose first frames are evenly spaced over the sampling range (deterministic).

    Clip starts are ``linspace(start, end - 1, num_clips)`` rounded down, so asking for more clips than there are
    start positions repeats starts. Arguments, return value and errors are those of
    :func:`clips_at_random_indices`.
    """
    return _index_sampler(
        "regular",
        decoder,
        num_clips,
        num_frames_per_clip,
        num_indices_between_frames,
        sampling_range_start,
        sampling_range_end,
        policy,
        None,
    )


# -- time based --------------------------------------------------------------------------------------------
def _time_sampler(
    kind: str,
    decoder: VideoDecoder,
    num_clips: IntLike,
    seconds_between_clip_starts: SecondsLike | None,
    num_frames_per_clip: IntLike,
    seconds_between_frames: SecondsLike | None,
    sampling_range_start: SecondsLike | None,
    sampling_range_end: SecondsLike | None,
    policy: str,
    generator: torch.Generator | None,
) -> FrameBatch:
    num_frames_per_clip = _common(decoder, num_frames_per_clip, policy)
    m = decoder.metadata
    begin, end = m.begin_stream_seconds, m.end_stream_seconds
    if end is None or not m.average_fps:
        raise InvalidArgumentError(
            "Invalid decoder for time-based sampling: its metadata has no end time or "
            "frame rate. Use an index-based sampler."
        )
    if kind == "random":
        num_clips = as_int(num_clips, "num_clips", 1)
    else:
        gap = as_seconds(seconds_between_clip_starts, "seconds_between_clip_starts")
        if gap <= 0:
            raise InvalidArgumentError(
                f"Invalid seconds_between_clip_starts ({gap}). Supported values are: numbers > 0."
            )
    if seconds_between_frames is None:
        step = 1.0 / m.average_fps
    else:
        step = as_seconds(seconds_between_frames, "seconds_between_frames")
        if step <= 0:
            raise InvalidArgumentError(
                f"Invalid seconds_between_frames ({step}). Supported values are: numbers "
                "> 0, or None for one frame duration."
            )
    if sampling_range_start is None:
        s = begin
    else:
        s = as_seconds(sampling_range_start, "sampling_range_start")
        if not begin <= s < end:
            raise InvalidArgumentError(
                f"Invalid sampling_range_start ({s}). Supported values are in [{begin}, "
                f"{end}), the times the stream plays."
            )
    if sampling_range_end is None:
        e = end - (num_frames_per_clip - 1) * step
    else:
        e = as_seconds(sampling_range_end, "sampling_range_end")
        if not begin < e:
            raise InvalidArgumentError(
                f"Invalid sampling_range_end ({e}). Supported values are > {begin}, the "
                "stream's start (values past its end are clamped to it)."
            )
    if s >= e:
        raise InvalidArgumentError(
            f"Invalid sampling range [{s}, {e}): it is empty. Clips of {num_frames_per_clip} frames "
            f"{step:.6g} s apart need sampling_range_start < sampling_range_end; pass a smaller "
            "sampling_range_start or an explicit sampling_range_end with a policy."
        )
    e = min(e, end)
    if kind == "random":
        starts = (torch.rand(num_clips, generator=generator, dtype=torch.float64) * (e - s) + s).tolist()
    else:
        # arange can reach e itself through rounding (arange(2.4, 3.0, 0.3) ends at 3.0000000000000004): starts
        # stay strictly before the range's end, as in torchcodec
        starts = [x for x in torch.arange(s, e, gap, dtype=torch.float64).tolist() if x < e]
        num_clips = len(starts)
    times: list[float] = []
    for c, t0 in enumerate(starts):
        clip = [t for i in range(num_frames_per_clip) if (t := t0 + i * step) < end]
        times += _pad(
            clip,
            num_frames_per_clip,
            policy,
            c,
            lambda c=clip, t0=t0: (
                f"it starts at {t0:.6g} s and needs {num_frames_per_clip} frames {step:.6g} s apart, but only "
                f"{len(c)} fall before the end of the stream ({end:.6g} s)."
            ),
        )
    return _to_clips(decoder.get_frames_played_at(times), num_clips, num_frames_per_clip)


def clips_at_random_timestamps(
    decoder: VideoDecoder,
    *,
    num_clips: int = 1,
    num_frames_per_clip: int = 1,
    seconds_between_frames: float | None = None,
    sampling_range_start: float | None = None,
    sampling_range_end: float | None = None,
    policy: str = "repeat_last",
    generator: torch.Generator | None = None,
) -> FrameBatch:
    """Sample clips whose start times are drawn uniformly at random; frames are those played at each time.

    Args:
        decoder: The decoder to sample from.
        num_clips: Number of clips (>= 1).
        num_frames_per_clip: Frames per clip (>= 1).
        seconds_between_frames: Time between consecutive frames of a clip; ``None``: one average frame duration.
        sampling_range_start: Earliest clip start in seconds; ``None``: the stream's beginning.
        sampling_range_end: Clips start before this time (exclusive); ``None``: the last start at which every
            frame of the clip falls before the end of the stream.
        policy: What fills clips that run past the end: ``"repeat_last"``, ``"wrap"``, or ``"error"``.
        generator: Optional ``torch.Generator`` for the draw (default: torch's global RNG).

    Returns:
        A :class:`FrameBatch` shaped ``(num_clips, num_frames_per_clip, ...)``.

    Raises:
        InvalidArgumentError: Invalid counts, non-finite seconds, an empty or out-of-stream range, or a clip that
            does not fit under policy ``"error"``.
    """
    return _time_sampler(
        "random",
        decoder,
        num_clips,
        None,
        num_frames_per_clip,
        seconds_between_frames,
        sampling_range_start,
        sampling_range_end,
        policy,
        generator,
    )


def clips_at_regular_timestamps(
    decoder: VideoDecoder,
    *,
    seconds_between_clip_starts: float,
    num_frames_per_clip: int = 1,
    seconds_between_frames: float | None = None,
    sampling_range_start: float | None = None,
    sampling_range_end: float | None = None,
    policy: str = "repeat_last",
) -> FrameBatch:
    """Sample clips starting every ``seconds_between_clip_starts`` over the sampling range (deterministic).

    Other arguments, return value and errors are those of :func:`clips_at_random_timestamps`; the number of clips
    follows from the range and the spacing.
    """
    return _time_sampler(
        "regular",
        decoder,
        None,
        seconds_between_clip_starts,
        num_frames_per_clip,
        seconds_between_frames,
        sampling_range_start,
        sampling_range_end,
        policy,
        None,
    )
