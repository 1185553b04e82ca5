"""A minimal reader of the MP4/MOV ``moov`` box: just what the fast exact index, rotation and cache keys need.

FFmpeg's mov demuxer already holds each sample's decode timestamp, keyframe and discard flags in its index
(``stream.index_entries``); what it does not expose is the composition offset table (``ctts``) that turns
decode timestamps into presentation timestamps, nor the track header's display matrix. This module reads
those tables with NumPy, without touching sample data.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import struct
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

__all__ = ["Mp4Track", "Mp4Info", "read_mp4_info"]

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}
_MAX_MOOV_BYTES = 512 * 1024 * 1024


@dataclass
class Mp4Track:
    """Tables of one ``trak`` box.

    Attributes:
        track_id: The track's id (FFmpeg's ``stream.id``).
        handler: Handler type, ``"vide"`` for video.
        rotation_degrees: Counter-clockwise rotation of the display matrix, as FFmpeg's
            ``av_display_rotation_get`` reports it (so ``VideoFrame.rotation`` agrees).
        sample_count: Number of samples (``stsz``).
        edit_count: Number of edit list entries.
        display_matrix: Whether ``tkhd`` holds a matrix other than the identity (FFmpeg then exports a display
            matrix, and a rotation is known).
    """

    track_id: int = 0
    handler: str = ""
    rotation_degrees: int = 0
    display_matrix: bool = False
    sample_count: int = -1
    edit_count: int = 0
    _raw: dict[str, tuple[memoryview, int, int]] = field(default_factory=dict, repr=False)

    @property
    def stts(self) -> np.ndarray | None:
        """``(count, delta)`` rows of the decoding time-to-sample table (parsed on first use)."""
        if "stts" not in self._raw:
            return None
        data, bs, be = self._raw["stts"]
        (n,) = struct.unpack_from(">I", data, bs + 4)
        if bs + 8 + 8 * n > be:
            return None
        return np.frombuffer(data, ">u4", 2 * n, bs + 8).reshape(n, 2).astype(np.int64)

    @property
    def ctts(self) -> np.ndarray | None:
        """``(count, offset)`` rows of the composition offset table, or ``None`` when absent (parsed on use)."""
        if "ctts" not in self._raw:
            return None
        data, bs, be = self._raw["ctts"]
        version = data[bs]
        (n,) = struct.unpack_from(">I", data, bs + 4)
        if bs + 8 + 8 * n > be:
            return None
        raw = np.frombuffer(data, ">i4", 2 * n, bs + 8).reshape(n, 2).astype(np.int64)
        if version == 0:
            raw[:, 1] = raw[:, 1] & 0xFFFFFFFF
            # Many muxers write negative offsets in version 0 boxes; FFmpeg reads them signed.
            raw[:, 1] = np.where(raw[:, 1] >= 2**31, raw[:, 1] - 2**32, raw[:, 1])
        raw[:, 0] = raw[:, 0] & 0xFFFFFFFF
        return raw


@dataclass
class Mp4Info:
    """What :func:`read_mp4_info` found.

    Attributes:
        moov_offset: Byte offset of the ``moov`` box.
        moov_size: Size of the ``moov`` box in bytes.
        fragmented: Whether the file uses movie fragments (its sample tables are then not all in ``moov``).
        tracks: The tracks, in file order.
    """

    moov_offset: int
    moov_size: int
    fragmented: bool
    tracks: list[Mp4Track] = field(default_factory=list)
    _moov: bytes | None = field(default=None, repr=False)
    _digest: str | None = field(default=None, repr=False)

    def moov_digest(self, f: BinaryIO) -> str:
        """BLAKE2b digest (hex) of the ``moov`` box (only the index cache needs it; computed once)."""
        if self._digest is None:
            if self._moov is not None:
                data = self._moov
            else:
                f.seek(self.moov_offset, io.SEEK_SET)
                data = f.read(self.moov_size)
            self._digest = hashlib.blake2b(data, digest_size=20).hexdigest()
        return self._digest

    def release(self) -> None:
        """Drop the ``moov`` bytes (the digest and parsed facts stay)."""
        self._moov = None
        for t in self.tracks:
            t._raw.clear()

    def track(self, track_id: int) -> Mp4Track | None:
        """Return the track with this id, or ``None``."""
        for t in self.tracks:
            if t.track_id == track_id:
                return t
        return None


def _box_header(head: bytes | memoryview, pos: int, avail: int, end: int | None) -> tuple[bytes, int, int] | None:
    """Parse the box header at ``head[pos:]`` (``avail`` bytes readable there); ``(kind, header_len, size)``.

    A size of 0 means "to the end" (``end``); returns ``None`` for a truncated or impossible header.
    """
    if avail < 8:
        return None
    size, kind = struct.unpack_from(">I4s", head, pos)
    header = 8
    if size == 1:
        if avail < 16:
            return None
        (size,) = struct.unpack_from(">Q", head, pos + 8)
        header = 16
    elif size == 0:
        if end is None:
            return None
        size = end - pos
    if size < header:
        return None
    return kind, header, size


def _boxes(data: memoryview, start: int, end: int):
    pos = start
    while pos + 8 <= end:
        box = _box_header(data, pos, end - pos, end)
        if box is None or pos + box[2] > end:
            return
        kind, header, size = box
        yield kind, pos + header, pos + size
        pos += size


def _file_boxes(f: BinaryIO, start: int, end: int):
    """Like :func:`_boxes`, reading only the 16-byte headers from the file."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos, io.SEEK_SET)
        head = f.read(16)
        box = _box_header(head, 0, len(head), end - pos)
        if box is None or pos + box[2] > end:
            return
        kind, header, size = box
        yield kind, pos + header, pos + size
        pos += size


_IDENTITY = (1 << 16, 0, 0, 0, 1 << 16, 0, 0, 0, 1 << 30)  # tkhd's unity matrix (16.16 and 2.30 fixed point)


def _rotation_from_matrix(data: memoryview, off: int) -> int:
    m = struct.unpack_from(">9i", data, off)
    a, b, c, d = m[0] / 65536.0, m[1] / 65536.0, m[3] / 65536.0, m[4] / 65536.0
    scale0, scale1 = math.hypot(a, c), math.hypot(b, d)
    if scale0 == 0 or scale1 == 0:
        return 0
    degrees = round(-math.degrees(math.atan2(b / scale1, a / scale0)))
    return 180 if degrees == -180 else degrees  # report (-180, 180]


def _parse_track(data: memoryview, start: int, end: int) -> Mp4Track:
    track = Mp4Track()

    def walk(s: int, e: int) -> None:
        for kind, bs, be in _boxes(data, s, e):
            if kind in _CONTAINERS:
                walk(bs, be)
            elif kind == b"tkhd":
                version = data[bs]
                if version == 1:
                    track.track_id = struct.unpack_from(">I", data, bs + 20)[0]
                    matrix_off = bs + 4 + 8 + 8 + 4 + 4 + 8 + 8 + 8
                else:
                    track.track_id = struct.unpack_from(">I", data, bs + 12)[0]
                    matrix_off = bs + 4 + 4 + 4 + 4 + 4 + 4 + 8 + 8
                if matrix_off + 36 <= be:
                    track.rotation_degrees = _rotation_from_matrix(data, matrix_off)
                    track.display_matrix = struct.unpack_from(">9i", data, matrix_off) != _IDENTITY
            elif kind == b"hdlr":
                track.handler = bytes(data[bs + 8 : bs + 12]).decode("latin-1")
            elif kind == b"stsz":
                _sample_size, count = struct.unpack_from(">II", data, bs + 4)
                track.sample_count = count
            elif kind == b"stz2":
                track.sample_count = struct.unpack_from(">I", data, bs + 8)[0]
            elif kind in (b"stts", b"ctts"):
                track._raw[kind.decode()] = (data, bs, be)
            elif kind == b"elst":
                track.edit_count = struct.unpack_from(">I", data, bs + 4)[0]

    walk(start, end)
    return track


def _light_tracks(f: BinaryIO, start: int, end: int) -> tuple[list[Mp4Track], bool]:
    """Track ids, handlers and rotations by walking box headers with small reads (no sample tables)."""
    tracks: list[Mp4Track] = []
    fragmented = False
    headers = functools.partial(_file_boxes, f)

    for kind, bs, be in headers(start, end):
        if kind == b"mvex":
            fragmented = True
        if kind != b"trak":
            continue
        small = bytearray()
        for k2, b2, e2 in headers(bs, be):
            if k2 == b"tkhd":
                f.seek(b2 - 8, io.SEEK_SET)
                small += f.read(min(e2 - b2 + 8, 128))
            elif k2 == b"mdia":
                for k3, b3, e3 in headers(b2, e2):
                    if k3 == b"hdlr":
                        f.seek(b3 - 8, io.SEEK_SET)
                        small += f.read(min(e3 - b3 + 8, 64))
        track = _parse_track(memoryview(bytes(small)), 0, len(small))
        tracks.append(track)
    return tracks, fragmented


def read_mp4_info(f: BinaryIO, size_bytes: int | None, tables: bool = True) -> Mp4Info | None:
    """Read the ``moov`` box of an MP4/MOV file; return ``None`` for other files or when it cannot be read.

    With ``tables=False`` only track ids, handlers and rotations are read, by walking box headers (a few small reads
    instead of the whole box, which holds every sample's tables: hundreds of kB for long videos).
    """
    try:
        f.seek(0, io.SEEK_SET)
        pos = 0
        moov: bytes | None = None
        fragmented = False
        seen_ftyp_like = False
        while True:
            f.seek(pos, io.SEEK_SET)
            head = f.read(16)
            box = _box_header(head, 0, len(head), None if size_bytes is None else size_bytes - pos)
            if box is None:
                break
            kind, header, size = box
            if pos == 0 and kind not in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"):
                return None
            seen_ftyp_like = True
            if kind == b"moov":
                if size > _MAX_MOOV_BYTES:
                    return None
                if not tables:
                    tracks, frag = _light_tracks(f, pos + header, pos + size)
                    return Mp4Info(moov_offset=pos, moov_size=size, fragmented=frag, tracks=tracks)
                f.seek(pos, io.SEEK_SET)
                moov = f.read(size)
                if len(moov) < size:
                    return None
                moov_pos = pos
            elif kind == b"moof":
                fragmented = True
                break
            pos += size
            if size_bytes is not None and pos >= size_bytes:
                break
        if moov is None or not seen_ftyp_like:
            return None
        data = memoryview(moov)
        info = Mp4Info(moov_offset=moov_pos, moov_size=len(moov), fragmented=fragmented, _moov=moov)
        for kind, bs, be in _boxes(data, 8, len(moov)):
            if kind == b"trak":
                info.tracks.append(_parse_track(data, bs, be))
            elif kind == b"mvex":
                info.fragmented = True
        return info
    except (OSError, ValueError, struct.error):
        return None
