"""Receiver URL vetting: shape, resolution, and every resolved address public (or private allowed)."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from yolostack.core.urls import Resolver
from yolostack.webhooks.targets import TargetRefused, vet_url


def resolving_to(*addresses: str) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


async def unresolvable(host: str, port: int) -> list[str]:
    raise OSError("Name or service not known")


class TestVetUrl:
    async def test_public_name_is_pinned_to_its_address(self) -> None:
        target = await vet_url(
            "https://hooks.example.com/in", allow_private=False, resolver=resolving_to("93.184.215.14")
        )
        assert target.address == ipaddress.ip_address("93.184.215.14")
        request = target.build_request(httpx.AsyncClient(), b"{}", {"webhook-id": "msg_1"})
        assert request.url.host == "93.184.215.14"
        assert request.headers["host"] == "hooks.example.com"
        assert request.extensions["sni_hostname"] == "hooks.example.com"

    async def test_one_private_address_among_public_ones_is_refused(self) -> None:
        with pytest.raises(TargetRefused, match="non-public"):
            await vet_url(
                "http://rebind.example.com/", allow_private=False, resolver=resolving_to("93.184.215.14", "10.1.2.3")
            )

    async def test_private_address_allowed_by_the_operator(self) -> None:
        target = await vet_url("http://intranet:8080/", allow_private=True, resolver=resolving_to("10.1.2.3"))
        request = target.build_request(httpx.AsyncClient(), b"{}", {})
        assert request.headers["host"] == "intranet:8080"
        assert "sni_hostname" not in request.extensions

    async def test_unresolvable_host_is_refused(self) -> None:
        with pytest.raises(TargetRefused, match="could not be resolved"):
            await vet_url("http://nowhere.example/", allow_private=True, resolver=unresolvable)

    async def test_no_addresses_is_refused(self) -> None:
        with pytest.raises(TargetRefused, match="could not be resolved"):
            await vet_url("http://nowhere.example/", allow_private=True, resolver=resolving_to())
