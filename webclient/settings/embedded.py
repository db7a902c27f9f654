"""The one-command run on a laptop or a single server: SQLite and files in the data folder.

The runner (`manage.py workspace`) starts Redis and, unless MATRIX_HOMESERVER_URL is set, a Synapse;
it passes their addresses in the environment, so this module only fills in local keys.
"""

import os

from webclient.settings.base import *  # noqa: F403
from webclient.settings.base import DATA_DIR
from webclient.settings.local_keys import load_or_create_local_keys

DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
_keys = load_or_create_local_keys(DATA_DIR)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or _keys.django_secret_key
WEBCLIENT_SECRET_KEYS = WEBCLIENT_SECRET_KEYS or [_keys.master_key]  # noqa: F405
