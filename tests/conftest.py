"""Shared fixtures: a real Synapse per session, real Redis, and named Matrix users.

Unit tests need none of them; integration and browser tests ask for `synapse` (directly or through
`matrix_user_factory`)."""

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from channels.layers import channel_layers
from django.conf import settings
from hypothesis import settings as hypothesis_settings
from nio import AsyncClient, AsyncClientConfig

from accounts.matrix.synapse_admin import register_with_shared_secret
from webclient.embedded.redis import redis_reachable, start_redis
from webclient.embedded.synapse import SynapseProcess, start_synapse

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"

# CI must not fail on a case that a change never touched: there Hypothesis replays a fixed set of
# examples. Developers' runs (bin/test without CI set) keep exploring new ones.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


@pytest.fixture(scope="session", autouse=True)
def redis_url(tmp_path_factory) -> Iterator[str]:
    """The machine's Redis when it answers (REDIS_URL or 127.0.0.1:6379), else a private one.

    Autouse: settings must point at a live Redis before any test touches Celery or the channel
    layer, and the check costs one PING."""
    url = os.environ.get("REDIS_URL", DEFAULT_REDIS)
    private = None
    if not redis_reachable(url):
        private = start_redis(tmp_path_factory.mktemp("redis"))
        url = private.url
    settings.REDIS_URL = url
    settings.CELERY_BROKER_URL = url
    settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [{"address": url, "socket_timeout": 30}]
    channel_layers.backends.clear()
    yield url
    if private is not None:
        private.stop()


@pytest.fixture(scope="session")
def synapse(tmp_path_factory) -> Iterator[SynapseProcess]:
    """One real Synapse per session (~2 s to start), rate limits lifted, bcrypt cheap."""
    server = start_synapse(tmp_path_factory.mktemp("synapse"), for_tests=True)
    settings.MATRIX_HOMESERVER_URL = server.url
    settings.MATRIX_REGISTRATION_SHARED_SECRET = server.shared_secret
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _homeserver_settings_per_test(request, settings):
    """Tests may point settings elsewhere (a dead homeserver); each starts from the session's."""
    if "synapse" in request.fixturenames:
        server = request.getfixturevalue("synapse")
        settings.MATRIX_HOMESERVER_URL = server.url
        settings.MATRIX_REGISTRATION_SHARED_SECRET = server.shared_secret


@dataclass(frozen=True)
class MatrixCredentials:
    user_id: str
    localpart: str
    password: str
    access_token: str
    device_id: str


@pytest.fixture(scope="session")
def matrix_user_factory(synapse):
    """make(localpart=None, password=None, admin=False): a fresh account on the session's Synapse."""

    def make(
        localpart: str | None = None, password: str | None = None, admin: bool = False
    ) -> MatrixCredentials:
        localpart = localpart or f"user-{uuid.uuid4().hex[:10]}"
        password = password or f"pw-{uuid.uuid4().hex}"
        session = register_with_shared_secret(
            synapse.url,
            shared_secret=synapse.shared_secret,
            localpart=localpart,
            password=password,
            admin=admin,
        )
        return MatrixCredentials(
            session.user_id, localpart, password, session.access_token, session.device_id
        )

    return make


@pytest.fixture
async def nio_peer_factory(synapse, matrix_user_factory) -> AsyncIterator:
    """Logged-in plain matrix-nio clients playing the other party; closed after the test."""
    clients: list[AsyncClient] = []

    async def make(creds: MatrixCredentials | None = None) -> AsyncClient:
        creds = creds or matrix_user_factory()
        client = AsyncClient(
            synapse.url,
            creds.user_id,
            config=AsyncClientConfig(store_sync_tokens=False, encryption_enabled=False),
        )
        client.restore_login(creds.user_id, creds.device_id, creds.access_token)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
