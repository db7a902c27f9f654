"""Keys the embedded run generates once into its data folder (mode 0600), so nothing is hard-coded."""

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet


@dataclass(frozen=True)
class LocalKeys:
    django_secret_key: str = field(repr=False)
    master_key: str = field(repr=False)


def _read_or_create(path: Path, make) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def load_or_create_local_keys(data_dir: Path) -> LocalKeys:
    """Read the data folder's keys, creating any that are missing with owner-only permissions."""
    keys_dir = data_dir / "keys"
    return LocalKeys(
        django_secret_key=_read_or_create(
            keys_dir / "django_secret_key", lambda: secrets.token_urlsafe(50)
        ),
        master_key=_read_or_create(keys_dir / "master_key", lambda: Fernet.generate_key().decode()),
    )
