"""The one decision on a URL a client gives: would the HTTP client send it, and may it?

A URL is checked when it is submitted and again when it is used (the input
fetched, the callback sent), by the same ``parse_url``. It parses the URL with
the parser of the HTTP client that will send it (``httpx.URL``), so nothing
the sender would refuse (``1.2.3.04``, a NUL, a lone surrogate, a 64 KiB URL)
gets stored to fail later. Where a URL may connect is the address policy's
part: a callback's host is resolved and checked at submission, and every
connection is checked again by the policy transport.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from upres.errors import InvalidUrl
from upres.inputs.netpolicy import AddressPolicy

MAX_CALLBACK_URL_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, kw_only=True)
class UrlRule:
    """What one kind of URL must be: its request parameter, schemes and longest length."""

    param: str
    schemes: tuple[str, ...]
    max_length: int | None = None


INPUT_URL = UrlRule(param="video_urls", schemes=("http", "https"))
CALLBACK_URL = UrlRule(param="callback_url", schemes=("https",), max_length=MAX_CALLBACK_URL_LENGTH)


def parse_url(url: str, rule: UrlRule) -> httpx.URL:
    """``url`` as the HTTP client parses and sends it.

    Raises InvalidUrl (``invalid_parameter``, param ``rule.param``) when the
    client would refuse it, or it is longer than ``rule.max_length``, not of
    one of ``rule.schemes``, has no host, a port out of range, or a host name
    that name resolution cannot encode. Messages show the URL only escaped.
    """
    if rule.max_length is not None and len(url) > rule.max_length:
        raise InvalidUrl(
            f"{rule.param} must not exceed {rule.max_length} characters", param=rule.param
        )
    try:
        parsed = httpx.URL(url)
        # Both decode lazily and may refuse what the constructor let through.
        host, port = parsed.host, parsed.port
    except (httpx.InvalidURL, ValueError) as exc:
        raise InvalidUrl(f"{rule.param} is not a valid URL: {exc}", param=rule.param) from exc
    if parsed.scheme not in rule.schemes:
        raise InvalidUrl(
            f"{rule.param} must be an {' or '.join(rule.schemes)} URL", param=rule.param
        )
    if not host:
        raise InvalidUrl(f"{rule.param} has no host", param=rule.param)
    if port is not None and not 0 < port < 65536:
        raise InvalidUrl(f"{rule.param} has an invalid port", param=rule.param)
    _check_host_encodes(parsed, rule)
    return parsed


def port_of(url: httpx.URL) -> int:
    """The port ``url`` connects to: its own or its scheme's default."""
    return url.port or _DEFAULT_PORTS[url.scheme]


def _check_host_encodes(url: httpx.URL, rule: UrlRule) -> None:
    """Name resolution encodes the host again (IDNA 2003: labels of 1 to 63
    characters), which refuses names the parser let through, such as ``a..b``."""
    try:
        url.raw_host.decode("ascii").encode("idna")
    except UnicodeError as exc:
        raise InvalidUrl(f"{rule.param} has an invalid host name: {exc}", param=rule.param) from exc


class UrlPolicy:
    """``parse_url`` and, for callbacks, the address policy on the host right now."""

    def __init__(self, addresses: AddressPolicy) -> None:
        self._addresses = addresses

    def check_input_url(self, url: str) -> str:
        """``url`` when the client would fetch it (the address is checked on connect).

        Raises InvalidUrl as ``parse_url``.
        """
        parse_url(url, INPUT_URL)
        return url

    def check_callback_url(self, url: str) -> None:
        """Check that ``url`` may be called back: https, at most 2048
        characters, parsed as the sender parses it, a host that resolves only
        to allowed addresses.

        Raises InvalidUrl, InvalidRequest (the host does not resolve in time)
        or AddressNotAllowed, all ``invalid_parameter`` for ``callback_url``.
        """
        parsed = parse_url(url, CALLBACK_URL)
        self._addresses.check_host(parsed.host, port_of(parsed), param=CALLBACK_URL.param)
