"""The source layer on its own: BufferReader against io.BytesIO (the oracle for file semantics), make_source's
normalisation of every accepted kind and its errors, and Source's readers."""

from __future__ import annotations

import io
import os
import random

import numpy as np
import pytest
import torch

from gpudecode import InvalidArgumentError, SourceNotFoundError
from gpudecode._errors import InvalidArgumentTypeError
from gpudecode._source import BufferReader, Source, make_source

DATA = bytes(range(256)) * 3 + b"tail"  # 772 distinct-ish bytes: an off-by-one shows in the content


def _ops(seed: int, n: int) -> list[tuple]:
    rng = random.Random(seed)
    ops = []
    for _ in range(n):
        kind = rng.choice(["read", "read", "readinto", "seek", "seek", "tell", "read_all"])
        if kind == "read":
            ops.append(("read", rng.choice([0, 1, 2, 7, 100, 771, 772, 773, 5000, -1, None])))
        elif kind == "readinto":
            ops.append(("readinto", rng.choice([0, 1, 5, 64, 1000])))
        elif kind == "seek":
            whence = rng.choice([io.SEEK_SET, io.SEEK_CUR, io.SEEK_END])
            ops.append(("seek", rng.randint(-50, 900) if whence != io.SEEK_SET else rng.randint(0, 900), whence))
        else:
            ops.append((kind,))
    return ops


def _apply(f, op):
    if op[0] == "read":
        return f.read() if op[1] is None else f.read(op[1])
    if op[0] == "readinto":
        b = bytearray(b"\xee" * op[1])
        n = f.readinto(b)
        return n, bytes(b)
    if op[0] == "seek":
        try:
            return f.seek(op[1], op[2])
        except (ValueError, OSError) as e:  # both reject a negative position
            return type(e).__mro__[-2].__name__ if isinstance(e, ValueError) else "OSError"
    if op[0] == "read_all":
        return f.read(-1)
    return f.tell()


@pytest.mark.parametrize("seed", range(40))
def test_buffer_reader_behaves_like_bytesio(seed):
    ours, oracle = BufferReader(memoryview(DATA)), io.BytesIO(DATA)
    for op in _ops(seed, 30):
        want, got = _apply(oracle, op), _apply(ours, op)
        if op[0] == "seek" and isinstance(want, str):
            assert isinstance(got, str), (op, got)  # an error on both sides
            ours.seek(oracle.tell())
            continue
        assert got == want, op
        assert ours.tell() == oracle.tell(), op


def test_buffer_reader_edges():
    r = BufferReader(memoryview(DATA))
    assert r.readable() and r.seekable()
    assert r.read(3) == DATA[:3] and r.tell() == 3
    assert r.seek(-4, io.SEEK_END) == len(DATA) - 4 and r.read(10) == b"tail" and r.tell() == len(DATA)
    assert r.read(1) == b"" and r.tell() == len(DATA)
    assert r.seek(len(DATA) + 10) == len(DATA) + 10 and r.read(5) == b""
    assert r.tell() == len(DATA) + 10  # reading past the end does not move the position back
    assert r.seek(0) == 0 and r.read(2) == DATA[:2]
    assert r.seek(5, io.SEEK_SET) == 5 and r.seek(3, io.SEEK_CUR) == 8 and r.read(1) == DATA[8:9]
    with pytest.raises(ValueError, match="negative seek"):
        r.seek(-1)
    with pytest.raises(ValueError, match="invalid whence"):
        r.seek(0, 7)
    r.seek(770)
    b = bytearray(8)
    assert r.readinto(b) == 2 and bytes(b[:2]) == DATA[770:] and bytes(b[2:]) == bytes(6)


def test_make_source_kinds(tmp_path):
    p = tmp_path / "v.bin"
    p.write_bytes(DATA)
    s = make_source(str(p))
    assert s.path == str(p) and s.size_bytes == len(DATA) and s.open_for_av() == str(p)
    assert s.description == repr(str(p))
    s = make_source(p)
    assert s.path == str(p) and s.buffer is None and s.file is None
    with s.reader() as f:
        assert f.read() == DATA
    assert f.closed  # a file it opened itself is closed
    words = np.frombuffer(DATA, np.uint8).view(np.int32)  # a memoryview of 4-byte items: read as its bytes
    for kind in (
        DATA,
        bytearray(DATA),
        memoryview(DATA),
        memoryview(np.frombuffer(DATA, np.uint8).reshape(4, -1)),
        memoryview(words),
    ):
        s = make_source(kind)
        assert s.buffer is not None and s.size_bytes == len(DATA) and s.path is None and s.file is None
        assert s.description == f"<{type(kind).__name__} of {len(DATA)} bytes>"
        with s.reader() as f:
            assert f.read(10) == DATA[:10] and f.read(1000) == DATA[10:]
        assert s.open_for_av().read() == DATA
    t = torch.frombuffer(bytearray(DATA), dtype=torch.uint8)
    s = make_source(t)
    assert s.size_bytes == len(DATA) and s.description == f"<tensor of {len(DATA)} bytes>"
    assert s.open_reader().read() == DATA
    s = make_source(t[::2])  # a strided view: read as its contiguous copy
    assert s.open_reader().read() == DATA[::2]
    user = io.BytesIO(DATA)
    user.seek(17)
    s = make_source(user)
    assert s.file is user and s.size_bytes == len(DATA) and s.path is None and s.buffer is None
    assert user.tell() == 0  # left at the start, as torchcodec does
    user.seek(100)
    with s.reader() as f:  # a view of the user's file with a position of its own, starting at 0
        assert f is not user and f.read(4) == DATA[:4]
        g = s.open_for_av()
        assert g.read(2) == DATA[:2]
        user.seek(50)
        assert f.read(3) == DATA[4:7] and g.read(2) == DATA[2:4] and f.tell() == 7 and g.tell() == 4
        assert g.seek(-5, io.SEEK_END) == len(DATA) - 5 and g.read() == DATA[-5:] and g.read(9) == b""
        assert g.seek(-2, io.SEEK_CUR) == len(DATA) - 2 and g.read(1) == DATA[-2:-1]
        buf = bytearray(3)
        assert g.seek(10) == 10 and g.readinto(buf) == 3 and bytes(buf) == DATA[10:13] and g.tell() == 13
        assert g.read(None) == DATA[13:] and f.read() == DATA[7:]
    assert f.closed and not user.closed  # closing the view never closes the user's file
    with pytest.raises(ValueError, match="negative seek position"):
        g.seek(-1)
    with pytest.raises(ValueError, match="invalid whence"):
        g.seek(0, 7)
    assert "BytesIO" in s.description
    with open(p, "rb") as fh:
        assert make_source(fh).description == f"<file object {p}>"


def test_make_source_errors(tmp_path):
    with pytest.raises(SourceNotFoundError, match="No such file"):
        make_source(tmp_path / "missing.mp4")
    assert issubclass(SourceNotFoundError, (FileNotFoundError, OSError))
    with pytest.raises(InvalidArgumentError, match="is a directory"):
        make_source(tmp_path)
    for url in ("http://x/v.mp4", "s3://bucket/v.mp4", "rtsp+tcp://cam/1"):
        with pytest.raises(InvalidArgumentError, match="URLs are not supported") as e:
            make_source(url)
        assert str(e.value) == (
            f"Invalid source ({url!r}): URLs are not supported. Download the file first and "
            "pass its path, its bytes, or an open binary file object (gpudecode reads file "
            "objects on demand)."
        )
    assert not os.path.exists("C:")
    with pytest.raises(SourceNotFoundError, match="No such file"):
        make_source("C:/v.mp4")  # not a URL: no '://'
    with pytest.raises(InvalidArgumentError, match="empty buffer") as e:
        make_source(memoryview(b""))
    assert str(e.value) == "Invalid source (empty buffer). Pass the bytes of a video file."
    with pytest.raises(InvalidArgumentError, match="empty tensor") as e:
        make_source(torch.zeros(0, dtype=torch.uint8))
    assert str(e.value) == "Invalid source (empty tensor). Pass the bytes of a video file."
    with pytest.raises(InvalidArgumentError, match="1-D") as e:
        make_source(torch.zeros((2, 2), dtype=torch.uint8))
    assert str(e.value) == (
        "Invalid source tensor (dtype torch.uint8, 2 dimensions). A tensor source must be 1-D with dtype torch.uint8."
    )
    with pytest.raises(InvalidArgumentError, match="must be on the CPU"):
        make_source(torch.zeros(4, dtype=torch.uint8, device="meta"))
    with pytest.raises(InvalidArgumentTypeError, match="Invalid source type \\(list\\)"):
        make_source([1, 2])

    class Broken(io.RawIOBase):
        def readable(self):
            return True

        def seekable(self):
            raise OSError("closed pipe")

    with pytest.raises(InvalidArgumentError, match="closed pipe"):
        make_source(Broken())

    class NoSeekable:  # only read and seek: treated as seekable
        def __init__(self):
            self.b = io.BytesIO(DATA)

        def read(self, n=-1):
            return self.b.read(n)

        def seek(self, *a):
            return self.b.seek(*a)

    assert make_source(NoSeekable()).size_bytes == len(DATA)

    class OnlyRead:
        def read(self, n=-1):
            return b""

    with pytest.raises(InvalidArgumentError, match="not seekable") as e:
        make_source(OnlyRead())
    assert str(e.value) == (
        "Invalid source (file object is not seekable). Pass a seekable binary file object, or "
        "read the stream into bytes first."
    )
    with pytest.raises(InvalidArgumentTypeError, match="text-mode") as e:
        make_source(io.StringIO("abc"))
    assert str(e.value) == "Invalid source (text-mode file object). Open the file in binary mode 'rb'."

    class SeekFails(io.BytesIO):
        def seek(self, *a):
            raise OSError("seek failed")

    with pytest.raises(InvalidArgumentError, match="seek failed"):
        make_source(SeekFails(DATA))

    class OddSize(io.BytesIO):
        def seek(self, off, whence=0):
            super().seek(off, whence)
            return None  # some wrappers return nothing

    assert make_source(OddSize(DATA)).size_bytes == len(DATA)  # from tell()

    class TextPosition(io.BytesIO):
        def seek(self, off, whence=0):
            super().seek(off, whence)
            return "somewhere"  # not a size

    assert make_source(TextPosition(DATA)).size_bytes == len(DATA)

    class NoPosition(NoSeekable):  # seek returns nothing and there is no tell: the size cannot be known
        def seek(self, *a):
            self.b.seek(*a)

    with pytest.raises(InvalidArgumentError, match=r"size is unknown\. Pass a seekable binary file object whose"):
        make_source(NoPosition())


def test_source_dataclass_defaults():
    s = Source(description="x")
    assert s.path is None and s.buffer is None and s.file is None and s.size_bytes is None
