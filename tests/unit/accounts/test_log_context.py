"""Log lines name the account, room and host they are about, and never carry a secret."""

import asyncio
import io
import logging

import pytest
from asgiref.sync import sync_to_async

from accounts import log_context
from accounts.log_context import ContextFormatter

TOKEN = "syt_YWxpY2U_kSeCrEtToKeN_0x1a2b"


@pytest.fixture
def lines():
    """Lines of a logger handled by the settings' formatter, as the console handler does."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ContextFormatter("%(levelname)s %(name)s%(context)s: %(message)s"))
    logger = logging.getLogger("test.log_context")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, lambda: stream.getvalue().splitlines()
    logger.removeHandler(handler)


def test_bound_fields_name_the_account_and_room(lines):
    logger, read = lines
    logger.info("before")
    with log_context.bound(account=12, room="!abc:example.org"):
        logger.info("inside")
    logger.info("after")
    assert read() == [
        "INFO test.log_context: before",
        "INFO test.log_context account=12 room=!abc:example.org: inside",
        "INFO test.log_context: after",
    ]


async def test_tasks_and_database_threads_inherit_the_account(lines):
    logger, read = lines

    async def account_loop(account_id: int) -> None:
        log_context.bind(account=account_id)
        await asyncio.sleep(0)
        logger.info("in the task")
        await sync_to_async(logger.info)("on the database thread")

    await asyncio.gather(account_loop(1), account_loop(2))
    logger.info("the host itself")
    assert sorted(read()) == sorted(
        [
            "INFO test.log_context account=1: in the task",
            "INFO test.log_context account=2: in the task",
            "INFO test.log_context account=1: on the database thread",
            "INFO test.log_context account=2: on the database thread",
            "INFO test.log_context: the host itself",
        ]
    )


def test_tokens_and_passwords_never_reach_a_line(lines):
    logger, read = lines
    logger.warning("GET /_matrix/client/v3/sync?access_token=%s&since=s1", TOKEN)
    logger.warning("headers: {'Authorization': 'Bearer %s'}", TOKEN)
    logger.warning('body: {"user": "alice", "password": "hunter2-secret"}')
    logger.warning("form: user=alice&password=hunter2-secret")
    logger.warning("token %s refused", TOKEN)
    logger.warning("GET /accounts/sso/return/?sso_state=n1&loginToken=login-SeCrEt")
    logger.warning("exchange of syl_bG9naW4_SeCrEtLoGiN_0x1 refused")
    try:
        raise ValueError(f"request with access_token={TOKEN} failed")
    except ValueError:
        logger.exception("sync failed")
    text = "\n".join(read())
    assert TOKEN not in text
    assert "kSeCrEtToKeN" not in text
    assert "hunter2" not in text
    assert "SeCrEt" not in text
    assert text.count("[redacted]") >= 9
    assert "since=s1" in text  # the rest of the line stays readable


def test_records_carry_their_context_when_formatted_later():
    """A handler that formats elsewhere (a queue, pytest's caplog) still sees the account."""
    log_context.install()
    with log_context.bound(account=7):
        record = logging.getLogger("test.log_context").makeRecord(
            "test.log_context", logging.INFO, __file__, 1, "later", (), None
        )
    assert record.context == " account=7"


def test_the_settings_use_the_formatter():
    handlers = logging.getLogger().handlers
    assert any(isinstance(h.formatter, ContextFormatter) for h in handlers)
