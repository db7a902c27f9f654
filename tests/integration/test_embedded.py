"""The embedded services the one-command run and the tests stand on: Synapse and Redis, for real."""

import json
import stat
import uuid

import pytest
import redis

from accounts.matrix import client_api
from accounts.matrix.errors import MatrixError
from accounts.matrix.http import matrix_request
from accounts.matrix.synapse_admin import register_with_shared_secret
from webclient.embedded.processes import free_port
from webclient.embedded.redis import redis_reachable, start_redis
from webclient.embedded.synapse import write_synapse_config


def test_synapse_answers_and_registers_by_shared_secret(synapse):
    assert "versions" in client_api.server_versions(synapse.url)
    localpart = f"embedded-{uuid.uuid4().hex[:8]}"
    session = register_with_shared_secret(
        synapse.url, shared_secret=synapse.shared_secret, localpart=localpart, password="pw-1"
    )
    assert session.user_id == f"@{localpart}:{synapse.server_name}"
    assert client_api.whoami(synapse.url, access_token=session.access_token)["user_id"] == (
        session.user_id
    )


def test_synapse_refuses_a_wrong_shared_secret(synapse):
    with pytest.raises(MatrixError):
        register_with_shared_secret(
            synapse.url,
            shared_secret="not-the-secret",
            localpart=f"intruder-{uuid.uuid4().hex[:8]}",
            password="pw",
        )


def test_synapse_has_no_open_registration(synapse):
    # Open registration would answer 401 with the auth flows to follow; closed is a 403.
    with pytest.raises(MatrixError) as refused:
        matrix_request(
            synapse.url,
            "POST",
            "/_matrix/client/v3/register",
            body={"username": f"self-{uuid.uuid4().hex[:8]}", "password": "pw"},
        )
    assert (refused.value.status, refused.value.errcode) == (403, "M_FORBIDDEN")


def test_config_keeps_registration_closed_and_the_secret_private(tmp_path):
    path = write_synapse_config(tmp_path, port=free_port(), for_tests=True)
    config = json.loads(path.read_text())
    assert config["enable_registration"] is False
    assert "enable_registration_without_verification" not in config
    assert config["listeners"][0]["bind_addresses"] == ["127.0.0.1"]
    assert config["listeners"][0]["resources"] == [{"names": ["client"], "compress": False}]
    assert config["trusted_key_servers"] == [] and config["federation_domain_whitelist"] == []
    assert config["rc_message"]["per_second"] >= 1000

    secret_file = tmp_path / "registration_shared_secret"
    assert config["registration_shared_secret"] == secret_file.read_text().strip()
    for private in (secret_file, path, tmp_path / "signing.key"):
        assert stat.S_IMODE(private.stat().st_mode) & 0o077 == 0, private

    again = json.loads(write_synapse_config(tmp_path, port=free_port()).read_text())
    assert again["registration_shared_secret"] == config["registration_shared_secret"]
    assert "bcrypt_rounds" not in again


def test_private_redis_answers_and_stops(tmp_path):
    server = start_redis(tmp_path)
    try:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        assert client.config_get("save")["save"] == ""
        client.close()
    finally:
        server.stop()
    assert server.process.poll() is not None
    assert not redis_reachable(server.url)
    server.stop()  # a second stop is harmless
