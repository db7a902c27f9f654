"""The whole workspace as production runs it (daphne, Celery sync + default workers, beat) against
the session's Synapse and Redis, and a headless Debian Chromium driven by Playwright."""

import functools
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from nio.crypto.sas import SasState

from tests.e2e.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.peer import wait_for_sas
from webclient.embedded.processes import ProcessGroup, manage, wait_http
from webclient.embedded.synapse import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


@dataclass
class Workspace:
    url: str
    processes: ProcessGroup
    channels_prefix: str = ""  # the workspace's channel layer, for tests that talk to its pages


def _broker_url(redis_url: str) -> str:
    """A broker database eight above the channel layer's, so runs on different Redis databases
    (parallel checkouts) never take each other's tasks."""
    base, _, db = redis_url.rpartition("/")
    return f"{base}/{(int(db or 0) + 8) % 16}"


@pytest.fixture(scope="session")
def workspace(tmp_path_factory, synapse, redis_url) -> Iterator[Workspace]:
    data_dir = tmp_path_factory.mktemp("workspace")
    port = free_port()
    channels_prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webclient.settings.embedded",
        "WEBCLIENT_DATA_DIR": str(data_dir),
        "DATABASE_URL": f"sqlite:///{data_dir / 'e2e.sqlite3'}",
        "REDIS_URL": redis_url,
        # A broker database and channel prefix of its own: nothing leaks between runs.
        "CELERY_BROKER_URL": _broker_url(redis_url),
        "CHANNELS_PREFIX": channels_prefix,
        "MATRIX_HOMESERVER_URL": synapse.url,
        "MATRIX_REGISTRATION_SHARED_SECRET": synapse.shared_secret,
        "SYNC_RECONCILE_SECONDS": "2",
        "SYNC_LEASE_SECONDS": "6",
        "KEY_REQUEST_RETRY_SECONDS": "4",
        "SYNC_TIMEOUT_MS": "5000",  # idle loops come round often enough to ask for keys again
        "ARCHIVE_EVERY_SECONDS": "2",  # beat's archiver, seen in admin by tests/e2e/test_records_admin
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Every browser signs in from 127.0.0.1: one test's wrong passwords must not lock the next
        # test's people out (each test has its own people, so the per-person limit stays real).
        "WEBCLIENT_SIGN_IN_FAILURES_PER_ADDRESS": "10000",
    }
    group = ProcessGroup(cwd=ROOT, env=env, log_dir=data_dir / "logs")
    group.run(*manage("migrate", "-v0"))
    group.run(*manage("collectstatic", "--noinput", "-v0"))
    web = group.start_workspace(host="127.0.0.1", port=port, sync_threads=4, name=str(port))
    space = Workspace(
        url=f"http://127.0.0.1:{port}", processes=group, channels_prefix=channels_prefix
    )
    try:
        wait_http(space.url + "/accounts/login/", web)
        yield space
    finally:
        group.stop()
        for name in group.processes:
            log = (group.log_dir / f"{name}.log").read_text(errors="replace")
            print(f"--- {name} log (tail) ---\n{log[-3000:]}")


@pytest.fixture(scope="package")
def browser():
    """Package-scoped: Playwright's sync API keeps an event loop running in this thread while it
    lives, so it must be gone before the suite's asyncio tests outside tests/e2e run."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: bin/test installs Debian's chromium package.")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on(
        "pageerror", lambda error: errors.append(f"{error.name}: {error.message} {error.stack}")
    )
    page.errors = errors
    page.wait_for_function = functools.partial(wait_for_js, page)
    yield page
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = Path(getattr(settings, "TEST_ARTIFACTS", ROOT / "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def wait_for_js(page, expression: str, arg=None, *, timeout: float = 30_000, polling=None) -> None:
    """Wait until `expression` (a JavaScript function's source, called with `arg`) is truthy.

    Playwright's own wait_for_function compiles the predicate with eval inside the page, which our
    Content-Security-Policy refuses; page.evaluate is not subject to it, so poll with that. Same
    arguments as wait_for_function (`polling` is ignored: every 50 ms)."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression, arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout / 1000:.0f} s: {expression}")
        page.wait_for_timeout(50)


def sign_in(page, workspace: Workspace, creds) -> None:
    page.goto(workspace.url + "/accounts/login/")
    page.fill("#id_username", creds.localpart)
    page.fill("#id_password", creds.password)
    page.click("button[type=submit]")
    page.wait_for_url(workspace.url + "/")


@pytest.fixture
def bob(synapse, matrix_user_factory):
    """The other party: a plain matrix-nio client on its own thread."""
    from tests.e2e.peer import SyncPeer

    peer = SyncPeer(synapse.url, matrix_user_factory())
    yield peer
    peer.close()


@pytest.fixture
def bob_encrypting(synapse, matrix_user_factory, tmp_path):
    """The other party with an Olm device of its own, as Element or any E2EE client would have."""
    from tests.e2e.peer import SyncPeer

    peer = SyncPeer(synapse.url, matrix_user_factory(), store_dir=tmp_path / "bob-crypto")
    yield peer
    peer.close()


def open_shared_room(page, workspace: Workspace, alice, peer, name: str) -> str:
    """The peer creates a room and invites Alice; she signs in, accepts, and the peer sees her."""
    room_id = peer.create_room(name=name, invite=[alice.user_id])
    sign_in(page, workspace, alice)
    page.click(f"#room-list >> text={name}")
    page.click("text=Accept")
    page.wait_for_selector("#composer-body")
    peer.wait_for_member(room_id, alice.user_id)
    return room_id


def peer_verifies_page_by_emoji(page, peer, device) -> None:
    """The peer starts emoji verification with the page's device (`device`, as the peer knows
    it); the person accepts on the page, both sides confirm the emoji match, both end verified."""
    peer.call(peer.client.start_key_verification(device))
    sas = peer.client.olm.get_active_sas(device.user_id, device.id)
    page.click("#verification-banner button:has-text('Verify')")
    wait_for_sas(peer, sas.transaction_id, lambda s: s.state == SasState.key_received)
    page.wait_for_selector("#verification-banner .sas-emoji li")
    peer.call(peer.client.confirm_short_auth_string(sas.transaction_id))
    page.click("#verification-banner button:has-text('They match')")
    wait_for_sas(peer, sas.transaction_id, lambda s: s.verified)
