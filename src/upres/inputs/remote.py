"""Probe a video where it lies: a seekable file over HTTP range requests.

Submission needs the input's duration before any task exists, and the input
may be gigabytes. ``HttpRangeFile`` lets the demuxer read only the bytes it
asks for (the header, the moov box, a first packet), in cached blocks, through
the policy transport. A server that ignores ``Range`` gets its body read
through, up to the byte limit, into a spooled temporary file, or into a file
the caller keeps (``whole_body``): then the worker need not download it again.
"""

from __future__ import annotations

import re
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO, cast

import httpx

from upres.domain.media import MediaLimits, VideoInfo
from upres.errors import PROBE_FAILED_MESSAGE, FetchError, InvalidRequest, MediaError
from upres.inputs.fetch import http_failure, mapped_errors, open_stream
from upres.inputs.netpolicy import AddressPolicy, policy_client, total_deadline
from upres.inputs.probe import probe
from upres.inputs.ranged import BlockReader

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_SPOOL_IN_MEMORY = 8 * 1024 * 1024
# The most a probe reads by default, in ranges or whole.
PROBE_MAX_BYTES = 256 * 1024 * 1024


class HttpRangeFile(BlockReader):
    """A read-only, seekable binary file over HTTP range requests.

    Build it with ``HttpRangeFile.open``. Reads fetch whole blocks of
    ``block_size`` bytes, one request per run of missing blocks, and keep the
    last ``cache_blocks`` of them (``BlockReader``). Reads raise FetchError
    when the server fails, the byte budget ``max_bytes`` is spent or the
    caller's ``total_deadline`` passes; the first such error is also kept in
    ``error`` (demuxers may swallow it).
    """

    def __init__(
        self,
        client: httpx.Client,
        url: str,
        *,
        size: int,
        max_bytes: int,
        block_size: int,
        cache_blocks: int,
    ) -> None:
        super().__init__(
            size=size, max_bytes=max_bytes, block_size=block_size, cache_blocks=cache_blocks
        )
        self.url = url
        self._client = client
        self._whole: IO[bytes] | None = None

    @classmethod
    def open(
        cls,
        client: httpx.Client,
        url: str,
        *,
        max_bytes: int,
        block_size: int = 64 * 1024,
        cache_blocks: int = 64,
        whole_body: Path | None = None,
    ) -> HttpRangeFile:
        """Request the first block and learn the size (following redirects). A server
        that answers with the whole body has it written to ``whole_body`` when given.

        Raises FetchError when the URL cannot be read; AddressNotAllowed when
        the policy refuses it; httpx errors pass through.
        """
        headers = {"Range": f"bytes=0-{block_size - 1}", "Accept-Encoding": "identity"}
        with open_stream(client, url, headers=headers) as response:
            remote = cls(
                client,
                str(response.url),
                size=0,
                max_bytes=max_bytes,
                block_size=block_size,
                cache_blocks=cache_blocks,
            )
            remote._take_first_answer(response, whole_body)
            return remote

    def _take_first_answer(self, response: httpx.Response, whole_body: Path | None) -> None:
        """Learn the size from the first answer: a range (206) or the whole body (200)."""
        if response.status_code == 206:
            self.size = _content_range(response)[1]
            end = min(self._block, self.size)
            self._keep(0, _body(response, end))
        elif response.status_code == 200:
            self._whole, self.size = _spool_body(
                response, max_bytes=self._max_bytes, into=whole_body
            )
            self.bytes_received = self.size
        elif response.status_code == 416:
            raise FetchError("The video URL points to an empty file")
        else:
            status = response.status_code
            raise http_failure(status, f"The video URL answered HTTP {status}")

    def close(self) -> None:
        if self._whole is not None:
            self._whole.close()
        super().close()

    def _read_at(self, start: int, length: int) -> bytes:
        if self._whole is not None:
            self._whole.seek(start)
            return self._whole.read(length)
        return super()._read_at(start, length)

    def _fetch(self, begin: int, end: int) -> bytes:
        headers = {"Range": f"bytes={begin}-{end - 1}", "Accept-Encoding": "identity"}
        with (
            mapped_errors("Could not read the video URL"),
            open_stream(self._client, self.url, headers=headers) as resp,
        ):
            if resp.status_code != 206:
                raise FetchError(f"The video URL answered HTTP {resp.status_code} to a range read")
            if _content_range(resp)[0] != begin:
                raise FetchError("The video URL answered a range read with other bytes")
            return _body(resp, end - begin)


def _body(response: httpx.Response, length: int) -> bytes:
    """The first ``length`` bytes of a range answer. Raises FetchError when it sends fewer."""
    data = bytearray()
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) > length:
            break
    if len(data) < length:
        raise FetchError("The video URL sent fewer bytes than it announced")
    return bytes(data[:length])


def _content_range(response: httpx.Response) -> tuple[int, int]:
    """(first byte, total size) of a 206 answer. Raises FetchError when unusable."""
    match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
    if match is None:
        raise FetchError("The video URL sent a range answer without a usable Content-Range")
    return int(match.group(1)), int(match.group(3))


def _spool_body(
    response: httpx.Response, *, max_bytes: int, into: Path | None
) -> tuple[IO[bytes], int]:
    """Read a whole 200 body, within the limits, into the file ``into`` or else a
    spooled temporary file; the open file and the body's size."""
    spool: IO[bytes] = (
        into.open("w+b")
        if into is not None
        else tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
    )
    size = 0
    try:
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise FetchError(
                    f"The video URL ignores range requests and is over {max_bytes} bytes"
                )
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    if size == 0:
        spool.close()
        raise FetchError("The video URL points to an empty file")
    return spool, size


class RemoteProber:
    """Probes input URLs without downloading them (when the server allows ranges)."""

    def __init__(
        self,
        policy: AddressPolicy,
        timeout_s: float,
        limits: MediaLimits,
        *,
        max_bytes: int = PROBE_MAX_BYTES,
        block_size: int = 64 * 1024,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._policy = policy
        self._timeout_s = timeout_s
        self._limits = limits
        self._max_bytes = max_bytes
        self._block_size = block_size
        self._tls = tls

    def probe_url(self, url: str, *, whole_body: Path | None = None) -> VideoInfo:
        """The VideoInfo of the video at ``url``, within ``timeout_s`` in total. When
        the server ignores Range and sends the whole body, it is left complete in
        ``whole_body`` if given (the caller removes it), else dropped.

        Raises AddressNotAllowed or InvalidUrl (param ``video_urls``) when the
        policy refuses the host or a redirect's URL; FetchError
        (``video_probe_failed``) when the URL cannot be read in time; the
        MediaError of ``probe`` when the bytes are not a usable video (not a
        video, no video stream, no duration, too large).
        """
        try:
            with (
                total_deadline(self._timeout_s, ticks=self._policy.ticks),
                policy_client(self._policy, timeout_s=self._timeout_s, tls=self._tls) as client,
                self._opened(client, url, whole_body) as remote,
            ):
                return _probe_remote(remote, self._limits)
        except InvalidRequest as exc:  # AddressNotAllowed, InvalidUrl (a redirect's)
            raise type(exc)(exc.message, param="video_urls") from exc
        except FetchError as exc:
            raise FetchError(f"{PROBE_FAILED_MESSAGE} ({exc.message})") from exc

    @contextmanager
    def _opened(
        self, client: httpx.Client, url: str, whole_body: Path | None
    ) -> Iterator[HttpRangeFile]:
        with mapped_errors("Could not open the video URL", keep_policy_errors=True):
            remote = HttpRangeFile.open(
                client,
                url,
                max_bytes=self._max_bytes,
                block_size=self._block_size,
                whole_body=whole_body,
            )
        with remote:
            yield remote


def _probe_remote(remote: HttpRangeFile, limits: MediaLimits) -> VideoInfo:
    """Probe, preferring the transport's error when the demuxer hid it."""
    try:
        # A RawIOBase offers every method PyAV calls on a file object.
        return probe(cast(BinaryIO, remote), limits=limits)
    except MediaError:
        if remote.error is not None:
            raise remote.error from None
        raise
