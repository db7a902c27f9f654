"""Shared set-up for benchmarks: a loopback Synapse, a Redis, Matrix users, a database."""

import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from accounts.matrix.synapse_admin import register_with_shared_secret
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
