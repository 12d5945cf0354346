"""Input URL -> local file, within the address policy, a size limit and a time limit."""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from upres.errors import FetchError, InputRefused, InvalidRequest, UpresError
from upres.inputs.netpolicy import AddressPolicy, policy_client, total_deadline
from upres.inputs.urlpolicy import INPUT_URL, parse_url

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
# Timeout, too early, too many requests: another try may well succeed.
_TRANSIENT_4XX = frozenset({408, 425, 429})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 256 * 1024


@dataclass(frozen=True, kw_only=True)
class FetchedFile:
    """A downloaded input: where it lies, its size and where it finally came from."""

    path: Path
    size_bytes: int
    content_type: str | None
    final_url: str


@contextlib.contextmanager
def open_stream(
    client: httpx.Client,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
) -> Iterator[httpx.Response]:
    """GET ``url`` streaming, following up to 5 redirects by hand.

    Each hop is parsed by ``parse_url`` and connects through the client's
    policy transport, so each is checked; the caller's ``total_deadline`` is
    the one time limit of every hop and read. Raises InputRefused on too
    many redirects, InvalidUrl for a URL the client cannot follow; httpx and
    policy errors pass through for the caller to map (``mapped_errors``).
    """
    current = parse_url(url, INPUT_URL)
    for _ in range(MAX_REDIRECTS + 1):
        request = client.build_request("GET", current, headers=headers)
        response = client.send(request, stream=True)
        location = response.headers.get("location")
        if response.status_code not in _REDIRECTS or location is None:
            try:
                yield response
            finally:
                response.close()
            return
        response.close()
        current = _redirect_target(response.url, location)
    raise InputRefused(f"Input URL redirected more than {MAX_REDIRECTS} times")


def _redirect_target(base: httpx.URL, location: str) -> httpx.URL:
    """Where a redirect points, checked as the submitted URL was (the client has
    already refused a Location it cannot join).

    Raises InvalidUrl when the client could not follow it.
    """
    return parse_url(str(base.join(location)), INPUT_URL)


def http_failure(status: int, message: str) -> FetchError:
    """The error of an input server's unusable answer: InputRefused when it is
    one another try would get again (a 4xx other than 408, 425 and 429)."""
    if 400 <= status < 500 and status not in _TRANSIENT_4XX:
        return InputRefused(message)
    return FetchError(message)


@contextlib.contextmanager
def mapped_errors(what: str, *, keep_policy_errors: bool = False) -> Iterator[None]:
    """Turn every exception of a fetch into FetchError with a clear message.

    A refused URL or address becomes InputRefused, unless ``keep_policy_errors``
    (submission reports it as the invalid parameter it is); upres's own errors
    pass through.
    """
    try:
        yield
    except InvalidRequest as exc:  # AddressNotAllowed, InvalidUrl: the same on every try
        if keep_policy_errors:
            raise
        raise InputRefused(f"{what}: {exc.message}") from exc
    except UpresError:
        raise
    except httpx.TimeoutException as exc:
        raise FetchError(f"{what}: the server did not answer in time") from exc
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, ValueError, OSError) as exc:
        raise FetchError(f"{what}: {exc}") from exc
    except Exception as exc:  # a client library's surprise is still the input's failure
        log.exception("%s: unexpected error", what)
        raise FetchError(f"{what}: {type(exc).__name__}") from exc


def fetch(
    url: str,
    dest: Path,
    *,
    policy: AddressPolicy,
    max_bytes: int,
    timeout_s: float,
    tls: ssl.SSLContext | None = None,
) -> FetchedFile:
    """Download ``url`` to ``dest`` (written whole or not at all).

    Raises InputRefused when another try would fail the same way: the URL
    or its address is refused, it answers 4xx, or exceeds ``max_bytes``
    (announced or counted); FetchError when it is unreachable, answers
    otherwise than 200 or takes longer than ``timeout_s`` in total.
    """
    partial = dest.with_name(dest.name + ".part")
    try:
        with (
            mapped_errors("Could not download the input video"),
            total_deadline(timeout_s, ticks=policy.ticks),
            policy_client(policy, timeout_s=timeout_s, tls=tls) as client,
            open_stream(client, url) as response,
        ):
            _check_response(response, max_bytes)
            size = _write_body(response, partial, max_bytes=max_bytes)
            final_url = str(response.url)
            content_type = response.headers.get("content-type")
        partial.replace(dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return FetchedFile(path=dest, size_bytes=size, content_type=content_type, final_url=final_url)


def _check_response(response: httpx.Response, max_bytes: int) -> None:
    if response.status_code != 200:
        status = response.status_code
        raise http_failure(status, f"Input video URL answered HTTP {status}")
    announced = response.headers.get("content-length")
    if announced is not None and announced.isdigit() and int(announced) > max_bytes:
        raise InputRefused(f"Input video is {announced} bytes, over the limit of {max_bytes}")


def _write_body(response: httpx.Response, path: Path, *, max_bytes: int) -> int:
    size = 0
    try:
        with path.open("wb") as out:
            for chunk in response.iter_bytes(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise InputRefused(f"Input video is over the limit of {max_bytes} bytes")
                out.write(chunk)
    except OSError as exc:
        raise FetchError(f"Could not write the input video: {exc}") from exc
    return size
