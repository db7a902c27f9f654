"""The whole workspace as production runs it (daphne, Celery sync + default workers, beat) against
the session's Synapse and Redis, and a headless Debian Chromium driven by Playwright."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("WEBCLIENT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


class Workspace:
    """The workspace's processes, each in its own process group, logging into the data folder."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.env = env
        self.processes: dict[str, subprocess.Popen] = {}
        self.url = ""

    def manage(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self, name: str, *command: str) -> subprocess.Popen:
        log = open(self.data_dir / f"{name}.log", "wb")  # noqa: SIM115 - lives with the process
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = process
        return process

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def log(self, name: str) -> str:
        return (self.data_dir / f"{name}.log").read_text(errors="replace")


@pytest.fixture(scope="session")
def workspace(tmp_path_factory, synapse, redis_url) -> Iterator[Workspace]:
    data_dir = tmp_path_factory.mktemp("workspace")
    port = free_port()
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webclient.settings.embedded",
        "WEBCLIENT_DATA_DIR": str(data_dir),
        "DATABASE_URL": f"sqlite:///{data_dir / 'e2e.sqlite3'}",
        "REDIS_URL": redis_url,
        "CHANNELS_PREFIX": f"e2e-{uuid.uuid4().hex[:8]}",
        "MATRIX_HOMESERVER_URL": synapse.url,
        "MATRIX_REGISTRATION_SHARED_SECRET": synapse.shared_secret,
        "SYNC_RECONCILE_SECONDS": "2",
        "SYNC_LEASE_SECONDS": "6",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    # A broker of its own (another Redis database) so tasks never leak between runs.
    env["CELERY_BROKER_URL"] = redis_url.rsplit("/", 1)[0] + "/7"
    space = Workspace(data_dir, env)
    space.manage("migrate", "-v0")
    space.manage("collectstatic", "--noinput", "-v0")
    web = space.start(
        "web",
        str(bin_dir / "daphne"),
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "webclient.asgi:application",
    )
    celery = str(bin_dir / "celery")
    space.start(
        "sync",
        celery,
        "-A",
        "webclient",
        "worker",
        "-Q",
        "sync",
        "--pool",
        "threads",
        "-c",
        "4",
        "-n",
        f"sync-{port}@%h",
        "--loglevel",
        "INFO",
    )
    space.start(
        "worker",
        celery,
        "-A",
        "webclient",
        "worker",
        "-Q",
        "default",
        "--pool",
        "solo",
        "-n",
        f"default-{port}@%h",
        "--loglevel",
        "INFO",
    )
    space.start(
        "beat",
        celery,
        "-A",
        "webclient",
        "beat",
        "--loglevel",
        "INFO",
        "-s",
        str(data_dir / "beat-schedule"),
    )
    space.url = f"http://127.0.0.1:{port}"
    try:
        wait_http(space.url + "/accounts/login/", process=web)
        yield space
    finally:
        space.stop()
        for name in space.processes:
            print(f"--- {name} log (tail) ---\n{space.log(name)[-3000:]}")


@pytest.fixture(scope="session")
def browser():
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
    page.on("pageerror", lambda error: errors.append(f"{error.name}: {error.message} {error.stack}"))
    page.errors = errors
    yield page
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = Path(getattr(settings, "TEST_ARTIFACTS", ROOT / "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def sign_in(page, workspace: Workspace, creds) -> None:
    page.goto(workspace.url + "/accounts/login/")
    page.fill("#id_username", creds.localpart)
    page.fill("#id_password", creds.password)
    page.click("button[type=submit]")
    page.wait_for_url(workspace.url + "/")
