"""Outbound URL vetting shared by predict sources and webhooks: shape, every resolved address, pinning."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from yolostack.core.urls import Resolver, UrlRefused, is_public_address, parse_url, vet_url


def resolving_to(*addresses: str) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("100.64.1.1", False),
        ("169.254.169.254", False),
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::a00:1", False),
        ("2002:a00:1::", False),
        ("240.0.0.1", False),
        ("fe80::1", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


class TestParseUrl:
    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("file:///etc/passwd", "source URL must use http or https"),
            ("http://user:pass@example.com/", "source URL must not contain credentials"),
            ("http:///path", "source URL has no host"),
            ("http://[::1/", "source URL is not a valid URL"),
        ],
    )
    def test_message_names_the_subject(self, url: str, message: str) -> None:
        with pytest.raises(UrlRefused) as refused:
            parse_url(url, subject="source URL")
        assert refused.value.message == message


class TestVetUrl:
    async def test_every_address_is_vetted(self) -> None:
        with pytest.raises(UrlRefused, match="url points to a private or loopback"):
            await vet_url("http://rebind.example/", resolver=resolving_to("93.184.215.14", "::ffff:127.0.0.1"))

    async def test_allowed_network_admits_its_addresses_only(self) -> None:
        allowed = [ipaddress.ip_network("10.1.0.0/16")]
        vetted = await vet_url("http://intranet/", allowed_networks=allowed, resolver=resolving_to("10.1.2.3"))
        assert vetted.address == ipaddress.ip_address("10.1.2.3")
        with pytest.raises(UrlRefused, match="non-public"):
            await vet_url("http://intranet/", allowed_networks=allowed, resolver=resolving_to("10.2.0.1"))

    async def test_scoped_ipv6_address_is_read_without_its_zone(self) -> None:
        vetted = await vet_url("http://host/", allow_private=True, resolver=resolving_to("fe80::1%eth0"))
        assert vetted.address == ipaddress.ip_address("fe80::1")

    @pytest.mark.parametrize(
        ("url", "host", "sni"),
        [
            ("https://hooks.example.com/in", "hooks.example.com", "hooks.example.com"),
            ("http://hooks.example.com:8080/in", "hooks.example.com:8080", None),
        ],
    )
    async def test_request_goes_to_the_vetted_address_under_the_urls_name(
        self, url: str, host: str, sni: str | None
    ) -> None:
        vetted = await vet_url(url, resolver=resolving_to("93.184.215.14"))
        async with httpx.AsyncClient() as client:
            request = vetted.build_request(client, b"{}", {"x-test": "1"})
        assert request.method == "POST"
        assert request.url.host == "93.184.215.14"
        assert request.headers["host"] == host
        assert request.headers["x-test"] == "1"
        assert request.extensions.get("sni_hostname") == sni
        assert request.content == b"{}"
