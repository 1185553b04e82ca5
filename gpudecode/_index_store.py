"""Where a decoder's exact index comes from and goes: an index file, the index cache, or one scan of the packets.

The cache directory is an argument (``VideoDecoder(index_cache_dir=...)``); the ``GPUDECODE_INDEX_CACHE`` environment
variable only supplies its default. Cache entries are keyed by the source's content (:func:`source_key`), one per
stream plus a ``best`` alias for ``stream_index=None``, and hold the stream facts the metadata derives from, so a
decoder can be served from the cache without opening the file.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

from av.container import InputContainer
from av.video.stream import VideoStream

from gpudecode._container import open_container
from gpudecode._errors import MediaError
from gpudecode._index import FrameIndex, build_exact_index
from gpudecode._index_file import load_index_file, save_index_file, source_key
from gpudecode._mp4 import Mp4Info, read_mp4_info
from gpudecode._source import Source

__all__ = ["INDEX_CACHE_ENV", "IndexStore", "cache_dir_default"]

logger = logging.getLogger("gpudecode")

INDEX_CACHE_ENV = "GPUDECODE_INDEX_CACHE"


def cache_dir_default(cache_dir: str | os.PathLike[str] | None) -> str | None:
    """The index cache directory: the argument, else ``$GPUDECODE_INDEX_CACHE``, else none (no cache)."""
    if cache_dir is not None:
        return os.fspath(cache_dir)
    return os.environ.get(INDEX_CACHE_ENV) or None


class IndexStore:
    """Loads, builds, checks and saves the exact index of one source; owns its MP4 box facts and content key.

    Args:
        source: The decoder's source.
        cache_dir: The index cache directory, or ``None`` for no cache.
    """

    def __init__(self, source: Source, cache_dir: str | None) -> None:
        self.source = source
        self.cache_dir = cache_dir
        self.mp4: Mp4Info | None = None
        self._key: str | None = None

    def read_mp4(self, tables: bool) -> None:
        """Read the MP4 ``moov`` facts once (``tables``: the sample tables too, which the index is built from)."""
        if self.mp4 is None:
            with self.source.reader() as reader:
                self.mp4 = read_mp4_info(reader, self.source.size_bytes, tables=tables)

    def source_key(self) -> str:
        """The source's content key (computed once)."""
        if self._key is None:
            with self.source.reader() as reader:
                self._key = source_key(self.mp4, reader, self.source.size_bytes)
        return self._key

    def _entry(self, stream_index: int | None) -> Path:
        """Path of a cached index: one entry per stream, and a ``best`` alias for ``stream_index=None``."""
        assert self.cache_dir is not None
        return Path(self.cache_dir) / f"{self.source_key()}-s{'best' if stream_index is None else stream_index}.gdidx"

    def cached(self, stream_index: int | None) -> FrameIndex | None:
        """The cache's index for ``stream_index``, with the stream facts to open without the file; else ``None``."""
        if self.cache_dir is None:
            return None
        with self.source.reader() as reader:
            self.mp4 = read_mp4_info(reader, self.source.size_bytes)
            self._key = source_key(self.mp4, reader, self.source.size_bytes)
        path = self._entry(stream_index)
        if not path.exists():
            return None
        try:
            idx = load_index_file(path)
        except (MediaError, OSError) as exc:
            logger.warning("gpudecode: ignoring unusable cached index %s: %s", path, exc)
            return None
        if (
            not idx.facts
            or idx.source_key != self._key
            or (stream_index is not None and idx.stream_index != stream_index)
        ):
            return None
        return idx

    def index_for(
        self,
        container: InputContainer,
        stream: VideoStream,
        index_path: str | os.PathLike[str] | None,
        time_base: Fraction,
        facts: dict[str, Any],
        best: bool,
    ) -> FrameIndex:
        """The exact index of ``stream``: from ``index_path``, else the cache, else one scan (then cached).

        Raises:
            MediaError: The index file or cache entry is for another file or stream, or the stream cannot be indexed.
        """
        if index_path is not None:
            idx = load_index_file(index_path)
            self._check(idx, stream, time_base, f"index file {os.fspath(index_path)!r}")
            return idx
        if self.cache_dir is not None and self._entry(stream.index).exists():
            try:
                idx = load_index_file(self._entry(stream.index))
                self._check(idx, stream, time_base, "cached index")
                return idx
            except (MediaError, OSError) as exc:
                logger.warning("gpudecode: ignoring unusable cached index %s: %s", self._entry(stream.index), exc)
        idx = self._scan(container, stream)
        if self.cache_dir is not None:
            idx = self.with_key(idx, facts)
            try:
                save_index_file(idx, self._entry(stream.index))
                if best:  # also reachable without naming the stream, so stream_index=None is served lazily
                    save_index_file(idx, self._entry(None))
            except OSError as exc:
                logger.warning("gpudecode: could not write the index cache %s: %s", self._entry(stream.index), exc)
        return idx

    def _scan(self, container: InputContainer, stream: VideoStream) -> FrameIndex:
        """Build the index from the packets; the builder may open the source again (closed when it is done)."""
        extra: list[InputContainer] = []
        used = [False]

        def open_stream() -> tuple[InputContainer, VideoStream]:
            if not used[0]:
                used[0] = True
                return container, stream
            c = open_container(self.source)
            extra.append(c)
            return c, c.streams[stream.index]

        try:
            return build_exact_index(
                open_stream, self.mp4, self.source.size_bytes, self._key if self._key is not None else ""
            )
        finally:
            for c in extra:
                c.close()

    def _check(self, idx: FrameIndex, stream: VideoStream, time_base: Fraction, what: str) -> None:
        if idx.source_key != self.source_key() or idx.stream_index != stream.index or idx.time_base != time_base:
            raise MediaError(
                f"The {what} was built for a different file or stream. Rebuild it with save_index() on this source."
            )

    def with_key(self, idx: FrameIndex, facts: dict[str, Any] | None = None) -> FrameIndex:
        """``idx`` carrying this source's key (and ``facts``), as written to index files."""
        key = self.source_key()
        if idx.source_key == key and (facts is None or idx.facts == facts):
            return idx
        return dataclasses.replace(idx, source_key=key, facts=facts or idx.facts)

    def save(self, idx: FrameIndex, facts: dict[str, Any], path: str | os.PathLike[str]) -> None:
        """Write ``idx`` with this source's key and the stream facts to ``path``."""
        save_index_file(self.with_key(idx, facts), path)
