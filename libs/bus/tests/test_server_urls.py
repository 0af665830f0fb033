"""``NATS_URL`` names one server or the nodes of a cluster, comma-separated."""

from __future__ import annotations

import pytest

from conveyor_bus.connection import server_urls

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("url", "servers"),
    [
        ("nats://u:p@127.0.0.1:4222", ["nats://u:p@127.0.0.1:4222"]),
        (
            "nats://u:p@10.0.0.1:4222,nats://u:p@10.0.0.2:4222, nats://u:p@10.0.0.3:4222,",
            ["nats://u:p@10.0.0.1:4222", "nats://u:p@10.0.0.2:4222", "nats://u:p@10.0.0.3:4222"],
        ),
    ],
)
def test_each_url_of_the_list_is_a_server(url: str, servers: list[str]) -> None:
    assert server_urls(url) == servers


@pytest.mark.parametrize("url", ["", " , ,"])
def test_a_list_without_a_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="NATS_URL names no server"):
        server_urls(url)
