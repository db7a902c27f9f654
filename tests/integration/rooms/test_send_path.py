"""The send path: a send nudge goes straight to the PUT. Verification handling and the reading of
sealed history run only when their own nudges ask for them (or, for verifications, on the idle
poll), never in front of a person's message."""

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from accounts.matrix import sync_api
from rooms import notify, services
from rooms.models import OutboxMessage, SyncState
from rooms.sync import host as host_module
from rooms.sync.host import OutboxSender, SyncHost
from rooms.sync.verifying import VerificationDriver
from tests.integration.rooms.test_outbox import shared_room

pytestmark = pytest.mark.django_db(transaction=True)


async def wait_for(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await sync_to_async(condition)():
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.fixture
def calls(monkeypatch) -> list[str]:
    """What the host did, in order: verification handling, sealed-history reads, PUTs."""
    seen: list[str] = []
    perform, retry_sealed, send_event = (
        VerificationDriver.perform,
        host_module.retry_sealed,
        sync_api.send_event,
    )

    async def counted_perform(self):
        seen.append("verifications")
        return await perform(self)

    async def counted_retry_sealed(*args, **kwargs):
        seen.append("sealed")
        return await retry_sealed(*args, **kwargs)

    async def counted_send_event(*args, **kwargs):
        seen.append("put")
        return await send_event(*args, **kwargs)

    monkeypatch.setattr(VerificationDriver, "perform", counted_perform)
    monkeypatch.setattr(host_module, "retry_sealed", counted_retry_sealed)
    monkeypatch.setattr(sync_api, "send_event", counted_send_event)
    monkeypatch.setattr(OutboxSender, "IDLE_SECONDS", 120.0)  # no idle poll during the test
    return seen


async def test_a_send_nudge_reaches_the_put_and_nothing_else(
    client, matrix_user_factory, nio_peer_factory, calls
):
    account, room, _peer = await shared_room(client, matrix_user_factory, nio_peer_factory)
    host = SyncHost(capacity=10, lease_seconds=6)
    stop = asyncio.Event()
    running = asyncio.create_task(host.run(stop))
    try:
        # The account is owned, synced once, and its crypto device is open.
        assert await wait_for(lambda: SyncState.objects.filter(account=account).exists())
        owned = host.owned[account.pk]
        await asyncio.wait_for(owned.crypto.ready.wait(), 30)
        assert owned.crypto.verifications is not None

        for n in range(3):
            calls.clear()
            message = await sync_to_async(services.message_send)(
                account_id=account.pk, room=room, body=f"straight through {n}"
            )
            assert await wait_for(
                lambda m=message: OutboxMessage.objects.get(pk=m.pk).status == "sent"
            )
            assert calls == ["put"], calls

        # Each kind of work still runs on its own nudge, and without a PUT.
        calls.clear()
        await sync_to_async(notify.verification_nudge)(account_id=account.pk)
        assert await wait_for(lambda: "verifications" in calls, timeout=10)
        await sync_to_async(notify.history_sealed_nudge)(account_id=account.pk)
        assert await wait_for(lambda: "sealed" in calls, timeout=10)
        assert calls == ["verifications", "sealed"], calls
    finally:
        stop.set()
        await running
        await sync_to_async(connections.close_all)()
