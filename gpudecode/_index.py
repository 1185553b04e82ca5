"""Frame indexes: which frames a stream has, in presentation order, and where decoding must start for each.

An index is built once per decoder. ``exact`` indexes come from one pass over the stream's packets (no
decoding); for non-fragmented MP4/MOV files the pass reads FFmpeg's own sample index plus the ``ctts`` table
instead of demuxing every packet. ``approximate`` indexes trust the header (frame ``i`` at
``begin + i / fps``). All timestamps are integers in the stream's time base.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from gpudecode._container import discard_other_streams, is_raw_stream, raw_frame_duration
from gpudecode._errors import MediaError
from gpudecode._mp4 import Mp4Info

__all__ = ["FrameIndex", "build_exact_index", "load_index_file", "save_index_file", "INDEX_FORMAT_VERSION"]

logger = logging.getLogger("gpudecode")

INDEX_FORMAT_VERSION = 2  # 2: a BLAKE2b digest of the whole file closes it


@dataclass(frozen=True, eq=False)
class FrameIndex:
    """The exact frame index of one video stream.

    Attributes:
        time_base: The stream's time base (seconds per timestamp unit).
        pts: Presentation timestamps of the frames, ascending (frame ``i`` is ``pts[i]``), int64.
        duration: Duration of each frame (its packet's duration, or the gap to the next frame), int64.
        is_key: Whether frame ``i`` comes from a keyframe packet.
        key_pts: Presentation timestamps of the keyframe packets in decode order (discarded ones included:
            they are valid places to start decoding), int64.
        start_key: For frame ``i``, the position in ``key_pts`` of the keyframe decoding must start from.
        source_key: The content key of the file this index describes (see :func:`source_key`).
        stream_index: The stream this index describes.
        method: How it was built: ``"mp4-tables"`` or ``"packet-scan"`` (``"file"`` when loaded).
        facts: The stream facts (codec parameters, header values) the decoder derived its metadata from, when
            known; a decoder served from the index cache uses them instead of opening the file up front.
    """

    time_base: Fraction
    pts: np.ndarray
    duration: np.ndarray
    is_key: np.ndarray
    key_pts: np.ndarray
    start_key: np.ndarray
    source_key: str
    stream_index: int
    method: str = "packet-scan"
    facts: dict[str, Any] | None = None

    @property
    def num_frames(self) -> int:
        """Number of frames."""
        return int(self.pts.shape[0])

    @property
    def num_keyframes(self) -> int:
        """Number of keyframe packets (decode start points)."""
        return int(self.key_pts.shape[0])

    def begin_pts(self) -> int:
        """Presentation timestamp of the first frame."""
        return int(self.pts[0])

    def end_pts(self) -> int:
        """End of the last frame: the largest ``pts + duration``."""
        return int(np.max(self.pts + self.duration))


def _from_packets(
    pkt_pts: np.ndarray,
    pkt_dur: np.ndarray,
    pkt_key: np.ndarray,
    pkt_discard: np.ndarray,
    time_base: Fraction,
    source_key: str,
    stream_index: int,
    method: str,
) -> FrameIndex:
    """Assemble an index from per-packet arrays in decode order."""
    n = pkt_pts.shape[0]
    decode_pos = np.arange(n, dtype=np.int64)
    keep = ~pkt_discard
    order = np.argsort(pkt_pts[keep], kind="stable")
    pts = pkt_pts[keep][order]
    frame_pos = decode_pos[keep][order]
    dur = pkt_dur[keep][order].copy()
    if pts.shape[0] == 0:
        raise MediaError("The video stream has no decodable frames (every packet is empty or discarded).")
    gaps = np.diff(pts)
    missing = dur <= 0
    if missing.any():
        nominal = int(np.median(gaps[gaps > 0])) if (gaps > 0).any() else 1
        fill = np.append(gaps, nominal)
        fill = np.where(fill > 0, fill, nominal)
        dur = np.where(missing, fill, dur)
    key_positions = decode_pos[pkt_key]
    key_pts = pkt_pts[pkt_key]
    if key_positions.shape[0] == 0 or key_positions[0] != 0:
        # Streams that do not start with a keyframe: decoding can only start at the first packet.
        key_positions = np.concatenate([[0], key_positions])
        key_pts = np.concatenate([[pkt_pts[0]], key_pts])
    # The last keyframe at or before the frame's packet in decode order ...
    start = np.searchsorted(key_positions, frame_pos, side="right") - 1
    # ... stepping back over keyframes shown after the frame (leading pictures of an open GOP).
    for _ in range(8):
        later = (start > 0) & (key_pts[np.maximum(start, 0)] > pts)
        if not later.any():
            break
        start = np.where(later, start - 1, start)
    start = np.maximum(start, 0)
    is_key = np.zeros(pts.shape[0], dtype=bool)
    is_key[np.isin(frame_pos, key_positions)] = True
    return FrameIndex(
        time_base=time_base,
        pts=np.ascontiguousarray(pts, dtype=np.int64),
        duration=np.ascontiguousarray(dur, dtype=np.int64),
        is_key=is_key,
        key_pts=np.ascontiguousarray(key_pts, dtype=np.int64),
        start_key=np.ascontiguousarray(start, dtype=np.int64),
        source_key=source_key,
        stream_index=stream_index,
        method=method,
    )


def _scan_packets(container: Any, stream: Any) -> tuple[np.ndarray, ...]:
    """Demux every packet of ``stream`` once (no decoding); return pts, duration, key, discard arrays.

    A raw H.264/HEVC elementary stream has no timestamps: packet ``k`` (one picture each) gets ``k`` frame durations
    (the duration FFmpeg's parser derives from the SPS timing), the timestamps FFmpeg's CLI gives its frames, and
    only the first packet is a place to start decoding (the decoder numbers the pictures it outputs from there, see
    ``_backends._sequenced``).
    """
    pts_list: list[int] = []
    dur_list: list[int] = []
    key_list: list[bool] = []
    disc_list: list[bool] = []
    raw = is_raw_stream(container)
    raw_dur = 0
    discard_other_streams(container, stream.index)  # the container then serves this stream alone anyway
    demux = container.demux(stream)
    while True:
        try:
            pkt = next(demux)
        except StopIteration:
            break
        except (av.error.FFmpegError, OSError) as exc:  # damaged data (also ENOMEM from a damaged size field)
            logger.warning("gpudecode: stopped indexing at damaged data: %s", exc)
            break
        if pkt.size == 0 or pkt.stream_index != stream.index:
            continue
        ts = pkt.pts if pkt.pts is not None else pkt.dts
        if ts is None and raw:
            raw_dur = raw_dur or pkt.duration or raw_frame_duration(stream)  # the parser's, from the SPS timing
            ts = len(pts_list) * raw_dur
        elif ts is None:
            raise MediaError(
                "The video stream's packets carry no timestamps, so an exact index cannot be built. Use "
                "seek_mode='approximate' if the header gives a frame count or a duration."
            )
        pts_list.append(ts)
        dur_list.append(raw_dur if raw else (pkt.duration or 0))
        key_list.append(len(pts_list) == 1 if raw else pkt.is_keyframe)
        disc_list.append(pkt.is_discard)
    return (
        np.array(pts_list, dtype=np.int64),
        np.array(dur_list, dtype=np.int64),
        np.array(key_list, dtype=bool),
        np.array(disc_list, dtype=bool),
    )


def _expand(table: np.ndarray, n: int) -> np.ndarray | None:
    """Run-length table ``(count, value)`` to one value per sample; ``None`` unless it covers exactly ``n`` samples.

    A table covering more or fewer samples than the track has is damaged (FFmpeg then ignores the runs that
    overflow, so its packets no longer match the table): the caller falls back to a packet scan. Checking the sum
    first also keeps a damaged count (billions) from allocating.
    """
    counts = table[:, 0].astype(np.int64)
    if counts.shape[0] == 0 or (counts < 0).any() or int(counts.sum()) != n:
        return None
    return np.repeat(table[:, 1], counts)


def _from_mp4_tables(
    container: Any, stream: Any, info: Mp4Info, size_bytes: int | None
) -> tuple[np.ndarray, ...] | None:
    """Per-packet arrays from FFmpeg's sample index plus the ``ctts`` table, or ``None`` when unsafe."""
    if info.fragmented:
        return None
    track = info.track(stream.id)
    if track is None or track.stts is None or track.sample_count <= 0:
        return None
    entries = stream.index_entries
    n = len(entries)
    if n != track.sample_count:
        return None  # FFmpeg's edit-list handling added or removed entries: the tables no longer map 1:1.
    dts = np.empty(n, dtype=np.int64)
    flags = np.empty(n, dtype=np.int64)
    end = np.empty(n, dtype=np.int64)
    for i, e in enumerate(entries):
        dts[i] = e.timestamp
        flags[i] = e.flags
        end[i] = e.pos + e.size
    deltas = _expand(track.stts, n)
    if deltas is None or (n > 1 and not np.array_equal(np.diff(dts), deltas[:-1])):
        return None
    if track.ctts is not None:
        offsets = _expand(track.ctts, n)
        if offsets is None:
            return None
        neg = track.ctts[:-1, 1] if track.ctts.shape[0] > 1 else track.ctts[:0, 1]
        dts_shift = int(max(0, -int(neg.min()))) if neg.shape[0] else 0
        pts = dts + offsets + dts_shift
    else:
        pts = dts.copy()
    key = (flags & 1) != 0  # AVINDEX_KEYFRAME
    discard = (flags & 4) != 0  # AVINDEX_DISCARD_FRAME
    if size_bytes is not None:
        intact = end <= size_bytes
        if not intact.all():
            cut = int(np.argmin(intact))
            pts, deltas, key, discard = pts[:cut], deltas[:cut], key[:cut], discard[:cut]
            if cut == 0:
                return None
    return pts, deltas.astype(np.int64), key, discard


def _check_against_demux(container: Any, stream: Any, pts: np.ndarray, count: int = 6) -> bool:
    """Compare the first packets' pts with what the demuxer reports (cheap guard for the table path)."""
    seen: list[int] = []
    try:
        for pkt in container.demux(stream):
            if pkt.size == 0:
                continue
            seen.append(pkt.pts if pkt.pts is not None else pkt.dts)
            if len(seen) >= min(count, pts.shape[0]):
                break
    except (av.error.FFmpegError, OSError):
        return False
    return seen == [int(x) for x in pts[: len(seen)]]


def build_exact_index(
    open_stream: Callable[[], tuple[Any, Any]], mp4: Mp4Info | None, size_bytes: int | None, source_key: str
) -> FrameIndex:
    """Build the exact index of a video stream.

    ``open_stream`` returns a freshly opened ``(container, stream)`` pair each time it is called (the caller
    owns and closes the containers).
    Uses FFmpeg's sample index plus the ``ctts`` table for MP4/MOV files whose tables map one-to-one onto
    FFmpeg's index, and a single packet scan (no decoding) for everything else.

    Raises:
        MediaError: The stream has no frames, or no timestamps to index.
    """
    container, stream = open_stream()
    time_base = Fraction(stream.time_base.numerator, stream.time_base.denominator)
    if mp4 is not None:
        arrays = _from_mp4_tables(container, stream, mp4, size_bytes)
        if arrays is not None and _check_against_demux(container, stream, arrays[0]):
            return _from_packets(*arrays, time_base, source_key, stream.index, "mp4-tables")
        if arrays is not None:
            logger.debug("gpudecode: MP4 tables disagree with the demuxer; scanning packets instead")
            container, stream = open_stream()  # the check consumed packets: scan from a fresh start
    arrays = _scan_packets(container, stream)
    if arrays[0].shape[0] == 0:
        raise MediaError("The video stream has no packets: there is nothing to decode.")
    return _from_packets(*arrays, time_base, source_key, stream.index, "packet-scan")


# ---------------------------------------------------------------------------------------------------------
# Persistence


def source_key(mp4: Mp4Info | None, reader: Any, size_bytes: int | None) -> str:
    """Content key of a source for the index cache.

    For non-fragmented MP4/MOV files the key digests the whole ``moov`` box (every timestamp, flag and size the
    index is built from lives there) and the file size (truncation changes which samples exist). For any other
    file it digests the whole content. A changed file therefore never maps to a stale index.
    """
    h = hashlib.blake2b(digest_size=20)
    h.update(f"gpudecode-index-v{INDEX_FORMAT_VERSION};size={size_bytes};".encode())
    if mp4 is not None and not mp4.fragmented:
        h.update(b"moov:" + mp4.moov_digest(reader).encode())
        return h.hexdigest()
    reader.seek(0, io.SEEK_SET)
    while True:
        chunk = reader.read(1 << 20)
        if not chunk:
            break
        h.update(chunk)
    return h.hexdigest()


_MAGIC = b"GPUDECODE-INDEX\n"
_DIGEST_BYTES = 32
_ARRAYS = (("pts", "<i8"), ("duration", "<i8"), ("is_key", "|b1"), ("key_pts", "<i8"), ("start_key", "<i8"))


def save_index_file(index: FrameIndex, path: str | os.PathLike[str]) -> None:
    """Write ``index`` to ``path`` atomically.

    Format: a magic line, a little-endian uint32 header length, a JSON header (metadata and array lengths), the
    raw little-endian arrays, then a 32-byte BLAKE2b digest of everything before it (a damaged file must not give
    wrong frames). No pickles; loading is one ``read()`` and zero-copy views.
    """
    arrays = {name: np.ascontiguousarray(getattr(index, name), dtype=dt) for name, dt in _ARRAYS}
    meta = {
        "format_version": INDEX_FORMAT_VERSION,
        "time_base": [index.time_base.numerator, index.time_base.denominator],
        "source_key": index.source_key,
        "stream_index": index.stream_index,
        "method": index.method,
        "facts": index.facts,
        "lengths": {k: int(v.shape[0]) for k, v in arrays.items()},
    }
    header = json.dumps(meta).encode()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".gdidx")
    try:
        with os.fdopen(fd, "wb") as f:
            digest = hashlib.blake2b(digest_size=_DIGEST_BYTES)
            for part in (_MAGIC + len(header).to_bytes(4, "little") + header,
                         *(arrays[name].tobytes() for name, _ in _ARRAYS)):
                f.write(part)
                digest.update(part)
            f.write(digest.digest())
        os.chmod(tmp, 0o644)  # cache folders are often shared between users and jobs
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_index_file(path: str | os.PathLike[str]) -> FrameIndex:
    """Read an index written by :func:`save_index_file`.

    Raises:
        MediaError: The file is not a gpudecode index, has another format version, or is inconsistent.
        FileNotFoundError: ``path`` does not exist.
    """
    where = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        if not data.startswith(_MAGIC):
            raise ValueError("not a gpudecode index file")
        pos = len(_MAGIC)
        hlen = int.from_bytes(data[pos: pos + 4], "little")
        meta = json.loads(data[pos + 4: pos + 4 + hlen].decode())
        if not isinstance(meta, dict):
            raise ValueError("no header")
        if meta.get("format_version") != INDEX_FORMAT_VERSION:
            raise MediaError(
                f"Invalid index file {where!r} (format version {meta.get('format_version')}). "
                f"Supported version is {INDEX_FORMAT_VERSION}; rebuild it with save_index()."
            )
        body, digest = data[:-_DIGEST_BYTES], data[-_DIGEST_BYTES:]
        if len(data) < pos + 4 + hlen + _DIGEST_BYTES or \
                hashlib.blake2b(body, digest_size=_DIGEST_BYTES).digest() != digest:
            raise ValueError("damaged (its digest does not match its contents)")
        pos += 4 + hlen
        arrays = {}
        for name, dt in _ARRAYS:
            count = int(meta["lengths"][name])
            size = count * np.dtype(dt).itemsize
            if count < 0 or pos + size > len(body):
                raise ValueError("truncated")
            arrays[name] = np.frombuffer(body, dtype=dt, count=count, offset=pos)
            pos += size
        n = arrays["pts"].shape[0]
        n_keys = arrays["key_pts"].shape[0]
        tb_num, tb_den = (int(x) for x in meta["time_base"])
        if not (arrays["duration"].shape[0] == n == arrays["start_key"].shape[0] == arrays["is_key"].shape[0]) \
                or n == 0 or n_keys == 0 or tb_num <= 0 or tb_den <= 0 \
                or (arrays["start_key"] < 0).any() or (arrays["start_key"] >= n_keys).any():
            raise ValueError("inconsistent arrays")
        stream_index = int(meta["stream_index"])
        source = str(meta["source_key"])
        facts = meta.get("facts")
        if facts is not None and not isinstance(facts, dict):
            raise ValueError("bad stream facts")
    except MediaError:
        raise
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MediaError(f"Invalid index file {where!r}: {exc}. Pass a file written by save_index().") from exc
    return FrameIndex(
        time_base=Fraction(tb_num, tb_den),
        pts=arrays["pts"].astype(np.int64, copy=False),
        duration=arrays["duration"].astype(np.int64, copy=False),
        is_key=arrays["is_key"].astype(bool, copy=False),
        key_pts=arrays["key_pts"].astype(np.int64, copy=False),
        start_key=arrays["start_key"].astype(np.int64, copy=False),
        source_key=source,
        stream_index=stream_index,
        method="file",
        facts=facts,
    )
