"""webclient: a self-hosted Matrix team workspace."""

from webclient.celery import app as celery_app

__all__ = ["celery_app"]
