"""The URL policy: one parse, the HTTP client's own, at submission and at send time."""

from __future__ import annotations

import ipaddress

import pytest

from tests.dns import hanging_dns
from tests.hostile import UNSENDABLE_URLS
from tests.ticks import FakeTicks
from upres.errors import AddressNotAllowed, InvalidRequest, InvalidUrl
from upres.inputs.netpolicy import AddressPolicy, IPAddress, Resolver
from upres.inputs.urlpolicy import CALLBACK_URL, INPUT_URL, UrlPolicy, parse_url


def _fixed(*addresses: str) -> Resolver:
    def resolve(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(a) for a in addresses]

    return resolve


class TestCallbackUrl:
    def test_public_https_url_passes(self) -> None:
        policy = AddressPolicy(False, resolver=_fixed("93.184.215.14"))
        UrlPolicy(policy).check_callback_url("https://hooks.example.com/done")

    @pytest.mark.parametrize(
        "url",
        [
            "http://hooks.example.com/done",
            "ftp://hooks.example.com/",
            "https:///nohost",
            "https://hooks.example.com:99999/",
            "https://hooks.example.com/" + "a" * 2048,
        ],
    )
    def test_bad_forms_are_invalid_parameters(self, url: str) -> None:
        policy = AddressPolicy(False, resolver=_fixed("93.184.215.14"))
        with pytest.raises(InvalidRequest) as info:
            UrlPolicy(policy).check_callback_url(url)
        assert info.value.code == "invalid_parameter"
        assert info.value.param == "callback_url"

    @pytest.mark.parametrize(
        "url",
        [
            "https://127.0.0.1/x",
            "https://10.0.0.5/x",
            "https://[::1]/x",
            "https://[fc00::1]/x",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::ffff:127.0.0.1]/x",
            "https://localhost/x",
            "https://2130706433/x",  # 127.0.0.1 as one decimal number
            "https://0x7f.1/x",
            "https://user@127.0.0.1:8443/x",
        ],
    )
    def test_private_hosts_are_refused(self, url: str) -> None:
        with pytest.raises(AddressNotAllowed) as info:
            UrlPolicy(AddressPolicy(False)).check_callback_url(url)
        assert info.value.code == "invalid_parameter"

    def test_a_name_resolving_to_any_private_address_is_refused(self) -> None:
        policy = AddressPolicy(False, resolver=_fixed("93.184.215.14", "10.0.0.1"))
        with pytest.raises(AddressNotAllowed):
            UrlPolicy(policy).check_callback_url("https://mixed.example.com/")

    def test_unresolvable_host_is_invalid(self) -> None:
        with pytest.raises(InvalidRequest, match="does not resolve"):
            UrlPolicy(AddressPolicy(False)).check_callback_url("https://no-such-host.invalid/")

    def test_a_silent_dns_server_is_invalid_within_the_check_time_limit(self) -> None:
        ticks = FakeTicks(step=1.0)  # each reading a second later: past a 0.3 s limit at once
        with hanging_dns() as resolver:
            policy = AddressPolicy(False, resolver=resolver, check_timeout_s=0.3, ticks=ticks)
            with pytest.raises(InvalidRequest, match="did not resolve in time") as info:
                UrlPolicy(policy).check_callback_url("https://slow.example.com/hook")
        assert resolver.asked == ["slow.example.com"]
        assert info.value.param == "callback_url"

    def test_allow_private_accepts_localhost(self) -> None:
        UrlPolicy(AddressPolicy(True)).check_callback_url("https://localhost:8443/hook")
        with pytest.raises(AddressNotAllowed):
            UrlPolicy(AddressPolicy(False)).check_callback_url("https://localhost:8443/hook")


@pytest.mark.parametrize("url", [*UNSENDABLE_URLS, "http:///nohost", "ftp://h.example.com/"])
def test_what_the_client_refuses_is_an_invalid_url(url: str) -> None:
    with pytest.raises(InvalidUrl) as info:
        parse_url(url, INPUT_URL)
    assert info.value.code == "invalid_parameter"
    assert info.value.param == "video_urls"
    info.value.message.encode()  # shown in a JSON answer: no lone surrogate


@pytest.mark.parametrize(
    "url",
    [
        "https://videos.example.com/a.mp4",
        "http://videos.example.com:8080/a%20b.mp4?x=1#frag",
        "http://m\u00fcnchen.example/v.mp4",  # an IDN, sent as its A-label
        "http://[2606:4700:4700::1111]/v.mp4",
        "http://8.8.8.8/v.mp4",
    ],
)
def test_what_the_client_sends_passes(url: str) -> None:
    assert parse_url(url, INPUT_URL).scheme in INPUT_URL.schemes


def test_callback_rule_is_https_within_2048_characters() -> None:
    assert CALLBACK_URL.schemes == ("https",)
    parse_url("https://h.example.com/" + "a" * (2048 - 22), CALLBACK_URL)
    with pytest.raises(InvalidUrl, match="2048"):
        parse_url("https://h.example.com/" + "a" * (2049 - 22), CALLBACK_URL)


def test_a_private_refusal_names_the_setting_that_opens_it() -> None:
    with pytest.raises(AddressNotAllowed, match="UPRES_ALLOW_PRIVATE_NETWORKS=true"):
        UrlPolicy(AddressPolicy(False)).check_callback_url("https://127.0.0.1/x")
    with pytest.raises(AddressNotAllowed) as info:
        UrlPolicy(AddressPolicy(True)).check_callback_url("https://169.254.169.254/x")
    assert "UPRES_ALLOW_PRIVATE_NETWORKS" not in info.value.message
