"""Which network addresses upres may connect to, enforced where it connects.

Input URLs and callback URLs come from clients, so they must not steer the
server at itself, its LAN or a cloud metadata service (SSRF). Checking a URL's
host once is not enough: DNS can answer differently a moment later (rebinding)
and a redirect can point anywhere. So the policy is enforced in the HTTP
transport itself: ``PolicyBackend.connect_tcp`` resolves the host, refuses the
connection when any candidate address is forbidden, and connects to the
checked IP while TLS (SNI, certificate) and ``Host`` still use the hostname.
Every client that fetches or calls back is built with ``policy_transport``.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
import typing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, wait
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import certifi
import httpcore
import httpx

from upres.clock import Ticks
from upres.errors import AddressNotAllowed, InvalidRequest, ServiceUnavailable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[IPAddress]]
"""``(host, port) -> addresses``. Raises OSError when the name does not resolve."""

# A request handler checking a URL outside any fetch must not hang on a silent DNS server.
CHECK_TIMEOUT_S = 5.0

# Instance metadata endpoints hand out cloud credentials: never reachable,
# whatever the settings say (fd00:ec2::254 is a ULA, 168.63.129.16 is public).
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.169.123",
        "100.100.100.200",
        "168.63.129.16",
        "fd00:ec2::254",
        "fd00:ec2::23",
    )
)

# What a self-hoster's LAN uses: opened by ``allow_private`` and nothing more.
_LAN_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "::1/128",
        "fc00::/7",
    )
)

_PRIVATE = "a private or loopback address"
_PRIVATE_HINT = " (UPRES_ALLOW_PRIVATE_NETWORKS=true lets the server reach private networks)"

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Resolve ``host`` with the operating system's resolver, in its order.

    Raises OSError when it does not resolve, a name the resolver cannot even
    encode (an empty label) included.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError as exc:
        raise socket.gaierror(f"{host!r} is not a valid host name: {exc}") from exc
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in found:
            found.append(address)
    return found


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


class AddressPolicy:
    """Decides which IP addresses outgoing connections may reach.

    Public (globally routable, unicast) addresses are allowed. Loopback,
    private, shared (100.64/10) and unique-local addresses are allowed only
    with ``allow_private`` (a self-hoster on a LAN). Link-local, multicast,
    reserved, unspecified and cloud metadata addresses are never allowed.
    ``extra_networks`` opens chosen networks without opening all private ones.
    ``ticks`` is the clock the time limits of its clients count on.
    """

    def __init__(
        self,
        allow_private: bool = False,
        *,
        extra_networks: Iterable[IPNetwork] = (),
        resolver: Resolver = system_resolver,
        check_timeout_s: float = CHECK_TIMEOUT_S,
        ticks: Ticks = time.monotonic,
    ) -> None:
        self.allow_private = allow_private
        self.extra_networks = tuple(extra_networks)
        self.ticks = ticks
        self._resolver = resolver
        self._check_timeout_s = check_timeout_s

    def refusal(self, address: IPAddress) -> str | None:
        """Why ``address`` is forbidden, or None when it is allowed."""
        inner = embedded_ipv4(address)
        if inner is not None:
            return self.refusal(inner)
        if address in _METADATA:
            return "a cloud metadata address"
        if address.is_multicast or address.is_unspecified or address.is_link_local:
            return "a multicast, unspecified or link-local address"
        if any(address in net for net in self.extra_networks):
            return None
        if any(address in net for net in _LAN_NETWORKS):
            return None if self.allow_private else _PRIVATE
        if not address.is_global or address.is_reserved:
            return "a reserved or non-public address"
        return None

    def check_address(self, address: IPAddress, *, host: str, param: str | None = None) -> None:
        """Raises AddressNotAllowed when ``address`` (of ``host``) is forbidden."""
        reason = self.refusal(address)
        if reason is None:
            return
        hint = _PRIVATE_HINT if reason == _PRIVATE else ""
        raise AddressNotAllowed(
            f"Host {host!r} resolves to {address}, {reason}, which is not allowed{hint}",
            param=param,
        )

    def resolve(self, host: str, port: int, *, param: str | None = None) -> list[IPAddress]:
        """All addresses of ``host``, each checked.

        Raises AddressNotAllowed when any of them is forbidden (a name that
        resolves to a mix is refused: the connection could land on either).
        Raises OSError when the name does not resolve: TimeoutError when it
        does not resolve within the time left of a ``total_deadline`` block.
        """
        literal = _ip_literal(host)
        addresses = (
            [literal] if literal is not None else _resolve_in_time(self._resolver, host, port)
        )
        if not addresses:
            raise OSError(f"no address for {host!r}")
        for address in addresses:
            self.check_address(address, host=host, param=param)
        return addresses

    def check_host(self, host: str, port: int, *, param: str) -> None:
        """Check that every address of ``host`` is allowed, resolving it within
        ``check_timeout_s`` when no ``total_deadline`` is running.

        Raises InvalidRequest (``param``) when the host does not resolve (in
        time), AddressNotAllowed for a forbidden address.
        """
        limit = (
            total_deadline(self._check_timeout_s, ticks=self.ticks)
            if _DEADLINE.get() is None
            else nullcontext()
        )
        try:
            with limit:
                self.resolve(host, port, param=param)
        except TimeoutError as exc:
            raise InvalidRequest(
                f"{param} host {host!r} did not resolve in time", param=param
            ) from exc
        except OSError as exc:
            raise InvalidRequest(f"{param} host {host!r} does not resolve", param=param) from exc


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True, kw_only=True)
class _Deadline:
    end: float
    ticks: Ticks

    def left(self) -> float:
        return self.end - self.ticks()


_DEADLINE: ContextVar[_Deadline | None] = ContextVar("upres_network_deadline", default=None)


@contextmanager
def total_deadline(seconds: float, *, ticks: Ticks = time.monotonic) -> Iterator[None]:
    """Bound every name lookup, connect, read and write of policy clients in this
    block to ``seconds`` in total on ``ticks``, so neither a peer trickling bytes
    nor a DNS server that never answers can stretch a timeout."""
    token = _DEADLINE.set(_Deadline(end=ticks() + seconds, ticks=ticks))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _resolve_in_time(resolver: Resolver, host: str, port: int) -> list[IPAddress]:
    """``resolver(host, port)``, given no more than the time left of ``total_deadline``.

    getaddrinfo cannot be interrupted, so under a deadline it runs in a daemon
    thread that is abandoned, to finish on its own, when the time is up.
    Raises TimeoutError then; the resolver's own errors pass through.
    """
    deadline = _DEADLINE.get()
    if deadline is None:
        return resolver(host, port)
    answer: Future[list[IPAddress]] = Future()
    threading.Thread(
        target=_settle, args=(answer, resolver, host, port), name="upres-resolve", daemon=True
    ).start()
    done, _ = wait([answer], timeout=max(0.0, deadline.left()))
    if not done:
        raise TimeoutError(f"resolving {host!r} took longer than the time limit")
    return answer.result()


def _settle(answer: Future[list[IPAddress]], resolver: Resolver, host: str, port: int) -> None:
    try:
        answer.set_result(resolver(host, port))
    except Exception as exc:
        answer.set_exception(exc)


def _bounded(timeout: float | None) -> float | None:
    """``timeout`` cut to what is left of the block's total deadline.

    Raises httpcore.ReadTimeout once the deadline has passed.
    """
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline.left()
    if left <= 0:
        raise httpcore.ReadTimeout("the total time limit was reached")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation respects ``total_deadline``."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, _bounded(timeout))
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class PolicyBackend(httpcore.NetworkBackend):
    """An httpcore network backend that connects only to allowed addresses.

    httpcore hands it the URL's hostname; it resolves and checks the name
    here, at connect time, and connects to the checked IP. TLS is layered on
    the returned stream by httpcore with the hostname, so certificates and
    SNI still match the name. Lookups and streams honour ``total_deadline``.
    """

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        """Raises AddressNotAllowed for a forbidden address, httpcore.ConnectTimeout
        when the name does not resolve within ``total_deadline``, httpcore.ConnectError
        when it does not resolve or no address answers."""
        try:
            addresses = self._policy.resolve(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        last: Exception | None = None
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(
                    str(address), port, _bounded(timeout), local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
            else:
                return _DeadlineStream(stream)
        assert last is not None
        raise last

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        """Raises AddressNotAllowed always: unix sockets are local by nature."""
        raise AddressNotAllowed("Unix socket connections are not allowed")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def ssl_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """A verifying TLS context: the system store, certifi's bundle, and ``ca_file``.

    Raises ServiceUnavailable when ``ca_file`` cannot be read as PEM certificates.
    """
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=certifi.where())
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ServiceUnavailable(f"Cannot load the CA file {ca_file}: {exc}") from exc
    return context


class PolicyTransport(httpx.HTTPTransport):
    """An httpx transport whose every connection goes through ``PolicyBackend``.

    Proxies from the environment are ignored on purpose: a proxy would make
    the connected address the proxy's, hiding the target from the policy.
    """

    def __init__(self, policy: AddressPolicy, *, tls: ssl.SSLContext | None = None) -> None:
        context = tls if tls is not None else ssl_context()
        super().__init__(verify=context, trust_env=False)
        # httpx builds its pool without a way to pass a network backend.
        self._pool = httpcore.ConnectionPool(
            ssl_context=context, network_backend=PolicyBackend(policy)
        )


def policy_client(
    policy: AddressPolicy, *, timeout_s: float, tls: ssl.SSLContext | None = None
) -> httpx.Client:
    """An httpx client that follows no redirects and connects only where allowed."""
    return httpx.Client(
        transport=PolicyTransport(policy, tls=tls),
        timeout=httpx.Timeout(timeout_s),
        follow_redirects=False,
        trust_env=False,
    )
