"""Tests: the embedded layout in a throwaway data folder, real Redis and a real Synapse from fixtures."""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("WEBCLIENT_DATA_DIR", tempfile.mkdtemp(prefix="webclient-test-"))

from webclient.settings.embedded import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Each test session gets its own channel and Celery prefixes on the shared Redis.
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"webclient-test-{os.getpid()}"  # noqa: F405
STORAGES["staticfiles"] = {  # noqa: F405
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
}
TEST_ARTIFACTS = Path(os.environ.get("WEBCLIENT_TEST_ARTIFACTS", Path.cwd() / "test-artifacts"))
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not memory: browser tests share the database with daphne and sync host processes.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}  # noqa: F405
SYNC_TIMEOUT_MS = 2000
SYNC_LEASE_SECONDS = 6.0
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405 - whitenoise warns when it is missing
KEY_REQUEST_RETRY_SECONDS = 4.0
