"""Start and stop the workspace's processes as one group (`manage.py workspace`, tests, benchmarks).

Every child gets a session (process group) of its own: the terminal's Ctrl-C reaches only the runner,
which then stops each group in order, and a stop reaches the children's own children (Celery's pool,
Synapse's workers). On Linux each child also gets SIGTERM when the runner dies, even by SIGKILL, so no
Synapse or Redis is left behind.
"""

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when its parent dies; None elsewhere.

    The libc function is looked up here, in the parent, so the forked child only makes one call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


_PREEXEC = _parent_death_signal()


def popen(command: list[str], *, log: Path, **kwargs) -> subprocess.Popen:
    """Start a long-lived child in its own session with stdout and stderr appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_PREEXEC,  # one prctl call, resolved before the fork
            **kwargs,
        )


def free_port() -> int:
    """A loopback port free right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def stop_process(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM the process's group, SIGKILL it if it lingers. Safe to call twice."""
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.wait()


def log_tail(path: Path, size: int = 3000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else ""


@dataclass
class ProcessGroup:
    """Named child processes started with one environment; `stop()` ends them all."""

    cwd: Path
    env: dict[str, str]
    log_dir: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __enter__(self) -> "ProcessGroup":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, name: str, *command: str) -> subprocess.Popen:
        process = popen(list(command), log=self.log_dir / f"{name}.log", cwd=self.cwd, env=self.env)
        self.processes[name] = process
        return process

    def run(self, *command: str) -> None:
        """A one-off step (migrate, collectstatic...): fail loudly with its output."""
        result = subprocess.run(command, cwd=self.cwd, env=self.env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command[1:3])} failed:\n{result.stdout}{result.stderr}")
        if result.stdout.strip():
            print(result.stdout.rstrip())

    def exited(self) -> list[str]:
        return [name for name, p in self.processes.items() if p.poll() is not None]

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every group at once (they shut down in parallel), then wait for each, SIGKILLing
        stragglers. Safe to call twice."""
        for process in self.processes.values():
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            stop_process(process, max(0.1, deadline - time.monotonic()))

    def start_workspace(
        self, *, host: str, port: int, sync_threads: int, name: str
    ) -> subprocess.Popen:
        """The production process list: web, sync hosts, short jobs, beat. Returns the web one.

        The sync worker uses the threads pool: `sync_host_run` is a long-running task that runs one
        asyncio loop holding many nio clients, so each thread is one host, and `sync_threads` hosts
        share one process (a prefork child per host would cost ~110 MB each, and solo could run only
        one host). The default worker runs short jobs one at a time (solo): enough for one machine,
        and scaled by starting more workers, not by threads sharing a SQLite writer."""
        web = self.start("web", *web_command(host, port))
        self.start(
            "sync",
            *celery_command(
                "worker",
                "-Q",
                "sync",
                "--pool",
                "threads",
                "-c",
                str(sync_threads),
                "-n",
                f"sync-{name}@%h",
                "-l",
                "INFO",
            ),
        )
        self.start(
            "worker",
            *celery_command(
                "worker",
                "-Q",
                "default",
                "--pool",
                "solo",
                "-n",
                f"default-{name}@%h",
                "-l",
                "INFO",
            ),
        )
        self.start(
            "beat",
            *celery_command(
                "beat", "-l", "INFO", "-s", str(self.log_dir.parent / "celerybeat-schedule")
            ),
        )
        return web


def manage(*args: str) -> list[str]:
    return [sys.executable, "manage.py", *args]


def web_command(host: str, port: int) -> list[str]:
    return [str(BIN / "daphne"), "-b", host, "-p", str(port), "webclient.asgi:application"]


def celery_command(*args: str) -> list[str]:
    return [str(BIN / "celery"), "-A", "webclient", *args]


def wait_port(host: str, port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until something accepts TCP connections on host:port, failing early if `process` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the process exited with {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{host}:{port} did not accept connections within {timeout:.0f}s")


def wait_http(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until `url` answers with a success status, failing early if `process` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the process serving {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own loopback URL
                return
        except urllib.error.HTTPError as error:
            if error.code < 500:
                return  # it answers; a 4xx is the page's business, not the server's readiness
            time.sleep(0.2)
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")
