"""Debian's Chromium, never a browser downloaded by Playwright; flags that keep it off the network."""

import os

CHROMIUM = os.environ.get("WEBCLIENT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
