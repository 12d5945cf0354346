"""Downloading inputs: limits, redirects, errors, and no partial files left behind."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from tests.dns import hanging_dns
from tests.hostile import UNSENDABLE_URLS
from tests.servers import LocalHttpServer, Route
from tests.ticks import FakeTicks
from upres.errors import FetchError, InputRefused
from upres.inputs.fetch import fetch
from upres.inputs.netpolicy import AddressPolicy

LAN = AddressPolicy(True)
BODY = os.urandom(300_000)


def test_downloads_whole_body(http_server: LocalHttpServer, tmp_path: Path) -> None:
    http_server.routes["/v.mp4"] = Route(body=BODY, headers=(("Content-Type", "video/mp4"),))
    dest = tmp_path / "in.mp4"
    got = fetch(http_server.url("/v.mp4"), dest, policy=LAN, max_bytes=10**6, timeout_s=10)
    assert dest.read_bytes() == BODY
    assert got.size_bytes == len(BODY)
    assert got.content_type == "video/mp4"
    assert got.path == dest
    assert list(tmp_path.iterdir()) == [dest]


def test_follows_redirects_and_reports_final_url(
    http_server: LocalHttpServer, tmp_path: Path
) -> None:
    http_server.routes["/v.mp4"] = Route(body=BODY)
    http_server.routes["/a"] = Route(status=301, headers=(("Location", "/b"),))
    http_server.routes["/b"] = Route(status=307, headers=(("Location", "/v.mp4"),))
    got = fetch(http_server.url("/a"), tmp_path / "x", policy=LAN, max_bytes=10**6, timeout_s=10)
    assert got.final_url == http_server.url("/v.mp4")
    assert got.path.read_bytes() == BODY


def test_too_many_redirects(http_server: LocalHttpServer, tmp_path: Path) -> None:
    http_server.routes["/loop"] = Route(status=302, headers=(("Location", "/loop"),))
    with pytest.raises(FetchError, match="redirected more than 5"):
        fetch(http_server.url("/loop"), tmp_path / "x", policy=LAN, max_bytes=10, timeout_s=10)
    assert len(http_server.requests) == 6
    assert list(tmp_path.iterdir()) == []


def test_redirect_to_forbidden_address_is_refused(
    http_server: LocalHttpServer, tmp_path: Path
) -> None:
    policy = AddressPolicy(False, extra_networks=[ipaddress.ip_network("127.0.0.1/32")])
    http_server.routes["/ok"] = Route(body=b"fine")
    http_server.routes["/r"] = Route(
        status=302, headers=(("Location", "http://169.254.169.254/latest/meta-data/"),)
    )
    assert fetch(http_server.url("/ok"), tmp_path / "ok", policy=policy, max_bytes=99, timeout_s=5)
    with pytest.raises(FetchError, match="not allowed"):
        fetch(http_server.url("/r"), tmp_path / "x", policy=policy, max_bytes=99, timeout_s=5)
    assert not (tmp_path / "x").exists()


def test_private_address_refused_without_allow_private(
    http_server: LocalHttpServer, tmp_path: Path
) -> None:
    http_server.routes["/v"] = Route(body=BODY)
    for host in ("127.0.0.1", "localhost"):
        with pytest.raises(FetchError, match="not allowed"):
            fetch(
                http_server.url("/v", host=host),
                tmp_path / "x",
                policy=AddressPolicy(False),
                max_bytes=10**6,
                timeout_s=5,
            )
    assert http_server.requests == []


def test_announced_size_over_limit(http_server: LocalHttpServer, tmp_path: Path) -> None:
    http_server.routes["/v"] = Route(body=BODY)
    with pytest.raises(FetchError, match="over the limit"):
        fetch(http_server.url("/v"), tmp_path / "x", policy=LAN, max_bytes=1000, timeout_s=10)
    assert list(tmp_path.iterdir()) == []


def test_counted_size_over_limit_when_length_lies(
    http_server: LocalHttpServer, tmp_path: Path
) -> None:
    """A body without Content-Length is still cut off at the limit."""
    http_server.routes["/v"] = Route(body=BODY, send_length=False)
    with pytest.raises(FetchError, match="over the limit"):
        fetch(http_server.url("/v"), tmp_path / "x", policy=LAN, max_bytes=1000, timeout_s=10)
    assert list(tmp_path.iterdir()) == []


def test_http_error_status(http_server: LocalHttpServer, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(http_server.url("/missing"), tmp_path / "x", policy=LAN, max_bytes=10, timeout_s=5)


def test_unreachable_host(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="Could not download"):
        fetch("http://127.0.0.1:1/v", tmp_path / "x", policy=LAN, max_bytes=10, timeout_s=5)


def test_non_http_scheme(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="http or https"):
        fetch("file:///etc/passwd", tmp_path / "x", policy=LAN, max_bytes=10, timeout_s=5)


def test_total_time_limit(http_server: LocalHttpServer, tmp_path: Path) -> None:
    # The time runs out between the headers and the body: the body's reads (many,
    # at 300 kB) come too late, each one quick.
    ticks = FakeTicks()
    http_server.routes["/slow"] = Route(body=BODY, after_head=lambda: ticks.advance(1.0))
    policy = AddressPolicy(True, ticks=ticks)
    with pytest.raises(FetchError, match=r"in time|longer than"):
        fetch(
            http_server.url("/slow"), tmp_path / "x", policy=policy, max_bytes=10**6, timeout_s=0.5
        )
    assert list(tmp_path.iterdir()) == []


def test_hanging_dns_counts_against_the_time_limit(tmp_path: Path) -> None:
    ticks = FakeTicks(step=1.0)  # each reading a second later: past a 0.5 s limit at once
    with hanging_dns() as resolver:
        policy = AddressPolicy(False, resolver=resolver, ticks=ticks)
        with pytest.raises(FetchError, match="in time"):
            fetch(
                "https://videos.example.com/v",
                tmp_path / "x",
                policy=policy,
                max_bytes=10,
                timeout_s=0.5,
            )
    assert resolver.asked == ["videos.example.com"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", UNSENDABLE_URLS)
def test_a_url_the_client_cannot_send_is_refused_as_such(url: str, tmp_path: Path) -> None:
    with pytest.raises(InputRefused, match="video_urls"):
        fetch(url, tmp_path / "x", policy=LAN, max_bytes=10, timeout_s=5)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "location", ["http://0177.0.0.1/v.mp4", "http://1.2.3.04/", "http://[::1", "http://a..b/"]
)
def test_a_redirect_the_client_cannot_follow_is_refused(
    http_server: LocalHttpServer, tmp_path: Path, location: str
) -> None:
    http_server.routes["/r"] = Route(status=302, headers=(("Location", location),))
    with pytest.raises(FetchError, match=r"(?i)invalid"):
        fetch(http_server.url("/r"), tmp_path / "x", policy=LAN, max_bytes=10, timeout_s=5)


@pytest.mark.parametrize(
    ("status", "final"), [(404, True), (403, True), (429, False), (503, False)]
)
def test_an_answer_another_try_would_repeat_is_final(
    http_server: LocalHttpServer, tmp_path: Path, status: int, final: bool
) -> None:
    http_server.routes["/v.mp4"] = Route(status=status, body=b"no")
    with pytest.raises(FetchError, match=f"HTTP {status}") as info:
        fetch(http_server.url("/v.mp4"), tmp_path / "x", policy=LAN, max_bytes=10, timeout_s=5)
    assert isinstance(info.value, InputRefused) is final
