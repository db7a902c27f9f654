"""/healthz, /readyz and /metrics against the real database, Redis and Synapse; the figures the
sync path, the outbox, the websockets and the homeserver boundary record."""

import json
import socket
import time
import urllib.request
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth import get_user_model
from django.utils import timezone
from prometheus_client import REGISTRY

from accounts.matrix.http import matrix_request
from accounts.models import MatrixAccount
from rooms import metrics, notify, open_pages, services
from rooms.models import OutboxMessage, Room, SyncLease
from rooms.services import LeaseHandle
from rooms.sync.batch import SyncBatch
from rooms.sync.leases import lease_claim


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def make_account(name: str, *, active: bool = True, token: str = "token") -> MatrixAccount:
    user = get_user_model().objects.create(username=name)
    return MatrixAccount.objects.create(
        user=user,
        homeserver_url="http://127.0.0.1:1",
        mxid=f"@{name}:test",
        device_id="DEV",
        access_token=token,
        is_active=active,
    )


def lease(account: MatrixAccount, owner: str, expires_in: float) -> None:
    SyncLease.objects.update_or_create(
        account=account,
        defaults={"owner": owner, "expires_at": timezone.now() + timedelta(seconds=expires_in)},
    )


# -- probes -----------------------------------------------------------------------------------


def test_healthz_asks_nothing_and_skips_the_https_redirect_and_host_check(client, settings):
    """No database (this test has none: a query would fail it), plain HTTP, a bare IP as Host."""
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["chat.example.org"]
    response = client.get("/healthz", HTTP_HOST="10.0.0.7:8000")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}
    assert response["Cache-Control"] == "no-store"
    # The same request for a page is redirected to HTTPS: the probe really skipped it.
    assert client.get("/accounts/login/", HTTP_HOST="chat.example.org").status_code == 301


@pytest.mark.django_db(transaction=True)
def test_readyz_is_ready_and_counts_accounts_with_a_live_owner(client, settings, synapse):
    settings.SECURE_SSL_REDIRECT = True
    owned = make_account("owned")
    lease(owned, "host-a", 20)
    lease(make_account("expired"), "host-b", -5)  # its host died: nobody syncs it
    make_account("never-claimed")
    lease(make_account("released"), "", 20)
    lease(make_account("gone", active=False), "host-a", 20)  # deactivated: not counted
    make_account("signed-out", token="")  # no token: nothing to sync

    response = client.get("/readyz", HTTP_HOST="10.0.0.7")
    assert response.status_code == 200, response.content
    report = response.json()
    assert report["status"] == "ready"
    checks = report["checks"]
    assert {name: check["ok"] for name, check in checks.items()} == {
        "database": True,
        "redis": True,
        "homeserver": True,
        "sync": True,
    }
    assert (checks["sync"]["active"], checks["sync"]["owned"]) == (4, 1)
    assert checks["sync"]["share"] == 0.25

    settings.READY_MIN_OWNED_SHARE = 0.5  # an operator who wants the probe to fail on this
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["sync"]["ok"] is False


@pytest.mark.django_db(transaction=True)
def test_readyz_says_what_is_down_quickly_and_without_addresses(client, settings):
    silent = socket.socket()  # accepts connections, never answers: a hung homeserver
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    try:
        settings.MATRIX_HOMESERVER_URL = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings.REDIS_URL = "redis://:hunter2@127.0.0.1:1/0"  # nothing listens on port 1
        settings.HEALTH_TIMEOUT = 0.5
        started = time.monotonic()
        response = client.get("/readyz")
        took = time.monotonic() - started
    finally:
        silent.close()
    assert response.status_code == 503
    report = response.json()
    assert report["status"] == "not ready"
    checks = report["checks"]
    assert checks["database"]["ok"] is True
    assert checks["redis"]["ok"] is False
    assert checks["homeserver"]["ok"] is False
    assert took < 2.5, f"the probe took {took:.1f}s"
    body = response.content.decode()
    assert "127.0.0.1" not in body
    assert "hunter2" not in body


# -- /metrics ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_only_for_allowed_addresses_or_the_token(client, settings):
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 404
    # nginx on this machine, but nobody listed it in WEBCLIENT_TRUSTED_PROXIES: its clients all
    # arrive from 127.0.0.1, and are still not let in.
    relayed = client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert relayed.status_code == 404
    # A proxy on this machine does not make its clients local: they are who it says they are.
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    forwarded = client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert forwarded.status_code == 404

    settings.METRICS_TOKEN = "scrape-secret"
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope", **outside)
    assert wrong.status_code == 404
    right = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret", **outside)
    assert right.status_code == 200
    assert right["Content-Type"].startswith("text/plain")

    settings.METRICS_ALLOWED = ["10.9.0.0/16"]
    assert client.get("/metrics", REMOTE_ADDR="10.9.3.4").status_code == 200


@pytest.mark.django_db
def test_metrics_report_the_outbox_backlog(client):
    account = make_account("sender")
    room = Room.objects.create(room_id="!outbox:test")
    for status, minutes in ((OutboxMessage.PENDING, 3), (OutboxMessage.PENDING, 1)):
        message = services.message_send(account_id=account.pk, room=room, body="hello")
        OutboxMessage.objects.filter(pk=message.pk).update(
            status=status, created_at=timezone.now() - timedelta(minutes=minutes)
        )
    sent = services.message_send(account_id=account.pk, room=room, body="long gone")
    OutboxMessage.objects.filter(pk=sent.pk).update(
        status=OutboxMessage.SENT, created_at=timezone.now() - timedelta(days=3)
    )
    text = client.get("/metrics").content.decode()
    figures = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("webclient_outbox")
    )
    assert float(figures["webclient_outbox_depth"]) == 2
    assert 180 <= float(figures["webclient_outbox_oldest_age_seconds"]) < 240
    assert "webclient_homeserver_errors_total" in text
    assert "process_resident_memory_bytes" in text


@pytest.mark.django_db
def test_ingest_records_its_time_and_the_hosts_sync_lag():
    account = make_account("syncing")
    token = lease_claim(account_id=account.pk, owner="host-lag", seconds=30)
    handle = LeaseHandle(account_id=account.pk, owner="host-lag", token=token)
    before = sample("webclient_sync_ingest_seconds_count")
    batch = SyncBatch(next_batch="s1")
    batch.received_at -= 0.25  # the response arrived a quarter second before its ingest
    services.sync_ingest(lease=handle, own_user_id=account.mxid, batch=batch)

    assert sample("webclient_sync_ingest_seconds_count") == before + 1
    assert sample("webclient_sync_lag_seconds_count", host="host-lag") == 1
    assert sample("webclient_sync_lag_seconds_sum", host="host-lag") >= 0.25
    age = sample("webclient_sync_last_success_age_seconds", host="host-lag")
    assert 0 <= age < 5
    assert REGISTRY.get_sample_value(
        "webclient_sync_last_success_age_seconds", {"host": "host-lag"}
    )

    metrics.host_stopped("host-lag")  # a stopped host is not a stuck one: its series go
    assert (
        REGISTRY.get_sample_value("webclient_sync_lag_seconds_count", {"host": "host-lag"}) is None
    )
    gone = REGISTRY.get_sample_value(
        "webclient_sync_last_success_age_seconds", {"host": "host-lag"}
    )
    assert gone is None


@pytest.mark.django_db
def test_live_pushes_record_their_render_time():
    account = make_account("watcher")
    fragment = "rooms/live.html#room-list-hint"
    before = sample("webclient_live_render_seconds_count", template=fragment)
    async_to_sync(open_pages.page_seen)(account.pk, "specific.test!channel")
    try:
        notify.room_list_changed(account_id=account.pk)
    finally:
        async_to_sync(open_pages.page_closed)(account.pk, "specific.test!channel")
    assert sample("webclient_live_render_seconds_count", template=fragment) == before + 1


def test_homeserver_errors_are_counted_once_by_kind(synapse):
    def kinds() -> dict[str, float]:
        return {
            k: sample("webclient_homeserver_errors_total", kind=k)
            for k in ("unreachable", "server_error", "rate_limited", "refused")
        }

    before = kinds()
    with pytest.raises(Exception):  # noqa: B017 - whichever: counted as unreachable
        matrix_request("http://127.0.0.1:1", "GET", "/_matrix/client/versions", timeout=1)
    with pytest.raises(Exception):  # noqa: B017 - Synapse refuses a bad token (401)
        matrix_request(synapse.url, "GET", "/_matrix/client/v3/account/whoami", token="bad")
    after = kinds()
    assert {k: after[k] - before[k] for k in after} == {
        "unreachable": 1,
        "server_error": 0,
        "rate_limited": 0,
        "refused": 1,
    }


@pytest.mark.django_db(transaction=True)
async def test_open_websockets_are_counted(client, matrix_user_factory):
    from tests.integration.rooms.helpers import signed_in_account
    from tests.integration.rooms.test_live_groups import close_page, open_page

    await sync_to_async(signed_in_account)(client, matrix_user_factory())
    before = sample("webclient_websockets_open")
    page = await open_page(client)
    assert sample("webclient_websockets_open") == before + 1
    await close_page(page)
    assert sample("webclient_websockets_open") == before


def test_sync_hosts_serve_their_metrics_on_their_port(settings):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    settings.METRICS_PORT = port
    settings.METRICS_ADDR = "127.0.0.1"
    assert metrics.serve_host_metrics() == port
    assert metrics.serve_host_metrics() is None  # once per process
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert "webclient_sync_ingest_seconds" in text
    assert "webclient_homeserver_errors_total" in text


def test_readiness_json_shape():
    from webclient.health import Check, Readiness

    report = Readiness(ready=False, checks={"redis": Check(ok=False, detail="ConnectionError")})
    assert json.loads(json.dumps(report.as_json())) == {
        "status": "not ready",
        "checks": {"redis": {"ok": False, "detail": "ConnectionError", "seconds": 0.0}},
    }
