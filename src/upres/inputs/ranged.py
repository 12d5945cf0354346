"""Files read in byte ranges, in cached blocks: the base of every reader that
lets a demuxer read only the bytes it asks for.

``BlockReader`` is a read-only, seekable binary file whose subclasses say only
how to fetch one run of bytes (``_fetch``): an HTTP server's Range answers
(``inputs.remote.HttpRangeFile``), an S3 object's ranged GETs or a stored file
(``storage``). It keeps the last few blocks and counts every byte it fetched
(``bytes_received``), within a byte budget.

``RangedInput`` names a stored input that is opened afresh for each pass over
it (probe, decode, ...); ``open_input`` accepts one wherever it accepts a path,
and ``bytes_read`` adds up what all its readers fetched.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import BinaryIO, cast

from upres.errors import FetchError, UpresError

# What a block reader fetches at once by default: large enough that a run of
# packets costs few requests, small enough that a chunk's tail wastes little.
DEFAULT_BLOCK = 256 * 1024
DEFAULT_CACHE_BLOCKS = 32


class BlockReader(io.RawIOBase):
    """A read-only, seekable binary file of ``size`` bytes read in blocks.

    Reads fetch whole blocks of ``block_size`` bytes, one ``_fetch`` per run
    of missing blocks, and keep the last ``cache_blocks`` of them. A read
    raises FetchError when the byte budget ``max_bytes`` would be spent, or
    the UpresError ``_fetch`` raises; the first such error is also kept in
    ``error`` (demuxers may swallow it).
    """

    def __init__(self, *, size: int, max_bytes: int, block_size: int, cache_blocks: int) -> None:
        super().__init__()
        self.size = size
        self.bytes_received = 0
        self.error: UpresError | None = None
        self._max_bytes = max_bytes
        self._block = block_size
        self._capacity = max(2, cache_blocks)
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._pos = 0

    def _fetch(self, begin: int, end: int) -> bytes:
        """The bytes ``begin`` to ``end`` (exclusive) of the file. Raises UpresError."""
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self.size - self._pos, self._block * (self._capacity - 1))
        if want <= 0:
            return 0
        try:
            data = self._read_at(self._pos, want)
        except UpresError as exc:
            self.error = self.error or exc
            raise
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        self._cache.clear()
        super().close()

    def _read_at(self, start: int, length: int) -> bytes:
        first, last = start // self._block, (start + length - 1) // self._block
        self._load_blocks(first, last)
        joined = b"".join(self._cache[i] for i in range(first, last + 1))
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
        offset = start - first * self._block
        return joined[offset : offset + length]

    def _load_blocks(self, first: int, last: int) -> None:
        missing = [i for i in range(first, last + 1) if i not in self._cache]
        for run_first, run_last in _runs(missing):
            begin = run_first * self._block
            end = min((run_last + 1) * self._block, self.size)
            if self.bytes_received + (end - begin) > self._max_bytes:
                raise FetchError(f"Reading the video needed more than {self._max_bytes} bytes")
            self._keep(begin, self._fetch(begin, end))
        for i in range(first, last + 1):
            self._cache.move_to_end(i)

    def _keep(self, begin: int, data: bytes) -> None:
        """Count ``data`` (the bytes from ``begin``) and cache its blocks."""
        self.bytes_received += len(data)
        for index, offset in enumerate(range(0, len(data), self._block)):
            self._cache[begin // self._block + index] = data[offset : offset + self._block]


def _runs(indices: list[int]) -> Iterator[tuple[int, int]]:
    """Consecutive runs of sorted block indices as (first, last) pairs."""
    if not indices:
        return
    first = prev = indices[0]
    for index in indices[1:]:
        if index != prev + 1:
            yield first, prev
            first = index
        prev = index
    yield first, prev


class RangedInput:
    """A stored input read in ranges through one ``BlockReader`` (made by
    ``open_reader`` on first use): ``open`` gives a file of its own position
    for each pass over the input (probe, field scan, decode, ...), all sharing
    the reader's blocks, so the index and the first frames every pass reads
    are fetched once. ``bytes_read`` is what the reader fetched; ``name`` says
    where the input lies (for messages). Close it (or use it as a context
    manager) to release the reader; the files it gave stop working then."""

    def __init__(self, open_reader: Callable[[], BlockReader], *, name: str) -> None:
        self._open_reader = open_reader
        self._reader: BlockReader | None = None
        self._lock = threading.Lock()
        self.name = name

    def open(self) -> BinaryIO:
        """A file at the start of the input. Raises what ``open_reader`` raises."""
        with self._lock:
            if self._reader is None:
                self._reader = self._open_reader()
            # A RawIOBase offers every method PyAV calls on a file object.
            return cast(BinaryIO, _Pass(self._reader, self._lock))

    @property
    def bytes_read(self) -> int:
        return 0 if self._reader is None else self._reader.bytes_received

    def close(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()

    def __enter__(self) -> RangedInput:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __str__(self) -> str:
        return self.name


class _Pass(io.RawIOBase):
    """One pass over a shared ``BlockReader``: a position of its own, reads under
    the lock the passes share (the decoder and the encoder read from threads
    of their own)."""

    def __init__(self, reader: BlockReader, lock: threading.Lock) -> None:
        super().__init__()
        self._reader = reader
        self._lock = lock
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        with self._lock:
            self._reader.seek(self._pos)
            self._pos = self._reader.seek(offset, whence)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        with self._lock:
            self._reader.seek(self._pos)
            count = self._reader.readinto(buffer)
        self._pos += count
        return count
