"""Objects that carry secrets print without them: a repr lands in logs, tracebacks and debuggers."""

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from accounts.matrix.client_api import Session
from accounts.matrix.cross_signing import CrossSigningKeys, SigningKey
from accounts.matrix.key_backup import BackupKey
from accounts.models import MatrixAccount, ServiceCredential
from accounts.services import HomeserverConfig
from rooms.selectors import Device
from webclient.embedded.synapse import SynapseProcess
from webclient.settings.local_keys import LocalKeys

TOKEN = "syt_c2VjcmV0_TOKENTOKENTOKEN_0abcde"
PICKLE = "pickle-key-PICKLEPICKLE"
SHARED = "shared-secret-SHAREDSHARED"
FERNET = Fernet.generate_key().decode()


def printed(thing) -> str:
    return f"{thing!r} {thing!s} {[thing]} { ({'x': thing}) }"


def secret_holders() -> list[tuple[object, list[str]]]:
    seed = b"\x01" * 32
    keys = CrossSigningKeys(SigningKey(seed), SigningKey(seed), SigningKey(seed))
    backup = BackupKey.generate()
    return [
        (Session("https://hs", "@a:hs", "DEV", TOKEN), [TOKEN]),
        (
            Device(
                "https://hs",
                "@a:hs",
                TOKEN,
                "DEV",
                pickle_key=PICKLE,
                cross_signing_keys=keys.to_json(),
                key_backup_key=backup.private,
            ),
            [TOKEN, PICKLE, keys.to_json(), backup.private],
        ),
        (HomeserverConfig("https://hs", SHARED, TOKEN, 15.0), [SHARED, TOKEN]),
        (keys, [seed.hex(), repr(seed)]),
        (backup, [backup.private]),
        (LocalKeys(django_secret_key=SHARED, master_key=FERNET), [SHARED, FERNET]),
        (SynapseProcess("https://hs", "hs", SHARED, Path("/tmp"), process=None), [SHARED]),
        (
            MatrixAccount(mxid="@a:hs", device_id="DEV", access_token=TOKEN, pickle_key=PICKLE),
            [TOKEN, PICKLE],
        ),
        (ServiceCredential(name="synapse-admin", user_id="@admin:hs", secret=TOKEN), [TOKEN]),
    ]


@pytest.mark.parametrize(
    ("thing", "secrets"), secret_holders(), ids=lambda v: type(v).__name__ if v else ""
)
def test_no_secret_in_repr_or_str(thing, secrets):
    text = printed(thing)
    for secret in secrets:
        assert secret not in text, type(thing).__name__
