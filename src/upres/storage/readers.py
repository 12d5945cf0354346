"""Readers of stored files in byte ranges (``ResultStorage.reader``): a chunk
worker reads only the packets of its span, not the whole stored input.

Each is a ``BlockReader``: it fetches blocks, keeps a few and counts the
bytes it fetched. A read that fails raises StorageUnavailable.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from upres.errors import StorageUnavailable
from upres.inputs.ranged import DEFAULT_BLOCK, DEFAULT_CACHE_BLOCKS, BlockReader

# A stored file is read for as long as its reader needs: no budget.
UNBOUNDED = sys.maxsize


class FileReader(BlockReader):
    """A file on local disk, read with positioned reads (open until ``close``).

    Raises OSError from the constructor when the file cannot be opened.
    """

    def __init__(self, path: Path, *, block_size: int = DEFAULT_BLOCK) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        super().__init__(
            size=os.fstat(self._fd).st_size,
            max_bytes=UNBOUNDED,
            block_size=block_size,
            cache_blocks=DEFAULT_CACHE_BLOCKS,
        )
        self.name = str(path)

    def _fetch(self, begin: int, end: int) -> bytes:
        try:
            data = os.pread(self._fd, end - begin, begin)
        except OSError as exc:
            raise StorageUnavailable(f"Cannot read stored file {self.name}: {exc}") from exc
        if len(data) < end - begin:
            raise StorageUnavailable(f"The stored file {self.name} shrank while it was read")
        return data

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


class BytesReader(BlockReader):
    """Bytes in memory, read in blocks like a stored file (``MemoryStorage``)."""

    def __init__(self, data: bytes, *, block_size: int = DEFAULT_BLOCK) -> None:
        super().__init__(
            size=len(data),
            max_bytes=UNBOUNDED,
            block_size=block_size,
            cache_blocks=DEFAULT_CACHE_BLOCKS,
        )
        self._data = data

    def _fetch(self, begin: int, end: int) -> bytes:
        return self._data[begin:end]
