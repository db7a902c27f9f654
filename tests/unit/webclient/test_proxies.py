"""Forwarded headers are believed only from the proxies the operator listed."""

import pytest

from webclient.proxies import client_address

PROXY = "10.0.0.5"


@pytest.fixture
def proxies(settings):
    settings.TRUSTED_PROXIES = [PROXY, "fd00::/64"]


def test_without_trusted_proxies_the_peer_is_the_client(settings):
    settings.TRUSTED_PROXIES = []
    meta = {"REMOTE_ADDR": "203.0.113.9", "HTTP_X_FORWARDED_FOR": "198.51.100.1"}
    assert client_address(meta) == "203.0.113.9"


def test_an_untrusted_peer_cannot_claim_another_address(proxies):
    meta = {"REMOTE_ADDR": "203.0.113.9", "HTTP_X_FORWARDED_FOR": "198.51.100.1"}
    assert client_address(meta) == "203.0.113.9"


def test_behind_a_trusted_proxy_the_forwarded_client_counts(proxies):
    meta = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "198.51.100.1"}
    assert client_address(meta) == "198.51.100.1"


def test_hops_the_client_wrote_itself_are_ignored(proxies):
    # The client sent "X-Forwarded-For: 1.2.3.4"; our proxy appended the address it really saw.
    meta = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "1.2.3.4, 198.51.100.1"}
    assert client_address(meta) == "198.51.100.1"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right(proxies):
    meta = {"REMOTE_ADDR": "fd00::2", "HTTP_X_FORWARDED_FOR": "1.2.3.4, 198.51.100.1, 10.0.0.5"}
    assert client_address(meta) == "198.51.100.1"


def test_a_garbled_hop_stops_the_walk_at_the_last_trusted_address(proxies):
    meta = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "1.2.3.4, not-an-address"}
    assert client_address(meta) == PROXY
    assert client_address({"REMOTE_ADDR": PROXY}) == PROXY
