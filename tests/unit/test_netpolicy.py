"""The address policy: which addresses are refused, and that it holds at connect time."""

from __future__ import annotations

import ipaddress
import socket
import threading
from pathlib import Path

import httpx
import pytest

from tests.dns import HANG_S, hanging_dns
from tests.servers import LocalHttpServer, Route
from tests.ticks import FakeTicks
from upres.errors import AddressNotAllowed, ServiceUnavailable
from upres.inputs.netpolicy import (
    AddressPolicy,
    IPAddress,
    policy_client,
    ssl_context,
    total_deadline,
)

# The trickling peer's total time limit: far more than the test takes in real time.
DEADLINE_S = 60.0
FORBIDDEN_ALWAYS = [
    "169.254.169.254",  # cloud metadata
    "fd00:ec2::254",  # AWS metadata over IPv6 (a ULA)
    "169.254.1.1",  # link-local
    "fe80::1",
    "224.0.0.1",  # multicast
    "ff02::1",
    "0.0.0.0",  # unspecified
    "::",
    "240.0.0.1",  # reserved
    "192.0.2.10",  # documentation
    "::ffff:169.254.169.254",  # metadata, IPv4-mapped
]
FORBIDDEN_UNLESS_PRIVATE = [
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.5.4",
    "192.168.1.1",
    "100.64.0.1",  # shared (CGNAT)
    "::1",
    "fc00::1",
    "fd12:3456::1",
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:10.0.0.1",
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", FORBIDDEN_ALWAYS + FORBIDDEN_UNLESS_PRIVATE)
def test_default_policy_refuses_non_public_addresses(address: str) -> None:
    assert AddressPolicy(False).refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", FORBIDDEN_ALWAYS)
def test_allow_private_still_refuses_metadata_link_local_multicast(address: str) -> None:
    assert AddressPolicy(True).refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", FORBIDDEN_UNLESS_PRIVATE)
def test_allow_private_opens_lan_and_loopback(address: str) -> None:
    assert AddressPolicy(True).refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert AddressPolicy(False).refusal(ipaddress.ip_address(address)) is None


def test_extra_networks_open_only_what_they_name() -> None:
    policy = AddressPolicy(False, extra_networks=[ipaddress.ip_network("10.9.0.0/16")])
    assert policy.refusal(ipaddress.ip_address("10.9.1.1")) is None
    assert policy.refusal(ipaddress.ip_address("10.8.1.1")) is not None


class TestAtConnect:
    """The transport enforces the policy on the address it actually connects to."""

    def test_loopback_server_refused_by_default(self, http_server: LocalHttpServer) -> None:
        http_server.routes["/a"] = Route(body=b"hello")
        with policy_client(AddressPolicy(False), timeout_s=5) as client:
            with pytest.raises(AddressNotAllowed):
                client.get(http_server.url("/a"))
            with pytest.raises(AddressNotAllowed):
                client.get(http_server.url("/a", host="localhost"))
        assert http_server.requests == []

    def test_allow_private_reaches_loopback(self, http_server: LocalHttpServer) -> None:
        http_server.routes["/a"] = Route(body=b"hello")
        with policy_client(AddressPolicy(True), timeout_s=5) as client:
            assert client.get(http_server.url("/a", host="localhost")).content == b"hello"

    def test_dns_rebinding_is_caught_at_connect(self, http_server: LocalHttpServer) -> None:
        """The name looked public when checked, then resolves to loopback."""
        answers = iter([["93.184.215.14"], ["127.0.0.1"]])

        def rebinding(host: str, port: int) -> list[IPAddress]:
            return [ipaddress.ip_address(a) for a in next(answers)]

        http_server.routes["/a"] = Route(body=b"secret")
        policy = AddressPolicy(False, resolver=rebinding)
        policy.check_host("rebind.example.com", 443, param="callback_url")
        url = f"http://rebind.example.com:{http_server.port}/a"
        with policy_client(policy, timeout_s=5) as client, pytest.raises(AddressNotAllowed):
            client.get(url)
        assert http_server.requests == []

    def test_connects_to_the_checked_address_keeping_the_host_header(
        self, http_server: LocalHttpServer
    ) -> None:
        seen: list[str] = []

        def resolve(host: str, port: int) -> list[IPAddress]:
            seen.append(host)
            return [ipaddress.ip_address("127.0.0.1")]

        http_server.routes["/a"] = Route(body=b"ok")
        policy = AddressPolicy(
            False, extra_networks=[ipaddress.ip_network("127.0.0.1/32")], resolver=resolve
        )
        with policy_client(policy, timeout_s=5) as client:
            response = client.get(f"http://files.example.test:{http_server.port}/a")
        assert response.content == b"ok"
        assert seen == ["files.example.test"]

    def test_redirect_to_private_address_is_refused(self, http_server: LocalHttpServer) -> None:
        """The first hop is allowed (its one address is opened); the target is not."""
        only_first = AddressPolicy(False, extra_networks=[ipaddress.ip_network("127.0.0.1/32")])
        for target in ("http://169.254.169.254/", "http://10.0.0.1/", "http://127.0.0.2:1/"):
            http_server.routes["/r"] = Route(status=302, headers=(("Location", target),))
            with policy_client(only_first, timeout_s=5) as client:
                first = client.get(http_server.url("/r"))
                assert first.status_code == 302
                with pytest.raises(AddressNotAllowed):
                    client.get(first.headers["location"])


def test_unreadable_ca_file_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    for path in (bad, tmp_path / "missing.pem"):
        with pytest.raises(ServiceUnavailable, match="CA file"):
            ssl_context(path)


def _trickle(server: socket.socket, ticks: FakeTicks, stop: threading.Event) -> None:
    """Accept one connection, send part of a response head, move the clock past the
    deadline, then one byte more: every read is quick, the whole is too late."""
    conn, _ = server.accept()
    with conn:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: a")
        ticks.advance(DEADLINE_S + 1)
        conn.sendall(b"a")
        stop.wait(HANG_S)  # the connection stays open: only the deadline ends the request


def test_total_deadline_stops_a_trickling_peer() -> None:
    """Each byte arrives well within the per-read timeout; the total limit still holds."""
    ticks = FakeTicks()
    stop = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as server:
        worker = threading.Thread(target=_trickle, args=(server, ticks, stop))
        worker.start()
        url = f"http://127.0.0.1:{server.getsockname()[1]}/"
        try:
            with (
                policy_client(AddressPolicy(True), timeout_s=5) as client,
                total_deadline(DEADLINE_S, ticks=ticks),
                pytest.raises(httpx.ReadTimeout, match="total time limit"),
            ):
                client.get(url)
        finally:
            stop.set()
            worker.join()


def test_total_deadline_bounds_name_resolution() -> None:
    """A lookup still hanging when the block's time is up is given up, with a timeout."""
    ticks = FakeTicks(step=1.0)  # each reading a second later: past a 0.3 s limit at once
    with hanging_dns() as resolver:
        policy = AddressPolicy(False, resolver=resolver)
        with total_deadline(0.3, ticks=ticks), pytest.raises(TimeoutError):
            policy.resolve("slow.example.com", 443)
        with (
            policy_client(policy, timeout_s=5) as client,
            total_deadline(0.3, ticks=ticks),
            pytest.raises(httpx.ConnectTimeout),
        ):
            client.get("http://slow.example.com/")
    assert resolver.asked == ["slow.example.com", "slow.example.com"]


def test_a_lookup_answered_within_the_deadline_is_used() -> None:
    public = ipaddress.ip_address("93.184.216.34")
    policy = AddressPolicy(False, resolver=lambda host, port: [public])
    with total_deadline(0.3, ticks=FakeTicks()):
        assert policy.resolve("fast.example.com", 443) == [public]
