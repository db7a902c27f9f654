"""Start and stop the workspace's processes as one group (used by `manage.py workspace`)."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent


@dataclass
class ProcessGroup:
    """Named child processes, each in its own session so a stop reaches their children too."""

    cwd: Path
    env: dict[str, str]
    log_dir: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str, *command: str) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives with the process
        process = subprocess.Popen(
            command,
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
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
        """SIGTERM every group at once, then wait for each. Safe to call twice."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            stop_process(process, timeout)

    def start_workspace(
        self, *, host: str, port: int, sync_threads: int, name: str
    ) -> subprocess.Popen:
        """The production process list: web, sync hosts, short jobs, beat. Returns the web one."""
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


def stop_process(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM the process's group, SIGKILL it if it lingers. Safe to call twice."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def manage(*args: str) -> list[str]:
    return [sys.executable, "manage.py", *args]


def web_command(host: str, port: int) -> list[str]:
    return [str(BIN / "daphne"), "-b", host, "-p", str(port), "webclient.asgi:application"]


def celery_command(*args: str) -> list[str]:
    return [str(BIN / "celery"), "-A", "webclient", *args]


def wait_http(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the web process exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own loopback URL
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")
