"""Shared set-up for benchmarks: a loopback Synapse, a Redis, Matrix users, a database, CPU load."""

import contextlib
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from accounts.matrix.synapse_admin import register_with_shared_secret
from webclient.embedded.processes import popen
from webclient.embedded.redis import redis_reachable, start_redis
from webclient.embedded.synapse import SynapseProcess, start_synapse


@dataclass
class Services:
    data_dir: Path
    synapse: SynapseProcess
    redis_url: str
    stoppers: list

    def stop(self) -> None:
        for stopper in reversed(self.stoppers):
            stopper.stop()


def start_services() -> Services:
    data_dir = Path(tempfile.mkdtemp(prefix="webclient-bench-"))
    synapse = start_synapse(data_dir / "synapse", for_tests=True)
    stoppers: list = [synapse]
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if not redis_reachable(redis_url):
        redis = start_redis(data_dir / "redis")
        stoppers.append(redis)
        redis_url = redis.url
    return Services(data_dir, synapse, redis_url, stoppers)


def broker_url(redis_url: str) -> str:
    """The Celery broker for a bench's workspace: eight databases above REDIS_URL's (as the e2e
    fixtures do), so benches and tests of parallel checkouts never take each other's tasks."""
    base, _, db = redis_url.rpartition("/")
    return f"{base}/{(int(db or 0) + 8) % 16}"


@contextlib.contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database on the server of `server_url` for one run, dropped after.
    Yields its URL."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    parts = urlsplit(server_url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def cpu_load(processes: int | None = None) -> Iterator[list[subprocess.Popen]]:
    """A busy machine: one CPU-burning process per core (or `processes`), ended on exit. They
    burn at normal priority, as other people's test suites and builds do."""
    count = processes or os.cpu_count() or 1
    # popen: each burner dies with the bench, even when the bench is killed.
    burners = [
        popen([sys.executable, "-c", "while True: pass"], log=Path(os.devnull))
        for _ in range(count)
    ]
    try:
        yield burners
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def register(synapse: SynapseProcess, prefix: str = "bench"):
    localpart = f"{prefix}-{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    session = register_with_shared_secret(
        synapse.url, shared_secret=synapse.shared_secret, localpart=localpart, password=password
    )
    return localpart, password, session


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]
