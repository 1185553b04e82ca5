"""Index persistence: the content key of a source, and reading and writing index files (``save_index``)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from gpudecode._errors import MediaError
from gpudecode._index import FrameIndex
from gpudecode._mp4 import Mp4Info

__all__ = ["INDEX_FORMAT_VERSION", "load_index_file", "save_index_file", "source_key"]

INDEX_FORMAT_VERSION = 3  # 2: a BLAKE2b digest of the whole file closes it; 3: decode timeline (``_timeline``)


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
# Present only for streams whose timestamps do not identify their frames (all four or none).
_TIMELINE_ARRAYS = (("plan_pts", "<i8"), ("plan_key_pts", "<i8"), ("packet_pos", "<i8"), ("segment_starts", "<i8"))


def save_index_file(index: FrameIndex, path: str | os.PathLike[str]) -> None:
    """Write ``index`` to ``path`` atomically.

    Format: a magic line, a little-endian uint32 header length, a JSON header (metadata and array lengths), the
    raw little-endian arrays, then a 32-byte BLAKE2b digest of everything before it (a damaged file must not give
    wrong frames). No pickles; loading is one ``read()`` and zero-copy views.
    """
    layout = _ARRAYS + (_TIMELINE_ARRAYS if index.plan_pts is not None else ())
    arrays = {name: np.ascontiguousarray(getattr(index, name), dtype=dt) for name, dt in layout}
    meta = {
        "format_version": INDEX_FORMAT_VERSION,
        "time_base": [index.time_base.numerator, index.time_base.denominator],
        "source_key": index.source_key,
        "stream_index": index.stream_index,
        "method": index.method,
        "facts": index.facts,
        "plan_step": index.plan_step,
        "lengths": {k: int(v.shape[0]) for k, v in arrays.items()},
    }
    header = json.dumps(meta).encode()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".gdidx")
    try:
        with os.fdopen(fd, "wb") as f:
            digest = hashlib.blake2b(digest_size=_DIGEST_BYTES)
            for part in (
                _MAGIC + len(header).to_bytes(4, "little") + header,
                *(arrays[name].tobytes() for name, _ in layout),
            ):
                f.write(part)
                digest.update(part)
            f.write(digest.digest())
        os.chmod(tmp, 0o644)  # cache folders are often shared between users and jobs
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _header(data: bytes, where: str) -> tuple[dict[str, Any], int]:
    """The JSON header and where the arrays start; the digest checked.

    Raises:
        MediaError: Another format version.
        ValueError: Not an index file, or damaged.
    """
    if not data.startswith(_MAGIC):
        raise ValueError("not a gpudecode index file")
    pos = len(_MAGIC)
    hlen = int.from_bytes(data[pos : pos + 4], "little")
    meta = json.loads(data[pos + 4 : pos + 4 + hlen].decode())
    if not isinstance(meta, dict):
        raise ValueError("no header")
    if meta.get("format_version") != INDEX_FORMAT_VERSION:
        raise MediaError(
            f"Invalid index file {where!r} (format version {meta.get('format_version')}). "
            f"Supported version is {INDEX_FORMAT_VERSION}; rebuild it with save_index()."
        )
    body, digest = data[:-_DIGEST_BYTES], data[-_DIGEST_BYTES:]
    if (
        len(data) < pos + 4 + hlen + _DIGEST_BYTES
        or hashlib.blake2b(body, digest_size=_DIGEST_BYTES).digest() != digest
    ):
        raise ValueError("damaged (its digest does not match its contents)")
    return meta, pos + 4 + hlen


def _arrays(body: bytes, meta: dict[str, Any], pos: int) -> dict[str, np.ndarray]:
    """The index's arrays, checked for consistency.

    Raises:
        ValueError: Truncated or inconsistent arrays.
    """
    arrays = {}
    layout = _ARRAYS + (_TIMELINE_ARRAYS if "plan_pts" in meta["lengths"] else ())
    for name, dt in layout:
        count = int(meta["lengths"][name])
        size = count * np.dtype(dt).itemsize
        if count < 0 or pos + size > len(body):
            raise ValueError("truncated")
        arrays[name] = np.frombuffer(body, dtype=dt, count=count, offset=pos)
        pos += size
    n = arrays["pts"].shape[0]
    n_keys = arrays["key_pts"].shape[0]
    if (
        not (arrays["duration"].shape[0] == n == arrays["start_key"].shape[0] == arrays["is_key"].shape[0])
        or n == 0
        or n_keys == 0
        or (arrays["start_key"] < 0).any()
        or (arrays["start_key"] >= n_keys).any()
    ):
        raise ValueError("inconsistent arrays")
    if "plan_pts" in arrays and not (arrays["plan_pts"].shape[0] == n and arrays["plan_key_pts"].shape[0] == n_keys):
        raise ValueError("inconsistent decode timeline")
    return arrays


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
        meta, pos = _header(data, where)
        arrays = _arrays(data[:-_DIGEST_BYTES], meta, pos)
        tb_num, tb_den = (int(x) for x in meta["time_base"])
        if tb_num <= 0 or tb_den <= 0:
            raise ValueError("inconsistent arrays")
        stream_index = int(meta["stream_index"])
        source = str(meta["source_key"])
        plan_step = int(meta.get("plan_step", 1))
        facts = meta.get("facts")
        if facts is not None and not isinstance(facts, dict):
            raise ValueError("bad stream facts")
    except MediaError:
        raise
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MediaError(f"Invalid index file {where!r}: {exc}. Pass a file written by save_index().") from exc
    timeline = {name: arrays[name].astype(np.int64, copy=False) for name, _ in _TIMELINE_ARRAYS if name in arrays}
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
        plan_step=plan_step,
        **timeline,
    )
