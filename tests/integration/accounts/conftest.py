"""Fixtures for the accounts integration tests: a spy on the requests our code makes to the homeserver."""

import urllib.request

import pytest


@pytest.fixture
def homeserver_calls(monkeypatch, synapse) -> list[str]:
    """Every request to the session's Synapse as "METHOD /path", in order. The real request is sent:
    only its address is written down."""
    calls: list[str] = []
    real_urlopen = urllib.request.urlopen

    def counting_urlopen(request, *args, **kwargs):
        url = request.full_url if isinstance(request, urllib.request.Request) else str(request)
        if url.startswith(synapse.url):
            method = request.get_method() if isinstance(request, urllib.request.Request) else "GET"
            calls.append(f"{method} {url.removeprefix(synapse.url)}")
        return real_urlopen(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", counting_urlopen)
    return calls
