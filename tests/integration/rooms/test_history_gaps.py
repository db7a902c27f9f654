"""Gaps after a limited sync fill in the background until complete, whatever their size, while the
live sync goes on; a slow, failing or killed owner leaves the gap for later, never drops it."""

import asyncio
import re
import signal
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from accounts.models import MatrixAccount
from rooms.models import SyncState, TimelineEntry, TimelineGap
from rooms.sync import host as host_module
from rooms.sync.host import SyncHost
from tests.integration.rooms.faulty_homeserver import FaultyHomeserver
from tests.integration.rooms.helpers import join, run_host_until, signed_in_account
from tests.integration.rooms.test_chaos import host_logs, start_host

pytestmark = pytest.mark.django_db(transaction=True)
GAP_MARKER = "Loading missed messages…"


async def until(condition, *, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await sync_to_async(condition)():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what or condition.__name__} did not hold within {timeout:.0f}s")


async def scroll_back(client, room_id: str) -> str:
    """The page above the room page's first item, as "Earlier messages" loads it."""
    page = (await sync_to_async(client.get)(f"/rooms/{room_id}/")).content.decode()
    first = re.search(r'id="ev-(\d+)"', page).group(1)
    older = await sync_to_async(client.get)(f"/rooms/{room_id}/events/", {"before": first})
    return older.content.decode()


async def send_burst(peer, room_id: str, prefix: str, count: int) -> list[str]:
    sent = []
    for n in range(count):
        response = await peer.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": f"{prefix} {n}"}
        )
        sent.append(response.event_id)
    return sent


async def test_a_gap_of_many_pages_fills_to_the_end(
    client, settings, matrix_user_factory, nio_peer_factory
):
    settings.GAP_FILL_PAGE = 1  # 40 missing events: 40 pages, twice the old give-up point
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    peer = await nio_peer_factory()
    created = await peer.room_create(name="Busy", invite=[me.user_id])
    await sync_to_async(join)(account, created.room_id)

    def synced() -> bool:
        return SyncState.objects.filter(account=account).exclude(next_batch="").exists()

    assert await run_host_until(synced)
    # More than the sync filter's timeline limit (50) while nobody syncs: a limited sync, a gap.
    sent = await send_burst(peer, created.room_id, "busy", 90)

    def all_stored() -> bool:
        return TimelineEntry.objects.filter(account=account, event__event_id__in=sent).count() == 90

    def gap_closed() -> bool:
        # The page after the oldest missing event reaches the account's own join: only then is the
        # gap complete, one page after the last missing event was stored.
        return all_stored() and not TimelineGap.objects.filter(account=account).exists()

    def state() -> str:
        gaps = TimelineGap.objects.filter(account=account).values("pages_fetched", "last_error")
        return f"all stored: {all_stored()}, gaps left: {list(gaps)}"

    if not await run_host_until(gap_closed, timeout=60):
        raise AssertionError(await sync_to_async(state)())
    # The page shows them in the homeserver's order, the back-filled ones in their place.
    page = (await sync_to_async(client.get)(f"/rooms/{created.room_id}/")).content.decode()
    shown = [int(n) for n in re.findall(r"busy (\d+)", page)]
    assert shown == list(range(40, 90))


async def test_live_sync_goes_on_while_a_gap_fills_and_a_killed_owner_leaves_it(
    client, settings, monkeypatch, matrix_user_factory, nio_peer_factory, synapse
):
    settings.GAP_FILL_PAGE = 2
    monkeypatch.setenv("GAP_FILL_PAGE", "2")  # for the host in its own process
    monkeypatch.setattr(host_module, "backoff_delay", lambda attempt, retry_after_ms=0: 0.5)
    proxy = await FaultyHomeserver(synapse.url).start()
    me = matrix_user_factory()
    account = await sync_to_async(signed_in_account)(client, me)
    await sync_to_async(MatrixAccount.objects.filter(pk=account.pk).update)(
        homeserver_url=proxy.url
    )
    peer = await nio_peer_factory()
    created = await peer.room_create(name="Slow history", invite=[me.user_id])
    room_id = created.room_id
    await sync_to_async(join)(account, room_id)
    process = None
    try:

        def synced() -> bool:
            return SyncState.objects.filter(account=account).exclude(next_batch="").exists()

        assert await run_host_until(synced)
        sent = await send_burst(peer, room_id, "missed", 100)  # 50 beyond the limit: 25 pages

        # The owner (its own process) takes two pages, then the homeserver's /messages hangs.
        proxy.hold(after=2)
        process = start_host()

        def gap_stuck() -> bool:
            gap = TimelineGap.objects.filter(account=account).first()
            return gap is not None and gap.pages_fetched >= 2 and proxy.held > 0

        await until(gap_stuck, what="a gap two pages in, its next page hanging")

        # The live sync is not held up by the hanging /messages.
        live = (await send_burst(peer, room_id, "live while filling", 1))[0]

        def live_arrived() -> bool:
            return TimelineEntry.objects.filter(account=account, event__event_id=live).exists()

        await until(live_arrived, timeout=20, what="a live message during the fill")
        assert await sync_to_async(TimelineGap.objects.filter(account=account).exists)()

        # Killed mid-fill: the gap and its progress stay for the next owner.
        gap = await sync_to_async(TimelineGap.objects.get)(account=account)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        process = None
        kept = await sync_to_async(TimelineGap.objects.get)(account=account)
        assert (kept.pk, kept.token) == (gap.pk, gap.token)

        # The next owner meets a failing homeserver: the gap is kept, with the reason shown.
        proxy.release("fail")
        stop = asyncio.Event()
        task = asyncio.create_task(SyncHost(capacity=10, lease_seconds=6).run(stop))
        try:

            def failing() -> bool:
                return TimelineGap.objects.filter(account=account).exclude(last_error="").exists()

            await until(failing, what="the gap kept with the failure recorded")
            failures = proxy.failed
            await until(lambda: proxy.failed > failures, what="another try")
            assert await sync_to_async(TimelineGap.objects.filter(account=account).exists)()
            # The page says so where the hole is: above the oldest message filled so far.
            older = await scroll_back(client, room_id)
            assert GAP_MARKER in older and "trying again" in older
            assert older.index(GAP_MARKER) < older.index(">missed 46<")

            # The homeserver recovers: the gap fills to the end and goes.
            proxy.release("pass")

            def complete() -> bool:
                stored = TimelineEntry.objects.filter(account=account, event__event_id__in=sent)
                return (
                    stored.count() == 100
                    and not TimelineGap.objects.filter(account=account).exists()
                )

            await until(complete, what="the gap filled")
        finally:
            stop.set()
            await task
            await sync_to_async(connections.close_all)()
        page = (await sync_to_async(client.get)(f"/rooms/{room_id}/")).content.decode()
        assert GAP_MARKER not in page
        shown = [int(n) for n in re.findall(r"missed (\d+)", page)]
        assert shown == list(range(51, 100))  # and "live while filling" after them
        assert page.index("missed 99") < page.index("live while filling 0")
    except AssertionError:
        print(host_logs())
        raise
    finally:
        if process is not None:
            process.kill()
            process.wait(timeout=10)
        await proxy.stop()
