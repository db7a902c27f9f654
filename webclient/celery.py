"""The Celery app: the default queue runs short jobs, the `sync` queue runs long-lived sync hosts."""

import logging
import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webclient.settings.embedded")

app = Celery("webclient")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _serve_metrics(**_kwargs) -> None:
    """A worker with WEBCLIENT_METRICS_PORT set (the sync worker's unit sets it) serves its
    metrics there. Run the sync worker with `--pool threads`: prefork children would each keep
    figures the port never shows."""
    from rooms.metrics import serve_host_metrics  # after Django is set up

    try:
        serve_host_metrics()
    except OSError:
        logging.getLogger(__name__).warning("metrics port already in use", exc_info=True)
