"""Probing input URLs over HTTP range requests, against a real local server."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.clips import make_clip, write_audio_only, write_faststart, write_not_a_video
from tests.dns import hanging_dns
from tests.servers import LocalHttpServer, Route
from tests.ticks import FakeTicks
from upres.domain.media import MediaLimits
from upres.errors import PROBE_FAILED_MESSAGE, AddressNotAllowed, FetchError, UpresError
from upres.inputs.netpolicy import AddressPolicy, policy_client
from upres.inputs.remote import HttpRangeFile, RemoteProber

LAN = AddressPolicy(True)
BLOCK = 16 * 1024


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~2.5 MB, 4 s mp4 with its moov at the end (PyAV's default layout)."""
    return make_clip(
        tmp_path_factory.mktemp("remote") / "clip.mp4", width=320, height=240, frames=96, fps=24
    )


@pytest.fixture(scope="module")
def front(clip: Path) -> Path:
    return write_faststart(clip, clip.with_name("front.mp4"))


def _prober(**kwargs: object) -> RemoteProber:
    return RemoteProber(LAN, 10.0, MediaLimits(), block_size=BLOCK, **kwargs)  # type: ignore[arg-type]


def test_moov_at_front_reads_a_small_fraction(http_server: LocalHttpServer, front: Path) -> None:
    body = front.read_bytes()
    http_server.routes["/v.mp4"] = Route(body=body)
    info = _prober().probe_url(http_server.url("/v.mp4"))
    assert info.duration_s == pytest.approx(4.0, abs=0.1)
    assert (info.width, info.height) == (320, 240)
    assert info.has_audio
    assert http_server.bytes_sent["/v.mp4"] < len(body) // 10
    assert all(r is not None for _, r in http_server.requests)


def test_moov_at_end_seeks_instead_of_downloading(http_server: LocalHttpServer, clip: Path) -> None:
    body = clip.read_bytes()
    http_server.routes["/v.mp4"] = Route(body=body)
    info = _prober().probe_url(http_server.url("/v.mp4"))
    assert info.duration_s == pytest.approx(4.0, abs=0.1)
    assert http_server.bytes_sent["/v.mp4"] < len(body) // 10


def test_server_ignoring_range_is_read_through(http_server: LocalHttpServer, clip: Path) -> None:
    http_server.routes["/v.mp4"] = Route(body=clip.read_bytes(), ranges=False)
    info = _prober().probe_url(http_server.url("/v.mp4"))
    assert info.duration_s == pytest.approx(4.0, abs=0.1)
    assert len(http_server.requests) == 1


def test_a_whole_body_is_left_where_the_caller_keeps_it(
    http_server: LocalHttpServer, clip: Path, front: Path, tmp_path: Path
) -> None:
    http_server.routes["/whole.mp4"] = Route(body=clip.read_bytes(), ranges=False)
    http_server.routes["/ranged.mp4"] = Route(body=front.read_bytes())
    whole, ranged = tmp_path / "whole", tmp_path / "ranged"

    _prober().probe_url(http_server.url("/whole.mp4"), whole_body=whole)
    _prober().probe_url(http_server.url("/ranged.mp4"), whole_body=ranged)

    assert whole.read_bytes() == clip.read_bytes()
    assert not ranged.exists()


def test_server_ignoring_range_over_the_byte_limit(
    http_server: LocalHttpServer, clip: Path
) -> None:
    http_server.routes["/v.mp4"] = Route(body=clip.read_bytes(), ranges=False)
    with pytest.raises(FetchError, match="ignores range requests") as info:
        _prober(max_bytes=100_000).probe_url(http_server.url("/v.mp4"))
    assert info.value.code == "video_probe_failed"
    assert info.value.message.startswith(PROBE_FAILED_MESSAGE)


def test_byte_budget_spent_while_demuxing(http_server: LocalHttpServer, clip: Path) -> None:
    """The demuxer's read fails mid-probe: the transport's error is what surfaces."""
    http_server.routes["/v.mp4"] = Route(body=clip.read_bytes())
    with pytest.raises(FetchError, match="more than 20000 bytes"):
        _prober(max_bytes=20_000).probe_url(http_server.url("/v.mp4"))


def test_follows_redirect_then_reads_ranges_at_the_target(
    http_server: LocalHttpServer, front: Path
) -> None:
    http_server.routes["/v.mp4"] = Route(body=front.read_bytes())
    http_server.routes["/go"] = Route(status=302, headers=(("Location", "/v.mp4"),))
    info = _prober().probe_url(http_server.url("/go"))
    assert info.duration_s == pytest.approx(4.0, abs=0.1)
    assert [p for p, _ in http_server.requests].count("/go") == 1


@pytest.mark.parametrize(
    ("route", "pattern"),
    [
        (Route(status=404), "HTTP 404"),
        (Route(body=b""), "empty file"),
    ],
)
def test_unreadable_urls_fail_as_probe_failures(
    http_server: LocalHttpServer, route: Route, pattern: str
) -> None:
    http_server.routes["/v.mp4"] = route
    with pytest.raises(FetchError, match=pattern) as info:
        _prober().probe_url(http_server.url("/v.mp4"))
    assert info.value.code == "video_probe_failed"
    assert PROBE_FAILED_MESSAGE in info.value.message


def test_unreachable_host_fails_as_probe_failure() -> None:
    with pytest.raises(FetchError) as info:
        _prober().probe_url("http://127.0.0.1:1/v.mp4")
    assert info.value.code == "video_probe_failed"


def test_not_a_video_and_audio_only(http_server: LocalHttpServer, tmp_path: Path) -> None:
    http_server.routes["/junk"] = Route(body=write_not_a_video(tmp_path / "j.mp4").read_bytes())
    http_server.routes["/audio"] = Route(body=write_audio_only(tmp_path / "a.mp4").read_bytes())
    for path in ("/junk", "/audio"):
        with pytest.raises(UpresError) as info:
            _prober().probe_url(http_server.url(path))
        assert info.value.code == "video_probe_failed"


def test_whole_probe_is_time_limited(http_server: LocalHttpServer, front: Path) -> None:
    http_server.routes["/v.mp4"] = Route(body=front.read_bytes(), delay_s=0.4)
    prober = RemoteProber(LAN, 0.6, MediaLimits(), block_size=BLOCK)
    with pytest.raises(FetchError) as info:
        prober.probe_url(http_server.url("/v.mp4"))
    assert info.value.code == "video_probe_failed"


def test_hanging_dns_counts_against_the_time_limit() -> None:
    ticks = FakeTicks(step=1.0)  # each reading a second later: past a 0.5 s limit at once
    with hanging_dns() as resolver:
        policy = AddressPolicy(False, resolver=resolver, ticks=ticks)
        prober = RemoteProber(policy, 0.5, MediaLimits())
        with pytest.raises(FetchError) as info:
            prober.probe_url("https://videos.example.com/v.mp4")
    assert resolver.asked == ["videos.example.com"]
    assert info.value.code == "video_probe_failed"
    assert info.value.message.startswith(PROBE_FAILED_MESSAGE)
    assert "in time" in info.value.message


def test_private_address_refused_as_invalid_parameter(http_server: LocalHttpServer) -> None:
    http_server.routes["/v.mp4"] = Route(body=b"x")
    prober = RemoteProber(AddressPolicy(False), 5.0, MediaLimits())
    with pytest.raises(AddressNotAllowed) as info:
        prober.probe_url(http_server.url("/v.mp4", host="localhost"))
    assert info.value.param == "video_urls"
    assert http_server.requests == []


class TestHttpRangeFile:
    @pytest.fixture(autouse=True)
    def _client(self) -> Iterator[None]:
        with policy_client(LAN, timeout_s=5) as self.client:
            yield

    def _open(self, server: LocalHttpServer, body: bytes, **kwargs: int) -> HttpRangeFile:
        server.routes["/f"] = Route(body=body)
        client = self.client
        return HttpRangeFile.open(client, server.url("/f"), max_bytes=10**7, **kwargs)

    def test_reads_and_seeks_like_a_local_file(self, http_server: LocalHttpServer) -> None:
        body = bytes(range(256)) * 1000
        local = io.BytesIO(body)
        with self._open(http_server, body, block_size=1000, cache_blocks=4) as remote:
            for offset, whence, size in [(0, 0, 10), (2500, 0, 3000), (-7, 2, 50), (-100, 1, 5)]:
                assert remote.seek(offset, whence) == local.seek(offset, whence)
                assert remote.read(size) == local.read(size)
                assert remote.tell() == local.tell()
            assert remote.size == len(body)

    def test_cached_blocks_are_not_fetched_again(self, http_server: LocalHttpServer) -> None:
        body = bytes(50_000)
        with self._open(http_server, body, block_size=4096) as remote:
            remote.seek(10_000)
            remote.read(100)
            remote.seek(10_050)
            remote.read(100)
            assert remote.bytes_received == 2 * 4096
        assert len(http_server.requests) == 2

    def test_plain_read_to_end(self, http_server: LocalHttpServer) -> None:
        body = bytes(range(256)) * 300
        with self._open(http_server, body, block_size=5000, cache_blocks=2) as remote:
            assert remote.read() == body

    def test_connection_errors_are_fetch_errors(self, http_server: LocalHttpServer) -> None:
        remote = self._open(http_server, bytes(40_000), block_size=4096)
        http_server.routes["/f"] = Route(status=500)
        remote.seek(30_000)
        with remote, pytest.raises(FetchError, match="HTTP 500"):
            remote.read(10)
        assert isinstance(remote.error, FetchError)

    def test_client_errors_surface_unwrapped_on_open(self) -> None:
        with policy_client(LAN, timeout_s=5) as client, pytest.raises(httpx.ConnectError):
            HttpRangeFile.open(client, "http://127.0.0.1:1/", max_bytes=9)
