"""The Celery app: the default queue runs short jobs, the `sync` queue runs long-lived sync hosts."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webclient.settings.embedded")

app = Celery("webclient")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
