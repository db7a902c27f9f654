"""Every line an account's sync or outbox loop logs names the account (accounts/log_context)."""

import logging

import pytest

from rooms.services import LeaseHandle
from rooms.sync.host import AccountSync, OutboxSender, SessionEnded

LEASE = LeaseHandle(account_id=4242, owner="host-test", token=1)
log = logging.getLogger("rooms.sync.test")


async def test_the_sync_loop_names_its_account(monkeypatch, caplog):
    async def one_round(self) -> None:
        log.warning("sync round")

    monkeypatch.setattr(AccountSync, "_sync", one_round)
    with caplog.at_level(logging.WARNING, logger="rooms.sync.test"):
        await AccountSync(LEASE, http=None).run()
    assert [r.context for r in caplog.records if r.message == "sync round"] == [" account=4242"]


async def test_the_outbox_loop_names_its_account(monkeypatch, caplog):
    async def session_over(self, attempt: int) -> float:
        log.warning("send round")
        raise SessionEnded

    monkeypatch.setattr(OutboxSender, "send_pending", session_over)
    with caplog.at_level(logging.WARNING, logger="rooms.sync.test"):
        await OutboxSender(LEASE, http=None).run()
    assert [r.context for r in caplog.records if r.message == "send round"] == [" account=4242"]


@pytest.fixture(autouse=True)
def _stamped_records():
    from accounts import log_context

    log_context.install()
